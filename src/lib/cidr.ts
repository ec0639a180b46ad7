// IPv4/IPv6 addresses and CIDR ranges, parsed strictly and matched without
// allocation.
//
// Strict means the forms Go's net/netip accepts (what Istio validates
// `ipBlocks` with) and glibc's inet_pton accepts (what Envoy parses with):
// dotted-quad IPv4 with no leading zeros and no shorthand, IPv6 with at most
// one `::` and an optional trailing dotted quad, no zone (`%eth0`), no
// brackets, and a prefix length with no sign or leading zero. A range written
// with host bits set (`10.1.2.3/8`) is accepted and truncated, as netip and
// Envoy's CidrRange both do.
//
// IPv4-mapped IPv6 (`::ffff:10.0.0.1`). Envoy's CidrRange never matches
// across families; what makes `10.0.0.0/8` match an IPv4 client that reached
// a dual-stack socket is that Envoy converts the peer's `::ffff:a.b.c.d` to
// IPv4 when it accepts the connection (addressFromSockAddr on a socket that
// is not v6-only). Addresses Envoy parses from text (X-Forwarded-For, and the
// ranges in config) stay IPv6. We follow both halves: `parseIp` unmaps by
// default because its callers hand it socket peer addresses (Node reports
// `::ffff:10.0.0.1` for IPv4 clients of a `::` listener); pass
// `keepV4Mapped = true` for addresses taken from headers. Ranges are never
// unmapped, so `::ffff:10.0.0.0/104` is an IPv6 range, as in Envoy.

export type IpFamily = 4 | 6;

/**
 * An address as 32-bit words, most significant first, each an unsigned
 * integer. IPv4 uses `w0` only; the other words are 0.
 */
export interface ParsedIp {
  readonly family: IpFamily;
  readonly w0: number;
  readonly w1: number;
  readonly w2: number;
  readonly w3: number;
}

/** A range: the address with host bits cleared, and the prefix length. */
export interface CidrRange extends ParsedIp {
  readonly bits: number;
}

const CH_0 = 48;
const CH_9 = 57;
const CH_DOT = 46;
const CH_COLON = 58;

/**
 * Parses one address. Returns null for anything netip would reject, and for
 * zones and brackets. IPv4-mapped IPv6 comes back as IPv4 unless
 * `keepV4Mapped` (see the file comment for when to pass it).
 */
export function parseIp(text: string, keepV4Mapped = false): ParsedIp | null {
  if (hasColon(text, 0, text.length)) {
    if (!parseV6(text, 0, text.length)) return null;
    if (!keepV4Mapped && v6[0] === 0 && v6[1] === 0 && v6[2] === 0 && v6[3] === 0 && v6[4] === 0 && v6[5] === 0xffff) {
      return ipv4(v6[6]! * 0x10000 + v6[7]!);
    }
    return ipv6FromScratch();
  }
  const v4 = parseV4(text, 0, text.length);
  return v4 < 0 ? null : ipv4(v4);
}

/**
 * Parses `address/bits`, or a bare address as /32 or /128. The error says
 * which part is wrong, for diagnostics that point at one `ipBlocks` entry.
 */
export function parseCidr(text: string): CidrRange | { readonly error: string } {
  if (text.length === 0) return { error: 'empty address' };
  const slash = text.indexOf('/');
  const end = slash < 0 ? text.length : slash;
  let address: ParsedIp;
  if (hasColon(text, 0, end)) {
    if (!parseV6(text, 0, end)) return { error: `"${text.slice(0, end)}" is not an IPv6 address` };
    address = ipv6FromScratch();
  } else {
    const v4 = parseV4(text, 0, end);
    if (v4 < 0) return { error: `"${text.slice(0, end)}" is not an IPv4 address` };
    address = ipv4(v4);
  }
  const family = address.family;
  const max = family === 4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    bits = parsePrefixLength(text, slash + 1, text.length);
    if (bits < 0 || bits > max) {
      return { error: `prefix length "${text.slice(slash + 1)}" must be a number from 0 to ${max}` };
    }
  }
  return Object.freeze({
    family,
    bits,
    w0: maskWord(address.w0, bits, 0),
    w1: maskWord(address.w1, bits, 32),
    w2: maskWord(address.w2, bits, 64),
    w3: maskWord(address.w3, bits, 96),
  });
}

/** True when the address is inside the range (same family only, as in Envoy). */
export function cidrContains(range: CidrRange, ip: ParsedIp): boolean {
  if (range.family !== ip.family) return false;
  const b = range.bits;
  return (
    maskWord(ip.w0, b, 0) === range.w0 &&
    maskWord(ip.w1, b, 32) === range.w1 &&
    maskWord(ip.w2, b, 64) === range.w2 &&
    maskWord(ip.w3, b, 96) === range.w3
  );
}

/** The canonical text of a range: dotted quad, or RFC 5952 IPv6, then `/bits`. */
export function formatCidr(range: CidrRange): string {
  return `${formatIp(range)}/${range.bits}`;
}

export function formatIp(ip: ParsedIp): string {
  if (ip.family === 4) return formatV4(ip.w0);
  const g = [ip.w0 >>> 16, ip.w0 & 0xffff, ip.w1 >>> 16, ip.w1 & 0xffff, ip.w2 >>> 16, ip.w2 & 0xffff, ip.w3 >>> 16, ip.w3 & 0xffff];
  // The longest run of two or more zero groups becomes "::" (first one on ties).
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number): string => g.slice(from, to).map((n) => n.toString(16)).join(':');
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

/**
 * Compiles ranges into one membership test. IPv4 ranges become sorted,
 * merged intervals searched by bisection; IPv6 ranges are tested word by word
 * from typed arrays. A lookup allocates nothing.
 */
export function compileCidrSet(ranges: readonly CidrRange[]): (ip: ParsedIp) => boolean {
  const v4: [number, number][] = [];
  const v6list: CidrRange[] = [];
  for (const r of ranges) {
    if (r.family === 4) {
      const size = 2 ** (32 - r.bits);
      v4.push([r.w0, r.w0 + size - 1]);
    } else {
      v6list.push(r);
    }
  }
  v4.sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const iv of v4) {
    const last = merged[merged.length - 1];
    if (last !== undefined && iv[0] <= last[1] + 1) {
      if (iv[1] > last[1]) last[1] = iv[1];
    } else {
      merged.push([iv[0], iv[1]]);
    }
  }
  // Float64 because interval ends reach 2^32 - 1, past Int32 and awkward in Uint32 arithmetic.
  const starts = Float64Array.from(merged, (iv) => iv[0]);
  const ends = Float64Array.from(merged, (iv) => iv[1]);
  const v4Count = merged.length;

  const v6Count = v6list.length;
  const v6Base = new Uint32Array(v6Count * 4);
  const v6Mask = new Uint32Array(v6Count * 4);
  v6list.forEach((r, i) => {
    v6Base.set([r.w0, r.w1, r.w2, r.w3], i * 4);
    v6Mask.set([wordMask(r.bits, 0), wordMask(r.bits, 32), wordMask(r.bits, 64), wordMask(r.bits, 96)], i * 4);
  });

  return (ip: ParsedIp): boolean => {
    if (ip.family === 4) {
      const a = ip.w0;
      let lo = 0;
      let hi = v4Count - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >>> 1;
        if (a < starts[mid]!) hi = mid - 1;
        else if (a > ends[mid]!) lo = mid + 1;
        else return true;
      }
      return false;
    }
    for (let i = 0; i < v6Count * 4; i += 4) {
      if (
        ((ip.w0 & v6Mask[i]!) >>> 0) === v6Base[i] &&
        ((ip.w1 & v6Mask[i + 1]!) >>> 0) === v6Base[i + 1] &&
        ((ip.w2 & v6Mask[i + 2]!) >>> 0) === v6Base[i + 2] &&
        ((ip.w3 & v6Mask[i + 3]!) >>> 0) === v6Base[i + 3]
      ) {
        return true;
      }
    }
    return false;
  };
}

// ---------------------------------------------------------------- parsing internals

// Scratch for the eight IPv6 groups. Parsing is synchronous, so one buffer
// serves every call and a lookup allocates only its result.
const v6 = new Uint16Array(8);

function ipv4(value: number): ParsedIp {
  return { family: 4, w0: value, w1: 0, w2: 0, w3: 0 };
}

function ipv6FromScratch(): ParsedIp {
  return {
    family: 6,
    w0: v6[0]! * 0x10000 + v6[1]!,
    w1: v6[2]! * 0x10000 + v6[3]!,
    w2: v6[4]! * 0x10000 + v6[5]!,
    w3: v6[6]! * 0x10000 + v6[7]!,
  };
}

function hasColon(text: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (text.charCodeAt(i) === CH_COLON) return true;
  return false;
}

/** Dotted quad in text[start, end) as an unsigned integer, or -1. */
function parseV4(text: string, start: number, end: number): number {
  let value = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  let leadingZero = false;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c >= CH_0 && c <= CH_9) {
      // "0" is a value; "01" is octal in some parsers and rejected by netip and inet_pton.
      if (leadingZero) return -1;
      if (digits === 0 && c === CH_0) leadingZero = true;
      part = part * 10 + (c - CH_0);
      digits++;
      if (part > 255) return -1;
    } else if (c === CH_DOT) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + part;
      part = 0;
      digits = 0;
      leadingZero = false;
      dots++;
    } else {
      return -1;
    }
  }
  if (digits === 0 || dots !== 3) return -1;
  return value * 256 + part;
}

/** IPv6 in text[start, end) into the scratch groups; false when malformed. */
function parseV6(text: string, start: number, end: number): boolean {
  if (end === start) return false;
  let n = 0;
  let gap = -1; // index in the groups where "::" stands
  let i = start;
  if (text.charCodeAt(i) === CH_COLON) {
    if (i + 1 >= end || text.charCodeAt(i + 1) !== CH_COLON) return false;
    gap = 0;
    i += 2;
  }
  while (i < end) {
    const groupStart = i;
    let value = 0;
    let digits = 0;
    while (i < end) {
      const h = hexValue(text.charCodeAt(i));
      if (h < 0) break;
      value = value * 16 + h;
      digits++;
      i++;
    }
    if (digits === 0) return false;
    if (i < end && text.charCodeAt(i) === CH_DOT) {
      // A dotted quad may only fill the last 32 bits.
      if (n > 6) return false;
      const quad = parseV4(text, groupStart, end);
      if (quad < 0) return false;
      v6[n++] = Math.floor(quad / 0x10000);
      v6[n++] = quad % 0x10000;
      break;
    }
    if (digits > 4 || n === 8) return false;
    v6[n++] = value;
    if (i === end) break;
    if (text.charCodeAt(i) !== CH_COLON) return false;
    i++;
    if (i < end && text.charCodeAt(i) === CH_COLON) {
      if (gap >= 0) return false;
      gap = n;
      i++;
    } else if (i === end) {
      return false; // a single trailing colon
    }
  }
  if (gap < 0) return n === 8;
  if (n > 7) return false;
  // Slide the groups after "::" to the end and zero the gap.
  const tail = n - gap;
  for (let k = 0; k < tail; k++) v6[7 - k] = v6[n - 1 - k]!;
  for (let k = gap; k < 8 - tail; k++) v6[k] = 0;
  return true;
}

function hexValue(c: number): number {
  if (c >= CH_0 && c <= CH_9) return c - CH_0;
  if (c >= 97 && c <= 102) return c - 87; // a-f
  if (c >= 65 && c <= 70) return c - 55; // A-F
  return -1;
}

function parsePrefixLength(text: string, start: number, end: number): number {
  if (end === start || end - start > 3) return -1;
  if (end - start > 1 && text.charCodeAt(start) === CH_0) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c < CH_0 || c > CH_9) return -1;
    n = n * 10 + (c - CH_0);
  }
  return n;
}

/** The mask for the 32-bit word that starts at bit `offset`, given the prefix length. */
function wordMask(bits: number, offset: number): number {
  const inWord = bits - offset;
  if (inWord <= 0) return 0;
  if (inWord >= 32) return 0xffffffff;
  return (0xffffffff << (32 - inWord)) >>> 0;
}

function maskWord(word: number, bits: number, offset: number): number {
  return (word & wordMask(bits, offset)) >>> 0;
}

function formatV4(w: number): string {
  return `${w >>> 24}.${(w >>> 16) & 0xff}.${(w >>> 8) & 0xff}.${w & 0xff}`;
}
