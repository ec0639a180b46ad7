// `meshward ca rotate-root`: rotates the root.
//
// With a CA server running on the state directory (`meshward ca serve`,
// found through server.json), it asks the server to start the rotation, or
// to join the one it is running, and returns: the server adds the new root,
// activates it once every agent trusts it, and retires the old one once
// every agent holds a certificate from the new one (`meshward ca status`
// follows it).
//
// Without one, it does phase 1 offline: a new self-signed root joins the
// trust bundle without signing, and the next `meshward ca serve` completes
// the rotation. A process holding the state directory without a reachable
// admin endpoint refuses this (the lock), since two writers would lose each
// other's roots.

import { CertificateAuthority } from '../identity/ca/index.ts';
import type { RotateOutcome } from '../control/ca-server/index.ts';
import { EXIT_OK, EXIT_USAGE } from './io.ts';
import { formatDuration, formatExpiry, printCaError, ROTATION_STEP_TEXT } from './ca-text.ts';
import { callAdmin, findLiveServer, type LiveServer } from './ca-server-file.ts';

const ACTION_TEXT: Record<RotateOutcome['action'], string> = {
  started: 'root rotation started',
  resumed: 'root rotation resumed',
  joined: 'root rotation already running; joined it',
};

async function rotateOnline(live: LiveServer, stateDir: string): Promise<number> {
  const { file } = live;
  let reply;
  try {
    reply = await callAdmin(file, 'POST', '/rotate-root');
  } catch (err) {
    process.stderr.write(`meshward: the CA server (pid ${file.pid}) did not answer at ${file.adminAddress}: ${(err as Error).message}\n`);
    return EXIT_USAGE;
  }
  if (reply.status !== 202) {
    const error = (reply.body as { error?: { message?: string } } | null)?.error;
    process.stderr.write(`meshward: the CA server refused the root rotation: ${error?.message ?? `HTTP ${reply.status}`}\n`);
    return EXIT_USAGE;
  }
  const { action, phase, rotation } = reply.body as RotateOutcome;
  const lines = [
    `${ACTION_TEXT[action]} on the CA server (pid ${file.pid}, grpc ${file.grpcAddress})`,
    `  phase      ${ROTATION_STEP_TEXT[phase]}`,
  ];
  if (rotation.oldRoot) lines.push(`  old root   ${rotation.oldRoot}`);
  if (rotation.newRoot) lines.push(`  new root   ${rotation.newRoot}`);
  for (const w of rotation.waitingFor) lines.push(`  waiting    for ${w.spiffeId} (agent ${w.agentId}): ${w.needs}`);
  lines.push(
    '',
    'next: the server carries on by itself, with no timeout (it waits for live agents):',
    '  1. once every agent trusts both roots, the new root is activated and signs',
    '  2. once every agent holds a certificate from the new root, the old root is retired',
    `follow it with: meshward ca status --state-dir ${stateDir}`,
    '',
  );
  process.stdout.write(lines.join('\n'));
  return EXIT_OK;
}

export async function runCaRotateRoot(stateDir: string): Promise<number> {
  const live = await findLiveServer(stateDir);
  if (live) return rotateOnline(live, stateDir);
  try {
    const before = await CertificateAuthority.readStatus(stateDir);
    const ca = await CertificateAuthority.open({ stateDir, trustDomain: before.trustDomain });
    let added;
    try {
      added = await ca.addRoot();
    } finally {
      await ca.close();
    }
    const status = await CertificateAuthority.readStatus(stateDir);
    const active = status.roots.find((r) => r.state === 'active')!;
    const now = new Date();
    process.stdout.write(
      [
        `added root ${added.fingerprint}`,
        `  ${added.subject}, expires ${formatExpiry(added.notAfter, now)}`,
        `  in the trust bundle (${status.stateDir}/bundle.pem), not signing yet`,
        `rotation phase: ${status.rotationPhase}`,
        '',
        'next:',
        '  1. the CA server serves the new bundle; every workload must trust both roots',
        `     before the new one signs (the active root is still ${active.fingerprint})`,
        '  2. the new root is activated: new certificates chain to it; the old root stays trusted',
        '  3. the old root is retired once nothing depends on it: the CA server retires it once',
        '     every agent holds a certificate from the new root; without one, wait until the',
        `     certificates it signed have expired (at most ${formatDuration(status.maxWorkloadTtlSeconds)} after step 2)`,
        `\`meshward ca serve --state-dir ${stateDir}\` resumes the rotation and takes the steps`,
        '',
      ].join('\n'),
    );
    return EXIT_OK;
  } catch (err) {
    if (printCaError(err)) return EXIT_USAGE;
    throw err;
  }
}
