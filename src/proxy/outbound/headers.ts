// Header mapping between the app's HTTP/1.1 and the upstream's HTTP/2 or
// HTTP/1.1. Hop-by-hop headers (RFC 9110 §7.6.1, plus the proxy ones and any
// named in Connection) describe the app's connection, not the request, and
// HTTP/2 forbids them outright; `te` survives only as "trailers". The
// mesh's x-meshward-peer-workload is one proxy's word to the next
// (../peer-workload.ts): never passed on as received, in either direction,
// and set on a request by this proxy alone.

import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { PEER_WORKLOAD } from '../peer-workload.ts';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  // Not hop-by-hop in HTTP's sense, but dropped the same way: only a proxy may say it.
  PEER_WORKLOAD,
]);

const NONE: ReadonlySet<string> = new Set();
const CLOSE: ReadonlySet<string> = new Set(['close']);

function connectionTokens(value: string | string[] | undefined): ReadonlySet<string> {
  // Most messages name nothing in Connection, or only keep-alive (hop-by-hop
  // anyway) or close: no sets, no arrays for them.
  if (value === undefined || value === '' || value === 'keep-alive') return NONE;
  if (value === 'close') return CLOSE;
  const text = Array.isArray(value) ? value.join(',') : (value ?? '');
  return new Set(text.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t.length > 0));
}

/** The end-to-end headers of a message: no pseudo-headers, no hop-by-hop, no host. */
export function endToEnd(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = connectionTokens(headers.connection);
  const out: OutgoingHttpHeaders = {};
  // `for…in`, not `Object.entries`: no array per header on every request.
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name.charCodeAt(0) === 0x3a /* : */ || name === 'host') continue;
    if (HOP_BY_HOP.has(name) || named.has(name)) continue;
    out[name] = value;
  }
  if (typeof headers.te === 'string' && connectionTokens(headers.te).has('trailers')) out.te = 'trailers';
  return out;
}

/**
 * The headers of a request sent upstream: its end-to-end ones, the app's
 * x-meshward-peer-workload never among them, and `peerWorkload` (this
 * workload's name, for an upstream that is a mesh proxy) in that header.
 */
export function requestHeaders(headers: IncomingHttpHeaders, peerWorkload: string | null): OutgoingHttpHeaders {
  const out = endToEnd(headers);
  if (peerWorkload !== null) out[PEER_WORKLOAD] = peerWorkload;
  return out;
}

export interface RequestTarget {
  /** Host (and port) the request names. */
  readonly authority: string | undefined;
  /** Origin-form path and query. */
  readonly path: string;
}

/** Splits an origin-form or absolute-form (`http://payment-service/pay`) request target. */
export function requestTarget(url: string, host: string | undefined): RequestTarget | null {
  if (url.startsWith('/') || url === '*') return { authority: host, path: url };
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return null;
  }
  if (parsed.protocol !== 'http:') return null;
  return { authority: parsed.host, path: `${parsed.pathname}${parsed.search}` };
}
