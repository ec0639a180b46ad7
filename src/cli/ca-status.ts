// `meshward ca status`: the CA's roots, their states and expiry, the
// rotation phase and how many certificates it has issued. Reads the state
// directory only (no lock, no keys), so it works while a CA server runs;
// when one does (`meshward ca serve`), it adds what only the server knows:
// the live rotation step, whom it waits for, and the agents.

import { CertificateAuthority, type CaStatus } from '../identity/ca/index.ts';
import { EXIT_OK, EXIT_USAGE } from './io.ts';
import { formatDuration, formatExpiry, printCaError, ROTATION_STEP_TEXT } from './ca-text.ts';
import { findLiveServer, type LiveServer } from './ca-server-file.ts';

const PHASE_TEXT: Record<CaStatus['rotationPhase'], string> = {
  none: 'none',
  'trusting-new-root': 'trusting-new-root (a new root is in the bundle, not signing yet)',
  'draining-old-root': 'draining-old-root (the new root signs; the old one stays trusted until every workload holds a certificate from the new root, or offline until its certificates expire)',
};

export async function runCaStatus(stateDir: string, output: 'text' | 'json'): Promise<number> {
  let status: CaStatus;
  try {
    status = await CertificateAuthority.readStatus(stateDir);
  } catch (err) {
    if (printCaError(err)) {
      process.stderr.write('meshward: run `meshward ca init` to create a CA\n');
      return EXIT_USAGE;
    }
    throw err;
  }
  const live = await findLiveServer(stateDir);
  if (output === 'json') {
    process.stdout.write(`${JSON.stringify({ ...status, server: live ? serverJson(live) : null })}\n`);
    return EXIT_OK;
  }
  const now = new Date();
  const lines = [
    `trust domain   ${status.trustDomain}`,
    `mode           ${status.mode}${status.pluginDir ? ` (${status.pluginDir})` : ''}`,
    `state          ${status.stateDir}`,
    `issued         ${status.issued} certificate(s)`,
    `workload TTL   ${formatDuration(status.workloadTtlSeconds)} (max ${formatDuration(status.maxWorkloadTtlSeconds)})`,
    `rotation       ${PHASE_TEXT[status.rotationPhase]}`,
    'roots',
  ];
  for (const r of status.roots) {
    lines.push(`  ${r.state.padEnd(8)} ${r.fingerprint}`);
    lines.push(`           ${r.subject}`);
    lines.push(`           expires ${formatExpiry(new Date(r.notAfter), now)}`);
    if (r.state === 'trusted' && r.drainedAt) lines.push(`           last certificate it signed expires by ${r.drainedAt}`);
  }
  if (live) lines.push(...serverText(live, now));
  process.stdout.write(`${lines.join('\n')}\n`);
  return EXIT_OK;
}

/** The `server` field of `-o json`: server.json without its admin token, and the server's own status. */
function serverJson({ file, status }: LiveServer) {
  const { address: _address, ...server } = status.server;
  return { pid: file.pid, grpcAddress: file.grpcAddress, adminAddress: file.adminAddress, startedAt: file.startedAt, ...server };
}

function serverText({ file, status }: LiveServer, now: Date): string[] {
  const { rotation, agents } = status.server;
  const lines = [
    `server         pid ${file.pid}, grpc ${file.grpcAddress}, admin http://${file.adminAddress}`,
    `               up since ${file.startedAt}`,
    `live rotation  ${ROTATION_STEP_TEXT[rotation.step]}`,
  ];
  if (rotation.step === 'failed' && rotation.error) lines.push(`               ${rotation.error}`);
  if (rotation.step !== 'idle') {
    if (rotation.oldRoot) lines.push(`  old root     ${rotation.oldRoot}`);
    if (rotation.newRoot) lines.push(`  new root     ${rotation.newRoot}`);
    const at = (iso: string | null) => (iso ? `${iso} (${formatDuration((now.getTime() - Date.parse(iso)) / 1000)} ago)` : '');
    if (rotation.startedAt) lines.push(`  started      ${at(rotation.startedAt)}`);
    if (rotation.finishedAt) lines.push(`  finished     ${at(rotation.finishedAt)}`);
  }
  if (rotation.waitingFor.length > 0) {
    lines.push(`  waiting for  ${rotation.waitingFor.length} agent(s)`);
    for (const w of rotation.waitingFor) {
      lines.push(`    ${w.spiffeId} (agent ${w.agentId}, ${w.connected ? 'connected' : `disconnected, last seen ${w.lastSeen}`})`);
      lines.push(`      needs ${w.needs}`);
    }
  }
  const connected = agents.filter((a) => a.connected).length;
  lines.push(`agents         ${agents.length} (${connected} connected)`);
  for (const a of agents) {
    const root = a.certRoot ? `, certificate from ${a.certRoot.slice(0, 11)}…` : '';
    lines.push(`  ${a.spiffeId} (agent ${a.agentId}, ${a.connected ? 'connected' : 'disconnected'}${root})`);
  }
  return lines;
}
