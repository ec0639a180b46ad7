// The series of the inbound limits (src/proxy/inbound/limits.ts): one
// counter of rejections labelled by the limit that refused, and a gauge of
// the downstream connections open. Every label value is created at zero, so
// a dashboard sees the series before the first rejection.
//
// Envoy counts the same events under these stats (docs/inbound.md, "Limits"):
// header_size, header_count → http.<prefix>.downstream_rq_4xx with 431;
// header_timeout → downstream_rq_header_timeout; request_timeout →
// downstream_rq_timeout; idle_timeout → downstream_cx_idle_timeout;
// max_connections → overload.global_downstream_max_connections rejections;
// handshake_timeout → downstream_pre_cx_timeout.

import { Counter, Gauge, type Registry } from '../../lib/prometheus.ts';

export const LIMIT_NAMES = ['header_size', 'header_count', 'header_timeout', 'request_timeout', 'idle_timeout', 'max_connections', 'handshake_timeout'] as const;

export type LimitName = (typeof LIMIT_NAMES)[number];

export interface LimitSeries {
  exceeded(limit: LimitName): void;
  /** The number of downstream connections open now, across the proxy's inbound ports. */
  downstreamConnections(open: number): void;
}

export function limitSeries(registry: Registry): LimitSeries {
  const exceeded = new Counter({
    name: 'meshward_proxy_limit_exceeded_total',
    help: 'Inbound requests or connections refused or closed by a limit, by the limit',
    labelNames: ['limit'],
    registers: [registry],
  });
  for (const limit of LIMIT_NAMES) exceeded.inc({ limit }, 0);
  const open = new Gauge({ name: 'meshward_proxy_downstream_connections', help: 'Downstream (inbound) connections open', registers: [registry] });
  return {
    exceeded: (limit) => exceeded.inc({ limit }),
    downstreamConnections: (n) => open.set(n),
  };
}
