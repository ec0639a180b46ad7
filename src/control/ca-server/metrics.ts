// What the CA server counts beyond the CA's own metrics (ca/metrics.ts,
// registered on the same registry). Istio's
// citadel_server_authentication_failure_count is the server's, since the
// server authenticates callers; it gains `reason` (replayed, expired,
// wrong-audience, bad-signature, no-credentials, …) and `authenticator`, so
// a replay attack and a clock problem do not look alike. Summing over the
// labels gives Istio's series.

import { Counter, Gauge, type Registry } from '../../lib/prometheus.ts';
import { metricOnce } from '../../lib/metrics.ts';

export interface CaServerMetrics {
  /**
   * Counts a refused caller. Istio counts every CSR received, authenticated
   * or not; the CA counts those it is asked to sign, so the server adds the
   * ones it turned away to the CA's citadel_server_csr_count.
   */
  authnFailure(authenticator: string, reason: string, method: string): void;
  response(method: string, code: string): void;
  nack(): void;
}

export interface GaugeSources {
  agents(): { connected: number; counted: number; total: number };
  bundleVersion(): number;
  rotationPhase(): string;
}

const liveSources = new WeakMap<Registry, GaugeSources>();


export function createCaServerMetrics(registry: Registry, sources: GaugeSources): CaServerMetrics {
  const registers = [registry];
  const authn = metricOnce(
    registry,
    'citadel_server_authentication_failure_count',
    () =>
      new Counter({
        name: 'citadel_server_authentication_failure_count',
        help: 'The number of authentication failures.',
        labelNames: ['authenticator', 'reason'] as const,
        registers,
      }),
  );
  const responses = metricOnce(
    registry,
    'meshward_ca_server_responses_total',
    () =>
      new Counter({
        name: 'meshward_ca_server_responses_total',
        help: 'CA server calls by method and gRPC status code.',
        labelNames: ['method', 'code'] as const,
        registers,
      }),
  );
  const nacks = metricOnce(
    registry,
    'meshward_ca_server_bundle_nacks_total',
    () =>
      new Counter({
        name: 'meshward_ca_server_bundle_nacks_total',
        help: 'Trust bundles agents reported they could not apply.',
        registers,
      }),
  );
  // Gauges read the live server at scrape time; a restarted server on the
  // same registry takes over the slot from the stopped one.
  liveSources.set(registry, sources);
  const read = (): GaugeSources | undefined => liveSources.get(registry);
  metricOnce(
    registry,
    'meshward_ca_server_agents',
    () =>
      new Gauge({
        name: 'meshward_ca_server_agents',
        help: 'Agents known to the CA server, by state: connected now, counted by root rotation, all.',
        labelNames: ['state'] as const,
        registers,
        collect() {
          const a = read()?.agents();
          if (!a) return;
          this.set({ state: 'connected' }, a.connected);
          this.set({ state: 'counted' }, a.counted);
          this.set({ state: 'total' }, a.total);
        },
      }),
  );
  metricOnce(
    registry,
    'meshward_ca_server_trust_bundle_version',
    () =>
      new Gauge({
        name: 'meshward_ca_server_trust_bundle_version',
        help: 'Version of the trust bundle being served.',
        registers,
        collect() {
          const s = read();
          if (s) this.set(s.bundleVersion());
        },
      }),
  );
  metricOnce(
    registry,
    'meshward_ca_server_root_rotation_phase',
    () =>
      new Gauge({
        name: 'meshward_ca_server_root_rotation_phase',
        help: 'Root rotation phase: 1 for the current phase.',
        labelNames: ['phase'] as const,
        registers,
        collect() {
          const s = read();
          if (!s) return;
          this.reset();
          this.set({ phase: s.rotationPhase() }, 1);
        },
      }),
  );

  const csrCount = () => registry.getSingleMetric('citadel_server_csr_count') as Counter | undefined;

  return {
    authnFailure(authenticator, reason, method) {
      authn.inc({ authenticator, reason });
      if (method === 'CreateCertificate') csrCount()?.inc();
    },
    response: (method, code) => responses.inc({ method, code }),
    nack: () => nacks.inc(),
  };
}
