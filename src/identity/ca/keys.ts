// CA keys: generating them, loading them from PEM, and describing public
// keys. A loaded signing key lives as a non-extractable CryptoKey, so once it
// is in memory nothing in the process can turn it back into bytes; the PEM
// exists only on its way to or from the 0600 key file.

import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject, type webcrypto } from 'node:crypto';
import { promisify } from 'node:util';

import { CA_KEY_TYPE_NAMES } from './defaults.ts';

export type CaKeyType = (typeof CA_KEY_TYPE_NAMES)[number];
export const CA_KEY_TYPES: readonly CaKeyType[] = CA_KEY_TYPE_NAMES;

export interface SigningKey {
  privateKey: webcrypto.CryptoKey;
  publicKey: webcrypto.CryptoKey;
  /** Passed to @peculiar/x509 as signingAlgorithm. */
  algorithm: webcrypto.EcdsaParams | webcrypto.RsaHashedImportParams;
  /** e.g. `ec-p256`, `rsa-4096`: for status and logs. */
  description: string;
}

const generate = promisify(generateKeyPair);

const CURVES: Record<string, { webName: string; hash: string; label: string }> = {
  prime256v1: { webName: 'P-256', hash: 'SHA-256', label: 'ec-p256' },
  secp384r1: { webName: 'P-384', hash: 'SHA-384', label: 'ec-p384' },
  secp521r1: { webName: 'P-521', hash: 'SHA-512', label: 'ec-p521' },
};

/** Smallest RSA modulus the CA signs with or certifies (Istio's MinimumRsaKeySize). */
export const MIN_RSA_BITS = 2048;
/** Largest RSA modulus accepted: verifying larger keys costs the CA more than the requester. */
export const MAX_RSA_BITS = 8192;

function toSigningKey(privateKey: KeyObject, publicKey: KeyObject): SigningKey {
  const details = privateKey.asymmetricKeyDetails ?? {};
  if (privateKey.asymmetricKeyType === 'ec') {
    const curve = CURVES[details.namedCurve ?? ''];
    if (!curve) throw new Error(`unsupported EC curve ${details.namedCurve ?? '(unknown)'}`);
    const usage = { name: 'ECDSA', namedCurve: curve.webName };
    return {
      privateKey: privateKey.toCryptoKey(usage, false, ['sign']),
      publicKey: publicKey.toCryptoKey(usage, true, ['verify']),
      algorithm: { name: 'ECDSA', hash: curve.hash },
      description: curve.label,
    };
  }
  if (privateKey.asymmetricKeyType === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) throw new Error(`unsupported RSA key size ${bits}`);
    const usage = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    return {
      privateKey: privateKey.toCryptoKey(usage, false, ['sign']),
      publicKey: publicKey.toCryptoKey(usage, true, ['verify']),
      algorithm: usage,
      description: `rsa-${bits}`,
    };
  }
  throw new Error(`unsupported key type ${privateKey.asymmetricKeyType ?? '(unknown)'}`);
}

/** A new CA key, and its PKCS#8 PEM for the key file. */
export async function generateCaKey(type: CaKeyType): Promise<{ key: SigningKey; pkcs8Pem: string }> {
  const pair =
    type === 'ec-p256'
      ? await generate('ec', { namedCurve: 'prime256v1' })
      : await generate('rsa', { modulusLength: type === 'rsa-2048' ? 2048 : 3072 });
  const pkcs8Pem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  return { key: toSigningKey(pair.privateKey, pair.publicKey), pkcs8Pem };
}

/**
 * Loads a CA key from PEM: PKCS#8, or the PKCS#1 / SEC1 forms openssl writes
 * (Istio's cacerts are often `openssl genrsa` output). The error never
 * carries OpenSSL's message, which can echo input.
 */
export function importCaKey(pem: string): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new Error(/ENCRYPTED/.test(pem) ? 'encrypted private keys are not supported' : 'not a PEM private key');
  }
  return toSigningKey(privateKey, createPublicKey(privateKey));
}

export type PublicKeyInfo =
  | { kind: 'ec'; curve: string; label: string; supported: boolean }
  | { kind: 'rsa'; bits: number; label: string; supported: boolean }
  | { kind: 'other'; label: string; supported: false };

/** Describes a SubjectPublicKeyInfo; `supported` says whether the CA certifies such keys. */
export function describePublicKey(spkiDer: ArrayBuffer | Uint8Array): PublicKeyInfo {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spkiDer instanceof ArrayBuffer ? new Uint8Array(spkiDer) : spkiDer), format: 'der', type: 'spki' });
  } catch {
    return { kind: 'other', label: 'unknown', supported: false };
  }
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec') {
    const name = details.namedCurve ?? 'unknown';
    const curve = CURVES[name];
    // Workload keys are P-256 or P-384, the curves Istio's agent offers (ECC_CURVE);
    // P-521 is accepted for a plugged-in CA key but not certified for workloads.
    const supported = curve !== undefined && curve.webName !== 'P-521';
    return { kind: 'ec', curve: curve?.webName ?? name, label: curve?.label ?? `ec-${name}`, supported };
  }
  if (key.asymmetricKeyType === 'rsa') {
    const bits = details.modulusLength ?? 0;
    return { kind: 'rsa', bits, label: `rsa-${bits}`, supported: bits >= MIN_RSA_BITS && bits <= MAX_RSA_BITS };
  }
  return { kind: 'other', label: key.asymmetricKeyType ?? 'unknown', supported: false };
}
