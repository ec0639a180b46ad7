// Helpers for the CA tests: temporary state directories, CSRs of every
// shape a requester might send, and a check that no private key shows up
// where it must not.

import assert from 'node:assert/strict';
import { createPrivateKey, webcrypto } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { CaError, CertificateAuthority, type CaOptions, type CaReason, type CallerIdentity } from '../../../../src/identity/ca/index.ts';
import { encodePem, x509 } from '../../../../src/identity/ca/x509.ts';

export const TD = 'cluster.local';
export const ALICE: CallerIdentity = { uri: `spiffe://${TD}/ns/default/sa/alice`, trustDomain: TD };
export const BOB: CallerIdentity = { uri: `spiffe://${TD}/ns/default/sa/bob`, trustDomain: TD };

const dirs: string[] = [];
export async function tempDir(prefix = 'meshward-ca-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}
export async function removeTempDirs(): Promise<void> {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

/** Opens a CA in a fresh directory (or `stateDir`), collecting its log. */
export async function openCa(opts: Partial<CaOptions> = {}) {
  const log: { event: string; message: string }[] = [];
  const registry = opts.registry ?? new Registry();
  const ca = await CertificateAuthority.open({
    stateDir: opts.stateDir ?? join(await tempDir(), 'ca'),
    trustDomain: TD,
    registry,
    log: (e) => log.push(e),
    ...opts,
  });
  return { ca, log, registry };
}

export type CsrKey = 'ec-p256' | 'ec-p384' | 'ec-p521' | 'rsa-1024' | 'rsa-2048';

const GEN: Record<CsrKey, { gen: webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams; sign: webcrypto.EcdsaParams | webcrypto.Algorithm }> = {
  'ec-p256': { gen: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams },
  'ec-p384': { gen: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' } as webcrypto.EcdsaParams },
  'ec-p521': { gen: { name: 'ECDSA', namedCurve: 'P-521' }, sign: { name: 'ECDSA', hash: 'SHA-512' } as webcrypto.EcdsaParams },
  'rsa-1024': {
    gen: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    sign: { name: 'RSASSA-PKCS1-v1_5' },
  },
  'rsa-2048': {
    gen: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    sign: { name: 'RSASSA-PKCS1-v1_5' },
  },
};

const keyCache = new Map<CsrKey, Promise<webcrypto.CryptoKeyPair>>();
function keyPair(kind: CsrKey): Promise<webcrypto.CryptoKeyPair> {
  let p = keyCache.get(kind);
  if (!p) {
    p = webcrypto.subtle.generateKey(GEN[kind].gen, true, ['sign', 'verify']) as Promise<webcrypto.CryptoKeyPair>;
    keyCache.set(kind, p);
  }
  return p;
}

export interface CsrOptions {
  key?: CsrKey;
  /** SANs the CSR asks for; default none. */
  sans?: x509.JsonGeneralName[];
  subject?: string;
}

export async function makeCsr(o: CsrOptions = {}): Promise<string> {
  const kind = o.key ?? 'ec-p256';
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    keys: await keyPair(kind),
    signingAlgorithm: GEN[kind].sign,
    ...(o.subject !== undefined ? { name: o.subject } : {}),
    extensions: o.sans ? [new x509.SubjectAlternativeNameExtension(o.sans)] : [],
  });
  return encodePem('CERTIFICATE REQUEST', csr.rawData);
}

export const uriSan = (uri: string): x509.JsonGeneralName => ({ type: 'url', value: uri });

/** Awaits `p`, asserting it rejects with a CaError of `reason`; returns the error. */
export async function refused(p: Promise<unknown>, reason: CaReason): Promise<CaError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof CaError, `expected a CaError, got ${String(err)}`);
    assert.equal(err.reason, reason, `expected ${reason}, got ${err.reason}: ${err.detail}`);
    return err;
  }
  assert.fail(`expected a ${reason} CaError, but it resolved`);
}

/** A counter's or gauge's value for one label set (0 when the series does not exist). */
export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name);
  assert.ok(metric, `metric ${name} is registered`);
  const { values } = await metric.get();
  const match = values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val));
  return match?.value ?? 0;
}

export async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(p)));
    else out.push(p);
  }
  return out;
}

export const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

/**
 * Every way a private key's secret could be spelled in text: each secret
 * component (EC `d`; RSA `d`, `p`, `q`, …) as hex, base64url, and base64 at
 * each of the three alignments it can have inside a longer base64 text such
 * as a PEM body. Fragments of 24 characters catch a partial leak; public
 * parts (OIDs, the public point) are left out because certificates carry
 * them too.
 */
export function secretFragments(keyPem: string): string[] {
  const jwk = createPrivateKey(keyPem).export({ format: 'jwk' }) as Record<string, unknown>;
  const spellings: string[] = [];
  for (const field of ['d', 'p', 'q', 'dp', 'dq', 'qi']) {
    if (typeof jwk[field] !== 'string') continue;
    const bytes = Buffer.from(jwk[field], 'base64url');
    spellings.push(bytes.toString('hex'), bytes.toString('base64url'));
    for (let pad = 0; pad < 3; pad++) {
      const b64 = Buffer.concat([Buffer.alloc(pad), bytes]).toString('base64');
      spellings.push(b64.slice(4, -4)); // the characters that depend on the secret alone
    }
  }
  const fragments: string[] = [];
  for (const s of spellings) for (let i = 0; i + 24 <= s.length; i += 12) fragments.push(s.slice(i, i + 24));
  return fragments;
}

export function assertNoSecret(text: string, fragments: readonly string[], where: string): void {
  assert.ok(!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text), `${where} holds a PRIVATE KEY block`);
  const hit = fragments.find((f) => text.includes(f));
  assert.equal(hit, undefined, `${where} contains private key material`);
}

export async function readText(path: string): Promise<string> {
  return readFile(path, 'utf8');
}
