// The agent's metrics, under the names Istio's agent exports (pilot-agent
// prefixes istio_agent_): the time left on the workload certificate
// (security/pkg/nodeagent/cache: cert_expiry_seconds, resource_name
// "default") and the outgoing CSR calls (num_outgoing_requests,
// num_failed_outgoing_requests, outgoing_latency with request_type "csr").
// meshward adds the expiry as a timestamp, which alerts can compare with
// time() without knowing when the scrape happened, and `spiffe_id`, since
// one process (a test, a node agent) may run several agents on one registry.

import { Counter, Gauge, type Registry } from '../../lib/prometheus.ts';
import { metricOnce } from '../../lib/metrics.ts';

export interface AgentMetricsSource {
  spiffeId: string;
  /** Unix ms, or undefined before the first certificate. */
  notAfter(): number | undefined;
  now(): number;
}

export interface AgentMetrics {
  csrRequest(ok: boolean, latencyMs: number): void;
  /** Stops reporting this agent's expiry. */
  detach(): void;
}

const RESOURCE = 'default';
const sources = new WeakMap<Registry, Set<AgentMetricsSource>>();


export function createAgentMetrics(registry: Registry, source: AgentMetricsSource): AgentMetrics {
  let set = sources.get(registry);
  if (!set) {
    set = new Set();
    sources.set(registry, set);
  }
  set.add(source);
  const registers = [registry];
  const live = (): Set<AgentMetricsSource> => sources.get(registry) ?? new Set();

  metricOnce(
    registry,
    'istio_agent_cert_expiry_seconds',
    () =>
      new Gauge({
        name: 'istio_agent_cert_expiry_seconds',
        help: 'The time remaining, in seconds, before the certificate chain will expire. A negative value indicates the cert is expired.',
        labelNames: ['resource_name', 'spiffe_id'] as const,
        registers,
        collect() {
          this.reset();
          for (const s of live()) {
            const t = s.notAfter();
            if (t !== undefined) this.set({ resource_name: RESOURCE, spiffe_id: s.spiffeId }, (t - s.now()) / 1000);
          }
        },
      }),
  );
  metricOnce(
    registry,
    'meshward_agent_cert_expiry_timestamp_seconds',
    () =>
      new Gauge({
        name: 'meshward_agent_cert_expiry_timestamp_seconds',
        help: 'Unix time, in seconds, at which the workload certificate expires.',
        labelNames: ['resource_name', 'spiffe_id'] as const,
        registers,
        collect() {
          this.reset();
          for (const s of live()) {
            const t = s.notAfter();
            if (t !== undefined) this.set({ resource_name: RESOURCE, spiffe_id: s.spiffeId }, Math.floor(t / 1000));
          }
        },
      }),
  );
  const requests = metricOnce(
    registry,
    'istio_agent_num_outgoing_requests',
    () =>
      new Counter({
        name: 'istio_agent_num_outgoing_requests',
        help: 'Number of total outgoing requests (e.g. to a token exchange server, CA, etc.)',
        labelNames: ['request_type'] as const,
        registers,
      }),
  );
  const failed = metricOnce(
    registry,
    'istio_agent_num_failed_outgoing_requests',
    () =>
      new Counter({
        name: 'istio_agent_num_failed_outgoing_requests',
        help: 'Number of failed outgoing requests (e.g. to a token exchange server, CA, etc.)',
        labelNames: ['request_type'] as const,
        registers,
      }),
  );
  const latency = metricOnce(
    registry,
    'istio_agent_outgoing_latency',
    () =>
      new Counter({
        name: 'istio_agent_outgoing_latency',
        help: 'The latency of outgoing requests (e.g. to a token exchange server, CA, etc.) in milliseconds.',
        labelNames: ['request_type'] as const,
        registers,
      }),
  );

  return {
    csrRequest(ok, latencyMs) {
      requests.inc({ request_type: 'csr' });
      latency.inc({ request_type: 'csr' }, latencyMs);
      if (!ok) failed.inc({ request_type: 'csr' });
    },
    detach() {
      sources.get(registry)?.delete(source);
    },
  };
}
