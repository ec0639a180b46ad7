// `meshward down`: asks the `meshward up` running on a state directory to
// stop (SIGTERM: it stops apps, proxies and the control plane in order) and
// waits until it has.

import { EXIT_FINDINGS, EXIT_OK } from '../io.ts';
import { readUpFile } from './index.ts';

export async function runDown(opts: { stateDir: string; timeoutMs?: number }): Promise<number> {
  const up = readUpFile(opts.stateDir);
  if (up === undefined) {
    process.stdout.write(`no mesh is running on ${opts.stateDir}\n`);
    return EXIT_OK;
  }
  process.kill(up.pid, 'SIGTERM');
  const until = Date.now() + (opts.timeoutMs ?? 20_000);
  while (Date.now() < until) {
    if (readUpFile(opts.stateDir) === undefined) {
      process.stdout.write(`stopped the mesh (pid ${up.pid})\n`);
      return EXIT_OK;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  process.stderr.write(`meshward: the mesh (pid ${up.pid}) has not stopped after ${Math.round((opts.timeoutMs ?? 20_000) / 1000)} s\n`);
  return EXIT_FINDINGS;
}
