// What the outbound side counts, on the registry the proxy passes in. The
// Istio series carry reporter="source" (the inbound side reports
// "destination" into the same series); the meshward_ ones say why an
// upstream connection failed, so a secure-naming refusal and a dead endpoint
// do not look alike. When a series is already registered (by the inbound
// side, with its own choice of Istio's labels), samples keep only the labels
// it has; a failure to count is swallowed, never a failed request.

import { Counter, type Registry } from 'prom-client';
import type { Upstream, UpstreamEndpoint } from '../../api/proxy-config.ts';

/** Labels of istio_requests_total, a subset of Istio's standard set. */
export const REQUEST_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'destination_principal',
  'destination_workload',
  'destination_workload_namespace',
  'destination_service',
  'destination_service_name',
  'request_protocol',
  'response_code',
  'response_flags',
  'connection_security_policy',
] as const;

/** Labels of istio_tcp_connections_opened_total. */
export const TCP_LABELS = REQUEST_LABELS.filter(
  (l) => l !== 'request_protocol' && l !== 'response_code' && l !== 'response_flags',
) as readonly Exclude<(typeof REQUEST_LABELS)[number], 'request_protocol' | 'response_code' | 'response_flags'>[];

export type UpstreamFailure =
  | 'no-endpoint'
  | 'connect-refused'
  | 'connect-timeout'
  | 'handshake'
  | 'reset'
  | 'tls-mode-unsupported';

export interface OutboundMetrics {
  request(labels: Record<(typeof REQUEST_LABELS)[number], string>): void;
  tcpOpened(labels: ConnectionLabels): void;
  handshakeFailure(destinationService: string, check: string): void;
  upstreamFailure(destinationService: string, reason: UpstreamFailure): void;
}

/** Who is calling: the workload this proxy serves. */
export interface Source {
  readonly workload: string;
  readonly namespace: string;
  /** The workload's SPIFFE ID. */
  readonly principal: string;
}

type ConnectionLabels = Record<(typeof TCP_LABELS)[number], string>;

/**
 * The labels every outbound sample carries. The destination principal is the
 * endpoint's only allowed identity when it has one (secure naming then
 * guarantees it), else "unknown", Istio's word for it.
 */
export function connectionLabels(source: Source, upstream: Upstream, endpoint: UpstreamEndpoint | null, security: string): ConnectionLabels {
  const labels = upstream.host.split('.');
  return {
    reporter: 'source',
    source_workload: source.workload,
    source_workload_namespace: source.namespace,
    source_principal: source.principal,
    destination_principal: endpoint !== null && endpoint.identities.length === 1 && security === 'mutual_tls' ? endpoint.identities[0]! : 'unknown',
    destination_workload: 'unknown',
    destination_workload_namespace: labels.length >= 3 && labels[2] === 'svc' ? labels[1]! : 'unknown',
    destination_service: upstream.host,
    destination_service_name: upstream.name,
    connection_security_policy: security,
  };
}

/** Gets or creates a metric, so routers that share a registry share the series. */
function reuse<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create();
}

/** An inc that passes only the labels the series was registered with. */
function incrementer(counter: Counter): (labels: Record<string, string>) => void {
  const names = (counter as unknown as { labelNames?: readonly string[] }).labelNames;
  if (names === undefined) return (labels) => counter.inc(labels);
  const keep = new Set(names);
  return (labels) => counter.inc(Object.fromEntries(Object.entries(labels).filter(([k]) => keep.has(k))));
}

function safely(fn: () => void): void {
  try {
    fn();
  } catch {
    // A series registered with other labels: drop the sample, keep the request.
  }
}

export function createOutboundMetrics(registry: Registry): OutboundMetrics {
  const registers = [registry];
  const requests = reuse(
    registry,
    'istio_requests_total',
    () => new Counter({ name: 'istio_requests_total', help: 'Requests, by reporter and response code.', labelNames: REQUEST_LABELS, registers }),
  );
  const tcpOpened = reuse(
    registry,
    'istio_tcp_connections_opened_total',
    () =>
      new Counter({
        name: 'istio_tcp_connections_opened_total',
        help: 'TCP connections opened, by reporter.',
        labelNames: [...TCP_LABELS],
        registers,
      }),
  );
  const handshakes = reuse(
    registry,
    'meshward_outbound_handshake_failures_total',
    () =>
      new Counter({
        name: 'meshward_outbound_handshake_failures_total',
        help: 'Upstream TLS handshakes the proxy refused or that failed, by the check that refused them.',
        labelNames: ['destination_service', 'check'] as const,
        registers,
      }),
  );
  const failures = reuse(
    registry,
    'meshward_outbound_upstream_failures_total',
    () =>
      new Counter({
        name: 'meshward_outbound_upstream_failures_total',
        help: 'Requests and connections that never reached an upstream, by reason.',
        labelNames: ['destination_service', 'reason'] as const,
        registers,
      }),
  );
  const incRequests = incrementer(requests as Counter);
  const incTcpOpened = incrementer(tcpOpened as Counter);
  return {
    request: (labels) => safely(() => incRequests(labels)),
    tcpOpened: (labels) => safely(() => incTcpOpened(labels)),
    handshakeFailure: (destination_service, check) => safely(() => handshakes.inc({ destination_service, check })),
    upstreamFailure: (destination_service, reason) => safely(() => failures.inc({ destination_service, reason })),
  };
}
