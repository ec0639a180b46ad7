// The path an AuthorizationPolicy's `paths` are matched against, computed
// from the raw request target the way Envoy does it under the HTTP connection
// manager settings Istio derives from meshConfig.pathNormalization:
//
//   NONE                      normalize_path: false
//   BASE (Istio's default)    normalize_path: true  (RFC 3986 via Chromium's URL canonicalizer)
//   MERGE_SLASHES             BASE, then merge_slashes
//   DECODE_AND_MERGE_SLASHES  path_with_escaped_slashes_action UNESCAPE_AND_FORWARD, then BASE,
//                             then merge_slashes
//
// Envoy's order inside the connection manager is: drop the fragment, unescape
// %2F/%5C, canonicalize, merge slashes. The RBAC filter's url_path matcher
// then looks at the path without the query. Every difference from Envoy here
// would be a way to reach a path a policy meant to deny (CVE-2021-31920,
// CVE-2021-39156, CVE-2020-8595), so the behaviour follows Chromium's
// url_canon_path.cc character by character, including what it leaves alone:
// escapes it does not decode keep their original hex case, and `%2F`/`%5C`
// stay encoded unless the mode decodes them.

import type { PathNormalization } from '../api/mesh-config.ts';

export type NormalizedPath =
  | { readonly ok: true; readonly path: string }
  | { readonly ok: false; readonly reason: string };

const SLASH = 0x2f;
const BACKSLASH = 0x5c;
const DOT = 0x2e;
const PERCENT = 0x25;
const QUESTION = 0x3f;
const HASH = 0x23;

// Chromium's path character table, reduced to what matters for a path that
// has already passed the HTTP codec (no raw controls or spaces reach it).
/** Copied as is; also decoded when it arrives percent-encoded (RFC 3986 unreserved). */
const UNRESERVED = 1;
/** Percent-encoded when it appears raw. */
const ESCAPE = 2;
/** Needs a closer look: `.`, `%`, `\`. */
const SPECIAL = 4;

const CLASS = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  if (c < 0x21 || c >= 0x7f) CLASS[c] = ESCAPE;
  else if ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) CLASS[c] = UNRESERVED;
}
for (const ch of '-_~') CLASS[ch.charCodeAt(0)] = UNRESERVED;
for (const ch of '"#<>?^`{|}') CLASS[ch.charCodeAt(0)] = ESCAPE;
for (const ch of '.%\\') CLASS[ch.charCodeAt(0)] = SPECIAL;

const HEX_UPPER = '0123456789ABCDEF';

/** Envoy's unescape of escaped slashes is a plain replace of exactly these four spellings. */
const ESCAPED_SLASH = /%(?:2f|5c)/gi;

function rejected(reason: string): NormalizedPath {
  return Object.freeze({ ok: false, reason });
}

const NOT_A_STRING = rejected('request target is not a string');
const NOT_ORIGIN_FORM = rejected('request target does not start with "/"');
const CONTROL_CHARACTER = rejected('request target contains a control character, space or DEL');
const LONE_SURROGATE = rejected('request target is not valid UTF-8 (lone surrogate)');
const ESCAPED_NUL = rejected('path contains an escaped NUL (%00)');
const TOO_LARGE = rejected('request target is too large to normalize');

/**
 * Normalize `rawTarget` (path, query and fragment as sent) into the path that
 * authorization matches. Never throws: anything Envoy would answer with 400
 * comes back as `{ ok: false }`.
 *
 * @example normalizePath('/public/%2e%2e/admin?x=1', 'BASE') // { ok: true, path: '/admin' }
 */
export function normalizePath(rawTarget: string, mode: PathNormalization): NormalizedPath {
  try {
    return normalize(rawTarget, mode);
  } catch {
    // Only reachable when the output would exceed what a string can hold.
    out = new Uint8Array(1024);
    n = 0;
    return TOO_LARGE;
  }
}

function normalize(raw: string, mode: PathNormalization): NormalizedPath {
  if (typeof raw !== 'string') return NOT_A_STRING;
  const len = raw.length;
  if (len === 0 || raw.charCodeAt(0) !== SLASH) return NOT_ORIGIN_FORM;

  const normalizing = mode !== 'NONE';
  const merge = mode === 'MERGE_SLASHES' || mode === 'DECODE_AND_MERGE_SLASHES';

  // One pass over the whole target: the codec rejects controls and broken
  // UTF-8 anywhere in it, while only the path (before `?` or `#`) decides
  // whether the canonicalizer has anything to do.
  let end = len;
  let untouched = true;
  let prev = 0;
  for (let i = 0; i < len; i++) {
    const c = raw.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return CONTROL_CHARACTER;
    if (c >= 0xd800 && c <= 0xdfff) {
      if (c >= 0xdc00 || i + 1 >= len) return LONE_SURROGATE;
      const low = raw.charCodeAt(i + 1);
      if (low < 0xdc00 || low > 0xdfff) return LONE_SURROGATE;
      i++;
      if (i <= end) untouched = false;
      prev = low;
      continue;
    }
    if (i >= end) continue;
    if (c === QUESTION || c === HASH) {
      end = i;
      continue;
    }
    if (untouched) {
      if (c >= 0x80) untouched = false;
      else if (c === DOT) untouched = prev !== SLASH;
      else if (c === SLASH) untouched = !(merge && prev === SLASH);
      else untouched = (CLASS[c]! & (ESCAPE | SPECIAL)) === 0;
    }
    prev = c;
  }

  if (!normalizing || untouched) {
    return { ok: true, path: end === len ? raw : raw.slice(0, end) };
  }

  let path = end === len ? raw : raw.slice(0, end);
  if (mode === 'DECODE_AND_MERGE_SLASHES' && path.includes('%')) {
    path = path.replace(ESCAPED_SLASH, (m) => (m.charCodeAt(1) === 0x32 ? '/' : '\\'));
  }
  if (!canonicalize(path)) return ESCAPED_NUL;
  if (merge) mergeSlashes();
  return { ok: true, path: takeOutput() };
}

// ---------------------------------------------------------------- output buffer
// The canonical path is pure ASCII (everything else is percent-encoded), so a
// byte buffer reused across calls avoids building strings piece by piece and
// lets `..` rewind in place. Calls never interleave: nothing here awaits.

let out = new Uint8Array(1024);
let n = 0;
const ASCII = new TextDecoder();

function reserve(extra: number): void {
  if (n + extra <= out.length) return;
  let size = out.length * 2;
  while (size < n + extra) size *= 2;
  const next = new Uint8Array(size);
  next.set(out.subarray(0, n));
  out = next;
}

function push(c: number): void {
  if (n === out.length) reserve(1);
  out[n++] = c;
}

function pushEscaped(byte: number): void {
  reserve(3);
  out[n++] = PERCENT;
  out[n++] = HEX_UPPER.charCodeAt(byte >> 4);
  out[n++] = HEX_UPPER.charCodeAt(byte & 15);
}

function takeOutput(): string {
  const s = ASCII.decode(out.subarray(0, n));
  if (out.length > 65536) out = new Uint8Array(1024);
  n = 0;
  return s;
}

// ---------------------------------------------------------------- canonicalizer

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/** `.` or `%2e`/`%2E` at i: its length, else 0. Escaped dots count as dots for dot-segments. */
function dotLength(s: string, i: number, end: number): number {
  const c = s.charCodeAt(i);
  if (c === DOT) return 1;
  if (c === PERCENT && i + 2 < end && s.charCodeAt(i + 1) === 0x32) {
    const e = s.charCodeAt(i + 2);
    if (e === 0x65 || e === 0x45) return 3;
  }
  return 0;
}

function isSlash(c: number): boolean {
  return c === SLASH || c === BACKSLASH;
}

/** `..`: drop the last segment of the output, never the leading slash. */
function backUpToPreviousSlash(): void {
  let j = n - 1;
  if (j <= 0) return;
  do {
    j--;
  } while (out[j] !== SLASH && j > 0);
  n = j + 1;
}

/**
 * Writes the canonical form of `s` (a path starting with `/`) to the output
 * buffer. False only for an escaped NUL, which Envoy answers with 400.
 */
function canonicalize(s: string): boolean {
  n = 0;
  const end = s.length;
  // Index in the output of a `%` that did not start a valid escape; an escape
  // decoded right after it could complete a new one (`%%32e` → `%2e`).
  let lastInvalidPercent = -1;

  for (let i = 0; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) {
      i = pushUtf8Escaped(s, i);
      continue;
    }
    const cls = CLASS[c]!;
    if ((cls & SPECIAL) === 0) {
      if (cls & ESCAPE) pushEscaped(c);
      else push(c);
      continue;
    }

    const dot = dotLength(s, i, end);
    if (dot > 0) {
      if (n > 0 && out[n - 1] === SLASH) {
        const after = i + dot;
        if (after === end) {
          i = after - 1; // "/." at the end: current directory
          continue;
        }
        if (isSlash(s.charCodeAt(after))) {
          i = after; // "/./": skip the dot and its slash
          continue;
        }
        const second = dotLength(s, after, end);
        if (second > 0) {
          const afterSecond = after + second;
          if (afterSecond === end || isSlash(s.charCodeAt(afterSecond))) {
            backUpToPreviousSlash();
            if (lastInvalidPercent >= n) lastInvalidPercent = -1;
            i = afterSecond === end ? afterSecond - 1 : afterSecond;
            continue;
          }
        }
      }
      // A dot inside a segment name; an escaped one is written as a plain dot.
      push(DOT);
      i += dot - 1;
      continue;
    }

    if (c === BACKSLASH) {
      push(SLASH);
      continue;
    }

    // c === '%'
    const hi = i + 2 < end ? hexValue(s.charCodeAt(i + 1)) : -1;
    const lo = hi >= 0 ? hexValue(s.charCodeAt(i + 2)) : -1;
    if (lo < 0) {
      lastInvalidPercent = n;
      push(PERCENT);
      continue;
    }
    const value = (hi << 4) | lo;
    if (value === 0) return false;
    if (CLASS[value]! & UNRESERVED) {
      push(value);
      i += 2;
      if (lastInvalidPercent >= 0 && lastInvalidPercent + 3 >= n) {
        escapeNestedPercent(s, i + 1, end, lastInvalidPercent);
      }
    } else {
      // Kept exactly as sent, hex case included.
      reserve(3);
      out[n++] = PERCENT;
      out[n++] = s.charCodeAt(i + 1);
      out[n++] = s.charCodeAt(i + 2);
      i += 2;
    }
  }
  return true;
}

/**
 * After decoding an escape within two characters of an earlier stray `%`,
 * the output may now read as a valid escape that a second canonicalization
 * would decode. Chromium turns that `%` into `%25` so the result is stable.
 */
function escapeNestedPercent(s: string, next: number, end: number, percentAt: number): void {
  const length = n;
  const lastUnescaped = out[length - 1]!;
  const appendNext = percentAt === length - 2;
  if (appendNext) {
    if (next === end) return;
    const c = s.charCodeAt(next);
    if (c >= 0x80) return;
    push(c);
  }
  if (percentAt + 2 < n && hexValue(out[percentAt + 1]!) >= 0 && hexValue(out[percentAt + 2]!) >= 0) {
    if (!appendNext) push(out[percentAt + 1]!);
    out[percentAt + 1] = 0x32; // '2'
    out[percentAt + 2] = 0x35; // '5'
    push(lastUnescaped);
  } else if (appendNext) {
    n = length;
  }
}

/** Percent-encodes the code point at i as UTF-8 bytes; returns the last index consumed. */
function pushUtf8Escaped(s: string, i: number): number {
  let cp = s.charCodeAt(i);
  let last = i;
  if (cp >= 0xd800 && cp <= 0xdbff) {
    // Pairing was validated before canonicalization.
    cp = 0x10000 + ((cp - 0xd800) << 10) + (s.charCodeAt(i + 1) - 0xdc00);
    last = i + 1;
  }
  if (cp < 0x800) {
    pushEscaped(0xc0 | (cp >> 6));
    pushEscaped(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    pushEscaped(0xe0 | (cp >> 12));
    pushEscaped(0x80 | ((cp >> 6) & 0x3f));
    pushEscaped(0x80 | (cp & 0x3f));
  } else {
    pushEscaped(0xf0 | (cp >> 18));
    pushEscaped(0x80 | ((cp >> 12) & 0x3f));
    pushEscaped(0x80 | ((cp >> 6) & 0x3f));
    pushEscaped(0x80 | (cp & 0x3f));
  }
  return last;
}

/**
 * Envoy's merge_slashes splits on `/`, drops empty segments and rejoins,
 * keeping one leading and one trailing slash. A path made only of slashes
 * therefore becomes `//`, not `/`.
 */
function mergeSlashes(): void {
  let w = 0;
  let merged = false;
  for (let r = 0; r < n; r++) {
    const c = out[r]!;
    if (c === SLASH && w > 0 && out[w - 1] === SLASH) {
      merged = true;
      continue;
    }
    out[w++] = c;
  }
  if (merged && w === 1) out[w++] = SLASH;
  n = w;
}
