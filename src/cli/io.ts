// Small I/O helpers shared by commands: reading a file or stdin, and the
// exit codes every command uses.

import { readFile } from 'node:fs/promises';
import { MeshwardError } from '../lib/errors.ts';

export const EXIT_OK = 0;
/** The check ran and found problems (validate). */
export const EXIT_FINDINGS = 1;
/** Usage errors, unreadable or invalid input. */
export const EXIT_USAGE = 2;

export async function readTextArgument(pathOrDash: string): Promise<{ name: string; text: string }> {
  if (pathOrDash === '-') {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return { name: '<stdin>', text: Buffer.concat(chunks).toString('utf8') };
  }
  try {
    return { name: pathOrDash, text: await readFile(pathOrDash, 'utf8') };
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new MeshwardError('ERR_MW_READ', `${pathOrDash}: cannot read: ${reason}`);
  }
}
