// SPIFFE IDs, parsed as strictly as the SPIFFE-ID standard (spiffe/spiffe
// standards/SPIFFE-ID.md §2) allows, because an ID is what every
// authorization decision keys on: two spellings of one workload must not
// exist, and nothing that looks like an ID but is not one may pass.
//
//   spiffe://<trust domain>[/<segment>...]
//
// - scheme: exactly `spiffe`, lower case (§2: "MUST have the scheme set to
//   spiffe"). §2.4 calls the scheme case-insensitive, but a second spelling
//   would be a second key for the same workload in every policy and log, so,
//   like go-spiffe's parser, we accept only the canonical form.
// - trust domain (§2.1): non-empty, only `a-z 0-9 . - _` (lower case), no
//   percent-encoding, no userinfo (`@`), no port (`:`), at most 255 bytes
//   (§2.3: the RFC 3986 host limit).
// - path (§2.2): `/`-separated segments of `A-Z a-z 0-9 . - _`; no empty
//   segment (so no `//` and no trailing `/`), no `.` or `..`, no
//   percent-encoding. The path may be absent (`spiffe://td`, a trust domain's
//   own ID); leaf SVIDs additionally need a non-empty one (X509-SVID §3.1),
//   which verify-svid.ts checks.
// - no query (`?`) or fragment (`#`) (§2).
// - at most 2048 bytes in all (§2.3). Every allowed character is ASCII, so
//   characters and bytes are the same count.
//
// Istio writes the same identity without the scheme (`td/ns/foo/sa/bar`) and
// calls it a principal; `toPrincipal`/`fromPrincipal` convert.

export interface SpiffeId {
  /** The trust domain name, e.g. `cluster.local`. */
  readonly trustDomain: string;
  /** `''` or `/seg/seg...`; never ends with `/`. */
  readonly path: string;
  /** The whole ID, `spiffe://` + trust domain + path. */
  readonly uri: string;
}

export const SPIFFE_SCHEME_PREFIX = 'spiffe://';
export const MAX_SPIFFE_ID_LENGTH = 2048;
export const MAX_TRUST_DOMAIN_LENGTH = 255;

const CH_a = 97;
const CH_z = 122;
const CH_A = 65;
const CH_Z = 90;
const CH_0 = 48;
const CH_9 = 57;
const CH_DOT = 46;
const CH_DASH = 45;
const CH_UNDERSCORE = 95;

function isTrustDomainChar(c: number): boolean {
  return (c >= CH_a && c <= CH_z) || (c >= CH_0 && c <= CH_9) || c === CH_DOT || c === CH_DASH || c === CH_UNDERSCORE;
}

function isPathChar(c: number): boolean {
  return isTrustDomainChar(c) || (c >= CH_A && c <= CH_Z);
}

/** Names a character for an error message without echoing control bytes. */
function describeChar(text: string, i: number): string {
  const c = text.charCodeAt(i);
  return c > 0x20 && c < 0x7f ? `"${text[i]}"` : `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Why `c` at `i` cannot appear in the trust domain, naming the URI part it would start. */
function trustDomainCharError(text: string, i: number): string {
  const c = text[i];
  if (c === ':') return 'a port is not allowed in a SPIFFE ID (no ":" in the trust domain)';
  if (c === '@') return 'userinfo is not allowed in a SPIFFE ID (no "@" in the trust domain)';
  if (c === '?') return 'a query is not allowed in a SPIFFE ID';
  if (c === '#') return 'a fragment is not allowed in a SPIFFE ID';
  if (c === '%') return 'percent-encoding is not allowed in the trust domain';
  const code = text.charCodeAt(i);
  if (code >= CH_A && code <= CH_Z) return `the trust domain must be lower case (found ${describeChar(text, i)})`;
  return `invalid character ${describeChar(text, i)} in the trust domain (allowed: a-z 0-9 . - _)`;
}

function pathCharError(text: string, i: number): string {
  const c = text[i];
  if (c === '?') return 'a query is not allowed in a SPIFFE ID';
  if (c === '#') return 'a fragment is not allowed in a SPIFFE ID';
  if (c === '%') return 'percent-encoding is not allowed in the path';
  return `invalid character ${describeChar(text, i)} in the path (allowed: A-Z a-z 0-9 . - _)`;
}

/**
 * Why `td` is not a valid trust domain name, or null when it is. Takes the
 * bare name (`cluster.local`), not an ID.
 */
export function validateTrustDomain(td: string): string | null {
  if (typeof td !== 'string') return 'the trust domain must be a string';
  if (td.length === 0) return 'the trust domain is empty';
  if (td.length > MAX_TRUST_DOMAIN_LENGTH) {
    return `the trust domain is ${td.length} bytes; the maximum is ${MAX_TRUST_DOMAIN_LENGTH}`;
  }
  for (let i = 0; i < td.length; i++) {
    if (!isTrustDomainChar(td.charCodeAt(i))) {
      if (td.startsWith(SPIFFE_SCHEME_PREFIX)) return 'write the trust domain without "spiffe://"';
      return trustDomainCharError(td, i);
    }
  }
  return null;
}

/**
 * Why `segment` cannot be one path segment, or null when it can. `what`
 * names it in the message ("namespace", "service account").
 */
function validateSegment(segment: string, what: string): string | null {
  if (segment.length === 0) return `the ${what} is empty`;
  if (segment === '.' || segment === '..') return `the ${what} "${segment}" is a relative path segment`;
  for (let i = 0; i < segment.length; i++) {
    if (!isPathChar(segment.charCodeAt(i))) {
      if (segment[i] === '/') return `the ${what} must not contain "/"`;
      return `invalid character ${describeChar(segment, i)} in the ${what} (allowed: A-Z a-z 0-9 . - _)`;
    }
  }
  return null;
}

function make(trustDomain: string, path: string, uri: string): SpiffeId {
  return Object.freeze({ trustDomain, path, uri });
}

/**
 * Parses a SPIFFE ID. Never throws; anything that is not exactly a valid ID
 * (see the file comment) comes back as `{ error }` saying which rule it broke.
 */
export function parseSpiffeId(text: string): SpiffeId | { readonly error: string } {
  if (typeof text !== 'string') return { error: 'a SPIFFE ID must be a string' };
  if (text.length === 0) return { error: 'the SPIFFE ID is empty' };
  if (text.length > MAX_SPIFFE_ID_LENGTH) {
    return { error: `the SPIFFE ID is ${text.length} bytes; the maximum is ${MAX_SPIFFE_ID_LENGTH}` };
  }
  if (!text.startsWith(SPIFFE_SCHEME_PREFIX)) {
    const colon = text.indexOf(':');
    const scheme = colon < 0 ? '' : text.slice(0, colon);
    if (scheme.toLowerCase() === 'spiffe') {
      if (scheme !== 'spiffe') return { error: `the scheme must be "spiffe" in lower case, not "${scheme}"` };
      return { error: 'a SPIFFE ID starts with "spiffe://" (the trust domain is missing)' };
    }
    return { error: 'a SPIFFE ID starts with "spiffe://"' };
  }

  const tdStart = SPIFFE_SCHEME_PREFIX.length;
  let i = tdStart;
  while (i < text.length && text.charCodeAt(i) !== 47 /* / */) {
    if (!isTrustDomainChar(text.charCodeAt(i))) return { error: trustDomainCharError(text, i) };
    i++;
  }
  const trustDomain = text.slice(tdStart, i);
  if (trustDomain.length === 0) return { error: 'the trust domain is empty' };
  if (trustDomain.length > MAX_TRUST_DOMAIN_LENGTH) {
    return { error: `the trust domain is ${trustDomain.length} bytes; the maximum is ${MAX_TRUST_DOMAIN_LENGTH}` };
  }

  // Path: i is at a "/" or at the end. Each segment runs to the next "/".
  const pathStart = i;
  while (i < text.length) {
    const segStart = ++i; // skip the "/"
    while (i < text.length && text.charCodeAt(i) !== 47) {
      if (!isPathChar(text.charCodeAt(i))) return { error: pathCharError(text, i) };
      i++;
    }
    const len = i - segStart;
    if (len === 0) {
      return { error: i === text.length ? 'the path must not end with "/"' : 'the path must not contain an empty segment ("//")' };
    }
    if (text.charCodeAt(segStart) === CH_DOT && (len === 1 || (len === 2 && text.charCodeAt(segStart + 1) === CH_DOT))) {
      return { error: `the path must not contain "${text.slice(segStart, i)}" segments` };
    }
  }
  return make(trustDomain, text.slice(pathStart), text);
}

/** True when `text` is a valid SPIFFE ID. */
export function isSpiffeId(text: string): boolean {
  return !('error' in parseSpiffeId(text));
}

/**
 * The Kubernetes-style workload ID Istio issues,
 * `spiffe://<td>/ns/<namespace>/sa/<serviceAccount>`. Each part must be
 * usable as written (the trust domain valid, the others valid path
 * segments); the error names the part that is not.
 */
export function workloadId(trustDomain: string, namespace: string, serviceAccount: string): SpiffeId | { readonly error: string } {
  const tdError = validateTrustDomain(trustDomain);
  if (tdError !== null) return { error: tdError };
  const nsError = validateSegment(namespace, 'namespace');
  if (nsError !== null) return { error: nsError };
  const saError = validateSegment(serviceAccount, 'service account');
  if (saError !== null) return { error: saError };
  const path = `/ns/${namespace}/sa/${serviceAccount}`;
  const uri = `${SPIFFE_SCHEME_PREFIX}${trustDomain}${path}`;
  if (uri.length > MAX_SPIFFE_ID_LENGTH) {
    return { error: `the SPIFFE ID would be ${uri.length} bytes; the maximum is ${MAX_SPIFFE_ID_LENGTH}` };
  }
  return make(trustDomain, path, uri);
}

/**
 * The namespace and service account of an Istio workload ID, or null when
 * the path is not exactly `/ns/<namespace>/sa/<serviceAccount>` (Istio's
 * own parser wants exactly those four segments too).
 */
export function istioWorkload(id: SpiffeId): { readonly namespace: string; readonly serviceAccount: string } | null {
  const parts = id.path.split('/');
  // ['', 'ns', <ns>, 'sa', <sa>]
  if (parts.length !== 5 || parts[1] !== 'ns' || parts[3] !== 'sa') return null;
  return Object.freeze({ namespace: parts[2]!, serviceAccount: parts[4]! });
}

/** Istio's principal form of an ID: the URI without `spiffe://` (`td/ns/foo/sa/bar`). */
export function toPrincipal(id: SpiffeId): string {
  return id.uri.slice(SPIFFE_SCHEME_PREFIX.length);
}

/**
 * Parses an Istio principal (`td/ns/foo/sa/bar`) as the SPIFFE ID it names.
 * Principals with wildcards are match patterns, not identities, and are
 * rejected here.
 */
export function fromPrincipal(principal: string): SpiffeId | { readonly error: string } {
  if (typeof principal !== 'string') return { error: 'a principal must be a string' };
  if (principal.startsWith(SPIFFE_SCHEME_PREFIX)) {
    return { error: `write the principal without "spiffe://" (e.g. "${principal.slice(SPIFFE_SCHEME_PREFIX.length)}")` };
  }
  if (principal.includes('*')) return { error: 'a principal with "*" is a pattern, not an identity' };
  return parseSpiffeId(SPIFFE_SCHEME_PREFIX + principal);
}
