// `meshward cert verify --bundle FILE --cert FILE`: would a meshward peer
// accept this certificate chain? Runs the same X509-SVID verification the
// proxy runs after every handshake and names the check that failed.

import { X509Certificate } from 'node:crypto';
import { parseSpiffeId } from '../identity/spiffe.ts';
import { trustBundleFromPem } from '../identity/trust-bundle.ts';
import { verifySvid, type SvidVerdict } from '../identity/verify-svid.ts';
import { parseCertificates } from '../identity/ca/x509.ts';
import { EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, readTextArgument } from './io.ts';
import { formatExpiry } from './ca-text.ts';

export interface CertVerifyOptions {
  bundle: string;
  cert: string;
  trustDomain?: string;
  output: 'text' | 'json';
}

/** The trust domain the bundle is for: as given, else the one the leaf claims. */
function bundleDomain(given: string | undefined, leaf: X509Certificate | undefined): string {
  if (given !== undefined) return given;
  const uri = (leaf?.subjectAltName ?? '').split(', ').find((s) => s.startsWith('URI:spiffe://'));
  const parsed = uri ? parseSpiffeId(uri.slice(4)) : { error: 'none' };
  // Without an ID the verdict is decided before the trust domain matters.
  return 'error' in parsed ? 'unknown.invalid' : parsed.trustDomain;
}

export async function runCertVerify(opts: CertVerifyOptions): Promise<number> {
  const certFile = await readTextArgument(opts.cert);
  const bundleFile = await readTextArgument(opts.bundle);
  let chain: X509Certificate[];
  try {
    chain = parseCertificates(certFile.text).map((c) => new X509Certificate(Buffer.from(c.rawData)));
  } catch (err) {
    process.stderr.write(`${certFile.name}: error: ${(err as Error).message}\n`);
    return EXIT_USAGE;
  }
  if (chain.length === 0) {
    process.stderr.write(`${certFile.name}: error: no CERTIFICATE block found\n`);
    return EXIT_USAGE;
  }
  const bundle = trustBundleFromPem(bundleDomain(opts.trustDomain, chain[0]), bundleFile.text);
  if ('error' in bundle) {
    process.stderr.write(`${bundleFile.name}: error: ${bundle.error}\n`);
    return EXIT_USAGE;
  }
  const now = new Date();
  const verdict: SvidVerdict = verifySvid(chain, bundle, {
    now,
    ...(opts.trustDomain !== undefined ? { expectedTrustDomain: opts.trustDomain } : {}),
  });
  if (opts.output === 'json') {
    process.stdout.write(
      `${JSON.stringify(
        verdict.ok
          ? { ok: true, spiffeId: verdict.id.uri, notAfter: verdict.notAfter.toISOString(), trustDomain: bundle.trustDomain }
          : { ok: false, check: verdict.check, reason: verdict.reason, trustDomain: bundle.trustDomain },
      )}\n`,
    );
  } else if (verdict.ok) {
    process.stdout.write(`OK ${verdict.id.uri}\n  valid until ${formatExpiry(verdict.notAfter, now)}\n  chains to the bundle for ${bundle.trustDomain}\n`);
  } else {
    process.stdout.write(`FAILED check ${verdict.check}: ${verdict.reason}\n`);
  }
  return verdict.ok ? EXIT_OK : EXIT_FINDINGS;
}
