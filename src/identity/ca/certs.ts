// Certificate templates: the self-signed root and the workload leaf, with
// the fields Istio's CA sets (security/pkg/pki/util/generate_cert.go) and
// the SPIFFE X.509-SVID rules.

import { randomBytes } from 'node:crypto';
import { x509 } from './x509.ts';
import type { SigningKey } from './keys.ts';

/**
 * Leaves start this long before they are issued, so a workload whose clock
 * runs behind the CA's still accepts them (Istio's ClockSkewGracePeriod).
 */
export const CLOCK_SKEW_MS = 2 * 60 * 1000;

const DAY_MS = 24 * 60 * 60 * 1000;

/** 128 random bits; the encoder makes it a positive INTEGER (adds 0x00 when the top bit is set). */
export function randomSerial(): string {
  for (;;) {
    const bytes = randomBytes(16);
    if (bytes.some((b) => b !== 0)) return bytes.toString('hex');
  }
}

/** The key identifier of `cert` as its issuer's AKI should name it: its SKI if it has one. */
export async function keyIdentifierOf(cert: x509.X509Certificate): Promise<string> {
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  if (ski) return ski.keyId;
  return Buffer.from(await cert.publicKey.getKeyIdentifier()).toString('hex');
}

export interface RootOptions {
  trustDomain: string;
  key: SigningKey;
  validityDays: number;
  now: Date;
}

/**
 * A self-signed root. Subject O=<trust domain> as Istio's self-signed CA
 * names its root; a CN derived from the key tells rotated roots apart in
 * status output and lets path builders that match on names alone pick the
 * right one. pathLen 0: this root signs workload leaves directly, never
 * another CA.
 */
export async function createRootCertificate(opts: RootOptions): Promise<x509.X509Certificate> {
  const ski = await x509.SubjectKeyIdentifierExtension.create(opts.key.publicKey);
  const notBefore = new Date(opts.now.getTime() - CLOCK_SKEW_MS);
  const name = new x509.Name([
    { '2.5.4.10': [{ utf8String: opts.trustDomain }] },
    { '2.5.4.3': [{ utf8String: `meshward root ${ski.keyId.slice(0, 8)}` }] },
  ]);
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: name,
    issuer: name,
    notBefore,
    notAfter: new Date(opts.now.getTime() + opts.validityDays * DAY_MS),
    publicKey: opts.key.publicKey,
    signingKey: opts.key.privateKey,
    signingAlgorithm: opts.key.algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      ski,
      new x509.AuthorityKeyIdentifierExtension(ski.keyId),
    ],
  });
}

export interface LeafOptions {
  /** The requester's SubjectPublicKeyInfo, from its CSR. */
  publicKey: x509.PublicKey;
  spiffeId: string;
  issuer: x509.X509Certificate;
  issuerKeyId: string;
  issuerKey: SigningKey;
  notBefore: Date;
  notAfter: Date;
  serial: string;
}

/**
 * A workload leaf (X.509-SVID): empty subject, exactly one URI SAN (critical,
 * because the subject is empty: RFC 5280 4.2.1.6), CA:false,
 * digitalSignature+keyEncipherment and serverAuth+clientAuth as Istio sets
 * for every workload certificate, AKI naming the signer.
 */
export async function createLeafCertificate(opts: LeafOptions): Promise<x509.X509Certificate> {
  return x509.X509CertificateGenerator.create({
    serialNumber: opts.serial,
    subject: new x509.Name([]),
    issuer: opts.issuer.subjectName,
    notBefore: opts.notBefore,
    notAfter: opts.notAfter,
    publicKey: opts.publicKey,
    signingKey: opts.issuerKey.privateKey,
    signingAlgorithm: opts.issuerKey.algorithm,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.AuthorityKeyIdentifierExtension(opts.issuerKeyId),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: opts.spiffeId }], true),
    ],
  });
}
