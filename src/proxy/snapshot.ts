// What one configuration compiles to. A proxy holds the latest snapshot and
// swaps it whole; a connection or request reads it once, when it begins, and
// keeps that one to its end.

import type { ProxyConfig, InboundPort } from '../api/proxy-config.ts';
import type { PolicyEngine } from '../policy/engine.ts';
import type { DestinationWorkload } from '../policy/facts.ts';

export interface ProxySnapshot {
  readonly config: ProxyConfig;
  readonly engine: PolicyEngine;
}

export function inboundPort(snap: ProxySnapshot, port: number): InboundPort | undefined {
  return snap.config.inbound.find((p) => p.port === port);
}

export function destinationOf(snap: ProxySnapshot, port: number, localIp: string | undefined): DestinationWorkload {
  const w = snap.config.workload;
  return {
    namespace: w.namespace,
    labels: w.labels,
    serviceAccount: w.serviceAccount,
    port,
    ...(localIp !== undefined ? { ip: localIp } : {}),
  };
}
