// `meshward status [-o json]`: the running mesh, asked of its control plane
// and of each proxy's admin API (see mesh-status.ts for the JSON shape).

import { EXIT_OK, EXIT_USAGE } from '../io.ts';
import { readMesh } from '../mesh-common.ts';
import { collectMeshStatus, renderMeshStatus } from './mesh-status.ts';

export async function runStatus(opts: { filename: string; stateDir: string; output: 'text' | 'json' }): Promise<number> {
  const mesh = readMesh(opts.filename);
  if (mesh === undefined) return EXIT_USAGE;
  const status = await collectMeshStatus(mesh, opts.stateDir);
  process.stdout.write(opts.output === 'json' ? `${JSON.stringify(status, null, 2)}\n` : renderMeshStatus(status));
  return EXIT_OK;
}
