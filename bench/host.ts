// What the benchmarks ask of the machine they run on.

import { execFileSync } from 'node:child_process';

/** True if `cmd` is an executable on PATH (nginx, haproxy, openssl, wrk…). */
export function onPath(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
