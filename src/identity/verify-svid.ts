// X509-SVID verification: what spiffe/spiffe standards/X509-SVID.md asks of a
// validator, run on the peer's chain after every mTLS handshake. A peer that
// fails any check is refused; the verdict names the check, for metrics and
// for the person reading the log.
//
// Checks, in the order they run (the first failure decides):
//
//  1. no-certificate      the peer presented nothing.
//  2. malformed           a certificate that cannot be read: not DER we can
//                         walk, more than MAX_CHAIN_LENGTH certificates, one
//                         larger than MAX_CERT_BYTES, the same extension
//                         twice (RFC 5280 §4.2), or a critical extension we
//                         do not process (RFC 5280 §4.2: such a certificate
//                         MUST be rejected).
//  3. uri-san-count       the leaf has exactly one URI SAN (X509-SVID §2:
//                         "Validators encountering an SVID containing more
//                         than one URI SAN MUST reject the SVID"; none means
//                         no SPIFFE ID at all).
//  4. invalid-spiffe-id   that URI is a valid SPIFFE ID (spiffe.ts) with a
//                         non-root path (§3.1, §5.2).
//  5. leaf-is-ca          basicConstraints cA is not true, and key usage has
//                         neither keyCertSign nor cRLSign (§4.1, §4.3, §5.2:
//                         signing certificates MUST NOT authenticate).
//  6. key-usage           the key usage extension is present, critical, and
//                         has digitalSignature (§4.3: "MUST be set on all
//                         SVIDs, and MUST be marked critical"; leaves "MUST
//                         set digitalSignature"). keyEncipherment and
//                         keyAgreement are allowed (§4.3 MAY). Extended key
//                         usage is optional (§4.4 SHOULD), but when present
//                         it MUST list both id-kp-serverAuth and
//                         id-kp-clientAuth — the same certificate serves both
//                         ends of mesh mTLS. anyExtendedKeyUsage alone does
//                         not count, as OpenSSL's TLS purpose checks agree.
//  7. wrong-trust-domain  the ID's trust domain is the bundle's (and
//                         `expectedTrustDomain`'s when given). Checked before
//                         the chain because that is how a validator picks the
//                         bundle (SPIFFE_Trust_Domain_and_Bundle §3): an ID
//                         from another domain has no bundle here.
//  8. untrusted-chain     RFC 5280 path (§5.1), built strictly in the order
//                         presented: each certificate is signed by the next
//                         (`X509Certificate.verify`) and names it as issuer
//                         (`checkIssued`: names, key identifiers, the
//                         issuer's key usage); every certificate above the
//                         leaf is a CA with keyCertSign and a respected
//                         pathLenConstraint; the walk ends at the first
//                         certificate issued by a root of the bundle.
//                         Certificates after that point are ignored (a peer
//                         may append the root itself).
//  9. expired /           every certificate on that path, the root
//     not-yet-valid       included, is within notBefore..notAfter at `now`
//                         (inclusive, RFC 5280 §4.1.2.5). Checked after the
//                         chain so that only certificates we trust are
//                         called expired.
// 10. not-allowed         secure naming: when `allowedIds` is given, the ID
//                         is one of them.
//
// Not checked: URI name constraints (§4.2, a MAY). A CA carrying critical
// name constraints is refused by rule 2/8 rather than half-checked. The
// "URI SAN critical when Subject is empty" rule (§3.1) constrains issuers,
// not validators.
//
// Every function here returns a verdict and never throws, whatever it is
// handed; the work per certificate is bounded (one DER walk of at most
// MAX_CERT_BYTES, one signature check per link, one per bundle root at the
// anchor).

import type { TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { peerLeaf } from './peer-certificates.ts';
import { parseSpiffeId, type SpiffeId } from './spiffe.ts';
import type { TrustBundle } from './trust-bundle.ts';

export type SvidCheck =
  | 'no-certificate'
  | 'malformed'
  | 'untrusted-chain'
  | 'expired'
  | 'not-yet-valid'
  | 'uri-san-count'
  | 'leaf-is-ca'
  | 'key-usage'
  | 'invalid-spiffe-id'
  | 'wrong-trust-domain'
  | 'not-allowed';

export type SvidVerdict =
  | { readonly ok: true; readonly id: SpiffeId; readonly leaf: X509Certificate; readonly notAfter: Date }
  | { readonly ok: false; readonly check: SvidCheck; readonly reason: string };

export interface VerifySvidOptions {
  /** The time to check validity at; defaults to the current time. */
  readonly now?: Date;
  /** The trust domain the peer must be in, in addition to the bundle's. */
  readonly expectedTrustDomain?: string;
  /** Secure naming: only these SPIFFE URIs are accepted. */
  readonly allowedIds?: ReadonlySet<string>;
}

/** More certificates than any mesh issues (leaf, a few intermediates, a root). */
export const MAX_CHAIN_LENGTH = 8;
/** Larger than any SVID or CA certificate; bounds the work per certificate. */
export const MAX_CERT_BYTES = 32 * 1024;

// ---------------------------------------------------------------------------
// The few extensions the checks need, read from the DER. node:crypto exposes
// `ca` and the EKU list but not key usage bits, and its SAN rendering is a
// display string; reading the DER gives exact answers for exactly these.

const KU_DIGITAL_SIGNATURE = 1 << 0;
const KU_KEY_CERT_SIGN = 1 << 5;
const KU_CRL_SIGN = 1 << 6;

// OIDs as hex of their DER content octets.
const OID_SAN = '551d11';
const OID_KEY_USAGE = '551d0f';
const OID_BASIC_CONSTRAINTS = '551d13';
const OID_EXT_KEY_USAGE = '551d25';
const OID_SERVER_AUTH = '2b06010505070301';
const OID_CLIENT_AUTH = '2b06010505070302';
const PROCESSED = new Set([OID_SAN, OID_KEY_USAGE, OID_BASIC_CONSTRAINTS, OID_EXT_KEY_USAGE]);

interface CertFacts {
  /** URI SANs, in order. */
  readonly uris: readonly string[];
  /** basicConstraints cA. */
  readonly ca: boolean;
  /** pathLenConstraint, or -1 when absent. */
  readonly pathLen: number;
  /** Key usage bits (KU_*), or -1 when the extension is absent. */
  readonly keyUsage: number;
  readonly keyUsageCritical: boolean;
  /** EKU OIDs (hex), or null when the extension is absent. */
  readonly extKeyUsage: readonly string[] | null;
  /** Dotted OID of a critical extension we do not process, if any. */
  readonly unhandledCritical: string | null;
}

class DerError extends Error {}

interface Tlv {
  readonly tag: number;
  /** First content byte. */
  readonly start: number;
  /** One past the last content byte. */
  readonly end: number;
}

/** Reads one DER TLV at `pos`, which must end by `limit`. */
function tlv(der: Uint8Array, pos: number, limit: number): Tlv {
  if (pos + 2 > limit) throw new DerError('truncated');
  const tag = der[pos]!;
  if ((tag & 0x1f) === 0x1f) throw new DerError('multi-byte tag');
  let len = der[pos + 1]!;
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3) throw new DerError('bad length');
    if (start + n > limit) throw new DerError('truncated');
    len = 0;
    for (let k = 0; k < n; k++) len = (len << 8) | der[start + k]!;
    start += n;
  }
  const end = start + len;
  if (end > limit) throw new DerError('truncated');
  return { tag, start, end };
}

function hex(der: Uint8Array, start: number, end: number): string {
  return Buffer.from(der.buffer, der.byteOffset + start, end - start).toString('hex');
}

function dottedOid(der: Uint8Array, start: number, end: number): string {
  if (start >= end) return '?';
  const first = der[start]!;
  const parts = [first < 80 ? Math.floor(first / 40) : 2, first < 80 ? first % 40 : first - 80];
  let v = 0;
  for (let k = start + 1; k < end && parts.length < 32; k++) {
    v = v * 128 + (der[k]! & 0x7f);
    if ((der[k]! & 0x80) === 0) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join('.');
}

function readFacts(der: Uint8Array): CertFacts {
  const cert = tlv(der, 0, der.length);
  if (cert.tag !== 0x30) throw new DerError('not a SEQUENCE');
  const tbs = tlv(der, cert.start, cert.end);
  if (tbs.tag !== 0x30) throw new DerError('no tbsCertificate');

  let uris: string[] = [];
  let ca = false;
  let pathLen = -1;
  let keyUsage = -1;
  let keyUsageCritical = false;
  let extKeyUsage: string[] | null = null;
  let unhandledCritical: string | null = null;
  const seen = new Set<string>();

  for (let pos = tbs.start; pos < tbs.end; ) {
    const field = tlv(der, pos, tbs.end);
    pos = field.end;
    if (field.tag !== 0xa3) continue; // [3] extensions; the other fields are node's to read
    const exts = tlv(der, field.start, field.end);
    if (exts.tag !== 0x30) throw new DerError('bad extensions');
    for (let p = exts.start; p < exts.end; ) {
      const ext = tlv(der, p, exts.end);
      p = ext.end;
      if (ext.tag !== 0x30) throw new DerError('bad extension');
      const oid = tlv(der, ext.start, ext.end);
      if (oid.tag !== 0x06) throw new DerError('bad extension id');
      let next = tlv(der, oid.end, ext.end);
      let critical = false;
      if (next.tag === 0x01) {
        critical = next.end > next.start && der[next.start] !== 0;
        next = tlv(der, next.end, ext.end);
      }
      if (next.tag !== 0x04 || next.end !== ext.end) throw new DerError('bad extension value');
      const id = hex(der, oid.start, oid.end);
      if (seen.has(id)) throw new DerError(`extension ${dottedOid(der, oid.start, oid.end)} appears twice`);
      seen.add(id);
      if (critical && !PROCESSED.has(id) && unhandledCritical === null) unhandledCritical = dottedOid(der, oid.start, oid.end);

      const v = next;
      if (id === OID_SAN) {
        uris = readUris(der, v.start, v.end);
      } else if (id === OID_KEY_USAGE) {
        keyUsage = readKeyUsage(der, v.start, v.end);
        keyUsageCritical = critical;
      } else if (id === OID_BASIC_CONSTRAINTS) {
        [ca, pathLen] = readBasicConstraints(der, v.start, v.end);
      } else if (id === OID_EXT_KEY_USAGE) {
        extKeyUsage = readExtKeyUsage(der, v.start, v.end);
      }
    }
  }
  return { uris, ca, pathLen, keyUsage, keyUsageCritical, extKeyUsage, unhandledCritical };
}

function readUris(der: Uint8Array, start: number, end: number): string[] {
  const names = tlv(der, start, end);
  if (names.tag !== 0x30 || names.end !== end) throw new DerError('bad subjectAltName');
  const uris: string[] = [];
  for (let p = names.start; p < names.end; ) {
    const gn = tlv(der, p, names.end);
    p = gn.end;
    if (gn.tag !== 0x86) continue; // [6] uniformResourceIdentifier
    let s = '';
    for (let k = gn.start; k < gn.end; k++) {
      const c = der[k]!;
      if (c > 0x7e) throw new DerError('URI SAN is not IA5String');
      s += String.fromCharCode(c);
    }
    uris.push(s);
  }
  return uris;
}

function readKeyUsage(der: Uint8Array, start: number, end: number): number {
  const bits = tlv(der, start, end);
  if (bits.tag !== 0x03 || bits.end !== end || bits.end - bits.start < 1) throw new DerError('bad keyUsage');
  let usage = 0;
  for (let i = 0; i < 9; i++) {
    const at = bits.start + 1 + (i >> 3);
    if (at < bits.end && (der[at]! & (0x80 >> (i & 7))) !== 0) usage |= 1 << i;
  }
  return usage;
}

function readBasicConstraints(der: Uint8Array, start: number, end: number): [boolean, number] {
  const seq = tlv(der, start, end);
  if (seq.tag !== 0x30 || seq.end !== end) throw new DerError('bad basicConstraints');
  let ca = false;
  let pathLen = -1;
  let p = seq.start;
  if (p < seq.end) {
    const first = tlv(der, p, seq.end);
    if (first.tag === 0x01) {
      ca = first.end > first.start && der[first.start] !== 0;
      p = first.end;
    }
  }
  if (p < seq.end) {
    const int = tlv(der, p, seq.end);
    if (int.tag !== 0x02 || int.end - int.start < 1 || int.end - int.start > 4 || (der[int.start]! & 0x80) !== 0) {
      throw new DerError('bad pathLenConstraint');
    }
    pathLen = 0;
    for (let k = int.start; k < int.end; k++) pathLen = pathLen * 256 + der[k]!;
  }
  return [ca, pathLen];
}

function readExtKeyUsage(der: Uint8Array, start: number, end: number): string[] {
  const seq = tlv(der, start, end);
  if (seq.tag !== 0x30 || seq.end !== end) throw new DerError('bad extKeyUsage');
  const oids: string[] = [];
  for (let p = seq.start; p < seq.end; ) {
    const oid = tlv(der, p, seq.end);
    p = oid.end;
    if (oid.tag !== 0x06) throw new DerError('bad extKeyUsage');
    oids.push(hex(der, oid.start, oid.end));
  }
  return oids;
}

// Certificates are immutable, and the same intermediates and roots are seen
// on every handshake: read each one once.
const factsCache = new WeakMap<X509Certificate, CertFacts | string>();

/** The facts of `cert`, or why it cannot be read. */
function factsOf(cert: unknown): CertFacts | string {
  if (!(cert instanceof X509Certificate)) return 'not an X509Certificate';
  const cached = factsCache.get(cert);
  if (cached !== undefined) return cached;
  let result: CertFacts | string;
  try {
    const raw = cert.raw;
    result = raw.length > MAX_CERT_BYTES ? `larger than ${MAX_CERT_BYTES} bytes` : readFacts(raw);
  } catch (err) {
    result = err instanceof DerError ? `unreadable DER (${err.message})` : 'unreadable DER';
  }
  factsCache.set(cert, result);
  return result;
}

// ---------------------------------------------------------------------------

function refuse(check: SvidCheck, reason: string): SvidVerdict {
  return Object.freeze({ ok: false, check, reason });
}

function nameOf(cert: X509Certificate): string {
  try {
    const first = cert.subject.split('\n')[0] ?? '';
    return first.length > 0 ? `"${first}"` : `serial ${cert.serialNumber}`;
  } catch {
    return 'a certificate';
  }
}

function position(i: number): string {
  return i === 0 ? 'the leaf' : `certificate ${i + 1} of the chain`;
}

/** Signed by and named as issued by `issuer`. Never throws. */
function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/** How the chain step of a TLS peer may end (see verifyTlsPeer). */
interface TlsPath {
  /** OpenSSL verified the peer's chain against this bundle's roots. */
  readonly verified: boolean;
  /** OpenSSL's verify error code when it refused the chain. */
  readonly error: string | null;
}

function checkLeaf(leaf: X509Certificate, facts: CertFacts, bundle: TrustBundle, opts: VerifySvidOptions): SpiffeId | SvidVerdict {
  if (facts.uris.length !== 1) {
    return refuse('uri-san-count', `the leaf has ${facts.uris.length} URI SANs; an X509-SVID has exactly one`);
  }
  const parsed = parseSpiffeId(facts.uris[0]!);
  if ('error' in parsed) return refuse('invalid-spiffe-id', `the leaf's URI SAN is not a SPIFFE ID: ${parsed.error}`);
  if (parsed.path === '') {
    return refuse('invalid-spiffe-id', `${parsed.uri} has no path; only signing certificates carry a trust domain's own ID`);
  }

  if (facts.ca || leaf.ca) return refuse('leaf-is-ca', `the leaf ${parsed.uri} is a CA certificate (basicConstraints CA:TRUE)`);
  if (facts.keyUsage !== -1 && (facts.keyUsage & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) !== 0) {
    return refuse('leaf-is-ca', `the leaf ${parsed.uri} may sign certificates or CRLs (keyCertSign/cRLSign)`);
  }

  if (facts.keyUsage === -1) return refuse('key-usage', `the leaf ${parsed.uri} has no key usage extension`);
  if (!facts.keyUsageCritical) return refuse('key-usage', `the leaf ${parsed.uri}'s key usage extension is not critical`);
  if ((facts.keyUsage & KU_DIGITAL_SIGNATURE) === 0) {
    return refuse('key-usage', `the leaf ${parsed.uri}'s key usage lacks digitalSignature`);
  }
  if (facts.extKeyUsage !== null && !(facts.extKeyUsage.includes(OID_SERVER_AUTH) && facts.extKeyUsage.includes(OID_CLIENT_AUTH))) {
    return refuse('key-usage', `the leaf ${parsed.uri}'s extended key usage must allow both serverAuth and clientAuth`);
  }

  if (parsed.trustDomain !== bundle.trustDomain) {
    return refuse('wrong-trust-domain', `${parsed.uri} is not in trust domain "${bundle.trustDomain}" (the bundle's)`);
  }
  if (opts.expectedTrustDomain !== undefined && parsed.trustDomain !== opts.expectedTrustDomain) {
    return refuse('wrong-trust-domain', `${parsed.uri} is not in the expected trust domain "${opts.expectedTrustDomain}"`);
  }
  return parsed;
}

/** The checks shared by verifySvid and verifyTlsPeer; `tls` null means "walk the whole chain ourselves". */
function verify(chain: readonly X509Certificate[], bundle: TrustBundle, opts: VerifySvidOptions, tls: TlsPath | null): SvidVerdict {
  if (!Array.isArray(chain) || chain.length === 0) return refuse('no-certificate', 'the peer presented no certificate');
  if (chain.length > MAX_CHAIN_LENGTH) {
    return refuse('malformed', `the chain has ${chain.length} certificates; at most ${MAX_CHAIN_LENGTH} are accepted`);
  }
  if (typeof bundle !== 'object' || bundle === null || !Array.isArray(bundle.roots)) {
    return refuse('untrusted-chain', 'no trust bundle to verify against');
  }
  const facts: CertFacts[] = [];
  for (let i = 0; i < chain.length; i++) {
    const f = factsOf(chain[i]);
    if (typeof f === 'string') return refuse('malformed', `${position(i)} is malformed: ${f}`);
    facts.push(f);
  }
  const leaf = chain[0]!;
  const leafFacts = facts[0]!;
  if (leafFacts.unhandledCritical !== null) {
    return refuse('malformed', `the leaf has a critical extension ${leafFacts.unhandledCritical} that is not processed here`);
  }

  const idOrVerdict = checkLeaf(leaf, leafFacts, bundle, opts);
  if ('ok' in idOrVerdict) return idOrVerdict;
  const id = idOrVerdict;

  if (tls !== null && tls.error !== null) {
    return refuse(checkForTlsError(tls.error) ?? 'untrusted-chain', `TLS refused the peer's chain: ${tls.error}`);
  }

  // Chain: walk up from the leaf until a bundle root issued the current cert.
  const path: X509Certificate[] = [leaf];
  let anchor: X509Certificate | null = null;
  for (let i = 0; ; i++) {
    const cur = chain[i]!;
    for (const root of bundle.roots) {
      if (issuedBy(cur, root)) {
        anchor = root;
        break;
      }
    }
    if (anchor !== null) {
      const rootFacts = factsOf(anchor);
      // Intermediates below the root: path.length - 1.
      if (typeof rootFacts !== 'string' && rootFacts.pathLen !== -1 && path.length - 1 > rootFacts.pathLen) {
        return refuse('untrusted-chain', `root ${nameOf(anchor)} allows ${rootFacts.pathLen} intermediates; the chain has ${path.length - 1}`);
      }
      break;
    }
    const next = chain[i + 1];
    if (next === undefined) {
      // OpenSSL built a path to this bundle's roots, but node did not hand us
      // every certificate it used (see verifyTlsPeer). Accept its path unless
      // what we do have ends at a root the bundle does not hold.
      if (tls?.verified === true && !(cur !== leaf && issuedBy(cur, cur))) break;
      return refuse('untrusted-chain', `no root of the "${bundle.trustDomain}" bundle issued ${position(i)} ${nameOf(cur)}`);
    }
    const nf = facts[i + 1]!;
    if (!nf.ca) return refuse('untrusted-chain', `${position(i + 1)} ${nameOf(next)} is not a CA certificate`);
    if (nf.keyUsage === -1 || (nf.keyUsage & KU_KEY_CERT_SIGN) === 0) {
      return refuse('untrusted-chain', `${position(i + 1)} ${nameOf(next)} lacks the keyCertSign key usage`);
    }
    // OpenSSL's own reading of the same extensions must agree.
    if (!next.ca) return refuse('untrusted-chain', `${position(i + 1)} ${nameOf(next)} is not a CA certificate to OpenSSL`);
    if (nf.unhandledCritical !== null) {
      return refuse('untrusted-chain', `${position(i + 1)} ${nameOf(next)} has a critical extension ${nf.unhandledCritical} that is not processed here`);
    }
    // Intermediates strictly between `next` and the leaf: i.
    if (nf.pathLen !== -1 && i > nf.pathLen) {
      return refuse('untrusted-chain', `${position(i + 1)} ${nameOf(next)} allows ${nf.pathLen} intermediates below it; the chain has ${i}`);
    }
    if (!issuedBy(cur, next)) return refuse('untrusted-chain', `${position(i)} is not issued by ${position(i + 1)} ${nameOf(next)}`);
    path.push(next);
  }
  if (anchor !== null) path.push(anchor);

  const now = opts.now ?? new Date();
  const t = now.getTime();
  for (let i = 0; i < path.length; i++) {
    const cert = path[i]!;
    const what = anchor !== null && i === path.length - 1 ? `root ${nameOf(cert)}` : `${position(i)} ${nameOf(cert)}`;
    if (t > cert.validToDate.getTime()) {
      return refuse('expired', `${what} expired at ${cert.validToDate.toISOString()}`);
    }
    if (t < cert.validFromDate.getTime()) {
      return refuse('not-yet-valid', `${what} is not valid until ${cert.validFromDate.toISOString()}`);
    }
  }

  if (opts.allowedIds !== undefined && !opts.allowedIds.has(id.uri)) {
    return refuse('not-allowed', `${id.uri} is not among the ${opts.allowedIds.size} identities allowed here`);
  }
  return Object.freeze({ ok: true, id, leaf, notAfter: leaf.validToDate });
}

/**
 * Verifies an X509-SVID chain (leaf first, as presented) against a trust
 * bundle. See the file comment for the checks and their order.
 *
 * @example
 *   const v = verifySvid([leaf, intermediate], bundle, { allowedIds: new Set([expected]) });
 *   if (!v.ok) refuse(v.check, v.reason);
 */
export function verifySvid(chain: readonly X509Certificate[], bundle: TrustBundle, opts: VerifySvidOptions = {}): SvidVerdict {
  try {
    return verify(chain, bundle, opts ?? {}, null);
  } catch {
    return refuse('malformed', 'the chain could not be examined');
  }
}

// OpenSSL's certificate verification errors, by the names node gives them
// (X509_V_ERR_* without the prefix), and the check each corresponds to.
const TLS_VERIFY_ERRORS: Readonly<Record<string, SvidCheck>> = {
  CERT_HAS_EXPIRED: 'expired',
  CERT_NOT_YET_VALID: 'not-yet-valid',
  INVALID_PURPOSE: 'key-usage',
  ERROR_IN_CERT_NOT_BEFORE_FIELD: 'malformed',
  ERROR_IN_CERT_NOT_AFTER_FIELD: 'malformed',
  UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY: 'malformed',
  UNHANDLED_CRITICAL_EXTENSION: 'malformed',
  UNABLE_TO_GET_ISSUER_CERT: 'untrusted-chain',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'untrusted-chain',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'untrusted-chain',
  UNABLE_TO_DECRYPT_CERT_SIGNATURE: 'untrusted-chain',
  CERT_SIGNATURE_FAILURE: 'untrusted-chain',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'untrusted-chain',
  SELF_SIGNED_CERT_IN_CHAIN: 'untrusted-chain',
  CERT_CHAIN_TOO_LONG: 'untrusted-chain',
  CERT_REVOKED: 'untrusted-chain',
  CERT_UNTRUSTED: 'untrusted-chain',
  CERT_REJECTED: 'untrusted-chain',
  INVALID_CA: 'untrusted-chain',
  PATH_LENGTH_EXCEEDED: 'untrusted-chain',
  PERMITTED_VIOLATION: 'untrusted-chain',
  EXCLUDED_VIOLATION: 'untrusted-chain',
  INVALID_NON_CA: 'untrusted-chain',
  // Ours, for a socket TLS did not authorize without saying why.
  UNVERIFIED: 'untrusted-chain',
};

/**
 * The check an OpenSSL certificate verification error (node's
 * `authorizationError`, or an error's `code`) corresponds to, or null when
 * `code` is not one of those errors.
 */
export function checkForTlsError(code: string): SvidCheck | null {
  return Object.hasOwn(TLS_VERIFY_ERRORS, code) ? TLS_VERIFY_ERRORS[code]! : null;
}

/**
 * Verifies the peer of an established TLS connection (either end). The
 * socket's context must have been built with `ca: bundle.pem` (tls-options.ts
 * does), so OpenSSL has already run RFC 5280 path validation against the
 * same roots; its refusal (`authorizationError`) is reported as the matching
 * check. The SPIFFE checks then run on the leaf. The rest of the chain is
 * OpenSSL's to judge: reading it from node would leak it (peer-certificates.ts).
 */
export function verifyTlsPeer(socket: TLSSocket, bundle: TrustBundle, opts: VerifySvidOptions = {}): SvidVerdict {
  try {
    const leaf = peerLeaf(socket);
    if (leaf === undefined) return refuse('no-certificate', 'the peer presented no certificate');
    const verified = socket.authorized === true;
    // node types it as Error, but sets the OpenSSL code as a string.
    const reported: unknown = socket.authorizationError;
    const error = verified ? null : typeof reported === 'string' && reported.length > 0 ? reported : 'UNVERIFIED';
    return verify([leaf], bundle, opts ?? {}, { verified, error });
  } catch {
    return refuse('malformed', 'the peer certificate could not be examined');
  }
}
