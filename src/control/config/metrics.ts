// The control plane's metrics, with istiod's names where istiod has one:
// pilot_proxy_convergence_time (a change seen → the proxy ACKed it),
// pilot_xds_pushes, pilot_xds (connected proxies), pilot_total_xds_rejects
// (NACKs). Config validation outcomes are meshward's own.

import { Counter, Gauge, Histogram, type Registry } from '../../lib/prometheus.ts';

export interface ConfigMetrics {
  converged(seconds: number): void;
  pushed(): void;
  rejectedByProxy(): void;
  reload(result: 'applied' | 'rejected'): void;
  setInvalid(invalid: boolean): void;
}

export function createConfigMetrics(registry: Registry, connected: () => number): ConfigMetrics {
  const convergence = new Histogram({
    name: 'pilot_proxy_convergence_time',
    help: 'Seconds from a configuration change being seen to the proxy acknowledging the push that carries it',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 3, 5, 10, 20, 30],
    registers: [registry],
  });
  const pushes = new Counter({ name: 'pilot_xds_pushes', help: 'Configuration pushes sent to proxies', labelNames: ['type'], registers: [registry] });
  const rejects = new Counter({ name: 'pilot_total_xds_rejects', help: 'Pushes a proxy refused (NACK)', labelNames: ['type'], registers: [registry] });
  new Gauge({
    name: 'pilot_xds',
    help: 'Proxies connected to the config stream',
    labelNames: ['version'],
    registers: [registry],
    collect() {
      this.reset();
      this.set({ version: 'meshward' }, connected());
    },
  });
  const reloads = new Counter({
    name: 'meshward_config_reloads_total',
    help: 'Loads of the policy directory, by result (rejected: an invalid file; the previous config stays)',
    labelNames: ['result'],
    registers: [registry],
  });
  const invalid = new Gauge({ name: 'meshward_config_invalid', help: '1 while the policy directory holds an invalid file (the last good config is in force)', registers: [registry] });
  invalid.set(0);
  return {
    converged: (s) => convergence.observe(s),
    pushed: () => pushes.inc({ type: 'proxyconfig' }),
    rejectedByProxy: () => rejects.inc({ type: 'proxyconfig' }),
    reload: (result) => reloads.inc({ result }),
    setInvalid: (v) => invalid.set(v ? 1 : 0),
  };
}
