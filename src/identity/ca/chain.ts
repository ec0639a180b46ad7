// Path building for the CA's own material: from a certificate up through a
// pool of intermediates to one of the given roots, checking names, key
// identifiers, signatures, CA rights and validity at every step. Used to
// refuse a plugged-in CA whose chain does not hold, before it signs anything.
// (Workload SVIDs are verified by verify-svid.ts, with the SPIFFE rules.)

import { NodeX509Certificate, x509 } from './x509.ts';

const MAX_DEPTH = 8;

export type PathResult = { ok: true; path: x509.X509Certificate[] } | { ok: false; reason: string };

export function describe(cert: x509.X509Certificate): string {
  return cert.subject === '' ? `serial ${cert.serialNumber}` : `"${cert.subject}"`;
}

/** Why `cert` cannot issue certificates, or null if it can. */
export function caRightsProblem(cert: x509.X509Certificate): string | null {
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  if (!bc || !bc.ca) return 'is not a CA certificate (basicConstraints CA:true is missing)';
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  if (ku && (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0) return 'may not sign certificates (keyUsage lacks keyCertSign)';
  return null;
}

/** Why `cert` is not valid at `at`, or null. */
export function validityProblem(cert: x509.X509Certificate, at: Date): string | null {
  if (at.getTime() > cert.notAfter.getTime()) return `expired on ${cert.notAfter.toISOString()}`;
  if (at.getTime() < cert.notBefore.getTime()) return `is not valid until ${cert.notBefore.toISOString()}`;
  return null;
}

function sameDer(a: x509.X509Certificate, b: x509.X509Certificate): boolean {
  return Buffer.from(a.rawData).equals(Buffer.from(b.rawData));
}

/** OpenSSL's issuer check (names, AKI/SKI) and the signature itself. */
export function signedBy(child: x509.X509Certificate, issuer: x509.X509Certificate): boolean {
  const c = new NodeX509Certificate(Buffer.from(child.rawData));
  const i = new NodeX509Certificate(Buffer.from(issuer.rawData));
  try {
    return c.checkIssued(i) && c.verify(i.publicKey);
  } catch {
    return false;
  }
}

export function buildPath(
  cert: x509.X509Certificate,
  intermediates: readonly x509.X509Certificate[],
  roots: readonly x509.X509Certificate[],
  at: Date,
): PathResult {
  const path = [cert];
  let current = cert;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    if (roots.some((r) => sameDer(r, current))) return { ok: true, path };
    const root = roots.find((r) => signedBy(current, r));
    const issuer = root ?? intermediates.find((c) => !path.some((p) => sameDer(p, c)) && signedBy(current, c));
    if (!issuer) {
      return { ok: false, reason: `no certificate in the chain or roots signed ${describe(current)} (issuer "${current.issuer}")` };
    }
    const rights = caRightsProblem(issuer);
    if (rights) return { ok: false, reason: `${describe(issuer)} ${rights}` };
    const validity = validityProblem(issuer, at);
    if (validity) return { ok: false, reason: `${describe(issuer)} ${validity}` };
    path.push(issuer);
    if (root) return { ok: true, path };
    current = issuer;
  }
  return { ok: false, reason: `chain is longer than ${MAX_DEPTH} certificates` };
}
