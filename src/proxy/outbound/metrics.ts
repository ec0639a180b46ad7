// What the outbound side counts, on the registry the proxy passes in. The
// Istio series carry reporter="source" (the inbound side reports
// "destination" into the same series); the meshward_ ones say why an
// upstream connection failed, so a secure-naming refusal and a dead endpoint
// do not look alike. When a series is already registered (by the inbound
// side, with its own choice of Istio's labels), samples keep only the labels
// it has; a failure to count is swallowed, never a failed request.
// Handshakes are counted once per handshake (dial.ts reports them), not per
// request that waited on one.

import { Counter, Histogram, type Registry } from '../../lib/prometheus.ts';
import type { Upstream, UpstreamEndpoint } from '../../api/proxy-config.ts';
import { DURATION_BUCKETS, tlsHandshakeSeries } from '../admin/series.ts';
import { metricOnce } from '../../lib/metrics.ts';
import { RequestSeries } from '../admin/request-series.ts';

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
  /** istio_requests_total and istio_request_duration_milliseconds. */
  request(labels: Record<(typeof REQUEST_LABELS)[number], string>, durationMs: number): void;
  /**
   * Counting for requests whose labels are `fixed` but for the response code
   * and flags (one upstream connection's): the label set is found once per
   * code and flags, not built and looked up per request.
   */
  requestCounter(fixed: ConnectionLabels & { readonly request_protocol: string }): (code: number, flags: string, durationMs: number) => void;
  tcpOpened(labels: ConnectionLabels): void;
  /** Closed, with the bytes received from the app and sent back to it. */
  tcpClosed(labels: ConnectionLabels, bytes: { readonly received: number; readonly sent: number }): void;
  handshakeSuccess(destinationService: string, ms: number): void;
  handshakeFailure(destinationService: string, check: string): void;
  upstreamFailure(destinationService: string, reason: UpstreamFailure): void;
}

/** What dial() reports about each TLS handshake it attempts. */
export interface HandshakeObserver {
  succeeded(ms: number): void;
  failed(check: string): void;
}

export function handshakeObserver(metrics: OutboundMetrics, destinationService: string): HandshakeObserver {
  return {
    succeeded: (ms) => metrics.handshakeSuccess(destinationService, ms),
    failed: (check) => metrics.handshakeFailure(destinationService, check),
  };
}

/** Who is calling: the workload this proxy serves. */
export interface Source {
  readonly workload: string;
  readonly namespace: string;
  /** The workload's SPIFFE ID. */
  readonly principal: string;
}

type ConnectionLabels = Record<(typeof TCP_LABELS)[number], string>;

const namespaces = new WeakMap<Upstream, string>();

/** The namespace in an upstream's `<name>.<namespace>.svc…` host, else "unknown"; read once per upstream. */
function hostNamespace(upstream: Upstream): string {
  let ns = namespaces.get(upstream);
  if (ns === undefined) {
    const labels = upstream.host.split('.');
    ns = labels.length >= 3 && labels[2] === 'svc' ? labels[1]! : 'unknown';
    namespaces.set(upstream, ns);
  }
  return ns;
}

/**
 * The labels every outbound sample carries. The destination principal is the
 * SPIFFE ID the server presented (`presented`, when the connection is known),
 * else the endpoint's only allowed identity when it has one (secure naming
 * then guarantees it), else "unknown", Istio's word for it.
 */
export function connectionLabels(
  source: Source,
  upstream: Upstream,
  endpoint: UpstreamEndpoint | null,
  security: string,
  presented: string | null = null,
): ConnectionLabels {
  const expected = endpoint !== null && endpoint.identities.length === 1 && security === 'mutual_tls' ? endpoint.identities[0]! : 'unknown';
  return {
    reporter: 'source',
    source_workload: source.workload,
    source_workload_namespace: source.namespace,
    source_principal: source.principal,
    destination_principal: presented ?? expected,
    destination_workload: 'unknown',
    destination_workload_namespace: hostNamespace(upstream),
    destination_service: upstream.host,
    destination_service_name: upstream.name,
    connection_security_policy: security,
  };
}


/** Keeps only the labels a series was registered with. */
function labelFilter(metric: Counter | Histogram): (labels: Record<string, string>) => Record<string, string> {
  const names = (metric as unknown as { labelNames?: readonly string[] }).labelNames;
  if (names === undefined) return (labels) => labels;
  const keep = new Set(names);
  return (labels) => Object.fromEntries(Object.entries(labels).filter(([k]) => keep.has(k)));
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
  // Our own request series (admin/request-series.ts) when the registry has
  // them or neither name; prom-client's when another side registered those.
  const series = RequestSeries.on(registry, REQUEST_LABELS, {
    requests: 'Requests, by reporter and response code.',
    duration: 'Request duration, by reporter: headers in to the last byte of the response.',
  });
  const requests = metricOnce(
    registry,
    'istio_requests_total',
    () => new Counter({ name: 'istio_requests_total', help: 'Requests, by reporter and response code.', labelNames: REQUEST_LABELS, registers }),
  );
  const duration = metricOnce(
    registry,
    'istio_request_duration_milliseconds',
    () =>
      new Histogram({
        name: 'istio_request_duration_milliseconds',
        help: 'Request duration, by reporter: headers in to the last byte of the response.',
        labelNames: REQUEST_LABELS,
        buckets: [...DURATION_BUCKETS],
        registers,
      }),
  );
  const tcpCounter = (name: string, help: string): Counter =>
    metricOnce(registry, name, () => new Counter({ name, help, labelNames: [...TCP_LABELS], registers })) as Counter;
  const tcpOpened = tcpCounter('istio_tcp_connections_opened_total', 'TCP connections opened, by reporter.');
  const tcpClosed = tcpCounter('istio_tcp_connections_closed_total', 'TCP connections closed, by reporter.');
  const tcpReceived = tcpCounter('istio_tcp_received_bytes_total', 'Bytes received from the caller on TCP connections, counted at close.');
  const tcpSent = tcpCounter('istio_tcp_sent_bytes_total', 'Bytes sent to the caller on TCP connections, counted at close.');
  const tls = tlsHandshakeSeries(registry);
  const handshakes = metricOnce(
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
  const failures = metricOnce(
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
  const requestLabels = labelFilter(requests as Counter);
  const durationLabels = labelFilter(duration as Histogram);
  const tcpLabels = labelFilter(tcpOpened);
  return {
    request(labels, ms) {
      if (series !== null) {
        let key = '';
        for (const name of REQUEST_LABELS) key += `${labels[name]}\n`;
        series.cell(key, () => ({ ...labels })).observe(ms);
        return;
      }
      safely(() => (requests as Counter).inc(requestLabels(labels)));
      safely(() => (duration as Histogram).observe(durationLabels(labels), ms));
    },
    requestCounter(fixed) {
      // The usual outcome (no response flags) keyed by the number: no string is made per request.
      const byCode = new Map<number, (ms: number) => void>();
      const byOutcome = new Map<string, (ms: number) => void>();
      return (code, flags, ms) => {
        const plain = flags === '-';
        let observe = plain ? byCode.get(code) : byOutcome.get(`${code}|${flags}`);
        if (observe === undefined) {
          const labels = { ...fixed, response_code: String(code), response_flags: flags };
          if (series !== null) {
            let key = '';
            for (const name of REQUEST_LABELS) key += `${labels[name]}\n`;
            const cell = series.cell(key, () => ({ ...labels }));
            observe = (d) => cell.observe(d);
          } else observe = (d) => this.request(labels, d);
          if (plain) byCode.set(code, observe);
          else byOutcome.set(`${code}|${flags}`, observe);
        }
        observe(ms);
      };
    },
    tcpOpened: (labels) => safely(() => tcpOpened.inc(tcpLabels(labels))),
    tcpClosed(labels, bytes) {
      const l = tcpLabels(labels);
      safely(() => tcpClosed.inc(l));
      safely(() => tcpReceived.inc(l, bytes.received));
      safely(() => tcpSent.inc(l, bytes.sent));
    },
    handshakeSuccess: (_destination, ms) => safely(() => tls.succeeded('outbound', ms)),
    handshakeFailure(destination_service, check) {
      safely(() => handshakes.inc({ destination_service, check }));
      safely(() => tls.failed('outbound'));
    },
    upstreamFailure: (destination_service, reason) => safely(() => failures.inc({ destination_service, reason })),
  };
}
