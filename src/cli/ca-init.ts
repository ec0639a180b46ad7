// `meshward ca init`: create the CA's state directory (a new self-signed
// root, or a checked plug-in CA from a cacerts directory). Running it again
// on the same directory loads and re-checks what is there.

import { CertificateAuthority, type CaKeyType } from '../identity/ca/index.ts';
import { EXIT_OK, EXIT_USAGE } from './io.ts';
import { formatExpiry, printCaError } from './ca-text.ts';

export interface CaInitOptions {
  stateDir: string;
  trustDomain: string;
  keyType?: CaKeyType;
  pluginDir?: string;
}

export async function runCaInit(opts: CaInitOptions): Promise<number> {
  const existed = await CertificateAuthority.readStatus(opts.stateDir).then(
    () => true,
    () => false,
  );
  try {
    const ca = await CertificateAuthority.open({
      stateDir: opts.stateDir,
      trustDomain: opts.trustDomain,
      ...(opts.keyType !== undefined ? { keyType: opts.keyType } : {}),
      ...(opts.pluginDir !== undefined ? { pluginDir: opts.pluginDir } : {}),
    });
    const status = ca.status();
    await ca.close();
    const now = new Date();
    const verb = existed ? 'loaded' : 'created';
    process.stdout.write(`${verb} ${status.mode} CA for trust domain ${status.trustDomain} in ${status.stateDir}\n`);
    if (status.pluginDir) process.stdout.write(`  cacerts   ${status.pluginDir}\n`);
    for (const r of status.roots.filter((r) => r.state !== 'retired')) {
      process.stdout.write(`  root      ${r.fingerprint} (${r.state})\n`);
      process.stdout.write(`            ${r.subject}, expires ${formatExpiry(new Date(r.notAfter), now)}\n`);
    }
    process.stdout.write(`  bundle    ${status.stateDir}/bundle.pem\n`);
    return EXIT_OK;
  } catch (err) {
    if (printCaError(err)) return EXIT_USAGE;
    throw err;
  }
}
