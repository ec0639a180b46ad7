// Forwards one HTTP/1.1 request from the app to an upstream: pick an
// endpoint, get a connection from the pool, send the request as HTTP/2 (or
// HTTP/1.1 where the server does not speak h2), stream both bodies with
// back-pressure. Every failure before response headers becomes a 503 in the
// words Envoy uses, with what failed after them; after headers, the app's
// connection is reset, as Envoy does. Nothing here throws to the listener.

import * as http from 'node:http';
import * as https from 'node:https';
import * as http2 from 'node:http2';
import type { Route } from './route.ts';
import type { ConnectionPool, Transport } from './pool.ts';
import { UpstreamError } from './dial.ts';
import { PeerRefusedError, refusalOf } from '../../identity/tls-options.ts';
import { endToEnd } from './headers.ts';
import { connectionLabels, type OutboundMetrics, type Source, type UpstreamFailure } from './metrics.ts';
import type { UpstreamEndpoint } from '../../api/proxy-config.ts';

export interface ForwardContext {
  readonly pool: ConnectionPool;
  readonly metrics: OutboundMetrics;
  readonly source: Source;
}

export const CONNECT_ERROR_BODY = 'upstream connect error or disconnect/reset before headers';

function failureOf(err: unknown): UpstreamError {
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

/** Counts an upstream failure once, with its handshake check when there is one. */
export function countFailure(ctx: ForwardContext, host: string, err: UpstreamError): void {
  ctx.metrics.upstreamFailure(host, err.reason);
  if (err.reason === 'handshake') ctx.metrics.handshakeFailure(host, err.check ?? 'tls-handshake');
}

/** The 503 body the app sees, in Envoy's words, with the reason appended. */
export function failureBody(err: UpstreamError): string {
  return `${CONNECT_ERROR_BODY}. reset reason: ${err.reason}: ${err.message}\n`;
}

export function forwardHttp(
  ctx: ForwardContext,
  route: Route,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  target: { authority: string; path: string },
): void {
  const { upstream, plan } = route;
  let flags = '-';
  let endpoint: UpstreamEndpoint | null = null;
  const count = (): void =>
    ctx.metrics.request({
      ...connectionLabels(ctx.source, upstream, endpoint, plan.security),
      request_protocol: upstream.protocol === 'grpc' ? 'grpc' : 'http',
      response_code: String(res.statusCode),
      response_flags: flags,
    });
  // Counted when the response is handed to the kernel, before the app can
  // read it; a response cut short counts on close.
  res.once('finish', count);
  res.once('close', () => {
    if (!res.writableFinished) count();
  });

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

  if (plan.kind === 'refuse') {
    fail(new UpstreamError('tls-mode-unsupported', plan.reason));
    return;
  }
  const picked = route.balancer.pick();
  if (picked === null) {
    fail(new UpstreamError('no-endpoint', `${upstream.name} has no endpoints`));
    return;
  }
  endpoint = picked.endpoint;
  res.once('close', picked.release);
  ctx.pool.get(plan, upstream, picked.endpoint).then(
    (transport) => {
      if (res.destroyed) return;
      try {
        send(transport, req, res, target, fail, picked.endpoint.host, picked.endpoint.port);
      } catch (err) {
        fail(failureOf(err));
      }
    },
    (err: unknown) => fail(failureOf(err)),
  );
}

function send(
  transport: Transport,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  target: { authority: string; path: string },
  fail: (err: UpstreamError) => void,
  host: string,
  port: number,
): void {
  const headers = endToEnd(req.headers);
  if (transport.kind === 'h2') {
    const stream = transport.session.request({
      ...headers,
      ':method': req.method ?? 'GET',
      ':path': target.path,
      ':authority': target.authority,
      ':scheme': 'http',
    });
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
  const options: https.RequestOptions = {
    ...(transport.tls ?? {}),
    host,
    port,
    method: req.method ?? 'GET',
    path: target.path,
    headers: { ...headers, host: target.authority },
    agent: transport.agent,
  };
  const upstreamReq = transport.tls === null ? http.request(options) : https.request(options);
  upstreamReq.on('response', (upstreamRes) => {
    res.writeHead(upstreamRes.statusCode ?? 502, endToEnd(upstreamRes.headers));
    upstreamRes.pipe(res);
    upstreamRes.on('error', () => res.destroy());
  });
  upstreamReq.on('error', (err) => fail(failureOf(err)));
  res.once('close', () => {
    if (!upstreamReq.destroyed && !res.writableFinished) upstreamReq.destroy();
  });
  req.pipe(upstreamReq);
}
