// Runs the real `meshward` command as a separate process, the way scripts
// and CI checks run it, and collects its exit code and output.

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { resolve } from 'node:path';

export const MESHWARD_BIN = resolve(import.meta.dirname, '../../bin/meshward.js');

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function runMeshward(args: readonly string[], options: { stdin?: string; cwd?: string; bin?: string } = {}): Promise<CliRun> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, [options.bin ?? MESHWARD_BIN, ...args], {
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolveRun({ code, stdout, stderr }));
    child.stdin.end(options.stdin ?? '');
  });
}

export interface ProxyProcess {
  readonly child: ChildProcessWithoutNullStreams;
  /** Resolves once the proxy logs `proxy-started`; rejects if it exits first. */
  readonly started: Promise<void>;
  /** Its stderr so far. */
  stderr(): string;
}

/** `meshward proxy --config configFile` as a process (the launcher `bin`, this package's unless told). */
export function startProxyProcess(configFile: string, bin = MESHWARD_BIN): ProxyProcess {
  const child = spawn(process.execPath, [bin, 'proxy', '--config', configFile], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.end();
  child.stdout.resume();
  let stderr = '';
  const started = new Promise<void>((ok, fail) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (stderr.includes('"proxy-started"')) ok();
    });
    child.on('exit', () => fail(new Error(`proxy exited early: ${stderr}`)));
  });
  // A test that stops the proxy itself does not await `started` afterwards.
  started.catch(() => undefined);
  return { child, started, stderr: () => stderr };
}
