// A trust bundle: the CA certificates that are authoritative for one trust
// domain (SPIFFE_Trust_Domain_and_Bundle.md §3). The trust domain is recorded
// beside the roots, never inferred from them: a validator picks the bundle by
// the trust domain of the ID it is checking (§3), so a bundle without its
// name would let any root vouch for any domain.
//
// A bundle holds several roots because root rotation keeps the old and the
// new one side by side until every workload has an SVID from the new one
// (§2: "a single trust domain may be represented by multiple keys ... during
// root rotation"). Bundles are immutable; `mergeBundles` and `withoutRoot`
// return new ones, so a handshake that started with a bundle finishes with
// it.

import { X509Certificate } from 'node:crypto';
import { validateTrustDomain } from './spiffe.ts';

export interface TrustBundle {
  readonly trustDomain: string;
  /** The roots, in the order first seen; no two with the same fingerprint. */
  readonly roots: readonly X509Certificate[];
  /** The roots as concatenated PEM, for `ca` in TLS options. */
  readonly pem: string;
  /** SHA-256 fingerprints (`AB:CD:...`, as node:crypto prints them), parallel to `roots`. */
  readonly fingerprints: readonly string[];
}

const BEGIN = /^-----BEGIN ([A-Z0-9 ]+)-----$/;
const END = /^-----END ([A-Z0-9 ]+)-----$/;
const BASE64_LINE = /^[A-Za-z0-9+/]*={0,2}$/;

function build(trustDomain: string, roots: readonly X509Certificate[]): TrustBundle {
  const frozenRoots = Object.freeze([...roots]);
  return Object.freeze({
    trustDomain,
    roots: frozenRoots,
    pem: frozenRoots.map((r) => r.toString()).join(''),
    fingerprints: Object.freeze(frozenRoots.map((r) => r.fingerprint256)),
  });
}

/** A short, safe name for a certificate in messages: its subject's first line. */
function certName(cert: X509Certificate): string {
  const first = cert.subject.split('\n')[0] ?? '';
  return first.length > 0 ? first : `serial ${cert.serialNumber}`;
}

/**
 * Decodes the base64 body of one CERTIFICATE block into a CA certificate, or
 * says why it is not one.
 */
function decodeRoot(body: readonly string[], where: string): X509Certificate | string {
  for (let k = 0; k < body.length; k++) {
    const line = body[k]!;
    if (line.includes(':')) return `${where}: PEM headers ("${line.slice(0, line.indexOf(':'))}:") are not supported in a certificate`;
    if (!BASE64_LINE.test(line)) return `${where}: line ${k + 1} of the body is not base64`;
  }
  const b64 = body.join('');
  if (b64.length === 0) return `${where}: the block is empty`;
  if (b64.length % 4 !== 0) return `${where}: the base64 body is truncated (length ${b64.length} is not a multiple of 4)`;
  const der = Buffer.from(b64, 'base64');
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch (err) {
    const why = err instanceof Error ? err.message : 'unreadable';
    return `${where}: not a valid X.509 certificate (${why})`;
  }
  // A trust anchor signs other certificates; a leaf in the bundle would make
  // that one certificate trusted for any identity it names.
  if (!cert.ca) return `${where}: "${certName(cert)}" is not a CA certificate (basicConstraints CA:TRUE is required of a root)`;
  return cert;
}

/**
 * Parses the roots of one trust domain from PEM (one or more CERTIFICATE
 * blocks; text between blocks is ignored, as OpenSSL does). Every bad block
 * is reported, by number and line, with why: a block of another type (a
 * private key pasted by mistake is named, never echoed), a BEGIN without its
 * END, broken base64, DER that is not a certificate, a certificate that is
 * not a CA. A root that appears twice is kept once.
 */
export function trustBundleFromPem(trustDomain: string, pem: string): TrustBundle | { readonly error: string } {
  const tdError = validateTrustDomain(trustDomain);
  if (tdError !== null) return { error: `invalid trust domain: ${tdError}` };
  if (typeof pem !== 'string') return { error: 'the trust bundle must be PEM text' };

  const problems: string[] = [];
  const roots: X509Certificate[] = [];
  const seen = new Set<string>();
  const lines = pem.split(/\r?\n/).map((l) => l.trim());
  let block = 0;
  let i = 0;

  while (i < lines.length) {
    const line = lines[i]!;
    const begin = BEGIN.exec(line);
    if (begin === null) {
      if (END.test(line)) problems.push(`line ${i + 1}: an END line without a BEGIN line`);
      i++;
      continue;
    }
    block++;
    const label = begin[1]!;
    const where = `block ${block} (line ${i + 1})`;
    let j = i + 1;
    while (j < lines.length && !BEGIN.test(lines[j]!) && !END.test(lines[j]!)) j++;
    const end = j < lines.length ? END.exec(lines[j]!) : null;
    if (end === null) {
      problems.push(`${where}: "BEGIN ${label}" has no END line`);
      i = j; // resume at the next BEGIN, if any
      continue;
    }
    const body = lines.slice(i + 1, j).filter((l) => l.length > 0);
    i = j + 1;
    if (end[1] !== label) {
      problems.push(`${where}: "BEGIN ${label}" is closed by "END ${end[1]}"`);
      continue;
    }
    if (label !== 'CERTIFICATE') {
      // Say what it is, never what it holds: this is where private keys get pasted.
      problems.push(`${where}: a ${label} block, not a CERTIFICATE`);
      continue;
    }
    const root = decodeRoot(body, where);
    if (typeof root === 'string') {
      problems.push(root);
      continue;
    }
    if (!seen.has(root.fingerprint256)) {
      seen.add(root.fingerprint256);
      roots.push(root);
    }
  }

  if (problems.length > 0) return { error: `trust bundle for "${trustDomain}": ${problems.join('; ')}` };
  if (roots.length === 0) return { error: `trust bundle for "${trustDomain}": no CERTIFICATE block found` };
  return build(trustDomain, roots);
}

/**
 * One bundle with every root of the given bundles (first occurrence wins the
 * order), for root rotation: old and new roots trusted side by side. All
 * bundles must be for the same trust domain; mixing domains is a programming
 * error and throws.
 */
export function mergeBundles(first: TrustBundle, ...rest: readonly TrustBundle[]): TrustBundle {
  const roots: X509Certificate[] = [];
  const seen = new Set<string>();
  for (const b of [first, ...rest]) {
    if (b.trustDomain !== first.trustDomain) {
      throw new Error(`cannot merge trust bundles of different trust domains ("${first.trustDomain}" and "${b.trustDomain}")`);
    }
    for (const r of b.roots) {
      if (!seen.has(r.fingerprint256)) {
        seen.add(r.fingerprint256);
        roots.push(r);
      }
    }
  }
  return build(first.trustDomain, roots);
}

/** Fingerprints compare as bare upper-case hex, so `ab:cd…`, `ABCD…` and node's `AB:CD…` all match. */
function normalizeFingerprint(fp: string): string {
  return fp.replace(/:/g, '').toUpperCase();
}

/**
 * The bundle without the root whose SHA-256 fingerprint is given (with or
 * without colons, any case): the last step of a root rotation. Removing a
 * root that is not there, or the last root, is an error rather than a quiet
 * no-op or a bundle that trusts nothing.
 */
export function withoutRoot(bundle: TrustBundle, fingerprint256: string): TrustBundle | { readonly error: string } {
  const target = normalizeFingerprint(String(fingerprint256));
  const kept = bundle.roots.filter((r) => normalizeFingerprint(r.fingerprint256) !== target);
  if (kept.length === bundle.roots.length) {
    return { error: `no root with fingerprint ${fingerprint256} in the trust bundle for "${bundle.trustDomain}"` };
  }
  if (kept.length === 0) {
    return { error: `removing ${fingerprint256} would leave the trust bundle for "${bundle.trustDomain}" with no roots` };
  }
  return build(bundle.trustDomain, kept);
}

/** The bundle's root with this fingerprint (any of the accepted spellings), if any. */
export function findRoot(bundle: TrustBundle, fingerprint256: string): X509Certificate | undefined {
  const target = normalizeFingerprint(fingerprint256);
  return bundle.roots.find((r) => normalizeFingerprint(r.fingerprint256) === target);
}
