// Whether a client sidecar carries HTTP/1.1 to a service as HTTP/2: Istio's
// `trafficPolicy.connectionPool.http.h2UpgradePolicy` in the DestinationRule
// that applies (a portLevelSettings entry for the port replaces the
// top-level policy, as it does for tls). Only UPGRADE upgrades: Istio's
// mesh-wide default is DO_NOT_UPGRADE, and DEFAULT defers to it.

import type { DestinationRuleIndex } from './rules-index.ts';

function policyOf(pool: Readonly<Record<string, unknown>> | undefined): unknown {
  const http = pool?.['http'];
  return typeof http === 'object' && http !== null ? (http as Record<string, unknown>)['h2UpgradePolicy'] : undefined;
}

export function h2Upgrade(rules: DestinationRuleIndex, clientNamespace: string, host: string, port: number): boolean {
  const tp = rules.lookup(clientNamespace, host, {})?.rule?.trafficPolicy;
  if (tp === undefined) return false;
  const portPolicy = tp.portLevelSettings?.find((p) => p.port?.number === port);
  return policyOf(portPolicy !== undefined ? portPolicy.connectionPool : tp.connectionPool) === 'UPGRADE';
}
