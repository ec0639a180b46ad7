// One inbound TCP connection: authorize on L4 facts, then relay bytes both
// ways to the app. pipe() gives back-pressure; with allowHalfOpen on both
// sides, a FIN from either end is passed on and the other direction keeps
// flowing until it ends too. A denial is a closed connection, as in Envoy.

import { performance } from 'node:perf_hooks';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { InboundPort } from '../../api/proxy-config.ts';
import type { Decision } from '../../policy/decision.ts';
import { destinationOf } from '../snapshot.ts';
import type { ConnectionInfo, InboundContext } from './context.ts';

export function handleInboundTcp(socket: Duplex, info: ConnectionInfo, port: InboundPort, ctx: InboundContext): void {
  const started = performance.now();
  const snap = info.snapshot;
  const w = snap.config.workload;
  const labels = {
    source_principal: info.principal === null ? 'unknown' : `spiffe://${info.principal}`,
    destination_principal: ctx.selfId,
    destination_workload: w.name,
    destination_workload_namespace: w.namespace,
    destination_service: w.service ?? 'unknown',
    connection_security_policy: info.mtls ? ('mutual_tls' as const) : ('none' as const),
  };
  const log = (d: Decision | null, code: 200 | 'reset'): void =>
    ctx.log({
      time: new Date().toISOString(),
      workload: `${w.namespace}/${w.name}`,
      port: info.port,
      protocol: 'tcp',
      responseCode: code,
      decision: d?.decision ?? 'DENY',
      stage: d?.stage ?? null,
      policy: d?.policy ?? null,
      principal: info.principal,
      ...(d !== null && d.decision === 'DENY' ? { reason: d.reason } : {}),
      durationMs: Math.round((performance.now() - started) * 1000) / 1000,
      mtls: info.mtls,
    });

  const decision = snap.engine.decide({
    destination: destinationOf(snap, info.port, info.localIp),
    connection: { mtls: info.mtls, principal: info.principal, clientNamespace: null, ip: info.remoteIp },
    request: { protocol: 'tcp' },
  });
  const proceed = (d: Decision): void => {
    if (d.decision === 'DENY') {
      socket.destroy();
      log(d, 'reset');
      return;
    }
    ctx.metrics.tcpOpened(labels);
    const app: Socket = connect({ host: '127.0.0.1', port: port.appPort, allowHalfOpen: true });
    let closed = 0;
    const onClose = (): void => {
      if (++closed === 2) {
        // What the app was written is what the caller sent; what it said, what the caller received.
        ctx.metrics.tcpClosed(labels, { received: app.bytesWritten, sent: app.bytesRead });
        log(d, 200);
      }
    };
    app.on('error', () => socket.destroy());
    socket.on('error', () => app.destroy());
    app.on('close', () => {
      socket.destroy();
      onClose();
    });
    socket.on('close', () => {
      app.destroy();
      onClose();
    });
    socket.pipe(app);
    app.pipe(socket);
  };
  if (decision instanceof Promise) decision.then(proceed, () => socket.destroy());
  else proceed(decision);
}
