// Syntax of single values inside Istio resources: match strings, paths,
// ports, addresses, names, durations. Each check returns a reason, or null
// when the value is fine, so schemas can attach the reason to the exact list
// entry that is wrong.

import { parseCidr, parseIp } from '../../lib/cidr.ts';

export type Check = (value: string) => string | null;

/**
 * Istio's string-match grammar: exact, `prefix*`, `*suffix`, or `*` for
 * "any non-empty value". Istio would take `a*b` or `*a*` as exact strings
 * containing a star, which is never what the author meant, so they are
 * rejected here rather than silently matching nothing (or everything, in a
 * `not` list).
 */
export const matchValue: Check = (v) => {
  if (v === '') return 'must not be empty';
  if (v === '*') return null;
  const stars = countOf(v, '*');
  if (stars === 0) return null;
  if (stars === 1 && (v.startsWith('*') || v.endsWith('*'))) return null;
  if (stars === 2 && v.startsWith('*') && v.endsWith('*')) {
    return `invalid match value "${v}": "*" may be a prefix or a suffix, not both`;
  }
  return `invalid match value "${v}": "*" is only allowed as a whole prefix ("*foo") or suffix ("foo*")`;
};

/** Principals are SPIFFE IDs without the scheme; a value with it can never match. */
export const principalValue: Check = (v) => {
  if (v.startsWith('spiffe://')) {
    return `invalid principal "${v}": write principals without "spiffe://" (e.g. "${v.slice('spiffe://'.length)}")`;
  }
  return matchValue(v);
};

const TEMPLATE_ONE = '{*}';
const TEMPLATE_ANY = '{**}';
// RFC 3986 pchar, the characters Envoy's URI template matcher accepts in a literal segment.
const PATH_LITERAL = /^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$/;

export function isPathTemplate(v: string): boolean {
  return v.includes(TEMPLATE_ONE) || v.includes(TEMPLATE_ANY);
}

/**
 * `paths`/`notPaths`: a match value, or a path template in which `{*}` and
 * `{**}` are whole segments, `{**}` is the last operator, and every other
 * segment is a plain literal (so no `*` next to a template). Braces anywhere
 * else are rejected, as Istio does.
 */
export const pathValue: Check = (v) => {
  if (v === '') return 'must not be empty';
  if (!v.includes('{') && !v.includes('}')) return matchValue(v);
  const template = isPathTemplate(v);
  let sawAny = false;
  for (const segment of trimSlashes(v).split('/')) {
    if (segment === TEMPLATE_ONE || segment === TEMPLATE_ANY) {
      if (sawAny) return `invalid path template "${v}": {**} must be the last operator`;
      if (segment === TEMPLATE_ANY) sawAny = true;
      continue;
    }
    if (segment.includes('{') || segment.includes('}')) {
      return `invalid path template "${v}": {*} and {**} must be whole path segments; no other braces are allowed`;
    }
    if (template && !PATH_LITERAL.test(segment)) {
      return segment === ''
        ? `invalid path template "${v}": empty path segment`
        : `invalid path template "${v}": segment "${segment}" is not a plain literal (no "*" wildcards with templates)`;
    }
  }
  return null;
};

/** `ports` and `destination.port`: a decimal string from 0 to 65535 (Istio parses them with ParseUint). */
export const portString: Check = (v) => {
  if (!/^[0-9]+$/.test(v) || Number(v) > 65535) return `invalid port "${v}": must be a number from 0 to 65535`;
  return null;
};

/** `ipBlocks` and the IP condition keys: one address or a CIDR range, IPv4 or IPv6. */
export const ipOrCidr: Check = (v) => {
  if (v === '') return 'must not be empty';
  if (v.includes('/')) {
    const r = parseCidr(v);
    return 'error' in r ? `invalid CIDR "${v}": ${r.error}` : null;
  }
  return parseIp(v) === null ? `invalid IP address "${v}"` : null;
};

/** A single address (no range), for request facts. */
export const ipAddress: Check = (v) => (parseIp(v, true) === null ? `invalid IP address "${v}"` : null);

/**
 * `serviceAccounts`: `name` or `namespace/name`, no wildcards, at most 320
 * characters (Istio's CheckServiceAccount).
 */
export const serviceAccountValue: Check = (v) => {
  if (v === '') return 'must not be empty';
  if (v.includes('*')) return `invalid service account "${v}": wildcards are not allowed`;
  if (v.length > 320) return `invalid service account "${v}": longer than 320 characters`;
  const slashes = countOf(v, '/');
  if (slashes > 1) return `invalid service account "${v}": expected "name" or "namespace/name"`;
  if (slashes === 1) {
    const [ns, sa] = v.split('/') as [string, string];
    if (ns === '') return `invalid service account "${v}": empty namespace`;
    if (sa === '') return `invalid service account "${v}": empty service account name`;
  }
  return null;
};

export const SERVICE_ACCOUNT_LIMIT = 16;

// ---------------------------------------------------------------- names

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// Istio's own label check (labels.IsDNS1123Label) accepts upper case.
const ISTIO_DNS_LABEL = /^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;
const WILDCARD_LABEL = /^(\*|(\*|\*-)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)$/;

/** Kubernetes namespace names: an RFC 1123 label. */
export const namespaceName: Check = (v) => {
  if (v === '') return 'must not be empty';
  if (v.length > 63 || !DNS_LABEL.test(v)) {
    return `invalid namespace "${v}": must be a lower-case RFC 1123 label (a-z, 0-9, "-", at most 63 characters)`;
  }
  return null;
};

/** Kubernetes object names: an RFC 1123 subdomain. */
export const objectName: Check = (v) => {
  if (v === '') return 'must not be empty';
  if (v.length > 253 || !v.split('.').every((l) => DNS_LABEL.test(l))) {
    return `invalid name "${v}": must be a lower-case RFC 1123 subdomain (a-z, 0-9, "-", ".", at most 253 characters)`;
  }
  return null;
};

/** Istio's IsDNS1123Label, used for subset names and exportTo namespaces. */
export function isIstioDnsLabel(v: string): boolean {
  return v.length <= 63 && ISTIO_DNS_LABEL.test(v);
}

/** Istio's ValidateWildcardDomain: an FQDN or short name whose first label may be `*`, `*foo` or `*-foo`. */
export const wildcardDomain: Check = (v) => {
  if (v === '') return 'must not be empty';
  if (v.length > 255) return `invalid host "${v}": longer than 255 characters`;
  const dot = v.indexOf('.');
  const first = dot < 0 ? v : v.slice(0, dot);
  if (first.length > 63 || !WILDCARD_LABEL.test(first)) return `invalid host "${v}": label "${first}" is not valid`;
  if (dot < 0) return null;
  const rest = v.slice(dot + 1).split('.');
  const tld = rest[rest.length - 1]!;
  if (/^[0-9]+$/.test(tld)) return `invalid host "${v}": top-level domain "${tld}" cannot be all-numeric`;
  for (let i = 0; i < rest.length; i++) {
    const label = rest[i]!;
    if (i === rest.length - 1 && label === '') break; // a trailing dot is allowed
    if (!isIstioDnsLabel(label)) return `invalid host "${v}": label "${label}" is not valid`;
  }
  return null;
};

const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_PREFIX = /^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*$/;

/** Kubernetes label keys: optional DNS prefix and `/`, then a name of at most 63 characters. */
export const labelKey: Check = (k) => {
  const slash = k.indexOf('/');
  const prefix = slash < 0 ? null : k.slice(0, slash);
  const name = slash < 0 ? k : k.slice(slash + 1);
  const prefixOk = prefix === null || (prefix.length <= 253 && LABEL_PREFIX.test(prefix));
  if (!prefixOk || name.length > 63 || !LABEL_NAME.test(name)) return `invalid label key "${k}"`;
  return null;
};

/** Kubernetes label values: empty, or a name of at most 63 characters. */
export const labelValue: Check = (v) => {
  if (v === '') return null;
  if (v.length > 63 || !LABEL_NAME.test(v)) return `invalid label value "${v}"`;
  return null;
};

// ---------------------------------------------------------------- HTTP

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const STRICT_HEADER = /^[-A-Za-z0-9]+$/;

/** An RFC 9110 field name. */
export function isHeaderToken(name: string): boolean {
  return TOKEN.test(name);
}

/**
 * Header names meshward writes into requests (`outputClaimToHeaders`):
 * letters, digits and `-` only, as Istio's ValidateStrictHTTPHeaderName.
 */
export const outputHeaderName: Check = (v) => {
  if (v === '') return 'must not be empty';
  if (v.startsWith(':')) return `invalid header name "${v}": pseudo-headers cannot be set`;
  if (!STRICT_HEADER.test(v)) return `invalid header name "${v}": only letters, digits and "-" are allowed`;
  return null;
};

/** `jwksUri`: an absolute http:// or https:// URL with a host. */
export const jwksUri: Check = (v) => {
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    return `invalid jwksUri "${v}": not a URL`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return `invalid jwksUri "${v}": scheme must be http or https, got "${url.protocol.slice(0, -1)}"`;
  }
  if (url.hostname === '') return `invalid jwksUri "${v}": missing host`;
  return null;
};

/** Inline `jwks`: a JSON Web Key Set, an object whose `keys` is a list of keys that each name their `kty`. */
export const jwksDocument: Check = (v) => {
  let parsed: unknown;
  try {
    parsed = JSON.parse(v);
  } catch (err) {
    return `invalid jwks: not JSON (${(err as Error).message})`;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return 'invalid jwks: expected a JSON object with a "keys" list';
  }
  const keys = (parsed as { keys?: unknown }).keys;
  if (!Array.isArray(keys)) return 'invalid jwks: expected a "keys" list';
  for (let i = 0; i < keys.length; i++) {
    const key: unknown = keys[i];
    if (key === null || typeof key !== 'object' || typeof (key as { kty?: unknown }).kty !== 'string') {
      return `invalid jwks: keys[${i}] is not a JSON Web Key (missing "kty")`;
    }
  }
  return null;
};

// ---------------------------------------------------------------- durations

const DURATION_PART = /([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h)/y;
const NANOS: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** Parses a duration such as `5s`, `100ms`, `1m30s` or `0.5s` into nanoseconds; null if malformed. */
export function parseDuration(v: string): number | null {
  if (v === '') return null;
  let total = 0;
  DURATION_PART.lastIndex = 0;
  while (DURATION_PART.lastIndex < v.length) {
    const m = DURATION_PART.exec(v);
    if (m === null) return null;
    total += Number(m[1]) * NANOS[m[2]!]!;
  }
  return total;
}

/** Istio's ValidateDuration: at least 1ms, in whole milliseconds. */
export const duration: Check = (v) => {
  const ns = parseDuration(v);
  if (ns === null) return `invalid duration "${v}": expected a number and a unit, e.g. "5s" or "100ms"`;
  if (ns < 1e6) return `invalid duration "${v}": must be at least 1ms`;
  if (Math.round(ns) % 1e6 !== 0) return `invalid duration "${v}": only whole milliseconds are supported`;
  return null;
};

// ---------------------------------------------------------------- helpers

function countOf(s: string, ch: string): number {
  let n = 0;
  for (let i = s.indexOf(ch); i >= 0; i = s.indexOf(ch, i + 1)) n++;
  return n;
}

function trimSlashes(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && s[start] === '/') start++;
  while (end > start && s[end - 1] === '/') end--;
  return s.slice(start, end);
}
