// The meshward command line: one file per command, wired here.

import { Command, CommanderError, Option } from 'commander';
import { MeshwardError } from '../lib/errors.ts';
import { EXIT_USAGE } from './io.ts';
import { runValidate } from './validate.ts';
import { runAuthzCheck } from './authz-check.ts';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function build(setExit: (code: number) => void): Command {
  const program = new Command('meshward')
    .description('A zero-trust service mesh that speaks Istio\'s security API')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  program
    .command('validate')
    .description('Validate Istio security resources (files or directories of YAML/JSON)')
    .requiredOption('-f, --filename <path>', 'file or directory; repeatable', collect, [])
    .action(async (opts: { filename: string[] }) => setExit(await runValidate(opts.filename)));

  const authz = program.command('authz').description('Explain and test authorization decisions');
  authz
    .command('check')
    .description('Decide one request as Istio would, and say why')
    .requiredOption('-f, --filename <path>', 'file or directory of Istio resources; repeatable', collect, [])
    .requiredOption('--request <path>', 'request JSON file, or - for stdin')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: { filename: string[]; request: string; output: 'text' | 'json' }) =>
      setExit(await runAuthzCheck(opts.filename, opts.request, opts.output)),
    );

  for (const cmd of [program, authz, ...program.commands, ...authz.commands]) cmd.exitOverride();
  return program;
}

/** Runs the CLI and returns the exit code; never throws. */
export async function main(argv: readonly string[]): Promise<number> {
  let code = 0;
  const program = build((c) => (code = c));
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
      if (err.code === 'commander.executeSubCommandAsync') return 0;
      return EXIT_USAGE;
    }
    if (err instanceof MeshwardError) {
      process.stderr.write(`meshward: ${err.message}\n`);
      for (const line of err.details) process.stderr.write(`  ${line}\n`);
      return EXIT_USAGE;
    }
    process.stderr.write(`meshward: unexpected error: ${(err as Error).message}\n`);
    return EXIT_USAGE;
  }
}
