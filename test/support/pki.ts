// Test PKI: root and intermediate CAs and leaf X509-SVIDs made with
// @peculiar/x509, with knobs for every way an SVID can be wrong (expired, not
// yet valid, two URI SANs, CA:true leaf, wrong key usage, wrong trust domain,
// no URI SAN, self-signed, issued by another CA). Each function returns the
// certificate as node:crypto X509Certificate and PEM, and leaf keys as
// in-memory KeyObjects, the forms the identity layer takes.
//
// Key generation dominates the cost (RSA-2048 especially), so keys are drawn
// from a small pool: certificates that share a key are still distinct
// certificates, and no test depends on keys being unique across CAs except
// through the names and signatures checked here.

import 'reflect-metadata';
import { KeyObject, X509Certificate, randomBytes, webcrypto } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto);

type CryptoKeyPair = webcrypto.CryptoKeyPair;

export type KeyKind = 'ec-p256' | 'rsa-2048';

const ALGORITHMS: Record<
  KeyKind,
  { gen: webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams; sign: webcrypto.Algorithm | webcrypto.EcdsaParams }
> = {
  'ec-p256': { gen: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } },
  'rsa-2048': {
    gen: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
    sign: { name: 'RSASSA-PKCS1-v1_5' },
  },
};

const HOUR = 3600_000;
const DAY = 24 * HOUR;

/** A CA: its certificate, the CryptoKeys that sign with it, and what a bundle needs. */
export interface TestCa {
  readonly cert: X509Certificate;
  readonly pem: string;
  readonly keys: CryptoKeyPair;
  readonly keyKind: KeyKind;
  readonly subject: string;
  readonly trustDomain: string;
  /** The CA's own chain up to (excluding) the root: empty for a root. */
  readonly chainAbove: readonly TestCa[];
  readonly peculiar: x509.X509Certificate;
}

/** A leaf SVID: certificate, key (in memory), and the chain a peer presents. */
export interface TestLeaf {
  readonly cert: X509Certificate;
  readonly pem: string;
  /** Leaf first, then the intermediates between it and the root (not the root). */
  readonly chain: readonly X509Certificate[];
  readonly chainPem: string;
  readonly key: KeyObject;
  readonly keyPem: string;
  readonly keyKind: KeyKind;
}

export interface CaOptions {
  trustDomain?: string;
  keyKind?: KeyKind;
  /** Common name; defaults to something naming the trust domain. */
  name?: string;
  notBefore?: Date;
  notAfter?: Date;
  pathLength?: number;
  /** Key usage bits; default keyCertSign | cRLSign. */
  keyUsage?: number;
  /** Set false to issue an "intermediate" without CA:true. */
  ca?: boolean;
}

export interface LeafOptions {
  /** URI SANs; default one SPIFFE ID `spiffe://<td>/ns/default/sa/default`. */
  uris?: readonly string[];
  dnsNames?: readonly string[];
  keyKind?: KeyKind;
  notBefore?: Date;
  notAfter?: Date;
  /** basicConstraints CA flag; default false. null omits the extension. */
  ca?: boolean | null;
  /** Key usage bits; default digitalSignature | keyEncipherment for RSA, digitalSignature for EC. null omits it. */
  keyUsage?: number | null;
  keyUsageCritical?: boolean;
  /** EKU OIDs; default serverAuth + clientAuth. null omits the extension. */
  extKeyUsage?: readonly string[] | null;
  /** Sign the leaf with its own key instead of the issuer's. */
  selfSigned?: boolean;
  /** Extra extensions, e.g. an unknown critical one. */
  extraExtensions?: readonly x509.Extension[];
  commonName?: string;
}

export const KeyUsage = x509.KeyUsageFlags;
export const Eku = { serverAuth: '1.3.6.1.5.5.7.3.1', clientAuth: '1.3.6.1.5.5.7.3.2', codeSigning: '1.3.6.1.5.5.7.3.3' } as const;

const keyPool = new Map<KeyKind, Promise<CryptoKeyPair>[]>();
let poolCursor = 0;
const POOL_SIZE: Record<KeyKind, number> = { 'ec-p256': 6, 'rsa-2048': 3 };

/** A key pair from the pool (generated on first use). */
function poolKey(kind: KeyKind): Promise<CryptoKeyPair> {
  let pool = keyPool.get(kind);
  if (pool === undefined) {
    pool = [];
    keyPool.set(kind, pool);
  }
  const i = poolCursor++ % POOL_SIZE[kind];
  pool[i] ??= generateKey(kind);
  return pool[i]!;
}

/** A fresh key pair, for tests that need a key no other certificate has. */
export function generateKey(kind: KeyKind): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ALGORITHMS[kind].gen, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f; // positive INTEGER
  return bytes.toString('hex');
}

function toNode(cert: x509.X509Certificate): X509Certificate {
  return new X509Certificate(Buffer.from(cert.rawData));
}

async function build(
  subjectKeys: CryptoKeyPair,
  subjectName: string,
  issuer: { name: string; keys: CryptoKeyPair; kind: KeyKind } | null,
  subjectKind: KeyKind,
  validity: { notBefore: Date; notAfter: Date },
  extensions: x509.Extension[],
): Promise<x509.X509Certificate> {
  const signer = issuer ?? { name: subjectName, keys: subjectKeys, kind: subjectKind };
  extensions.push(await x509.SubjectKeyIdentifierExtension.create(subjectKeys.publicKey));
  extensions.push(await x509.AuthorityKeyIdentifierExtension.create(signer.keys.publicKey));
  return x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: subjectName,
    issuer: signer.name,
    notBefore: validity.notBefore,
    notAfter: validity.notAfter,
    signingAlgorithm: ALGORITHMS[signer.kind].sign,
    publicKey: subjectKeys.publicKey,
    signingKey: signer.keys.privateKey,
    extensions,
  });
}

function caExtensions(trustDomain: string, o: CaOptions): x509.Extension[] {
  return [
    new x509.BasicConstraintsExtension(o.ca ?? true, o.pathLength, true),
    new x509.KeyUsagesExtension(o.keyUsage ?? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    // A signing certificate's SPIFFE ID has no path (X509-SVID §3.2).
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${trustDomain}` }]),
  ];
}

function window(notBefore?: Date, notAfter?: Date, lifetime = 365 * DAY): { notBefore: Date; notAfter: Date } {
  const nb = notBefore ?? new Date(Date.now() - HOUR);
  return { notBefore: nb, notAfter: notAfter ?? new Date(nb.getTime() + lifetime) };
}

/** A self-signed root CA for a trust domain (default `cluster.local`, EC P-256). */
export async function createRootCa(o: CaOptions = {}): Promise<TestCa> {
  const trustDomain = o.trustDomain ?? 'cluster.local';
  const keyKind = o.keyKind ?? 'ec-p256';
  const keys = await poolKey(keyKind);
  const subject = `CN=${o.name ?? `root ${trustDomain} ${serial().slice(0, 8)}`}, O=meshward-test`;
  const cert = await build(keys, subject, null, keyKind, window(o.notBefore, o.notAfter, 10 * 365 * DAY), caExtensions(trustDomain, o));
  return Object.freeze({ cert: toNode(cert), pem: cert.toString('pem'), keys, keyKind, subject, trustDomain, chainAbove: [], peculiar: cert });
}

/** An intermediate CA issued by `parent` (a root or another intermediate). */
export async function createIntermediateCa(parent: TestCa, o: CaOptions = {}): Promise<TestCa> {
  const trustDomain = o.trustDomain ?? parent.trustDomain;
  const keyKind = o.keyKind ?? 'ec-p256';
  const keys = await poolKey(keyKind);
  const subject = `CN=${o.name ?? `intermediate ${trustDomain} ${serial().slice(0, 8)}`}, O=meshward-test`;
  const cert = await build(
    keys,
    subject,
    { name: parent.subject, keys: parent.keys, kind: parent.keyKind },
    keyKind,
    window(o.notBefore, o.notAfter, 2 * 365 * DAY),
    caExtensions(trustDomain, o),
  );
  const chainAbove = parent.chainAbove.length === 0 && isRoot(parent) ? [] : [parent, ...parent.chainAbove];
  return Object.freeze({ cert: toNode(cert), pem: cert.toString('pem'), keys, keyKind, subject, trustDomain, chainAbove, peculiar: cert });
}

function isRoot(ca: TestCa): boolean {
  return ca.cert.subject === ca.cert.issuer && ca.cert.checkIssued(ca.cert);
}

/** A leaf SVID issued by `issuer`; every option defaults to a good SVID. */
export async function createLeaf(issuer: TestCa, o: LeafOptions = {}): Promise<TestLeaf> {
  const keyKind = o.keyKind ?? 'ec-p256';
  const keys = await poolKey(keyKind);
  const uris = o.uris ?? [`spiffe://${issuer.trustDomain}/ns/default/sa/default`];
  const names: x509.JsonGeneralName[] = [
    ...uris.map((value) => ({ type: 'url' as const, value })),
    ...(o.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
  ];
  const extensions: x509.Extension[] = [];
  if (o.ca !== null) extensions.push(new x509.BasicConstraintsExtension(o.ca ?? false, undefined, true));
  const defaultUsage =
    keyKind === 'rsa-2048'
      ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
      : x509.KeyUsageFlags.digitalSignature;
  if (o.keyUsage !== null) extensions.push(new x509.KeyUsagesExtension(o.keyUsage ?? defaultUsage, o.keyUsageCritical ?? true));
  if (o.extKeyUsage !== null) {
    extensions.push(new x509.ExtendedKeyUsageExtension([...(o.extKeyUsage ?? [Eku.serverAuth, Eku.clientAuth])], false));
  }
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  extensions.push(...(o.extraExtensions ?? []));
  const subject = `CN=${o.commonName ?? 'workload'}, O=meshward-test`;
  const cert = await build(
    keys,
    subject,
    o.selfSigned === true ? null : { name: issuer.subject, keys: issuer.keys, kind: issuer.keyKind },
    keyKind,
    window(o.notBefore, o.notAfter, DAY),
    extensions,
  );
  const leaf = toNode(cert);
  const pem = cert.toString('pem');
  const intermediates = o.selfSigned === true || isRoot(issuer) ? [] : [issuer, ...issuer.chainAbove];
  const chain = [leaf, ...intermediates.map((ca) => ca.cert)];
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const key = KeyObject.from(keys.privateKey);
  return Object.freeze({
    cert: leaf,
    pem,
    chain,
    chainPem: [pem, ...intermediates.map((ca) => ca.pem)].map(endWithNewline).join(''),
    key,
    keyPem: `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n`.replace(/\n\n/g, '\n'),
    keyKind,
  });
}

function endWithNewline(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

/** Dates relative to now, for validity windows. */
export const ago = (ms: number): Date => new Date(Date.now() - ms);
export const fromNow = (ms: number): Date => new Date(Date.now() + ms);
export { HOUR, DAY };

/** An X.509 extension with an arbitrary OID, for "unknown critical extension" cases. */
export function rawExtension(oid: string, critical: boolean, der: Uint8Array): x509.Extension {
  return new x509.Extension(oid, critical, der);
}

/**
 * A workload's identity files as a proxy config's `identity.files` names
 * them (key.pem, 0600; chain.pem; bundle.pem) in `dir`: a leaf with the
 * one SPIFFE ID `uri`, from a new root of `trustDomain`.
 */
export async function writeIdentityFiles(dir: string, uri: string, trustDomain = 'cluster.local'): Promise<void> {
  const root = await createRootCa({ trustDomain });
  const leaf = await createLeaf(root, { uris: [uri] });
  writeFileSync(join(dir, 'key.pem'), leaf.keyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'chain.pem'), leaf.chainPem);
  writeFileSync(join(dir, 'bundle.pem'), root.pem);
}
