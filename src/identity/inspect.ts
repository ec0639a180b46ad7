// What a certificate says, in the terms the mesh cares about: the SPIFFE ID,
// validity, key, CA rights, and who signed it. "Who signed it" is decided
// the way a verifier does: the issuer's key identifier (or, without one, its
// name) picks a candidate, and the signature has to verify with the
// candidate's key. Read-only; used by `meshward cert inspect`.

import { parseSpiffeId } from './spiffe.ts';
import { NodeX509Certificate, fingerprintOf, parseCertificates, x509 } from './ca/x509.ts';
import { describePublicKey } from './ca/keys.ts';

export type Validity = 'valid' | 'expired' | 'not-yet-valid';

export interface CertificateInfo {
  /** The URI SAN that is a SPIFFE ID, if exactly one is. */
  spiffeId: string | null;
  uris: string[];
  dnsNames: string[];
  ipAddresses: string[];
  subject: string;
  issuer: string;
  /** Lower-case hex. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
  validity: Validity;
  /** e.g. `ec-p256`, `rsa-2048`. */
  keyType: string;
  isCa: boolean;
  /** basicConstraints pathLenConstraint, if set. */
  pathLength: number | null;
  keyUsage: string[];
  extKeyUsage: string[];
  /** SHA-256 of the DER, `AB:CD:…`. */
  fingerprint: string;
  subjectKeyId: string | null;
  authorityKeyId: string | null;
}

export interface Signer {
  /** Where the signer was found: in the chain given, or among the extra issuers (a bundle). */
  in: 'chain' | 'issuers';
  index: number;
  subject: string;
  fingerprint: string;
  /** How the candidate was picked before its signature was checked. */
  matchedBy: 'key-id' | 'name';
}

export interface ChainEntry extends CertificateInfo {
  index: number;
  /** `self` for a self-signed certificate; null when nothing given signed it. */
  signedBy: Signer | 'self' | null;
}

const KEY_USAGES: [number, string][] = [
  [x509.KeyUsageFlags.digitalSignature, 'digitalSignature'],
  [x509.KeyUsageFlags.nonRepudiation, 'nonRepudiation'],
  [x509.KeyUsageFlags.keyEncipherment, 'keyEncipherment'],
  [x509.KeyUsageFlags.dataEncipherment, 'dataEncipherment'],
  [x509.KeyUsageFlags.keyAgreement, 'keyAgreement'],
  [x509.KeyUsageFlags.keyCertSign, 'keyCertSign'],
  [x509.KeyUsageFlags.cRLSign, 'cRLSign'],
  [x509.KeyUsageFlags.encipherOnly, 'encipherOnly'],
  [x509.KeyUsageFlags.decipherOnly, 'decipherOnly'],
];

const EKU_NAMES: Record<string, string> = {
  '1.3.6.1.5.5.7.3.1': 'serverAuth',
  '1.3.6.1.5.5.7.3.2': 'clientAuth',
  '1.3.6.1.5.5.7.3.3': 'codeSigning',
  '1.3.6.1.5.5.7.3.4': 'emailProtection',
  '1.3.6.1.5.5.7.3.8': 'timeStamping',
  '1.3.6.1.5.5.7.3.9': 'ocspSigning',
};

function validityAt(cert: x509.X509Certificate, at: Date): Validity {
  if (at.getTime() > cert.notAfter.getTime()) return 'expired';
  if (at.getTime() < cert.notBefore.getTime()) return 'not-yet-valid';
  return 'valid';
}

function info(cert: x509.X509Certificate, at: Date): CertificateInfo {
  const names = cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? [];
  const uris = names.filter((n) => n.type === 'url').map((n) => n.value);
  const spiffe = uris.filter((u) => !('error' in parseSpiffeId(u)));
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  const eku = cert.getExtension(x509.ExtendedKeyUsageExtension);
  const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension);
  return {
    spiffeId: spiffe.length === 1 ? spiffe[0]! : null,
    uris,
    dnsNames: names.filter((n) => n.type === 'dns').map((n) => n.value),
    ipAddresses: names.filter((n) => n.type === 'ip').map((n) => n.value),
    subject: cert.subject,
    issuer: cert.issuer,
    serial: cert.serialNumber.toLowerCase(),
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
    validity: validityAt(cert, at),
    keyType: describePublicKey(cert.publicKey.rawData).label,
    isCa: bc?.ca ?? false,
    pathLength: bc?.pathLength ?? null,
    keyUsage: ku ? KEY_USAGES.filter(([bit]) => (ku.usages & bit) !== 0).map(([, name]) => name) : [],
    extKeyUsage: eku ? Array.from(eku.usages, (u) => EKU_NAMES[String(u)] ?? String(u)) : [],
    fingerprint: fingerprintOf(cert),
    subjectKeyId: cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId ?? null,
    authorityKeyId: aki?.keyId ?? null,
  };
}

function sameName(a: x509.Name, b: x509.Name): boolean {
  return Buffer.from(a.toArrayBuffer()).equals(Buffer.from(b.toArrayBuffer()));
}

function verifies(child: x509.X509Certificate, issuer: x509.X509Certificate): boolean {
  try {
    return new NodeX509Certificate(Buffer.from(child.rawData)).verify(new NodeX509Certificate(Buffer.from(issuer.rawData)).publicKey);
  } catch {
    return false;
  }
}

/** The first certificate of `pem`, described. Throws an Error naming the problem (never quoting the input). */
export function inspectCertificate(pem: string, at: Date = new Date()): CertificateInfo {
  const certs = parseCertificates(pem);
  if (certs.length === 0) throw new Error('no CERTIFICATE block found');
  return info(certs[0]!, at);
}

/**
 * Every certificate of a chain (PEM text, or one PEM per element), each with
 * the certificate that signed it, looked for in the chain itself and then in
 * `issuers` (a trust bundle, say).
 */
export function describeChain(pems: string | readonly string[], issuers: string | readonly string[] = [], at: Date = new Date()): ChainEntry[] {
  const chain = parseCertificates(typeof pems === 'string' ? pems : pems.join('\n'));
  if (chain.length === 0) throw new Error('no CERTIFICATE block found');
  const extra = parseCertificates(typeof issuers === 'string' ? issuers : issuers.join('\n'));
  const candidates = [
    ...chain.map((cert, index) => ({ cert, in: 'chain' as const, index })),
    ...extra.map((cert, index) => ({ cert, in: 'issuers' as const, index })),
  ];
  return chain.map((cert, index) => {
    const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId;
    let signedBy: ChainEntry['signedBy'] = null;
    for (const c of candidates) {
      const ski = c.cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
      const byKeyId = aki !== undefined && ski !== undefined;
      if (byKeyId ? aki !== ski : !sameName(cert.issuerName, c.cert.subjectName)) continue;
      if (!verifies(cert, c.cert)) continue;
      signedBy =
        c.in === 'chain' && c.index === index
          ? 'self'
          : { in: c.in, index: c.index, subject: c.cert.subject, fingerprint: fingerprintOf(c.cert), matchedBy: byKeyId ? 'key-id' : 'name' };
      break;
    }
    return { ...info(cert, at), index, signedBy };
  });
}
