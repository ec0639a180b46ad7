// The proxy's metrics, in Istio's names and labels so that dashboards and
// alerts written for Istio sidecars read them unchanged. One registry per
// proxy: several proxies can share a process without mixing their counts.
// The Istio series carry Istio's standard labels, the same set for both
// directions (the outbound router reports reporter="source" into them). The
// inbound side learns the caller's workload name for HTTP from the calling
// proxy (x-meshward-peer-workload, ../peer-workload.ts: set by that proxy,
// never by its app, believed only on an mTLS connection from a mesh peer);
// what it cannot know is "unknown", as in Istio without peer metadata: the
// workload of a plaintext or non-mesh caller and of every TCP connection,
// and the service it was addressed as.

import { Counter, Registry } from '../../lib/prometheus.ts';
import { REQUEST_LABELS, TCP_LABELS } from '../outbound/metrics.ts';
import { tlsHandshakeSeries } from './series.ts';
import { RequestSeries, type RequestCell } from './request-series.ts';
import { limitSeries, type LimitSeries } from './limit-metrics.ts';

export interface RequestLabels {
  /** The caller's workload as its proxy named it, or 'unknown'. */
  readonly source_workload: string;
  readonly source_principal: string;
  readonly destination_principal: string;
  readonly destination_workload: string;
  readonly destination_workload_namespace: string;
  /** The workload's service host, or 'unknown' when its config names none. */
  readonly destination_service: string;
  readonly response_code: string;
  readonly connection_security_policy: 'mutual_tls' | 'none';
  readonly request_protocol: string;
}

/** A TCP connection carries no header to name its caller's workload: source_workload is always "unknown". */
export type TcpLabels = Omit<RequestLabels, 'source_workload' | 'response_code' | 'request_protocol'>;

/** Bytes of one TCP connection, as Istio counts them: received from the caller, sent back to it. */
export interface TcpBytes {
  readonly received: number;
  readonly sent: number;
}

export interface ProxyMetrics {
  readonly registry: Registry;
  /** Rejections by the inbound limits, and the open downstream connections (limit-metrics.ts). */
  readonly limits: LimitSeries;
  request(labels: RequestLabels, durationMs: number): void;
  /** Counting for requests whose labels are `fixed` but for the response code (one connection's): the label set is found once per code. */
  requestCounter(fixed: Omit<RequestLabels, 'response_code'>): (code: number, durationMs: number) => void;
  tcpOpened(labels: TcpLabels): void;
  tcpClosed(labels: TcpLabels, bytes?: TcpBytes): void;
  /** A mesh mTLS handshake the inbound side completed and accepted, and how long it took. */
  handshakeSucceeded(ms: number): void;
  handshakeFailed(reason: string): void;
}

/** The namespace of a principal `spiffe://td/ns/<ns>/sa/<sa>`, else "unknown". */
function principalNamespace(principal: string): string {
  const m = /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\//.exec(principal);
  return m === null ? 'unknown' : m[1]!;
}

/** The labels the inbound side does not know, filled in the way Istio fills them without peer metadata; a request's source_workload is its own. */
function inboundDefaults(labels: TcpLabels | RequestLabels): Record<string, string> {
  return {
    reporter: 'destination',
    source_workload: 'source_workload' in labels ? labels.source_workload : 'unknown',
    source_workload_namespace: principalNamespace(labels.source_principal),
    destination_service_name: labels.destination_service === 'unknown' ? 'unknown' : labels.destination_service.split('.', 1)[0]!,
    ...labels,
  };
}

/** A request's cell key: every label that varies; the rest follow from these. */
function inboundKey(l: RequestLabels): string {
  return `destination\n${l.source_workload}\n${l.source_principal}\n${l.destination_principal}\n${l.destination_workload_namespace}\n${l.destination_workload}\n${l.destination_service}\n${l.response_code}\n${l.connection_security_policy}\n${l.request_protocol}`;
}

export function createProxyMetrics(): ProxyMetrics {
  const registry = new Registry();
  // A fresh registry: the series are these.
  const series = RequestSeries.on(registry, REQUEST_LABELS, {
    requests: 'Requests, by reporter and response code',
    duration: 'Request duration, by reporter: headers in to the last byte of the response',
  })!;
  const opened = new Counter({ name: 'istio_tcp_connections_opened_total', help: 'TCP connections opened', labelNames: TCP_LABELS, registers: [registry] });
  const closed = new Counter({ name: 'istio_tcp_connections_closed_total', help: 'TCP connections closed', labelNames: TCP_LABELS, registers: [registry] });
  const received = new Counter({ name: 'istio_tcp_received_bytes_total', help: 'Bytes received from the caller on TCP connections, counted at close', labelNames: TCP_LABELS, registers: [registry] });
  const sent = new Counter({ name: 'istio_tcp_sent_bytes_total', help: 'Bytes sent to the caller on TCP connections, counted at close', labelNames: TCP_LABELS, registers: [registry] });
  const tls = tlsHandshakeSeries(registry);
  const handshakes = new Counter({
    name: 'meshward_tls_handshake_failures_total',
    help: 'Inbound mTLS handshakes refused, by the check that refused them',
    labelNames: ['reason'],
    registers: [registry],
  });
  const limits = limitSeries(registry);
  return {
    registry,
    limits,
    request(labels, ms) {
      series.cell(inboundKey(labels), () => ({ ...inboundDefaults(labels), response_flags: '-' })).observe(ms);
    },
    requestCounter(fixed) {
      // Keyed by the number: no string is made per request.
      const byCode = new Map<number, RequestCell>();
      return (code, ms) => {
        let cell = byCode.get(code);
        if (cell === undefined) {
          const labels: RequestLabels = { ...fixed, response_code: String(code) };
          cell = series.cell(inboundKey(labels), () => ({ ...inboundDefaults(labels), response_flags: '-' }));
          byCode.set(code, cell);
        }
        cell.observe(ms);
      };
    },
    tcpOpened: (labels) => opened.inc(inboundDefaults(labels)),
    tcpClosed(labels, bytes) {
      const l = inboundDefaults(labels);
      closed.inc(l);
      if (bytes !== undefined) {
        received.inc(l, bytes.received);
        sent.inc(l, bytes.sent);
      }
    },
    handshakeSucceeded: (ms) => tls.succeeded('inbound', ms),
    handshakeFailed(reason) {
      handshakes.inc({ reason });
      tls.failed('inbound');
    },
  };
}
