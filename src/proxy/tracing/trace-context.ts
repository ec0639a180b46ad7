// Trace context on the wire: W3C `traceparent` (https://www.w3.org/TR/trace-context/)
// and Zipkin B3 (multi-header `x-b3-*` and single `b3`,
// https://github.com/openzipkin/b3-propagation). Parsed by fixed offsets and
// character codes, so a request pays no regex and no allocation beyond the
// id strings. Anything malformed (wrong length, upper-case hex, all-zero ids,
// version ff) is not continued: the proxy starts a new trace rather than
// pass garbage on.
//
//   const incoming = extract(req.headers);          // null: start a new trace
//   const out = formatTraceparent(traceId, spanId, sampled);

import { randomFillSync } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/** Where a continued trace came from. */
export type PropagationFormat = 'w3c' | 'b3' | 'b3-single';

export interface IncomingContext {
  /** 32 lower-case hex digits, not all zero (a 64-bit B3 id is padded on the left). */
  readonly traceId: string;
  /** The caller's span: 16 lower-case hex digits, not all zero; null when only a sampling decision came. */
  readonly parentId: string | null;
  /** The caller's sampling decision; undefined when it deferred it (B3 without `sampled`). */
  readonly sampled: boolean | undefined;
  readonly format: PropagationFormat;
  /** The B3 trace id had 16 digits (padded here). */
  readonly shortB3TraceId?: boolean;
}

/** Code of '0'..'9' and 'a'..'f' only: W3C and B3 both say lower case. */
function isLowerHex(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

function isZeros(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (s.charCodeAt(i) !== 48) return false;
  return true;
}

function hexValue(c: number): number {
  return c <= 57 ? c - 48 : c - 87;
}

const DASH = 45;

/**
 * `{version}-{trace-id}-{parent-id}-{flags}`: version 00 is exactly 55
 * characters; a later version (not ff) may append `-…` fields, which are
 * ignored, as the specification asks of a version 00 parser.
 */
export function parseTraceparent(value: string | undefined): IncomingContext | null {
  if (value === undefined || value.length < 55) return null;
  if (!isLowerHex(value, 0, 2)) return null;
  const version = value.slice(0, 2);
  if (version === 'ff') return null;
  if (version === '00' ? value.length !== 55 : value.length > 55 && value.charCodeAt(55) !== DASH) return null;
  if (value.charCodeAt(2) !== DASH || value.charCodeAt(35) !== DASH || value.charCodeAt(52) !== DASH) return null;
  if (!isLowerHex(value, 3, 35) || isZeros(value, 3, 35)) return null;
  if (!isLowerHex(value, 36, 52) || isZeros(value, 36, 52)) return null;
  if (!isLowerHex(value, 53, 55)) return null;
  const flags = hexValue(value.charCodeAt(54));
  return { traceId: value.slice(3, 35), parentId: value.slice(36, 52), sampled: (flags & 1) === 1, format: 'w3c' };
}

/** A B3 trace id, 16 or 32 hex digits, as 32. */
function b3TraceId(value: string | undefined): string | null {
  if (value === undefined) return null;
  const n = value.length;
  if ((n !== 16 && n !== 32) || !isLowerHex(value, 0, n) || isZeros(value, 0, n)) return null;
  return n === 16 ? `0000000000000000${value}` : value;
}

function b3SpanId(value: string | undefined, from = 0, to = value?.length ?? 0): boolean {
  return value !== undefined && to - from === 16 && isLowerHex(value, from, to) && !isZeros(value, from, to);
}

/** `1`, `d` (debug) and the legacy `true` sample; `0` and `false` do not; anything else defers. */
function b3Sampled(value: string | undefined): boolean | undefined {
  if (value === '1' || value === 'd' || value === 'true') return true;
  if (value === '0' || value === 'false') return false;
  return undefined;
}

/** Multi-header B3: `x-b3-traceid`, `x-b3-spanid`, `x-b3-sampled`, `x-b3-flags` (1 = debug). */
export function parseB3Multi(traceIdHeader: string | undefined, spanIdHeader: string | undefined, sampledHeader: string | undefined, flagsHeader?: string): IncomingContext | null {
  const sampled = flagsHeader === '1' ? true : b3Sampled(sampledHeader);
  // Without ids there is nothing to continue (a sampling decision alone: see detachedSampling).
  const traceId = b3TraceId(traceIdHeader);
  if (traceId === null || !b3SpanId(spanIdHeader)) return null;
  return { traceId, parentId: spanIdHeader!, sampled, format: 'b3', ...(traceIdHeader!.length === 16 ? { shortB3TraceId: true } : {}) };
}

/** Single-header B3: `{traceid}-{spanid}[-{sampled}[-{parentspanid}]]`, or a bare sampling state. */
export function parseB3Single(value: string | undefined): IncomingContext | null {
  if (value === undefined || value.length < 33) return null;
  const dash1 = value.charCodeAt(16) === DASH ? 16 : value.charCodeAt(32) === DASH ? 32 : -1;
  if (dash1 < 0) return null;
  const traceId = b3TraceId(value.slice(0, dash1));
  if (traceId === null) return null;
  const spanEnd = dash1 + 17;
  if (!b3SpanId(value, dash1 + 1, spanEnd)) return null;
  let sampled: boolean | undefined;
  if (value.length > spanEnd) {
    if (value.charCodeAt(spanEnd) !== DASH) return null;
    const stateEnd = value.indexOf('-', spanEnd + 1);
    const state = value.slice(spanEnd + 1, stateEnd < 0 ? value.length : stateEnd);
    if (state !== '0' && state !== '1' && state !== 'd') return null;
    sampled = state !== '0';
    if (stateEnd >= 0 && !b3SpanId(value, stateEnd + 1, value.length)) return null;
  } else if (value.length !== spanEnd) return null;
  return { traceId, parentId: value.slice(dash1 + 1, spanEnd), sampled, format: 'b3-single', ...(dash1 === 16 ? { shortB3TraceId: true } : {}) };
}

function one(v: string | string[] | undefined): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/** Which trace a request continues: W3C first, then B3 headers, then single `b3`; null starts a new one. */
export function extract(headers: IncomingHttpHeaders): IncomingContext | null {
  const tp = headers.traceparent;
  if (tp !== undefined) {
    const w3c = parseTraceparent(one(tp));
    if (w3c !== null) return w3c;
  }
  const b3id = headers['x-b3-traceid'];
  if (b3id !== undefined) {
    const multi = parseB3Multi(one(b3id), one(headers['x-b3-spanid']), one(headers['x-b3-sampled']), one(headers['x-b3-flags']));
    if (multi !== null) return multi;
  }
  const single = headers.b3;
  if (single !== undefined) return parseB3Single(one(single));
  return null;
}

/**
 * A sampling decision that came without a trace to continue (`b3: 0`,
 * `x-b3-sampled: 1` alone): the new trace honours it. Undefined when none.
 */
export function detachedSampling(headers: IncomingHttpHeaders): boolean | undefined {
  const single = one(headers.b3);
  if (single !== undefined && single.length === 1) return b3Sampled(single);
  if (headers['x-b3-traceid'] === undefined) {
    if (one(headers['x-b3-flags']) === '1') return true;
    return b3Sampled(one(headers['x-b3-sampled']));
  }
  return undefined;
}

/** True when the request carries any B3 header, which the proxy then keeps current. */
export function hasB3(headers: IncomingHttpHeaders): 'b3' | 'b3-single' | null {
  if (headers['x-b3-traceid'] !== undefined || headers['x-b3-spanid'] !== undefined || headers['x-b3-sampled'] !== undefined) return 'b3';
  if (headers.b3 !== undefined) return 'b3-single';
  return null;
}

/** Whether the request's B3 trace id has 16 digits (written back the same way while the id fits). */
export function b3IsShort(headers: IncomingHttpHeaders, b3: 'b3' | 'b3-single'): boolean {
  if (b3 === 'b3') return one(headers['x-b3-traceid'])?.length === 16;
  const single = one(headers.b3);
  return single !== undefined && single.charCodeAt(16) === DASH;
}

export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}

// Ids come from one pooled buffer of random bytes, refilled when used up:
// one randomFillSync call serves 256 spans.
const POOL = Buffer.allocUnsafe(4096);
let poolAt = POOL.length;

function randomHex(bytes: number): string {
  if (poolAt + bytes > POOL.length) {
    randomFillSync(POOL);
    poolAt = 0;
  }
  const hex = POOL.toString('hex', poolAt, poolAt + bytes);
  poolAt += bytes;
  return hex;
}

/** 16 random bytes as 32 hex digits, never all zero. */
export function newTraceId(): string {
  for (;;) {
    const id = randomHex(16);
    if (!isZeros(id, 0, 32)) return id;
  }
}

/** 8 random bytes as 16 hex digits, never all zero. */
export function newSpanId(): string {
  for (;;) {
    const id = randomHex(8);
    if (!isZeros(id, 0, 16)) return id;
  }
}
