// HTTP/1.1 message heads, parsed strictly from a buffer, for the proxy's
// fast lane (./README in docs/inbound.md, "The HTTP/1.1 fast lane"). The
// lane serves only the messages it can frame without doubt; anything else
// is not parsed here but handed to node's own HTTP/1.1 server, which
// answers or refuses it with its full rules. So a request head is taken
// only when it is complete, in origin form, HTTP/1.1, framed by nothing or
// by one Content-Length, with exactly one Host, every line ending in CRLF,
// and no obs-fold, Transfer-Encoding, Upgrade, Expect or connection option
// but keep-alive and close. Ambiguity is never resolved here: it goes to
// the parser that has every rule (request smuggling lives in the gaps
// between two parsers' readings of one message).
//
//   const head = parseRequestHead(buf, 0, 16_384, 100);
//   if (typeof head === 'string') … // 'incomplete' or 'unsupported'

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
/** The end of a message head. */
export const CRLFCRLF = Buffer.from('\r\n\r\n');

// RFC 9110 §5.6.2 tchar, as a lookup table built once.
const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

// Field-value bytes (RFC 9110 §5.5): VCHAR, obs-text, SP, HTAB. No CTL, no DEL.
const VALUE = new Uint8Array(256);
for (let c = 0x20; c <= 0x7e; c++) VALUE[c] = 1;
for (let c = 0x80; c <= 0xff; c++) VALUE[c] = 1;
VALUE[HTAB] = 1;

// Request-target bytes: visible ASCII only (no SP, no CTL, no obs-text).
const TARGET = new Uint8Array(256);
for (let c = 0x21; c <= 0x7e; c++) TARGET[c] = 1;

export type HeadResult = 'incomplete' | 'unsupported';

export interface RequestHead {
  readonly method: string;
  /** The origin-form target as sent (path and query). */
  readonly target: string;
  /** Lower-case names and their values, in order, without Host (hop-by-hop ones included: see `hopByHop`). */
  readonly names: string[];
  readonly values: string[];
  readonly host: string;
  /** The first User-Agent, as node keeps it. */
  readonly userAgent: string | undefined;
  /** The body's length: 0 when the request has none. */
  readonly contentLength: number;
  /** The caller asked to close the connection after this exchange. */
  readonly close: boolean;
  /** Offset just past the head's empty line. */
  readonly end: number;
  /** Header fields the caller sent (for the header-count limit), hop-by-hop ones included. */
  readonly count: number;
}

export interface ResponseHead {
  readonly status: number;
  /** Body framing, from RFC 9112 §6.3 (the request's method is applied by the caller). */
  readonly framing: 'length' | 'chunked' | 'close';
  readonly contentLength: number;
  /** The server will close after this response (HTTP/1.0 without keep-alive, or Connection: close); a `close` framing closes as well. */
  readonly close: boolean;
  /** The idle timeout the server announced in Keep-Alive, or -1. */
  readonly keepAliveMs: number;
  readonly end: number;
  /**
   * The bytes `writeResponseHead` writes: the status line and the
   * end-to-end headers as HTTP/1.1, without the final empty line.
   */
  readonly size: number;
  /**
   * The buffer the head was read from, and in it the spans it is
   * re-serialized from: the status line after the version, then four per
   * field (name start, colon, value start, value end), a field dropped
   * marked by a negative start.
   */
  readonly source: Buffer;
  readonly spans: readonly number[];
}

/** Whether `name` (lower case) is a hop-by-hop header this proxy never forwards (RFC 9110 §7.6.1). */
export function hopByHop(name: string): boolean {
  switch (name) {
    case 'connection':
    case 'keep-alive':
    case 'proxy-connection':
    case 'proxy-authenticate':
    case 'proxy-authorization':
    case 'te':
    case 'upgrade':
    case 'http2-settings':
      return true;
    default:
      return false;
  }
}

/** Whether a string can be sent as a header value (no CR, LF, NUL or other controls). */
export function isHeaderValue(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f || c > 0xff) return false;
  }
  return true;
}

/** Connection options this lane understands; anything else names headers it would have to drop, and goes to the full parser. */
function connectionOption(value: string): 'close' | 'keep-alive' | 'other' {
  let close = false;
  let start = 0;
  for (let i = 0; i <= value.length; i++) {
    if (i < value.length && value.charCodeAt(i) !== 0x2c /* , */) continue;
    const token = value.slice(start, i).trim().toLowerCase();
    start = i + 1;
    if (token === 'close') close = true;
    else if (token !== 'keep-alive' && token !== '') return 'other';
  }
  return close ? 'close' : 'keep-alive';
}

/**
 * The index of the CR that ends the line at `start`, requiring CRLF, with
 * its LF at or before `limit`; -1 for a bare LF or CR. Scanned here rather
 * than with Buffer#indexOf: a line is tens of bytes, and a call into the
 * native side costs more than reading them.
 */
function lineEnd(buf: Buffer, start: number, limit: number): number {
  for (let i = start; i <= limit; i++) {
    const c = buf[i];
    if (c === LF) return i > start && buf[i - 1] === CR ? i - 1 : -1;
    if (c === undefined) return -1;
  }
  return -1;
}

/** How far findHeadEnd scans in JavaScript before it asks Buffer#indexOf. */
const HEAD_SCAN_IN_JS = 512;

/**
 * The offset of the first CRLFCRLF at or after `start`, or -1: where a
 * message head ends. Most heads are a few hundred bytes, and reading them
 * here costs less than the call into the native side Buffer#indexOf makes;
 * past the first 512 bytes the native search takes over.
 */
export function findHeadEnd(buf: Buffer, start: number): number {
  const stop = Math.min(buf.length, start + HEAD_SCAN_IN_JS);
  for (let i = start + 3; i < stop; i++) {
    if (buf[i] === LF && buf[i - 1] === CR && buf[i - 2] === LF && buf[i - 3] === CR) return i - 3;
  }
  // A match may start in the last three bytes scanned.
  return stop === buf.length ? -1 : buf.indexOf(CRLFCRLF, Math.max(start, stop - 3));
}

/** The field line `fieldSpan` read last, as offsets (one parse at a time: no object per field). */
const span = { name: 0, colon: 0, valueStart: 0, valueEnd: 0 };

/**
 * Reads the field line at `at` (before `limit`, the end of the head's last
 * line) into `span`: where its name ends (the colon) and where its value
 * starts and ends without surrounding whitespace. Returns the next line's
 * offset, or -1 on anything outside the strict grammar.
 */
function fieldSpan(buf: Buffer, at: number, limit: number): number {
  // obs-fold, and whitespace before the colon, are what smuggling is made of.
  let colon = at;
  for (; colon < limit; colon++) {
    const c = buf[colon]!;
    if (c === COLON) break;
    if (TCHAR[c] === 0) return -1;
  }
  if (colon === at || colon >= limit) return -1;
  // The value's bytes, in one pass up to the line's end: only a CRLF ends it.
  let eol = colon + 1;
  while (eol < limit && VALUE[buf[eol]!] === 1) eol++;
  if (buf[eol] !== CR || buf[eol + 1] !== LF || eol + 1 > limit) return -1;
  let vs = colon + 1;
  let ve = eol;
  while (vs < ve && (buf[vs] === SP || buf[vs] === HTAB)) vs++;
  while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HTAB)) ve--;
  span.name = at;
  span.colon = colon;
  span.valueStart = vs;
  span.valueEnd = ve;
  return eol + 2;
}

/** The field line `fieldAt` read last, as strings. */
const field = { name: '', value: '' };

/** fieldSpan, the name (lower-cased) and value read into `field` as strings. */
function fieldAt(buf: Buffer, at: number, limit: number): number {
  const next = fieldSpan(buf, at, limit);
  if (next < 0) return -1;
  field.name = buf.toString('latin1', span.name, span.colon).toLowerCase();
  field.value = buf.toString('latin1', span.valueStart, span.valueEnd);
  return next;
}

/**
 * Whether the field name at buf[start, end) is `lower` (lower case) in any
 * case. After fieldSpan every name byte is a tchar, and OR-ing 0x20 turns a
 * tchar into a letter, digit or '-' only if it was that letter (in either
 * case), digit or '-'.
 */
function nameIs(buf: Buffer, start: number, end: number, lower: string): boolean {
  if (end - start !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) if ((buf[start + i]! | 0x20) !== lower.charCodeAt(i)) return false;
  return true;
}

const OTHER = 0;
const CONTENT_LENGTH = 1;
const TRANSFER_ENCODING = 2;
const KEEP_ALIVE = 3;
const CONNECTION = 4;
const HOP_BY_HOP = 5;

/** What a response field is to this proxy, read from its bytes: no string is made for the common ones. */
function responseFieldKind(buf: Buffer, start: number, end: number): number {
  switch (end - start) {
    case 2:
      return nameIs(buf, start, end, 'te') ? HOP_BY_HOP : OTHER;
    case 7:
      return nameIs(buf, start, end, 'upgrade') ? HOP_BY_HOP : OTHER;
    case 10:
      return nameIs(buf, start, end, 'connection') ? CONNECTION : nameIs(buf, start, end, 'keep-alive') ? KEEP_ALIVE : OTHER;
    case 14:
      return nameIs(buf, start, end, 'content-length') ? CONTENT_LENGTH : nameIs(buf, start, end, 'http2-settings') ? HOP_BY_HOP : OTHER;
    case 16:
      return nameIs(buf, start, end, 'proxy-connection') ? HOP_BY_HOP : OTHER;
    case 17:
      return nameIs(buf, start, end, 'transfer-encoding') ? TRANSFER_ENCODING : OTHER;
    case 18:
      return nameIs(buf, start, end, 'proxy-authenticate') ? HOP_BY_HOP : OTHER;
    case 19:
      return nameIs(buf, start, end, 'proxy-authorization') ? HOP_BY_HOP : OTHER;
    default:
      return OTHER;
  }
}

/**
 * The seconds of a Keep-Alive value that is exactly `timeout=N` (any case,
 * N of at most 9 digits), as most servers send it; -1 for any other value,
 * which the caller reads as a string.
 */
function plainTimeout(buf: Buffer, start: number, end: number): number {
  if (end - start < 9 || end - start > 17 || !nameIs(buf, start, start + 8, 'timeout=')) return -1;
  return decimalAt(buf, start + 8, end);
}

/** A decimal Content-Length of at most 15 digits at buf[start, end), or -1. */
function decimalAt(buf: Buffer, start: number, end: number): number {
  if (end === start || end - start > 15) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/**
 * The request head at `start` of `buf`, or 'incomplete' (no empty line yet,
 * and under `maxBytes`), or 'unsupported' (for node's full parser: over a
 * limit, outside the strict subset, or malformed).
 */
export function parseRequestHead(buf: Buffer, start: number, maxBytes: number, maxCount: number): RequestHead | HeadResult {
  const headEnd = findHeadEnd(buf, start);
  if (headEnd < 0) return buf.length - start > maxBytes ? 'unsupported' : 'incomplete';
  if (headEnd - start > maxBytes) return 'unsupported';
  // Request line: method SP origin-form SP HTTP/1.1 CRLF.
  const lineStop = lineEnd(buf, start, headEnd + 2);
  if (lineStop < 0) return 'unsupported';
  let i = start;
  while (i < lineStop && TCHAR[buf[i]!] === 1) i++;
  if (i === start || buf[i] !== SP) return 'unsupported';
  const method = i - start === 3 && buf[start] === 0x47 && buf[start + 1] === 0x45 && buf[start + 2] === 0x54 ? 'GET' : buf.toString('latin1', start, i);
  if (method === 'CONNECT') return 'unsupported';
  const targetStart = i + 1;
  if (buf[targetStart] !== 0x2f /* / */) return 'unsupported';
  let j = targetStart;
  while (j < lineStop && TARGET[buf[j]!] === 1) j++;
  if (buf[j] !== SP || lineStop - j - 1 !== 8 || !bytesAt(buf, j + 1, HTTP_11)) return 'unsupported';
  const target = buf.toString('latin1', targetStart, j);

  const names: string[] = [];
  const values: string[] = [];
  let host: string | undefined;
  let hosts = 0;
  let userAgent: string | undefined;
  let contentLength = -1;
  let close = false;
  let count = 0;
  for (let at = lineStop + 2; at < headEnd + 2; ) {
    at = fieldAt(buf, at, headEnd + 2);
    if (at < 0) return 'unsupported';
    const name = field.name;
    const value = field.value;
    count++;
    switch (name) {
      case 'host':
        hosts++;
        host = value;
        continue;
      case 'content-length': {
        const n = decimalAt(buf, span.valueStart, span.valueEnd);
        if (n < 0 || contentLength >= 0) return 'unsupported';
        contentLength = n;
        break;
      }
      case 'transfer-encoding':
      case 'upgrade':
      case 'expect':
      case 'http2-settings':
        return 'unsupported';
      case 'connection': {
        const option = connectionOption(value);
        if (option === 'other') return 'unsupported';
        if (option === 'close') close = true;
        break;
      }
      case 'user-agent':
        // The first, as node's parser keeps it on the full path.
        if (userAgent === undefined) userAgent = value;
        break;
    }
    names.push(name);
    values.push(value);
  }
  if (hosts !== 1 || count > maxCount) return 'unsupported';
  return { method, target, names, values, host: host!, userAgent, contentLength: contentLength < 0 ? 0 : contentLength, close, end: headEnd + 4, count };
}

/**
 * The response head at `start` of `buf`. Returns 'incomplete' until the
 * empty line arrives (and `maxBytes` is not passed), and 'unsupported' for a
 * response this proxy will not relay (the caller answers 503). Interim 1xx
 * responses are not handled here: the caller skips them. The head is read
 * from its bytes, and written again from them (writeResponseHead): only
 * the values this proxy acts on become strings.
 */
export function parseResponseHead(buf: Buffer, start: number, maxBytes: number): ResponseHead | HeadResult {
  const headEnd = findHeadEnd(buf, start);
  if (headEnd < 0) return buf.length - start > maxBytes ? 'unsupported' : 'incomplete';
  if (headEnd - start > maxBytes) return 'unsupported';
  const lineStop = lineEnd(buf, start, headEnd + 2);
  // "HTTP/1.x NNN" at least.
  if (lineStop < 0 || lineStop - start < 12) return 'unsupported';
  if (!bytesAt(buf, start, HTTP_1)) return 'unsupported';
  const minor = buf[start + 7];
  const http10 = minor === 0x30;
  if ((!http10 && minor !== 0x31) || buf[start + 8] !== SP) return 'unsupported';
  let status = 0;
  for (let k = start + 9; k < start + 12; k++) {
    const d = buf[k]! - 0x30;
    if (d < 0 || d > 9) return 'unsupported';
    status = status * 10 + d;
  }
  if (status < 100 || (lineStop > start + 12 && buf[start + 12] !== SP)) return 'unsupported';
  for (let k = start + 12; k < lineStop; k++) if (VALUE[buf[k]!] === 0) return 'unsupported';

  let contentLength = -1;
  let contentLengthAt = -1;
  let chunked = false;
  let otherCoding = false;
  let close = http10;
  let named: string[] | null = null;
  let keepAliveMs = -1;
  // The rest of the status line, then per field kept: name start, colon, value start, value end (-1 first: dropped after all).
  const spans: number[] = [start + 9, lineStop];
  for (let at = lineStop + 2; at < headEnd + 2; ) {
    at = fieldSpan(buf, at, headEnd + 2);
    if (at < 0) return 'unsupported';
    const { name, colon, valueStart, valueEnd } = span;
    switch (responseFieldKind(buf, name, colon)) {
      case CONTENT_LENGTH: {
        const n = decimalAt(buf, valueStart, valueEnd);
        // Repeated identical values are allowed (RFC 9110 §8.6); different ones are not.
        if (n < 0 || (contentLength >= 0 && n !== contentLength)) return 'unsupported';
        if (contentLength >= 0) continue;
        contentLength = n;
        contentLengthAt = spans.length;
        break;
      }
      case TRANSFER_ENCODING: {
        // Passed on as sent: the body's framing crosses this proxy unchanged.
        const value = buf.toString('latin1', valueStart, valueEnd);
        const last = value.slice(value.lastIndexOf(',') + 1).trim().toLowerCase();
        if (last === 'chunked' && !chunked) chunked = true;
        else otherCoding = true;
        break;
      }
      case KEEP_ALIVE: {
        // The server's idle timeout for this connection: the pool stops reusing it before then.
        const seconds = plainTimeout(buf, valueStart, valueEnd);
        if (seconds >= 0) {
          keepAliveMs = seconds * 1000;
          continue;
        }
        const value = buf.toString('latin1', valueStart, valueEnd);
        const t = value.toLowerCase().indexOf('timeout=');
        if (t >= 0) {
          const seconds = Number.parseInt(value.slice(t + 8), 10);
          if (seconds >= 0) keepAliveMs = seconds * 1000;
        }
        continue;
      }
      case CONNECTION: {
        // The one option nearly every server sends, read without a string.
        if (nameIs(buf, valueStart, valueEnd, 'keep-alive')) {
          if (http10) close = false;
          continue;
        }
        for (const token of buf.toString('latin1', valueStart, valueEnd).split(',')) {
          const t = token.trim().toLowerCase();
          if (t === 'close') close = true;
          else if (t === 'keep-alive') {
            if (http10) close = false;
          } else if (t !== '') (named ??= []).push(t);
        }
        continue;
      }
      case HOP_BY_HOP:
        continue;
    }
    spans.push(name, colon, valueStart, valueEnd);
  }
  // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3); a coding
  // other than one final chunked is read until the server closes.
  const framing = chunked && !otherCoding ? 'chunked' : chunked || otherCoding ? 'close' : contentLength >= 0 ? 'length' : 'close';
  // Re-serialized as HTTP/1.1 towards the caller, with the reason as sent,
  // without the headers the upstream's Connection named.
  if (contentLengthAt >= 0 && framing !== 'length') spans[contentLengthAt] = -1;
  // "HTTP/1.1 " and the rest of the status line; per field, CRLF, name, ": " and value.
  let size = 9 + lineStop - (start + 9);
  for (let k = 2; k < spans.length; k += 4) {
    if (spans[k]! < 0) continue;
    if (named !== null && named.includes(buf.toString('latin1', spans[k], spans[k + 1]).toLowerCase())) {
      spans[k] = -1;
      continue;
    }
    size += 4 + (spans[k + 1]! - spans[k]!) + (spans[k + 3]! - spans[k + 2]!);
  }
  return { status, framing, contentLength: framing === 'length' ? contentLength : -1, close, keepAliveMs, end: headEnd + 4, size, source: buf, spans };
}

const HTTP_1 = Buffer.from('HTTP/1.');
const HTTP_11 = Buffer.from('HTTP/1.1');
const HTTP_11_SP = Buffer.from('HTTP/1.1 ');

/** Whether `bytes` are at `at` in `buf`, exactly. */
function bytesAt(buf: Buffer, at: number, bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) if (buf[at + i] !== bytes[i]) return false;
  return true;
}

/**
 * Writes `h` re-serialized into `out` at `at` (h.size bytes): "HTTP/1.1",
 * the status code and reason as sent, and each end-to-end field as
 * `name: value` with the name in lower case (as Envoy writes HTTP/1.1
 * headers), the value without surrounding whitespace, lines ending in CRLF
 * but the last. Returns the offset after it.
 */
export function writeResponseHead(h: ResponseHead, out: Buffer, at: number): number {
  const src = h.source;
  const spans = h.spans;
  let o = at + HTTP_11_SP.copy(out, at);
  o += src.copy(out, o, spans[0], spans[1]);
  for (let k = 2; k < spans.length; k += 4) {
    if (spans[k]! < 0) continue;
    out[o++] = CR;
    out[o++] = LF;
    for (let i = spans[k]!, end = spans[k + 1]!; i < end; i++) {
      const c = src[i]!;
      out[o++] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
    }
    out[o++] = COLON;
    out[o++] = SP;
    o += src.copy(out, o, spans[k + 2], spans[k + 3]);
  }
  return o;
}

/** The re-serialized head as text (for tests and messages; the proxy writes bytes). */
export function responseHeadText(h: ResponseHead): string {
  const out = Buffer.allocUnsafe(h.size);
  writeResponseHead(h, out, 0);
  return out.toString('latin1');
}
