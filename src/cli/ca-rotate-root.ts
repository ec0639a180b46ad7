// `meshward ca rotate-root`: phase 1 of a root rotation, offline. Adds a new
// self-signed root to the trust bundle without letting it sign. The CA
// server completes the rotation: it hands out the new bundle, activates the
// new root once workloads have it, and retires the old root once nothing it
// signed is still valid. A CA server holding the state directory refuses
// this command (the lock), since two writers would lose each other's roots.

import { CertificateAuthority } from '../identity/ca/index.ts';
import { EXIT_OK, EXIT_USAGE } from './io.ts';
import { formatDuration, formatExpiry, printCaError } from './ca-text.ts';

export async function runCaRotateRoot(stateDir: string): Promise<number> {
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
        `  3. the old root is retired once the certificates it signed have expired`,
        `     (at most ${formatDuration(status.maxWorkloadTtlSeconds)} after step 2)`,
        '',
      ].join('\n'),
    );
    return EXIT_OK;
  } catch (err) {
    if (printCaError(err)) return EXIT_USAGE;
    throw err;
  }
}
