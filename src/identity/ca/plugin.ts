// A plugged-in CA from a directory in Istio's `cacerts` layout:
//
//   ca-cert.pem     the certificate the CA signs with (an intermediate)
//   ca-key.pem      its private key
//   cert-chain.pem  ca-cert.pem's chain, intermediate first, up to the root
//   root-cert.pem   the root(s) workloads trust
//
// Everything is checked before the CA signs anything, and a refusal names
// the file and the check. The key is proved the way SPIRE proves an
// upstream-signed CA (pkg/server/ca/validation.go): sign a throwaway
// certificate with it and verify that through the chain to root-cert.pem.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPairSync, type webcrypto } from 'node:crypto';
import { CaError } from './errors.ts';
import { importCaKey, type SigningKey } from './keys.ts';
import { buildPath, caRightsProblem, describe, signedBy, validityProblem } from './chain.ts';
import { createLeafCertificate, keyIdentifierOf, randomSerial } from './certs.ts';
import { parseCertificates, x509 } from './x509.ts';

export const PLUGIN_FILES = {
  caCert: 'ca-cert.pem',
  caKey: 'ca-key.pem',
  certChain: 'cert-chain.pem',
  rootCert: 'root-cert.pem',
} as const;

export interface PluginCa {
  dir: string;
  signingCert: x509.X509Certificate;
  signingKey: SigningKey;
  /** From the signing certificate up to and including its root: what every issued chain carries after the leaf. */
  path: x509.X509Certificate[];
  /** Every certificate in root-cert.pem: the trust bundle. */
  roots: x509.X509Certificate[];
}

function refuse(problems: string[]): never {
  const detail = problems.join('; ');
  throw new CaError('invalid-plugin', detail, `plug-in CA refused: ${detail}`);
}

async function readText(dir: string, file: string, optional = false): Promise<string | null> {
  try {
    return await readFile(join(dir, file), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && optional) return null;
    refuse([`${join(dir, file)}: ${code === 'ENOENT' ? 'missing' : `cannot read (${code ?? 'error'})`}`]);
  }
}

function certsFrom(dir: string, file: string, text: string, problems: string[]): x509.X509Certificate[] {
  try {
    const certs = parseCertificates(text);
    if (certs.length === 0) problems.push(`${join(dir, file)}: no certificate found`);
    return certs;
  } catch (err) {
    problems.push(`${join(dir, file)}: ${(err as Error).message}`);
    return [];
  }
}

// One throwaway key for every proof: its private half is never used.
let throwawayPublicKey: webcrypto.CryptoKey | undefined;
function throwawayKey(): webcrypto.CryptoKey {
  if (!throwawayPublicKey) {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    throwawayPublicKey = publicKey.toCryptoKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['verify']);
  }
  return throwawayPublicKey;
}

/**
 * Proves that `key` is the private key of `cert`: signs a throwaway leaf with
 * it and checks the signature with the certificate's public key. Returns the
 * leaf, or a problem.
 */
export async function proveKeyMatches(
  cert: x509.X509Certificate,
  key: SigningKey,
  trustDomain: string,
): Promise<{ leaf: x509.X509Certificate } | { problem: string }> {
  let leaf: x509.X509Certificate;
  try {
    leaf = await createLeafCertificate({
      publicKey: await x509.PublicKey.create(throwawayKey()),
      spiffeId: `spiffe://${trustDomain}/meshward/key-proof`,
      issuer: cert,
      issuerKeyId: await keyIdentifierOf(cert),
      issuerKey: key,
      // Inside the issuer's validity, whatever the time: this proves the key, not the dates.
      notBefore: cert.notBefore,
      notAfter: cert.notAfter,
      serial: randomSerial(),
    });
  } catch {
    return { problem: 'cannot sign with this key' };
  }
  if (!signedBy(leaf, cert)) return { problem: 'does not match the public key of its certificate (a test signature did not verify)' };
  return { leaf };
}

/**
 * Proves `key` is the key of `cert` and that what it signs verifies up to
 * `roots` at `at`, as a peer would check it. Returns a problem or null.
 */
export async function proveSigningKey(
  cert: x509.X509Certificate,
  key: SigningKey,
  path: readonly x509.X509Certificate[],
  roots: readonly x509.X509Certificate[],
  trustDomain: string,
  at: Date,
): Promise<string | null> {
  const proof = await proveKeyMatches(cert, key, trustDomain);
  if ('problem' in proof) return proof.problem.replace('its certificate', PLUGIN_FILES.caCert);
  const result = buildPath(proof.leaf, path, roots, at);
  if (!result.ok) return `a test certificate does not verify up to root-cert.pem: ${result.reason}`;
  return null;
}

export async function loadPluginCa(dir: string, trustDomain: string, at: Date): Promise<PluginCa> {
  const files = {
    caCert: (await readText(dir, PLUGIN_FILES.caCert))!,
    caKey: (await readText(dir, PLUGIN_FILES.caKey))!,
    certChain: (await readText(dir, PLUGIN_FILES.certChain, true)) ?? '',
    rootCert: (await readText(dir, PLUGIN_FILES.rootCert))!,
  };
  const where = (file: string) => join(dir, file);
  const problems: string[] = [];

  const caCerts = certsFrom(dir, PLUGIN_FILES.caCert, files.caCert, problems);
  const chainCerts = files.certChain.trim() === '' ? [] : certsFrom(dir, PLUGIN_FILES.certChain, files.certChain, problems);
  const roots = certsFrom(dir, PLUGIN_FILES.rootCert, files.rootCert, problems);
  let signingKey: SigningKey | undefined;
  try {
    signingKey = importCaKey(files.caKey);
  } catch (err) {
    problems.push(`${where(PLUGIN_FILES.caKey)}: ${(err as Error).message}`);
  }
  if (problems.length > 0) refuse(problems);

  const signingCert = caCerts[0]!;
  const rights = caRightsProblem(signingCert);
  if (rights) problems.push(`${where(PLUGIN_FILES.caCert)}: ${describe(signingCert)} ${rights}`);
  const validity = validityProblem(signingCert, at);
  if (validity) problems.push(`${where(PLUGIN_FILES.caCert)}: ${describe(signingCert)} ${validity}`);
  for (const root of roots) {
    const v = validityProblem(root, at);
    if (v) problems.push(`${where(PLUGIN_FILES.rootCert)}: ${describe(root)} ${v}`);
    const r = caRightsProblem(root);
    if (r) problems.push(`${where(PLUGIN_FILES.rootCert)}: ${describe(root)} ${r}`);
  }
  for (const c of chainCerts) {
    const v = validityProblem(c, at);
    if (v) problems.push(`${where(PLUGIN_FILES.certChain)}: ${describe(c)} ${v}`);
  }

  const pool = [...caCerts.slice(1), ...chainCerts];
  const built = buildPath(signingCert, pool, roots, at);
  if (!built.ok) problems.push(`${where(PLUGIN_FILES.certChain)}: ${PLUGIN_FILES.caCert} does not verify up to ${PLUGIN_FILES.rootCert}: ${built.reason}`);
  if (problems.length > 0) refuse(problems);

  const path = built.ok ? built.path : [];
  const proof = await proveSigningKey(signingCert, signingKey!, path, roots, trustDomain, at);
  if (proof) refuse([`${where(PLUGIN_FILES.caKey)}: ${proof}`]);

  return { dir, signingCert, signingKey: signingKey!, path, roots };
}
