// Opaque TCP from the app to an upstream: one upstream connection per app
// connection, bytes piped both ways. `pipe` gives back-pressure (the app is
// paused while the upstream's buffer is full, and the other way round), and
// with allowHalfOpen on both sockets an end from either side is passed on as
// an end, while the other direction keeps flowing. Over mTLS the client
// offers only ALPN `istio`, so a mesh server treats the stream as opaque TCP.

import type * as net from 'node:net';
import type { Route } from './route.ts';
import { dial, UpstreamError, type TlsOptionsCache } from './dial.ts';
import { connectionLabels, type OutboundMetrics, type Source } from './metrics.ts';

const TCP_ALPN: readonly string[] = Object.freeze(['istio']);

export interface TcpContext {
  readonly tlsOptions: () => TlsOptionsCache;
  readonly metrics: OutboundMetrics;
  readonly source: Source;
  readonly timeoutMs: number;
  /** Upstream sockets, so stop() can close them. */
  readonly track: (socket: net.Socket) => void;
}

export function forwardTcp(ctx: TcpContext, route: Route, app: net.Socket): void {
  const { upstream, plan } = route;
  app.pause();
  app.on('error', () => app.destroy());
  const refuse = (err: UpstreamError): void => {
    ctx.metrics.upstreamFailure(upstream.host, err.reason);
    if (err.reason === 'handshake') ctx.metrics.handshakeFailure(upstream.host, err.check ?? 'tls-handshake');
    // A reset tells the app the connection failed; a FIN would look like an empty reply.
    app.resetAndDestroy();
  };
  if (plan.kind === 'refuse') {
    refuse(new UpstreamError('tls-mode-unsupported', plan.reason));
    return;
  }
  const picked = route.balancer.pick();
  if (picked === null) {
    refuse(new UpstreamError('no-endpoint', `${upstream.name} has no endpoints`));
    return;
  }
  let options;
  try {
    options = ctx.tlsOptions().get(plan, upstream, picked.endpoint, TCP_ALPN);
  } catch (err) {
    picked.release();
    refuse(new UpstreamError('handshake', err instanceof Error ? err.message : String(err)));
    return;
  }
  dial(picked.endpoint, options, ctx.timeoutMs).then(
    (remote) => {
      ctx.track(remote);
      if (app.destroyed) {
        remote.destroy();
        picked.release();
        return;
      }
      ctx.metrics.tcpOpened(connectionLabels(ctx.source, upstream, picked.endpoint, plan.security));
      remote.on('error', () => app.destroy());
      app.on('error', () => remote.destroy());
      // A clean close has already passed its end on through the pipe; only
      // an error close cuts the other side short.
      remote.on('close', (hadError: boolean) => {
        picked.release();
        if (hadError) app.destroy();
        else app.end();
      });
      app.on('close', (hadError: boolean) => {
        if (hadError) remote.destroy();
        else remote.end();
      });
      app.pipe(remote);
      remote.pipe(app);
      app.resume();
    },
    (err: unknown) => {
      picked.release();
      refuse(err instanceof UpstreamError ? err : new UpstreamError('reset', String(err)));
    },
  );
}
