// Forwards one HTTP/1.1 request from the app to an upstream: pick an
// endpoint, get a connection from the pool, send the request as HTTP/2 (or
// HTTP/1.1 where the server does not speak h2), stream both bodies with
// back-pressure. Every failure before response headers becomes a 503 in the
// words Envoy uses, with what failed after them; after headers, the app's
// connection is reset, as Envoy does. Nothing here throws to the listener.
// Trailers cross in both directions: HTTP/2 trailers and those of a chunked
// HTTP/1.1 message are passed on as trailers, and the app gets them in its
// chunked response (RFC 9112 §7.1.2; node's `res.trailers`) whether or not
// it sent `TE: trailers`, which only says they will not be dropped (RFC 9110
// §10.1.4). An HTTP/1.0 app has no chunked coding, and node drops them.

import { performance } from 'node:perf_hooks';
import type * as Http from 'node:http';
import { http } from '../../lib/node-http.ts';
import * as https from 'node:https';
import * as http2 from 'node:http2';
import type { Route } from './route.ts';
import type { ConnectionPool, Transport } from './pool.ts';
import { UpstreamError, presentedId } from './dial.ts';
import { PeerRefusedError, refusalOf } from '../../identity/tls-options.ts';
import { endToEnd, requestHeaders } from './headers.ts';
import { connectionLabels, type OutboundMetrics, type Source, type UpstreamFailure } from './metrics.ts';
import type { UpstreamEndpoint } from '../../api/proxy-config.ts';
import { endClientSpan, startClientSpan } from '../tracing/hop.ts';
import type { Tracer } from '../tracing/tracer.ts';

export interface ForwardContext {
  readonly pool: ConnectionPool;
  readonly metrics: OutboundMetrics;
  readonly source: Source;
  /** Null when the proxy does not trace. */
  readonly tracer: Tracer | null;
  /** This workload's name as mesh peers are told it (../peer-workload.ts); null when it is not a valid one, and then not sent. */
  readonly peerWorkload: string | null;
}

/** What a request to `route` tells the upstream of its caller: the workload name when the upstream is a mesh proxy (ISTIO_MUTUAL), else nothing. */
export function peerWorkloadFor(ctx: ForwardContext, route: Route): string | null {
  return route.plan.kind === 'mtls' ? ctx.peerWorkload : null;
}

const CHUNKED = /\bchunked\b/i;
const WAIT_FOR_TRAILERS: http2.ClientSessionRequestOptions = Object.freeze({ waitForTrailers: true });
const NO_TRAILERS: http2.ClientSessionRequestOptions = Object.freeze({ waitForTrailers: false });

export const CONNECT_ERROR_BODY = 'upstream connect error or disconnect/reset before headers';

export function failureOf(err: unknown): UpstreamError {
  if (err instanceof UpstreamError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  if (err instanceof PeerRefusedError) {
    const what = err.check === 'not-allowed' ? 'secure naming: the server is not an allowed identity' : 'TLS handshake failed';
    return new UpstreamError('handshake', `${what} (check ${err.check}): ${message}`, err.check);
  }
  if (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
    return new UpstreamError('connect-refused', `connection failed: ${code}`);
  }
  if (typeof code === 'string' && (code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS') || code.includes('CERT'))) {
    const check = refusalOf(err);
    return new UpstreamError('handshake', `TLS handshake failed (check ${check}): ${message}`, check);
  }
  return new UpstreamError('reset', `reset by the upstream: ${message}`);
}

/** Envoy's response flags for each upstream failure, for access logs and metrics. */
export const FLAGS: Record<UpstreamFailure, string> = {
  'no-endpoint': 'UH',
  'connect-refused': 'UF',
  'connect-timeout': 'UF',
  handshake: 'UF',
  reset: 'UR',
  'tls-mode-unsupported': 'UF',
};

/**
 * Counts an upstream failure once. The handshake behind a 'handshake'
 * failure has been counted by the pool, once, however many requests waited on it.
 */
export function countFailure(ctx: ForwardContext, host: string, err: UpstreamError): void {
  ctx.metrics.upstreamFailure(host, err.reason);
}

/** The 503 body the app sees, in Envoy's words, with the reason appended. */
export function failureBody(err: UpstreamError): string {
  return `${CONNECT_ERROR_BODY}. reset reason: ${err.reason}: ${err.message}\n`;
}

export function forwardHttp(
  ctx: ForwardContext,
  route: Route,
  req: Http.IncomingMessage,
  res: Http.ServerResponse,
  target: { authority: string; path: string },
): void {
  const { upstream, plan } = route;
  const started = performance.now();
  let flags = '-';
  let endpoint: UpstreamEndpoint | null = null;
  let peer: string | null = null;
  const count = (): void =>
    ctx.metrics.request(
      {
        ...connectionLabels(ctx.source, upstream, endpoint, plan.security, peer),
        request_protocol: upstream.protocol === 'grpc' ? 'grpc' : 'http',
        response_code: String(res.statusCode),
        response_flags: flags,
      },
      performance.now() - started,
    );
  // Counted when the response is handed to the kernel, before the app can
  // read it; a response cut short counts on close.
  res.once('finish', count);
  res.once('close', () => {
    if (!res.writableFinished) count();
  });

  // A CLIENT span continues the app's trace; the upstream gets it as parent
  // in the headers, which are read again when the request is sent.
  const tracer = ctx.tracer ?? null;
  if (tracer !== null) {
    const span = startClientSpan(tracer, req.headers, upstream);
    span.inject(req.headers);
    res.once('close', () =>
      endClientSpan(span, res.headersSent ? res.statusCode : 0, {
        method: req.method ?? 'GET', authority: target.authority, path: target.path, upstream, endpoint, httpVersion: req.httpVersion, flags, security: plan.security,
      }),
    );
  }

  let failed = false;
  const fail = (err: UpstreamError): void => {
    if (failed) return;
    failed = true;
    flags = FLAGS[err.reason];
    countFailure(ctx, upstream.host, err);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = failureBody(err);
    res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    // Discard the unsent request body so the app's connection can carry its next request.
    req.resume();
  };

  endpoint = dialRoute(ctx, route, res, fail, (transport, picked) =>
    send(transport, req, res, target, peerWorkloadFor(ctx, route), fail, picked.host, picked.port, (id) => (peer = id)),
  );
}

/**
 * The first step of forwarding either way: refuse a plan that cannot be
 * dialed, pick an endpoint (released when `caller` closes), get a transport
 * to it from the pool, and hand it to `use` if the caller is still there.
 * Every failure, `use` throwing included, goes to `fail`. Returns the
 * endpoint picked, for the metrics and the span.
 */
export function dialRoute(
  ctx: ForwardContext,
  route: Route,
  caller: { once(event: 'close', listener: () => void): unknown; readonly destroyed: boolean },
  fail: (err: UpstreamError) => void,
  use: (transport: Transport, endpoint: UpstreamEndpoint) => void,
): UpstreamEndpoint | null {
  const { upstream, plan } = route;
  if (plan.kind === 'refuse') {
    fail(new UpstreamError('tls-mode-unsupported', plan.reason));
    return null;
  }
  const picked = route.balancer.pick();
  if (picked === null) {
    fail(new UpstreamError('no-endpoint', `${upstream.name} has no endpoints`));
    return null;
  }
  caller.once('close', picked.release);
  ctx.pool.get(plan, upstream, picked.endpoint, route.h2Upgrade).then(
    (transport) => {
      if (caller.destroyed) return;
      try {
        use(transport, picked.endpoint);
      } catch (err) {
        fail(failureOf(err));
      }
    },
    (err: unknown) => fail(failureOf(err)),
  );
  return picked.endpoint;
}

function send(
  transport: Transport,
  req: Http.IncomingMessage,
  res: Http.ServerResponse,
  target: { authority: string; path: string },
  peerWorkload: string | null,
  fail: (err: UpstreamError) => void,
  host: string,
  port: number,
  presented: (id: string | null) => void,
): void {
  const headers = requestHeaders(req.headers, peerWorkload);
  // Only a chunked request can end in trailers; waiting for them on others would cost nothing but a frame.
  const te = req.headers['transfer-encoding'];
  const chunked = te !== undefined && CHUNKED.test(te);
  if (transport.kind === 'h2') {
    presented(transport.peer);
    // `headers` is this request's own copy: the pseudo-headers go straight into it.
    headers[':method'] = req.method ?? 'GET';
    headers[':path'] = target.path;
    headers[':authority'] = target.authority;
    headers[':scheme'] = 'http';
    const stream = transport.session.request(headers, chunked ? WAIT_FOR_TRAILERS : NO_TRAILERS);
    // Emitted once the body is queued, after the app's request (and its trailers) ended.
    if (chunked) stream.once('wantTrailers', () => stream.sendTrailers(endToEnd(req.trailers)));
    stream.on('trailers', (t) => res.addTrailers(endToEnd(t) as Record<string, string>));
    stream.on('response', (h) => {
      const status = Number(h[':status'] ?? 502);
      res.writeHead(status, endToEnd(h));
      stream.pipe(res);
    });
    stream.on('error', (err) => fail(failureOf(err)));
    stream.on('close', () => {
      if (!res.headersSent) fail(new UpstreamError('reset', `stream closed by the upstream before headers (code ${stream.rstCode})`));
    });
    res.once('close', () => {
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
    });
    req.pipe(stream);
    return;
  }
  // TLS options live in the agent: per-request ones would stop node reusing its connections.
  const options: Http.RequestOptions = {
    host,
    port,
    method: req.method ?? 'GET',
    path: target.path,
    headers: { ...headers, host: target.authority },
    agent: transport.agent,
  };
  const upstreamReq = transport.secure ? https.request(options) : http.request(options);
  upstreamReq.on('response', (upstreamRes) => {
    presented(presentedId(upstreamReq.socket));
    res.writeHead(upstreamRes.statusCode ?? 502, endToEnd(upstreamRes.headers));
    // Before pipe's own 'end' listener, which ends the response.
    upstreamRes.once('end', () => addTrailers(res, upstreamRes.trailers));
    upstreamRes.pipe(res);
    upstreamRes.on('error', () => res.destroy());
  });
  upstreamReq.on('error', (err) => fail(failureOf(err)));
  res.once('close', () => {
    if (!upstreamReq.destroyed && !res.writableFinished) upstreamReq.destroy();
  });
  req.once('end', () => addTrailers(upstreamReq, req.trailers));
  req.pipe(upstreamReq);
}

function addTrailers(to: Http.OutgoingMessage, trailers: Http.IncomingHttpHeaders): void {
  const t = endToEnd(trailers);
  if (Object.keys(t).length > 0) to.addTrailers(t as Record<string, string>);
}
