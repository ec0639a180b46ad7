// The workload's private key and its certificate request. A fresh key per
// certificate, generated in memory and never written anywhere: the PEM form
// exists only because node:tls takes keys as PEM.

import { createPublicKey, type KeyObject, type webcrypto as WebCrypto } from 'node:crypto';
import { x509, webcrypto, encodePem } from '../ca/x509.ts';

export type WorkloadKeyType = 'ec-p256' | 'rsa-2048';

interface Algorithms {
  generate: WebCrypto.EcKeyGenParams | WebCrypto.RsaHashedKeyGenParams;
  sign: WebCrypto.Algorithm | WebCrypto.EcdsaParams;
}

const ALGORITHMS: Record<WorkloadKeyType, Algorithms> = {
  'ec-p256': {
    generate: { name: 'ECDSA', namedCurve: 'P-256' },
    sign: { name: 'ECDSA', hash: 'SHA-256' } as WebCrypto.EcdsaParams,
  },
  'rsa-2048': {
    generate: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    sign: { name: 'RSASSA-PKCS1-v1_5' },
  },
};

export interface KeyAndCsr {
  /** PKCS#8 PEM, in memory only. */
  keyPem: string;
  /** PKCS#10 PEM with one URI SAN: the workload's SPIFFE ID. */
  csrPem: string;
  /** DER SubjectPublicKeyInfo, to check the issued certificate carries this key. */
  publicKeyDer: Buffer;
}

/**
 * Generates a key pair and a CSR for `spiffeId`. The subject is left empty:
 * an X509-SVID's identity is its URI SAN, and the CA sets the SAN from the
 * authenticated caller anyway.
 */
export async function generateKeyAndCsr(spiffeId: string, keyType: WorkloadKeyType = 'ec-p256'): Promise<KeyAndCsr> {
  const alg = ALGORITHMS[keyType];
  const keys = (await webcrypto.subtle.generateKey(alg.generate, true, ['sign', 'verify'])) as WebCrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys,
    signingAlgorithm: alg.sign,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'url', value: spiffeId }])],
  });
  const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  const keyPem = encodePem('PRIVATE KEY', pkcs8);
  pkcs8.fill(0);
  return { keyPem, csrPem: csr.toString('pem'), publicKeyDer: spki };
}

/** True when the certificate (node:crypto) certifies the public key `publicKeyDer`. */
export function certifiesKey(cert: { publicKey: KeyObject }, publicKeyDer: Buffer): boolean {
  const der = cert.publicKey.export({ type: 'spki', format: 'der' });
  return Buffer.compare(der, createPublicKey({ key: publicKeyDer, format: 'der', type: 'spki' }).export({ type: 'spki', format: 'der' })) === 0;
}
