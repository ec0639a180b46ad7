// Configs and trust for proxies a test starts in process (WorkloadProxy,
// OutboundRouter): one workload per service account, named and labelled
// after it, in the test root's trust domain, with an upstream per service
// the workload calls on 127.0.0.1. Tests pass `bindPort: () => 0`, so the
// ports named here (admin 15000, local 19001) only identify listeners.

import type { ProxyConfig, Upstream } from '../../src/api/proxy-config.ts';
import { trustBundleFromPem, type TrustBundle } from '../../src/identity/trust-bundle.ts';
import type { TestCa } from './pki.ts';

/** `root` alone as the trust bundle of its trust domain. */
export function bundleOf(root: TestCa): TrustBundle {
  const b = trustBundleFromPem(root.trustDomain, root.pem);
  if ('error' in b) throw new Error(b.error);
  return b;
}

/**
 * The config of workload `sa` (its name, service account and app label) in
 * `namespace`: version 1, admin port 15000, trust domain cluster.local, no
 * policy; `more` adds or replaces top-level fields.
 *
 * @example
 *   proxyConfig('order-service', 'production', [], [upstreamTo('payment-service', 'production', port, [paymentId])], { policyPaths: [strict] })
 */
export function proxyConfig(
  sa: string,
  namespace: string,
  inbound: ProxyConfig['inbound'],
  outbound: ProxyConfig['outbound'],
  more: Partial<Omit<ProxyConfig, 'workload' | 'inbound' | 'outbound'>> = {},
): ProxyConfig {
  return {
    version: 1,
    workload: { name: sa, namespace, serviceAccount: sa, labels: { app: sa }, trustDomain: 'cluster.local' },
    inbound,
    outbound,
    adminPort: 15000,
    policyPaths: [],
    ...more,
  };
}

/**
 * Service `name`.`namespace`.svc.cluster.local, port 8080, HTTP, local port
 * 19001, with one endpoint on 127.0.0.1:`port` that must present one of
 * `identities`; `more` replaces any of these.
 */
export function upstreamTo(name: string, namespace: string, port: number, identities: readonly string[], more: Partial<Omit<Upstream, 'endpoints'>> = {}): Upstream {
  return {
    name,
    host: `${name}.${namespace}.svc.cluster.local`,
    servicePort: 8080,
    protocol: 'http',
    localPort: 19001,
    endpoints: [{ host: '127.0.0.1', port, identities }],
    ...more,
  };
}
