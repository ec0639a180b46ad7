// `meshward ca status`: the CA's roots, their states and expiry, the
// rotation phase and how many certificates it has issued. Reads the state
// directory only (no lock, no keys), so it works while a CA server runs.

import { CertificateAuthority, type CaStatus } from '../identity/ca/index.ts';
import { EXIT_OK, EXIT_USAGE } from './io.ts';
import { formatDuration, formatExpiry, printCaError } from './ca-text.ts';

const PHASE_TEXT: Record<CaStatus['rotationPhase'], string> = {
  none: 'none',
  'trusting-new-root': 'trusting-new-root (a new root is in the bundle, not signing yet)',
  'draining-old-root': 'draining-old-root (the new root signs; the old one stays trusted until its certificates expire)',
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
  if (output === 'json') {
    process.stdout.write(`${JSON.stringify(status)}\n`);
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
  process.stdout.write(`${lines.join('\n')}\n`);
  return EXIT_OK;
}
