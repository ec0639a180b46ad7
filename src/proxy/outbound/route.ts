// The routing table for one configuration, compiled once: per upstream, how
// to dial it (from the engine's client TLS decision) and its balancer.
// Requests keep the Route they began with when the table is replaced.

import type { ProxyConfig, Upstream } from '../../api/proxy-config.ts';
import type { PolicyEngine } from '../../policy/engine.ts';
import { Balancer } from './balancer.ts';
import { planFor, serviceNamespace, type DialPlan } from './dial.ts';

export interface Route {
  readonly upstream: Upstream;
  readonly plan: DialPlan;
  readonly balancer: Balancer;
  /** HTTP/1.1 from the app travels as HTTP/2 (DestinationRule h2UpgradePolicy UPGRADE); otherwise as HTTP/1.1. */
  readonly h2Upgrade: boolean;
}

export class RouteTable {
  readonly config: ProxyConfig;
  readonly #byName = new Map<string, Route>();
  readonly #byHost = new Map<string, Route>();

  constructor(config: ProxyConfig, engine: PolicyEngine) {
    this.config = config;
    const clientNamespace = config.workload.namespace;
    for (const upstream of config.outbound) {
      const decision = engine.clientTls(clientNamespace, upstream.host, upstream.servicePort, serviceNamespace(upstream.host, clientNamespace));
      const h2Upgrade = engine.h2Upgrade(clientNamespace, upstream.host, upstream.servicePort);
      const route: Route = Object.freeze({ upstream, plan: planFor(upstream, decision), balancer: new Balancer(upstream), h2Upgrade });
      this.#byName.set(upstream.name, route);
      this.#byHost.set(upstream.name.toLowerCase(), route);
      this.#byHost.set(upstream.host.toLowerCase(), route);
    }
  }

  byName(name: string): Route | undefined {
    return this.#byName.get(name);
  }

  routes(): IterableIterator<Route> {
    return this.#byName.values();
  }

  /**
   * The upstream an HTTP proxy request names by host: its `name` or `host`,
   * with no port or the service port.
   */
  byAuthority(authority: string): Route | undefined {
    const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(authority.trim().toLowerCase());
    if (m === null) return undefined;
    const route = this.#byHost.get(m[1]!.replace(/\.$/, ''));
    if (route === undefined) return undefined;
    if (m[2] !== undefined && Number(m[2]) !== route.upstream.servicePort && Number(m[2]) !== 80) return undefined;
    return route;
  }
}
