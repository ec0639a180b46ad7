// The ingress gateway's server certificate for clients outside the mesh.
// It is not an SVID: external clients know the gateway by a DNS name, so
// it carries DNS and IP SANs and chains to a small local CA of its own
// (ca.crt), which a client trusts with `curl --cacert`. The mesh's roots
// never sign it, so trusting it grants no mesh identity. Made once per
// state directory and reused until it is near expiry; the key is written
// 0600 and nowhere else.

import { X509Certificate, type webcrypto as WebCrypto } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { randomSerial } from './ca/certs.ts';
import { writeFileAtomic } from './ca/state.ts';
import { webcrypto, x509 } from './ca/x509.ts';

export interface GatewayCertificate {
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly notAfter: Date;
}

const DAY_MS = 86_400_000;
const VALIDITY_DAYS = 90;
const RENEW_BEFORE_DAYS = 7;
const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

function pem(type: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN ${type}-----\n${b64.trimEnd()}\n-----END ${type}-----\n`;
}

/** Returns the gateway certificate in `dir`, creating or renewing it when needed. */
export async function ensureGatewayCertificate(dir: string, names: { dns: readonly string[]; ips: readonly string[] }, now = new Date()): Promise<GatewayCertificate> {
  const files = { caFile: join(dir, 'ca.crt'), certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') };
  if (existsSync(files.caFile) && existsSync(files.certFile) && existsSync(files.keyFile)) {
    try {
      const leaf = new X509Certificate(readFileSync(files.certFile));
      const notAfter = new Date(leaf.validTo);
      if (notAfter.getTime() - now.getTime() > RENEW_BEFORE_DAYS * DAY_MS) return { ...files, notAfter };
    } catch {
      // Unreadable: made again below.
    }
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const caKeys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as WebCrypto.CryptoKeyPair;
  const leafKeys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as WebCrypto.CryptoKeyPair;
  const notBefore = new Date(now.getTime() - 5 * 60_000);
  const notAfter = new Date(now.getTime() + VALIDITY_DAYS * DAY_MS);
  const caName = 'CN=meshward local gateway CA';
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: caName,
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${names.dns[0] ?? 'localhost'}`,
    issuer: ca.subject,
    notBefore,
    notAfter,
    publicKey: leafKeys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([...names.dns.map((value) => ({ type: 'dns' as const, value })), ...names.ips.map((value) => ({ type: 'ip' as const, value }))]),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const keyDer = await webcrypto.subtle.exportKey('pkcs8', leafKeys.privateKey);
  await writeFileAtomic(files.keyFile, pem('PRIVATE KEY', keyDer), 0o600);
  await writeFileAtomic(files.certFile, leaf.toString('pem') + '\n' + ca.toString('pem') + '\n', 0o644);
  await writeFileAtomic(files.caFile, ca.toString('pem') + '\n', 0o644);
  return { ...files, notAfter };
}
