// What every inbound listener shares with its proxy.

import type { Agent } from 'node:http';
import type { ClientHttp2Session } from 'node:http2';
import type { AccessLogSink } from '../access-log.ts';
import type { ProxyMetrics } from '../admin/metrics.ts';
import type { ProxySnapshot } from '../snapshot.ts';
import type { DownstreamConnections } from './limits.ts';
import type { Tracer } from '../tracing/tracer.ts';
import type { H1Pool } from '../http1/pool.ts';

/** Facts about one downstream connection, fixed when it is accepted. */
export interface ConnectionInfo {
  /** The configured (workload) port it arrived on. */
  readonly port: number;
  readonly mtls: boolean;
  /** Arrived on a gateway's external TLS port (PeerAuthentication does not apply). */
  readonly ingress: boolean;
  /** Peer principal without `spiffe://`; null without mTLS. */
  readonly principal: string | null;
  /** Hex SHA-256 of the peer leaf's DER (for x-forwarded-client-cert). */
  readonly peerCertHash: string | null;
  readonly remoteIp: string;
  readonly localIp: string | undefined;
  readonly snapshot: ProxySnapshot;
}

export interface InboundContext {
  snapshot(): ProxySnapshot;
  readonly metrics: ProxyMetrics;
  readonly log: AccessLogSink;
  /** This workload's SPIFFE ID, URI form. */
  readonly selfId: string;
  /** Keep-alive connections to the app for HTTP/1.1. */
  readonly appAgent: Agent;
  /** Keep-alive connections to the app for the HTTP/1.1 fast lane, keyed by app port. */
  readonly appPool: H1Pool;
  /** A shared HTTP/2 (h2c) session to the app on `appPort`. */
  h2Session(appPort: number): ClientHttp2Session;
  /** Downstream connections open across the proxy's inbound ports (limits.ts). */
  readonly connections: DownstreamConnections;
  /** The tracer in force; null when the config has no `tracing`. */
  tracer(): Tracer | null;
}
