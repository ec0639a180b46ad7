// Opaque TCP from the app to an upstream: one upstream connection per app
// connection, bytes piped both ways. `pipe` gives back-pressure (the app is
// paused while the upstream's buffer is full, and the other way round), and
// with allowHalfOpen on both sockets an end from either side is passed on as
// an end, while the other direction keeps flowing. Over mTLS the client
// offers only ALPN `istio`, so a mesh server treats the stream as opaque TCP.

import type * as net from 'node:net';
import type { Route } from './route.ts';
import { dial, presentedId, UpstreamError, type TlsOptionsCache } from './dial.ts';
import { connectionLabels, handshakeObserver, type OutboundMetrics, type Source } from './metrics.ts';

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
    // A handshake that was attempted has been counted by dial().
    ctx.metrics.upstreamFailure(upstream.host, err.reason);
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
    ctx.metrics.handshakeFailure(upstream.host, 'tls-handshake');
    refuse(new UpstreamError('handshake', err instanceof Error ? err.message : String(err)));
    return;
  }
  dial(picked.endpoint, options, ctx.timeoutMs, handshakeObserver(ctx.metrics, upstream.host)).then(
    (remote) => {
      ctx.track(remote);
      if (app.destroyed) {
        remote.destroy();
        picked.release();
        return;
      }
      const labels = connectionLabels(ctx.source, upstream, picked.endpoint, plan.security, presentedId(remote));
      ctx.metrics.tcpOpened(labels);
      let open = 2;
      const closed = (): void => {
        if (--open === 0) ctx.metrics.tcpClosed(labels, { received: app.bytesRead, sent: app.bytesWritten });
      };
      remote.once('close', closed);
      app.once('close', closed);
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
