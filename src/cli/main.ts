// The meshward command line: one file per command, wired here. Each action
// imports its command's module when it runs, so a long-running process (a
// proxy, the control plane) carries only the code of its own command.

import { Command, CommanderError, Option } from 'commander';
import { MeshwardError } from '../lib/errors.ts';
import { EXIT_USAGE } from './io.ts';
import { CA_KEY_TYPE_NAMES, DEFAULT_STATE_DIR, DEFAULT_TRUST_DOMAIN } from '../identity/ca/defaults.ts';
import type { CaKeyType } from '../identity/ca/index.ts';

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
    .action(async (opts: { filename: string[] }) => setExit(await (await import('./validate.ts')).runValidate(opts.filename)));

  const authz = program.command('authz').description('Explain and test authorization decisions');
  authz
    .command('check')
    .description('Decide one request as Istio would, and say why')
    .requiredOption('-f, --filename <path>', 'file or directory of Istio resources; repeatable', collect, [])
    .requiredOption('--request <path>', 'request JSON file, or - for stdin')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: { filename: string[]; request: string; output: 'text' | 'json' }) =>
      setExit(await (await import('./authz-check.ts')).runAuthzCheck(opts.filename, opts.request, opts.output)),
    );

  // The identity commands load the CA (X.509, metrics) only when they run.
  const output = () => new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text');
  const stateDir = () => new Option('--state-dir <dir>', 'CA state directory').default(DEFAULT_STATE_DIR);
  const ca = program.command('ca').description('The mesh certificate authority: create, serve, inspect, rotate roots');
  ca.command('init')
    .description('Create the CA (a self-signed root, or a plug-in CA from an Istio cacerts directory)')
    .addOption(stateDir())
    .option('--trust-domain <td>', 'SPIFFE trust domain', DEFAULT_TRUST_DOMAIN)
    .addOption(new Option('--key-type <type>', 'key type of generated roots').choices(CA_KEY_TYPE_NAMES))
    .option('--plugin-dir <dir>', 'cacerts directory: ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem')
    .action(async (o: { stateDir: string; trustDomain: string; keyType?: CaKeyType; pluginDir?: string }) => setExit(await (await import('./ca-init.ts')).runCaInit(o)));
  ca.command('status')
    .description('Roots, their expiry and rotation phase, certificates issued')
    .addOption(stateDir())
    .addOption(output())
    .action(async (o: { stateDir: string; output: 'text' | 'json' }) => setExit(await (await import('./ca-status.ts')).runCaStatus(o.stateDir, o.output)));
  ca.command('serve')
    .description('Run the CA server: Istio\'s CSR API and the trust bundle stream, an admin endpoint; loopback only')
    .addOption(stateDir())
    .option('--listen <host:port>', 'gRPC listener (a loopback address)', '127.0.0.1:15012')
    .option('--admin <host:port>', 'admin HTTP listener (a loopback address; port 0 picks one)', '127.0.0.1:0')
    .action(async (o: { stateDir: string; listen: string; admin: string }) => setExit(await (await import('./ca-serve.ts')).runCaServe(o)));
  ca.command('rotate-root')
    .description('Rotate the root: through the running CA server, or offline phase 1 (add a root)')
    .addOption(stateDir())
    .action(async (o: { stateDir: string }) => setExit(await (await import('./ca-rotate-root.ts')).runCaRotateRoot(o.stateDir)));
  program
    .command('proxy')
    .description('Run a workload proxy: inbound mTLS, authorization, admin API')
    .requiredOption('--config <file>', 'proxy config (YAML or JSON)')
    .action(async (o: { config: string }) => setExit(await (await import('./proxy.ts')).runProxy(o)));
  // The local mesh: one file describes it (docs/mesh-file.md).
  const meshFile = () => new Option('-f, --filename <file>', 'mesh file').default('examples/shop/mesh.yaml');
  const meshState = () => new Option('--state-dir <dir>', 'state directory (CA, gateway certificate, logs)').default('.meshward');
  program
    .command('up')
    .description('Run a whole mesh from a mesh file: control plane, proxies, gateway, apps; Ctrl-C stops it all')
    .addOption(meshFile())
    .addOption(meshState())
    .option('--sidecars', 'one proxy process per workload instead of one node proxy for all')
    .option('--proxy-processes <n>', 'spread the workloads over this many node proxy processes (one per core pays under load)', (v) => Number.parseInt(v, 10), 1)
    .action(async (o: { filename: string; stateDir: string; sidecars?: boolean; proxyProcesses: number }) => setExit(await (await import('./up/index.ts')).runUp(o)));
  program
    .command('status')
    .description('Workloads of the running mesh: identity, mTLS mode per port, certificate expiry, readiness')
    .addOption(meshFile())
    .addOption(meshState())
    .addOption(output())
    .action(async (o: { filename: string; stateDir: string; output: 'text' | 'json' }) => setExit(await (await import('./up/status.ts')).runStatus(o)));
  program
    .command('down')
    .description('Stop the mesh `meshward up` runs on this state directory')
    .addOption(meshState())
    .action(async (o: { stateDir: string }) => setExit(await (await import('./up/down.ts')).runDown(o)));
  program
    .command('controlplane')
    .description('Run the control plane: CA, config stream to the proxies, watched policy directory, admin endpoint')
    .addOption(meshFile())
    .addOption(meshState())
    .action(async (o: { filename: string; stateDir: string }) => setExit(await (await import('./controlplane.ts')).runControlPlane(o)));
  program
    .command('node-proxy')
    .description('Run the proxies of several workloads in one process, configured by the control plane')
    .addOption(meshFile())
    .addOption(meshState())
    .option('--workload <name>', 'host only this workload (repeatable); default all and the gateway', collect, [])
    .action(async (o: { filename: string; stateDir: string; workload: string[] }) => setExit(await (await import('./node-proxy.ts')).runNodeProxy(o)));
  program
    .command('gateway')
    .description('Run the ingress gateway of a mesh file: external TLS, JWT, authorization, mTLS into the mesh')
    .addOption(meshFile())
    .addOption(meshState())
    .action(async (o: { filename: string; stateDir: string }) => {
      const { readMesh } = await import('./mesh-common.ts');
      const mesh = readMesh(o.filename);
      if (mesh === undefined) return setExit(EXIT_USAGE);
      if (mesh.gateway === undefined) {
        process.stderr.write(`meshward: ${o.filename} defines no gateway\n`);
        return setExit(EXIT_USAGE);
      }
      setExit(await (await import('./node-proxy.ts')).runNodeProxy({ ...o, workload: [mesh.gateway.name] }));
    });
  const cert = program.command('cert').description('Inspect and verify certificates');
  cert
    .command('inspect')
    .description('SPIFFE ID, validity, key and signer of every certificate in a PEM file')
    .argument('<file>', 'PEM file, or - for stdin')
    .option('--bundle <file>', 'roots to look for signers in, besides the file itself')
    .addOption(output())
    .action(async (file: string, o: { bundle?: string; output: 'text' | 'json' }) => setExit(await (await import('./cert-inspect.ts')).runCertInspect(file, o.bundle, o.output)));
  cert
    .command('verify')
    .description('Verify a certificate chain as an X.509-SVID against a trust bundle; exit 1 names the failed check')
    .requiredOption('--bundle <file>', 'trust bundle (PEM roots)')
    .requiredOption('--cert <file>', 'certificate chain, leaf first (PEM)')
    .option('--trust-domain <td>', 'trust domain the certificate must belong to')
    .addOption(output())
    .action(async (o: { bundle: string; cert: string; trustDomain?: string; output: 'text' | 'json' }) => setExit(await (await import('./cert-verify.ts')).runCertVerify(o)));

  const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
  for (const cmd of all(program)) cmd.exitOverride();
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
