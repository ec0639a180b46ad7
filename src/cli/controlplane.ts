// `meshward controlplane -f mesh.yaml`: the control plane as a process — CA,
// config stream, watched policy directory, admin endpoint. It writes the
// CA's server.json (0600, with the admin token) into <state>/ca, so
// `meshward ca status`, `ca rotate-root`, the proxies and `meshward status`
// find it, and removes it when it stops.

import { formatDiagnostic } from '../api/diagnostics.ts';
import { ControlPlane, ControlPlaneStartError } from '../control/control-plane.ts';
import { EXIT_OK, EXIT_USAGE } from './io.ts';
import { removeServerFile, writeServerFile } from './ca-server-file.ts';
import { caDirOf, jsonLog, readMesh } from './mesh-common.ts';
import { untilSignal } from './signals.ts';

export interface ControlPlaneCommandOptions {
  filename: string;
  stateDir: string;
}

export async function runControlPlane(opts: ControlPlaneCommandOptions): Promise<number> {
  const mesh = readMesh(opts.filename);
  if (mesh === undefined) return EXIT_USAGE;
  const log = jsonLog('controlplane');
  const { signalled, release } = untilSignal();
  let cp: ControlPlane;
  try {
    cp = await ControlPlane.start({ mesh, stateDir: opts.stateDir, log });
  } catch (err) {
    release();
    process.stderr.write(`meshward: control plane could not start: ${(err as Error).message}\n`);
    if (err instanceof ControlPlaneStartError) for (const d of err.diagnostics) process.stderr.write(`  ${formatDiagnostic(d)}\n`);
    return EXIT_USAGE;
  }
  const caDir = caDirOf(opts.stateDir);
  await writeServerFile(caDir, {
    pid: process.pid,
    grpcAddress: cp.caServer.address,
    adminAddress: cp.admin.address,
    startedAt: new Date().toISOString(),
    adminToken: cp.adminToken,
  });
  log('info', 'controlplane-started', { grpc: cp.caServer.address, admin: `http://${cp.admin.address}`, policy: mesh.policyDir, pid: process.pid });
  const sig = await signalled;
  log('info', 'controlplane-stopping', { signal: sig });
  try {
    await cp.stop();
  } finally {
    await removeServerFile(caDir);
  }
  return EXIT_OK;
}
