// Forwards one HTTP/2 stream from the app (h2c on a local port, as gRPC
// clients speak it) to an upstream HTTP/2 session, trailers included: the
// response is opened with waitForTrailers and the upstream's trailers
// (grpc-status, grpc-message) are sent when its body ends. An upstream that
// only speaks HTTP/1.1 cannot carry trailers, so such a stream is refused
// with 503 rather than sent without them.

import { performance } from 'node:perf_hooks';
import * as http2 from 'node:http2';
import type { Route } from './route.ts';
import { UpstreamError } from './dial.ts';
import { endToEnd, requestHeaders } from './headers.ts';
import { FLAGS, countFailure, dialRoute, failureBody, peerWorkloadFor, type ForwardContext } from './http-forward.ts';
import { connectionLabels } from './metrics.ts';
import type { UpstreamEndpoint } from '../../api/proxy-config.ts';
import { endClientSpan, startClientSpan } from '../tracing/hop.ts';

export function forwardH2Stream(
  ctx: ForwardContext,
  route: Route,
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
): void {
  const { upstream, plan } = route;
  const started = performance.now();
  let status = 0;
  let endpoint: UpstreamEndpoint | null = null;
  let peer: string | null = null;
  let flags = '-';
  stream.once('close', () =>
    ctx.metrics.request(
      {
        ...connectionLabels(ctx.source, upstream, endpoint, plan.security, peer),
        request_protocol: upstream.protocol === 'grpc' ? 'grpc' : 'http',
        response_code: String(status),
        response_flags: flags,
      },
      performance.now() - started,
    ),
  );
  stream.on('error', () => undefined);
  // A CLIENT span continues the app's trace; the upstream gets it as parent.
  const tracer = ctx.tracer ?? null;
  if (tracer !== null) {
    const span = startClientSpan(tracer, headers, upstream);
    span.inject(headers);
    stream.once('close', () =>
      endClientSpan(span, status, {
        method: headers[':method'] ?? 'GET', authority: headers[':authority'] ?? upstream.host, path: headers[':path'] ?? '/', upstream, endpoint, httpVersion: '2.0', flags, security: plan.security,
      }),
    );
  }

  let failed = false;
  const fail = (err: UpstreamError): void => {
    if (failed) return;
    failed = true;
    countFailure(ctx, upstream.host, err);
    if (stream.destroyed) return;
    if (stream.headersSent) {
      stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    status = 503;
    flags = FLAGS[err.reason];
    stream.respond({ ':status': 503, 'content-type': 'text/plain; charset=utf-8' });
    stream.end(failureBody(err));
    stream.resume();
  };

  endpoint = dialRoute(ctx, route, stream, fail, (transport, picked) => {
    if (transport.kind !== 'h2') {
      fail(new UpstreamError('reset', `the server at ${picked.host}:${picked.port} does not speak HTTP/2`));
      return;
    }
    peer = transport.peer;
    // A session that went away meanwhile throws here; dialRoute turns that into a 503.
    const up = transport.session.request({
      ...requestHeaders(headers, peerWorkloadFor(ctx, route)),
      ':method': headers[':method'] ?? 'GET',
      ':path': headers[':path'] ?? '/',
      ':authority': headers[':authority'] ?? upstream.host,
      ':scheme': 'http',
    });
    let trailers: http2.OutgoingHttpHeaders = {};
    up.on('trailers', (t) => {
      trailers = endToEnd(t);
    });
    up.on('response', (h) => {
      status = Number(h[':status'] ?? 502);
      stream.respond({ ...endToEnd(h), ':status': status }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers(trailers));
      up.pipe(stream);
    });
    up.on('error', (err) => fail(new UpstreamError('reset', `reset by the upstream: ${err.message}`)));
    up.on('close', () => {
      if (!stream.headersSent) fail(new UpstreamError('reset', `stream reset by the upstream (code ${up.rstCode})`));
    });
    stream.once('close', () => {
      if (!up.closed) up.close(http2.constants.NGHTTP2_CANCEL);
    });
    stream.pipe(up);
  });
}
