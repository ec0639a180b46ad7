// What one proxy receives: its workload's ProxyConfig, built from the
// registry and the policy generation in force. Only the policy that can
// concern the workload is included — PeerAuthentication,
// AuthorizationPolicy and RequestAuthentication of its namespace and of the
// root namespace whose selector (if any) matches its labels — and every
// DestinationRule, since any of them may govern a call it makes. A change
// to another namespace's policy therefore leaves this config, and its
// version, untouched.

import type { InlineResource, ProxyConfig, Upstream } from '../../api/proxy-config.ts';
import type { IstioResource } from '../../api/resources.ts';
import type { PolicyGeneration } from './policy-store.ts';
import type { RegisteredWorkload, ServiceRegistry } from './registry.ts';

export interface BuildContext {
  readonly trustDomain: string;
  readonly rootNamespace: string;
  readonly registry: ServiceRegistry;
  /** Server certificate of the gateway's external TLS listener. */
  readonly gatewayTls?: { readonly certFile: string; readonly keyFile: string };
}

function selects(labels: Readonly<Record<string, string>>, selector: { matchLabels?: Readonly<Record<string, string>> } | undefined): boolean {
  const wanted = selector?.matchLabels;
  if (wanted === undefined) return true;
  for (const [k, v] of Object.entries(wanted)) if (labels[k] !== v) return false;
  return true;
}

function concerns(r: IstioResource, w: RegisteredWorkload, rootNamespace: string): boolean {
  if (r.kind === 'DestinationRule') return true;
  const ns = r.metadata.namespace;
  if (ns !== w.namespace && ns !== rootNamespace) return false;
  return selects(w.labels, (r.spec as { selector?: { matchLabels?: Readonly<Record<string, string>> } }).selector);
}

/**
 * Where to look for a workload's documents, built once per generation: with
 * a thousand proxies and a thousand policies, scanning every document for
 * every proxy would make each change quadratic.
 */
interface DocumentIndex {
  /** Documents holding a DestinationRule: every workload gets them. */
  readonly everyone: readonly number[];
  /** namespace → documents with a resource of that namespace and no selector. */
  readonly unselected: ReadonlyMap<string, readonly number[]>;
  /** `namespace\0label\0value` → documents with a resource whose selector needs that label (its first one). */
  readonly byLabel: ReadonlyMap<string, readonly number[]>;
}

const indexes = new WeakMap<PolicyGeneration, DocumentIndex>();

function indexOf(generation: PolicyGeneration): DocumentIndex {
  const known = indexes.get(generation);
  if (known !== undefined) return known;
  const everyone: number[] = [];
  const unselected = new Map<string, number[]>();
  const byLabel = new Map<string, number[]>();
  const add = (m: Map<string, number[]>, key: string, i: number): void => {
    const list = m.get(key);
    if (list === undefined) m.set(key, [i]);
    else if (list[list.length - 1] !== i) list.push(i);
  };
  generation.documents.forEach((d, i) => {
    for (const r of d.resources) {
      if (r.kind === 'DestinationRule') {
        if (everyone[everyone.length - 1] !== i) everyone.push(i);
        continue;
      }
      const wanted = (r.spec as { selector?: { matchLabels?: Readonly<Record<string, string>> } }).selector?.matchLabels;
      const first = wanted === undefined ? undefined : Object.entries(wanted)[0];
      if (first === undefined) add(unselected, r.metadata.namespace, i);
      else add(byLabel, `${r.metadata.namespace}\0${first[0]}\0${first[1]}`, i);
    }
  });
  const index = { everyone, unselected, byLabel };
  indexes.set(generation, index);
  return index;
}

/** The documents of `generation` that hold a resource concerning `w`, in load order. */
export function resourcesFor(w: RegisteredWorkload, generation: PolicyGeneration, rootNamespace: string): InlineResource[] {
  const index = indexOf(generation);
  const candidates = new Set<number>(index.everyone);
  for (const ns of w.namespace === rootNamespace ? [w.namespace] : [w.namespace, rootNamespace]) {
    for (const i of index.unselected.get(ns) ?? []) candidates.add(i);
    for (const [k, v] of Object.entries(w.labels)) for (const i of index.byLabel.get(`${ns}\0${k}\0${v}`) ?? []) candidates.add(i);
  }
  // The index narrows by one label; the full check confirms the rest of each selector.
  return [...candidates]
    .sort((a, b) => a - b)
    .map((i) => generation.documents[i]!)
    .filter((d) => d.resources.some((r) => concerns(r, w, rootNamespace)))
    .map((d) => d.inline);
}

function upstream(ctx: BuildContext, w: RegisteredWorkload, ref: RegisteredWorkload['upstreams'][number]): Upstream {
  const targets = ctx.registry.endpointsOf(ref.service, w.namespace);
  const namespace = targets[0]?.namespace ?? w.namespace;
  const served = targets[0]?.ports.find((p) => p.port === ref.port);
  return {
    name: ref.service,
    host: `${ref.service}.${namespace}.svc.cluster.local`,
    servicePort: ref.port,
    protocol: served?.protocol ?? 'http',
    localPort: ref.localPort,
    endpoints: targets.map((t) => ({ host: t.address, port: ref.port, identities: [t.spiffeId] })),
  };
}

/** The config without its version (the distributor numbers what it pushes). */
export function buildProxyConfig(ctx: BuildContext, w: RegisteredWorkload, generation: PolicyGeneration): Omit<ProxyConfig, 'version'> {
  const inbound: ProxyConfig['inbound'] =
    w.kind === 'gateway'
      ? [
          {
            port: w.listenPort ?? 8443,
            protocol: 'http',
            // The gateway's "app" is its own outbound listener for the route.
            appPort: w.upstreams[0]?.localPort ?? 0,
            ...(ctx.gatewayTls !== undefined ? { tls: ctx.gatewayTls } : {}),
          },
        ]
      : w.ports.map((p) => ({ port: p.port, protocol: p.protocol, appPort: p.appPort, ...(p.healthPaths ? { healthPaths: p.healthPaths } : {}) }));
  return {
    workload: {
      name: w.name,
      namespace: w.namespace,
      serviceAccount: w.serviceAccount,
      labels: w.labels,
      trustDomain: ctx.trustDomain,
      // In a local mesh a workload is the one backend of the service of its name.
      ...(w.kind === 'workload' ? { service: `${w.name}.${w.namespace}.svc.cluster.local` } : {}),
    },
    address: w.address,
    inbound,
    outbound: w.upstreams.map((u) => upstream(ctx, w, u)),
    adminPort: w.adminPort,
    policyPaths: [],
    resources: resourcesFor(w, generation, ctx.rootNamespace),
    meshConfig: { rootNamespace: ctx.rootNamespace, trustDomain: ctx.trustDomain },
  };
}
