// What the mesh commands (`controlplane`, `node-proxy`, `gateway`, `up`,
// `status`, `down`) share: reading the mesh file with its diagnostics
// printed, JSON log lines on stderr, and where things live in the state
// directory.

import { join, resolve } from 'node:path';
import { formatDiagnostic } from '../api/diagnostics.ts';
import { loadMeshFile, type MeshFile } from '../api/mesh-file.ts';

export const DEFAULT_MESH_STATE_DIR = '.meshward';

/** The CA's state (and the control plane's server.json) inside the mesh state directory. */
export const caDirOf = (stateDir: string): string => join(resolve(stateDir), 'ca');

export function readMesh(file: string): MeshFile | undefined {
  const r = loadMeshFile(file);
  if ('diagnostics' in r) {
    for (const d of r.diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
    return undefined;
  }
  return r.mesh;
}

export function jsonLog(component: string) {
  return (level: string, event: string, fields: Readonly<Record<string, unknown>>): void => {
    if (level === 'debug') return;
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), component, level, event, ...fields })}\n`);
  };
}
