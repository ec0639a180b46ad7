// Where a JWT is looked for, as Envoy's jwt_authn extractor does it for one
// provider: headers first (ordered by name + prefix), then query parameters,
// then cookies (each ordered by name). The order matters because Envoy checks
// the tokens it found from last to first and the last one checked is the one
// whose payload authorization sees.

import type { HttpRequest } from '../facts.ts';

export interface HeaderLocation {
  /** Lower-case. */
  readonly name: string;
  /** Case-sensitive; '' takes the whole header value as the token. */
  readonly prefix: string;
}

export interface TokenLocations {
  readonly headers: readonly HeaderLocation[];
  readonly params: readonly string[];
  readonly cookies: readonly string[];
}

export type TokenSource =
  | { readonly kind: 'header'; readonly name: string }
  | { readonly kind: 'param'; readonly name: string }
  | { readonly kind: 'cookie'; readonly name: string };

export interface ExtractedToken {
  readonly token: string;
  readonly source: TokenSource;
}

/** What Envoy uses when a rule names no location: `Authorization: Bearer …` and `?access_token=…`. */
export const DEFAULT_LOCATIONS: TokenLocations = Object.freeze({
  headers: Object.freeze([Object.freeze({ name: 'authorization', prefix: 'Bearer ' })]),
  params: Object.freeze(['access_token']),
  cookies: Object.freeze([]) as readonly string[],
});

const JWT_CHAR = new Uint8Array(128);
for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.') JWT_CHAR[ch.charCodeAt(0)] = 1;

/**
 * The request as the extractor reads it. Query and cookies are parsed at
 * most once per request, and only when some rule looks there.
 */
export class RequestTokens {
  readonly request: HttpRequest;
  #query: Map<string, string> | undefined;
  #cookies: Map<string, string> | undefined;

  constructor(request: HttpRequest) {
    this.request = request;
  }

  header(name: string): string | undefined {
    const headers = this.request.headers;
    return Object.hasOwn(headers, name) ? headers[name] : undefined;
  }

  param(name: string): string | undefined {
    this.#query ??= parseQuery(this.request.path);
    return this.#query.get(name);
  }

  cookie(name: string): string | undefined {
    this.#cookies ??= parseCookies(this.header('cookie'));
    return this.#cookies.get(name);
  }

  /** Every token at `locations`, in Envoy's extraction order. */
  extract(locations: TokenLocations): ExtractedToken[] {
    const found: ExtractedToken[] = [];
    for (const { name, prefix } of locations.headers) {
      const value = this.header(name);
      if (value === undefined) continue;
      let token = value;
      if (prefix !== '') {
        // Envoy finds the prefix anywhere in the value, then skips to the
        // first character a JWT can contain; failing that it keeps the value.
        const at = value.indexOf(prefix);
        if (at < 0) continue;
        token = tokenAfter(value, at + prefix.length);
      }
      found.push({ token, source: { kind: 'header', name } });
    }
    for (const name of locations.params) {
      const token = this.param(name);
      if (token !== undefined) found.push({ token, source: { kind: 'param', name } });
    }
    for (const name of locations.cookies) {
      const token = this.cookie(name);
      if (token !== undefined) found.push({ token, source: { kind: 'cookie', name } });
    }
    return found;
  }
}

function tokenAfter(value: string, from: number): string {
  for (let i = from; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 128 && JWT_CHAR[c] === 1) return value.slice(i);
  }
  return value;
}

/**
 * Envoy's parseAndDecodeQueryString: split on `&`, name and value
 * percent-decoded (`+` stays `+`), a pair without `=` has an empty value,
 * and the first occurrence of a name wins.
 */
export function parseQuery(target: string): Map<string, string> {
  const params = new Map<string, string>();
  const hash = target.indexOf('#');
  const q = target.indexOf('?');
  if (q < 0 || (hash >= 0 && hash < q)) return params;
  const end = hash >= 0 ? hash : target.length;
  let start = q + 1;
  while (start < end) {
    let amp = target.indexOf('&', start);
    if (amp < 0 || amp > end) amp = end;
    const eq = target.indexOf('=', start);
    let name: string;
    let value: string;
    if (eq >= 0 && eq < amp) {
      name = percentDecode(target.slice(start, eq));
      value = percentDecode(target.slice(eq + 1, amp));
    } else {
      name = percentDecode(target.slice(start, amp));
      value = '';
    }
    if (!params.has(name)) params.set(name, value);
    start = amp + 1;
  }
  return params;
}

const LENIENT_UTF8 = new TextDecoder();

/** Decodes valid `%XX` escapes and leaves anything else as it is. */
export function percentDecode(s: string): string {
  if (!s.includes('%')) return s;
  let result = '';
  let i = 0;
  while (i < s.length) {
    if (s.charCodeAt(i) !== 0x25) {
      const next = s.indexOf('%', i);
      const stop = next < 0 ? s.length : next;
      result += s.slice(i, stop);
      i = stop;
      continue;
    }
    const bytes: number[] = [];
    while (i + 2 < s.length && s.charCodeAt(i) === 0x25) {
      const hi = hexValue(s.charCodeAt(i + 1));
      const lo = hi >= 0 ? hexValue(s.charCodeAt(i + 2)) : -1;
      if (lo < 0) break;
      bytes.push((hi << 4) | lo);
      i += 3;
    }
    if (bytes.length > 0) {
      result += LENIENT_UTF8.decode(new Uint8Array(bytes));
    } else {
      result += '%';
      i++;
    }
  }
  return result;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/**
 * Envoy's cookie parsing: `;`-separated, leading spaces dropped from the
 * name, a pair without `=` ignored, surrounding double quotes stripped from
 * the value, first occurrence wins.
 */
export function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  if (header === undefined) return cookies;
  for (const part of header.split(';')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    let start = 0;
    while (start < part.length && part.charCodeAt(start) === 0x20) start++;
    const name = part.slice(Math.min(start, eq), eq);
    let value = part.slice(eq + 1);
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (!cookies.has(name)) cookies.set(name, value);
  }
  return cookies;
}
