// One inbound HTTP request, HTTP/1.1 or HTTP/2 (node's compatibility API
// gives both the same shape): decide with the policy engine, answer a denial
// the way Envoy does, or forward to the app on loopback. Every way a request
// can end is mapped to a response here and nowhere else.

import { performance } from 'node:perf_hooks';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { http } from '../../lib/node-http.ts';
import { constants as h2, type Http2ServerRequest, type Http2ServerResponse, type OutgoingHttpHeaders } from 'node:http2';
import type { InboundPort } from '../../api/proxy-config.ts';
import { logTime, type AccessLogEntry } from '../access-log.ts';
import type { Decision } from '../../policy/decision.ts';
import { destinationOf } from '../snapshot.ts';
import type { ConnectionInfo, InboundContext } from './context.ts';
import { limitHit, type LimitHit } from './limits.ts';
import { endServerSpan, startServerSpan } from '../tracing/hop.ts';
import type { Span } from '../tracing/tracer.ts';
import { isPeerWorkload, PEER_WORKLOAD } from '../peer-workload.ts';

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

// Connection-specific headers never cross the proxy (RFC 9110 §7.6.1); HTTP/2 forbids them.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'http2-settings', 'host']);
const XFCC = 'x-forwarded-client-cert';
const COLON = 0x3a;
export const UPSTREAM_CONNECT_ERROR = 'upstream connect error or disconnect/reset before headers. reset reason: connection failure';

// The header copies below run for every request: `for…in` over node's
// header objects (own, enumerable, no prototype chain to speak of) instead
// of `Object.entries`, which allocates an array per pair.

/**
 * Lower-case request headers, one value each, without pseudo-headers or
 * `host`: what the engine reads. Nor x-meshward-peer-workload: a name for
 * telemetry, which a policy must not be written against.
 */
function engineHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name.charCodeAt(0) === COLON || name === 'host' || name === PEER_WORKLOAD) continue;
    out[name] = Array.isArray(value) ? value.join(',') : value;
  }
  return out;
}

/**
 * Whether a caller's header claims to say who the peer is: x-forwarded-client-cert
 * and x-meshward-peer-workload. Only the proxy that terminated the mTLS
 * connection may say that, so the caller's copies never reach the app, on
 * either HTTP/1.1 path, nor as trailers.
 */
export function isPeerClaim(name: string): boolean {
  return name === XFCC || name === PEER_WORKLOAD;
}

/** What the app is sent (headers or trailers): no pseudo-headers, no hop-by-hop, no peer claims. */
function forwardHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name.charCodeAt(0) === COLON || HOP_BY_HOP.has(name) || isPeerClaim(name)) continue;
    out[name] = value;
  }
  return out;
}

function responseHeaders(headers: IncomingHttpHeaders | OutgoingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name.charCodeAt(0) === COLON || HOP_BY_HOP.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/** Whether a header object has any header (without `Object.keys`' array). */
function hasAny(headers: object): boolean {
  for (const _ in headers) return true;
  return false;
}

function hostOf(req: Req): string {
  return req.headers[':authority']?.toString() ?? req.headers.host ?? '';
}

function reset(req: Req, res: Res): void {
  if ('stream' in res) res.stream.close(h2.NGHTTP2_REFUSED_STREAM);
  else req.socket.destroy();
}

// Both response types take (status, headers); their overload sets differ only in status messages.
function head(res: Res, status: number, headers: OutgoingHttpHeaders): void {
  (res as ServerResponse).writeHead(status, headers);
}

function answer(res: Res, status: number, body: string, extra: OutgoingHttpHeaders = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  head(res, status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

export function handleInboundRequest(req: Req, res: Res, info: ConnectionInfo, port: InboundPort, ctx: InboundContext): void {
  const started = performance.now();
  const snap = info.snapshot;
  const method = req.method ?? 'GET';
  const path = req.url ?? '/';
  const host = hostOf(req);
  // One branch when tracing is off: the headers then pass through untouched.
  const tracer = ctx.tracer();
  const span = tracer === null ? null : startServerSpan(tracer, req.headers, info.port);
  const source = sourceWorkloadOf(info, req.headers[PEER_WORKLOAD]);
  const finish = (code: number | 'reset', d: Decision | null, bypass = false): void => {
    // A limit that cut the request short (limits.ts) answered the peer itself: log what it sent, and which limit.
    const hit = limitHit(req);
    if (hit !== undefined && code === 'reset') code = hit.status;
    recordInbound(ctx, info, port, source, started, method, path, code, d, bypass, hit, span?.traceId);
    if (span !== null) {
      const ua = req.headers['user-agent'];
      endServerSpan(span, code, { method, host, path, port: info.port, httpVersion: req.httpVersion, principal: info.principal, remoteIp: info.remoteIp, userAgent: ua }, d, bypass);
    }
  };

  // Probes rewritten by Istio reach the app in plaintext even under STRICT,
  // and only on the exact paths configured.
  const destination = destinationOf(snap, info.port, info.localIp);
  const { mode } = snap.engine.peerMode(destination);
  const isHealth = !info.mtls && (port.healthPaths ?? []).includes(path);
  if (!info.mtls && !info.ingress && mode === 'STRICT') {
    if (isHealth) {
      forward(req, res, info, port, ctx, [], (code) => finish(code, null, true), undefined, span);
      return;
    }
    reset(req, res);
    finish('reset', null);
    return;
  }

  const headers = engineHeaders(req.headers);
  const decision = snap.engine.decide({
    destination,
    connection: { mtls: info.mtls, principal: info.principal, clientNamespace: null, ip: info.remoteIp, ingress: info.ingress },
    request: { protocol: 'http', method, path, host, headers },
  });
  const proceed = (d: Decision): void => {
    if (d.decision === 'DENY') {
      if (d.status === 'reset') reset(req, res);
      else if (d.status === 401) answer(res, 401, 'Jwt verification fails', { 'www-authenticate': `Bearer realm="http://${host}${path}"` });
      else if (d.status === 400) answer(res, 400, 'Bad Request');
      else answer(res, 403, 'RBAC: access denied');
      finish(d.status === 200 ? 403 : d.status, d);
      return;
    }
    forward(req, res, info, port, ctx, d.trace.headerMutations ?? [], (code) => finish(code, d), forwardedTarget(path, d.trace.normalizedPath), span);
  };
  if (decision instanceof Promise) {
    // The engine settles with a decision; should it ever fail, the request is denied, and logged as such.
    decision.then(proceed, () => {
      answer(res, 403, 'RBAC: access denied');
      finish(403, null);
    });
  } else proceed(decision);
}

/** Request counting for one caller's workload. */
interface Counting {
  readonly sourceWorkload: string;
  readonly count: (code: number, ms: number) => void;
}

/** Request counting per connection facts (a new object when the config changes); see recordInbound. */
const counters = new WeakMap<ConnectionInfo, Counting>();

/**
 * The caller's workload for the request metrics: what its proxy said in
 * x-meshward-peer-workload, believed only on an mTLS connection from a mesh
 * peer, and only if it can be a workload name; else "unknown". A plaintext
 * caller could write anything there.
 */
export function sourceWorkloadOf(info: ConnectionInfo, value: string | string[] | undefined): string {
  if (!info.mtls || info.principal === null || typeof value !== 'string' || !isPeerWorkload(value)) return 'unknown';
  return value;
}

/**
 * The request metric and access log entry of one inbound request, however
 * it ended (`reset`: no response). Shared by both HTTP/1.1 paths and HTTP/2.
 * `sourceWorkload`: the caller's, from sourceWorkloadOf.
 */
export function recordInbound(
  ctx: InboundContext,
  info: ConnectionInfo,
  port: InboundPort,
  sourceWorkload: string,
  started: number,
  method: string,
  path: string,
  code: number | 'reset',
  d: Decision | null,
  bypass: boolean,
  hit?: LimitHit,
  traceId?: string,
): void {
  const ms = performance.now() - started;
  const w = info.snapshot.config.workload;
  let counting = counters.get(info);
  // Every label but the code is fixed for a connection under one config and
  // one caller's workload (a connection carries one workload's calls): found once.
  if (counting === undefined || counting.sourceWorkload !== sourceWorkload) {
    const count = ctx.metrics.requestCounter({
      source_workload: sourceWorkload,
      source_principal: info.principal === null ? 'unknown' : `spiffe://${info.principal}`,
      destination_principal: ctx.selfId,
      destination_workload: w.name,
      destination_workload_namespace: w.namespace,
      destination_service: w.service ?? 'unknown',
      connection_security_policy: info.mtls ? 'mutual_tls' : 'none',
      request_protocol: port.protocol === 'grpc' ? 'grpc' : 'http',
    });
    counting = { sourceWorkload, count };
    counters.set(info, counting);
  }
  counting.count(code === 'reset' ? 0 : code, ms);
  // Built in the order of the JSON line, the optional fields added where they belong (no spreads).
  const entry: { -readonly [K in keyof AccessLogEntry]?: AccessLogEntry[K] } = {
    time: logTime(),
    workload: `${w.namespace}/${w.name}`,
    port: info.port,
    protocol: port.protocol,
    method,
    path,
    responseCode: code,
    decision: bypass ? 'BYPASS' : (d?.decision ?? 'ALLOW'),
    stage: d?.stage ?? null,
    policy: d?.policy ?? null,
    principal: info.principal,
    requestPrincipal: d?.requestPrincipal ?? null,
  };
  if (d !== null && d.decision === 'DENY') entry.reason = d.reason;
  entry.durationMs = Math.round(ms * 1000) / 1000;
  entry.mtls = info.mtls;
  if (hit !== undefined) entry.limit = hit.limit;
  if (traceId !== undefined) entry.traceId = traceId;
  ctx.log(entry as AccessLogEntry);
}

/** The x-forwarded-client-cert value for a request on an mTLS connection (Envoy's By/Hash/URI form); null without one. */
export function xfccOf(ctx: InboundContext, info: ConnectionInfo): string | null {
  if (!info.mtls || info.principal === null || info.peerCertHash === null) return null;
  return `By=${ctx.selfId};Hash=${info.peerCertHash};URI=spiffe://${info.principal}`;
}

/**
 * The app receives the path the policy was checked against, as Envoy
 * forwards its normalized :path: an app that resolved `..` or merged
 * slashes itself could otherwise reach what the policy denied. The query
 * is kept as sent; a fragment is never sent on.
 */
export function forwardedTarget(raw: string, normalized: string | undefined): string {
  if (normalized === undefined) return raw;
  let end = 0;
  while (end < normalized.length) {
    const c = normalized.charCodeAt(end);
    if (c === 0x3f /* ? */ || c === 0x23 /* # */) break;
    end++;
  }
  const pathOnly = end === normalized.length ? normalized : normalized.slice(0, end);
  const q = raw.indexOf('?');
  if (q < 0) return pathOnly;
  const hash = raw.indexOf('#', q);
  return pathOnly + (hash < 0 ? raw.slice(q) : raw.slice(q, hash));
}

function forward(
  req: Req,
  res: Res,
  info: ConnectionInfo,
  port: InboundPort,
  ctx: InboundContext,
  mutations: NonNullable<Decision['trace']['headerMutations']>,
  done: (code: number | 'reset') => void,
  target: string = req.url ?? '/',
  span: Span | null = null,
): void {
  // Without the caller's x-forwarded-client-cert: the app must be able to
  // trust this header, and only the proxy that terminated the mTLS
  // connection may say who the peer is. Without x-meshward-peer-workload,
  // which is for this proxy alone, honoured or not.
  const headers = forwardHeaders(req.headers);
  for (const m of mutations) {
    if (m.op === 'remove') delete headers[m.name.toLowerCase()];
    else headers[m.name.toLowerCase()] = m.value;
  }
  const xfcc = xfccOf(ctx, info);
  if (xfcc !== null) headers[XFCC] = xfcc;
  // The app sees the proxy's span as its parent.
  if (span !== null) span.inject(headers);
  const unreachable = (): void => {
    if (span !== null) span.responseFlags = 'UF';
    answer(res, 503, UPSTREAM_CONNECT_ERROR);
  };
  const host = hostOf(req);
  let finished = false;
  const end = (code: number | 'reset'): void => {
    if (finished) return;
    finished = true;
    done(code);
  };
  const closed = (): void => end(res.headersSent ? res.statusCode : 'reset');

  if (port.protocol === 'grpc' || port.protocol === 'http2') {
    let session;
    try {
      session = ctx.h2Session(port.appPort);
    } catch {
      res.once('close', closed);
      unreachable();
      return;
    }
    // The one connection-specific header HTTP/2 allows; gRPC servers expect it.
    if (req.headers.te === 'trailers') headers['te'] = 'trailers';
    headers[':method'] = req.method ?? 'GET';
    headers[':path'] = target;
    headers[':authority'] = host;
    headers[':scheme'] = 'http';
    const upstream = session.request(headers);
    upstream.on('response', (h) => {
      head(res, Number(h[':status'] ?? 502), responseHeaders(h));
      upstream.pipe(res as NodeJS.WritableStream);
    });
    upstream.on('trailers', (t) => {
      if ('addTrailers' in res) res.addTrailers(responseHeaders(t) as Record<string, string>);
    });
    upstream.on('error', unreachable);
    res.on('close', () => {
      closed();
      if (!upstream.closed) upstream.close(h2.NGHTTP2_CANCEL);
    });
    (req as NodeJS.ReadableStream).pipe(upstream);
    return;
  }

  // As a flat name/value array (rawHeaders' form), which node writes as it
  // is, instead of storing and looking up each header through setHeader
  // (about 3 µs less per request). It adds `Connection: keep-alive` itself.
  const raw: string[] = [];
  for (const name in headers) {
    const value = headers[name]!;
    if (typeof value === 'string') raw.push(name, value);
    else for (const v of value) raw.push(name, v);
  }
  raw.push('host', host);
  const upstream = http.request({ host: '127.0.0.1', port: port.appPort, method: req.method, path: target, headers: raw, agent: ctx.appAgent });
  upstream.on('response', (up) => {
    head(res, up.statusCode ?? 502, responseHeaders(up.headers));
    // The app's chunked trailers, added before pipe's own 'end' listener ends the response.
    up.once('end', () => {
      if (!hasAny(up.trailers)) return;
      const t = responseHeaders(up.trailers);
      if (hasAny(t)) res.addTrailers(t as Record<string, string>);
    });
    up.pipe(res as NodeJS.WritableStream);
  });
  upstream.on('error', unreachable);
  res.on('close', () => {
    closed();
    if (!res.writableFinished) upstream.destroy();
  });
  // The caller's trailers reach the app when its request is chunked (no
  // content-length), filtered as its headers are.
  req.once('end', () => {
    if (!hasAny(req.trailers)) return;
    const t = forwardHeaders(req.trailers);
    if (hasAny(t)) upstream.addTrailers(t as Record<string, string>);
  });
  (req as NodeJS.ReadableStream).pipe(upstream);
}
