// The proxy's metrics, in Istio's names and labels so that dashboards and
// alerts written for Istio sidecars read them unchanged. One registry per
// proxy: several proxies can share a process without mixing their counts.

import { Counter, Histogram, Registry } from 'prom-client';

export interface RequestLabels {
  readonly source_principal: string;
  readonly destination_principal: string;
  readonly destination_workload: string;
  readonly destination_workload_namespace: string;
  readonly response_code: string;
  readonly connection_security_policy: 'mutual_tls' | 'none';
  readonly request_protocol: string;
}

export interface ProxyMetrics {
  readonly registry: Registry;
  request(labels: RequestLabels, durationMs: number): void;
  tcpOpened(labels: Omit<RequestLabels, 'response_code' | 'request_protocol'>): void;
  tcpClosed(labels: Omit<RequestLabels, 'response_code' | 'request_protocol'>): void;
  handshakeFailed(reason: string): void;
}

const REQUEST_LABELS = [
  'reporter',
  'source_principal',
  'destination_principal',
  'destination_workload',
  'destination_workload_namespace',
  'response_code',
  'connection_security_policy',
  'request_protocol',
] as const;
const TCP_LABELS = REQUEST_LABELS.filter((l) => l !== 'response_code' && l !== 'request_protocol');

export function createProxyMetrics(): ProxyMetrics {
  const registry = new Registry();
  const requests = new Counter({ name: 'istio_requests_total', help: 'Requests handled by the inbound proxy', labelNames: REQUEST_LABELS, registers: [registry] });
  const duration = new Histogram({
    name: 'istio_request_duration_milliseconds',
    help: 'Request duration as seen by the inbound proxy',
    labelNames: REQUEST_LABELS,
    buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000],
    registers: [registry],
  });
  const opened = new Counter({ name: 'istio_tcp_connections_opened_total', help: 'TCP connections opened', labelNames: TCP_LABELS, registers: [registry] });
  const closed = new Counter({ name: 'istio_tcp_connections_closed_total', help: 'TCP connections closed', labelNames: TCP_LABELS, registers: [registry] });
  const handshakes = new Counter({
    name: 'meshward_tls_handshake_failures_total',
    help: 'Inbound mTLS handshakes refused, by the check that refused them',
    labelNames: ['reason'],
    registers: [registry],
  });
  return {
    registry,
    request(labels, ms) {
      const l = { reporter: 'destination', ...labels };
      requests.inc(l);
      duration.observe(l, ms);
    },
    tcpOpened: (labels) => opened.inc({ reporter: 'destination', ...labels }),
    tcpClosed: (labels) => closed.inc({ reporter: 'destination', ...labels }),
    handshakeFailed: (reason) => handshakes.inc({ reason }),
  };
}
