// Which DestinationRule a client sidecar applies to a service, found the way
// Istio's push context finds it (pilot/pkg/model/push_context.go
// setDestinationRules, destinationRule, getExportedDestinationRuleFromNamespace;
// destination_rule.go mergeDestinationRule; sidecar.go DestinationRule).
//
// Hosts. A short host (no dot, not `*`, not an IP) is completed with the
// rule's own namespace: `reviews` in namespace `bar` means
// `reviews.bar.svc.cluster.local`, whatever namespace the service is in.
// Anything with a dot is taken literally, so `reviews.foo` matches nothing
// that is written `reviews.foo.svc.cluster.local`. Within one pool of rules
// an exact host beats every wildcard, and a longer wildcard beats a shorter
// one (`*.foo.svc.cluster.local` before `*.cluster.local` before `*`).
//
// exportTo. Absent means everywhere (Istio's default for
// defaultDestinationRuleExportTo, which our mesh config does not carry). `.`
// is the rule's own namespace, `*` everywhere, `~` nowhere, any other entry
// that namespace. A rule with a workloadSelector is never exported, whatever
// its exportTo says.
//
// Lookup, first pool with a host match wins, even when that match then yields
// nothing for this client:
//   1. the client's namespace: its rules visible there (`.`, `*`, absent, or
//      naming it). For a client in the root namespace, only the root
//      namespace's private rules.
//   2. the service's namespace (from `name.ns.svc.<domain>`): its exported
//      rules, keeping those exported to the client. If the most specific host
//      match there is not exported to the client, the lookup moves on; it does
//      not retry a less specific host in the same namespace.
//   3. the root namespace: the same, for its exported rules.
// From the match, a rule whose workloadSelector selects the client (and
// lives in the client's namespace) wins; otherwise the last rule without a
// selector.
//
// Merging. Rules for the same host in the same pool are merged in order
// (selector rules first, then load order standing in for creation time):
// the first rule with a trafficPolicy supplies the whole trafficPolicy, later
// ones only add subsets. Since Istio 1.24 (ENABLE_ENHANCED_DESTINATIONRULE_MERGE,
// on by default) rules merge only when their exportTo sets are equal;
// otherwise they stay separate entries.
//
// Client labels. Rules with a workloadSelector only mean something for a
// known client workload; without labels we leave them out entirely, which
// can differ from Istio when such a rule would have stopped the lookup at
// step 1.

import type { DestinationRule, TrafficPolicy, WorkloadSelector } from '../../api/resources.ts';
import { resourceKey } from '../../api/resources.ts';
import { parseIp } from '../../lib/cidr.ts';
import { selectorMatches } from '../selector.ts';

export interface DestinationRuleSettings {
  readonly rootNamespace: string;
  /** DNS suffix that completes short hosts; Istio's default is cluster.local. */
  readonly domainSuffix?: string;
}

/** One or more DestinationRules for one host, merged as Istio merges them. */
export interface ConsolidatedRule {
  /** The host after short-name completion. */
  readonly host: string;
  readonly namespace: string;
  readonly workloadSelector: WorkloadSelector | undefined;
  readonly exportTo: ReadonlySet<string>;
  readonly trafficPolicy: TrafficPolicy | undefined;
  /** "<ns>/<name>" of the rule that supplied trafficPolicy; null when none has one. */
  readonly trafficPolicyFrom: string | null;
  /** "<ns>/<name>" of every merged rule, the first being the one merged into. */
  readonly from: readonly string[];
}

export type LookupStep = 'client-namespace' | 'root-namespace-private' | 'service-namespace' | 'root-namespace';

export interface DestinationRuleMatch {
  readonly step: LookupStep;
  /** The rule host that matched: the service host itself, or a wildcard. */
  readonly matchedHost: string;
  /**
   * The rule the client applies. Null when the pool matched the host but
   * every candidate has a workloadSelector that does not select the client:
   * Istio then applies no rule at all rather than looking further.
   */
  readonly rule: ConsolidatedRule | null;
}

export interface LookupOptions {
  /** The client workload's labels; without them, rules with a workloadSelector are left out. */
  readonly clientLabels?: Readonly<Record<string, string>>;
  /** Overrides the namespace read from the host, for hosts not of the form name.ns.svc.<domain>. */
  readonly serviceNamespace?: string;
}

export interface IgnoredDestinationRule {
  readonly destinationRule: string;
  readonly reason: string;
}

export interface DestinationRuleIndex {
  lookup(clientNamespace: string, host: string, options?: LookupOptions): DestinationRuleMatch | null;
  /** Rules Istio would reject outright, and so never applies. */
  readonly ignored: readonly IgnoredDestinationRule[];
}

/** Builds the pools once; each lookup is a few map reads and a walk over the wildcard hosts. */
export function indexDestinationRules(
  all: readonly DestinationRule[],
  settings: DestinationRuleSettings,
): DestinationRuleIndex {
  const domain = settings.domainSuffix ?? 'cluster.local';
  const ignored: IgnoredDestinationRule[] = [];
  const prepared: Prepared[] = [];
  all.forEach((dr, order) => {
    const problem = rejection(dr);
    if (problem !== null) {
      ignored.push({ destinationRule: resourceKey(dr), reason: problem });
      return;
    }
    prepared.push(prepare(dr, order, domain));
  });

  const withSelectors = buildPools(prepared, settings.rootNamespace);
  const withoutSelectors = prepared.some((p) => p.selector !== undefined)
    ? buildPools(
        prepared.filter((p) => p.selector === undefined),
        settings.rootNamespace,
      )
    : withSelectors;

  return Object.freeze({
    ignored: Object.freeze(ignored),
    lookup(clientNamespace: string, host: string, options: LookupOptions = {}): DestinationRuleMatch | null {
      const labels = options.clientLabels;
      const pools = labels === undefined ? withoutSelectors : withSelectors;
      const root = settings.rootNamespace;

      // 1. The client's own namespace (for the root namespace, only its private rules).
      const local = clientNamespace !== root ? pools.namespaceLocal.get(clientNamespace) : pools.rootPrivate;
      const step1 = local === undefined ? undefined : mostSpecific(local, host);
      if (step1 !== undefined) {
        return {
          step: clientNamespace !== root ? 'client-namespace' : 'root-namespace-private',
          matchedHost: step1.host,
          rule: pick(step1.entries, clientNamespace, labels),
        };
      }

      // 2. The service's namespace, then 3. the root namespace, each for rules exported to the client.
      const serviceNamespace = options.serviceNamespace ?? namespaceOfServiceHost(host);
      if (serviceNamespace !== null) {
        const found = exportedTo(pools.exported.get(serviceNamespace), host, clientNamespace);
        if (found !== null) return { step: 'service-namespace', matchedHost: found.host, rule: pick(found.entries, clientNamespace, labels) };
      }
      const found = exportedTo(pools.exported.get(root), host, clientNamespace);
      if (found !== null) return { step: 'root-namespace', matchedHost: found.host, rule: pick(found.entries, clientNamespace, labels) };
      return null;
    },
  });
}

/** The namespace in a Kubernetes service host `name.namespace.svc.<domain>`, else null. */
export function namespaceOfServiceHost(host: string): string | null {
  const first = host.indexOf('.');
  if (first <= 0) return null;
  const second = host.indexOf('.', first + 1);
  if (second < 0 || second === first + 1) return null;
  if (!host.startsWith('.svc.', second) || host.length <= second + 5) return null;
  return host.slice(first + 1, second);
}

/** Istio's short-name completion (ResolveShortnameToFQDN) for a rule's host. */
export function resolveRuleHost(host: string, namespace: string, domainSuffix: string): string {
  if (host === '*' || host.includes('.') || parseIp(host, true) !== null) return host;
  return `${host}.${namespace}.svc.${domainSuffix}`;
}

// ---------------------------------------------------------------- building

interface Prepared {
  readonly key: string;
  readonly order: number;
  readonly namespace: string;
  readonly host: string;
  readonly selector: WorkloadSelector | undefined;
  readonly exportTo: ReadonlySet<string>;
  readonly trafficPolicy: TrafficPolicy | undefined;
}

interface Entry {
  readonly host: string;
  readonly namespace: string;
  readonly workloadSelector: WorkloadSelector | undefined;
  readonly exportTo: ReadonlySet<string>;
  trafficPolicy: TrafficPolicy | undefined;
  trafficPolicyFrom: string | null;
  readonly from: string[];
}

interface HostMatch {
  readonly host: string;
  readonly entries: readonly Entry[];
}

interface Pool {
  readonly specific: Map<string, Entry[]>;
  readonly wildcard: Map<string, Entry[]>;
  /** Wildcard hosts, longest first, with the suffix each one matches. */
  wildcards: { readonly suffix: string; readonly host: string; readonly entries: Entry[] }[];
}

interface Pools {
  readonly namespaceLocal: Map<string, Pool>;
  readonly exported: Map<string, Pool>;
  readonly rootPrivate: Pool;
}

function prepare(dr: DestinationRule, order: number, domain: string): Prepared {
  const namespace = dr.metadata.namespace;
  const selector = dr.spec.workloadSelector;
  return {
    key: resourceKey(dr),
    order,
    namespace,
    host: resolveRuleHost(dr.spec.host, namespace, domain),
    selector,
    // A rule with a selector is private to its namespace, whatever its exportTo says.
    exportTo: selector !== undefined ? new Set(['.']) : new Set(dr.spec.exportTo ?? []),
    trafficPolicy: dr.spec.trafficPolicy,
  };
}

/** Why Istio's API server would refuse the rule, or null. */
function rejection(dr: DestinationRule): string | null {
  if (dr.spec.host === '') return 'host is empty';
  const policies: (TrafficPolicy | undefined)[] = [dr.spec.trafficPolicy, ...(dr.spec.subsets ?? []).map((s) => s.trafficPolicy)];
  for (const tp of policies) {
    if (tp === undefined) continue;
    const settings = [tp.tls, ...(tp.portLevelSettings ?? []).map((p) => p.tls)];
    if (settings.some((tls) => tls?.mode === 'OPTIONAL_MUTUAL')) {
      // OPTIONAL_MUTUAL is a Gateway server mode; ClientTLSSettings has only
      // DISABLE, SIMPLE, MUTUAL and ISTIO_MUTUAL, so the whole rule is invalid.
      return 'tls.mode OPTIONAL_MUTUAL is not a client TLS mode; Istio rejects the rule';
    }
  }
  return null;
}

function newPool(): Pool {
  return { specific: new Map(), wildcard: new Map(), wildcards: [] };
}

function buildPools(prepared: readonly Prepared[], root: string): Pools {
  // Selector rules first, then load order (Istio: creation time, then name).
  const ordered = [...prepared].sort((a, b) => {
    const sa = a.selector !== undefined ? 0 : 1;
    const sb = b.selector !== undefined ? 0 : 1;
    return sa - sb || a.order - b.order;
  });
  const namespaceLocal = new Map<string, Pool>();
  const exported = new Map<string, Pool>();
  const rootPrivate = newPool();
  const poolIn = (map: Map<string, Pool>, ns: string): Pool => {
    let p = map.get(ns);
    if (p === undefined) {
      p = newPool();
      map.set(ns, p);
    }
    return p;
  };

  for (const dr of ordered) {
    const ns = dr.namespace;
    const e = dr.exportTo;
    if (e.size === 0 || e.has('*') || e.has('.') || e.has(ns)) merge(poolIn(namespaceLocal, ns), dr);
    const privateOnly = e.size === 1 && (e.has('.') || e.has(ns));
    if (!privateOnly) merge(poolIn(exported, ns), dr);
    else if (ns === root) merge(rootPrivate, dr);
  }

  for (const pool of [...namespaceLocal.values(), ...exported.values(), rootPrivate]) {
    pool.wildcards = [...pool.wildcard].map(([host, entries]) => ({ suffix: host.slice(1), host, entries }));
    pool.wildcards.sort((a, b) => b.host.length - a.host.length);
    for (const entries of [...pool.specific.values(), ...pool.wildcard.values()]) {
      for (const e of entries) Object.freeze(Object.freeze(e).from);
    }
  }
  return { namespaceLocal, exported, rootPrivate };
}

function merge(pool: Pool, dr: Prepared): void {
  const byHost = dr.host.startsWith('*') ? pool.wildcard : pool.specific;
  const list = byHost.get(dr.host);
  if (list === undefined) {
    byHost.set(dr.host, [entryFor(dr)]);
    return;
  }
  let appendSeparately = true;
  for (const existing of list) {
    if (setsEqual(dr.exportTo, existing.exportTo)) {
      appendSeparately = false;
    } else if (existing.exportTo.size > 0 && isSuperset(dr.exportTo, existing.exportTo)) {
      // A wider export merges into the narrower entry and also stands alone.
      appendSeparately = true;
    } else {
      appendSeparately = true;
      continue;
    }
    const bothWith = dr.selector !== undefined && existing.workloadSelector !== undefined;
    const bothWithout = dr.selector === undefined && existing.workloadSelector === undefined;
    const sameSelector = labelsEqual(dr.selector?.matchLabels, existing.workloadSelector?.matchLabels);
    if (bothWith && !sameSelector) {
      appendSeparately = true;
      continue;
    }
    if (bothWithout || (bothWith && sameSelector)) appendSeparately = false;
    existing.from.push(dr.key);
    if (existing.trafficPolicy === undefined && dr.trafficPolicy !== undefined) {
      existing.trafficPolicy = dr.trafficPolicy;
      existing.trafficPolicyFrom = dr.key;
    }
  }
  if (appendSeparately) list.push(entryFor(dr));
}

function entryFor(dr: Prepared): Entry {
  return {
    host: dr.host,
    namespace: dr.namespace,
    workloadSelector: dr.selector,
    exportTo: dr.exportTo,
    trafficPolicy: dr.trafficPolicy,
    trafficPolicyFrom: dr.trafficPolicy !== undefined ? dr.key : null,
    from: [dr.key],
  };
}

// ---------------------------------------------------------------- lookup

function mostSpecific(pool: Pool, host: string): HostMatch | undefined {
  const exact = pool.specific.get(host);
  if (exact !== undefined) return { host, entries: exact };
  for (const w of pool.wildcards) if (host.endsWith(w.suffix)) return w;
  return undefined;
}

function exportedTo(pool: Pool | undefined, host: string, clientNamespace: string): HostMatch | null {
  if (pool === undefined) return null;
  const match = mostSpecific(pool, host);
  if (match === undefined) return null;
  const visible = match.entries.filter((e) => e.exportTo.size === 0 || e.exportTo.has('*') || e.exportTo.has(clientNamespace));
  return visible.length === 0 ? null : { host: match.host, entries: visible };
}

function pick(
  entries: readonly Entry[],
  clientNamespace: string,
  labels: Readonly<Record<string, string>> | undefined,
): ConsolidatedRule | null {
  let catchAll: Entry | null = null;
  for (const e of entries) {
    if (e.workloadSelector === undefined) {
      catchAll = e;
    } else if (labels !== undefined && e.namespace === clientNamespace && selectorMatches(e.workloadSelector, labels)) {
      return e;
    }
  }
  return catchAll;
}

function setsEqual(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  return a.size === b.size && isSuperset(a, b);
}

function isSuperset(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  for (const x of b) if (!a.has(x)) return false;
  return true;
}

function labelsEqual(
  a: Readonly<Record<string, string>> | undefined,
  b: Readonly<Record<string, string>> | undefined,
): boolean {
  const ka = a === undefined ? [] : Object.keys(a);
  const kb = b === undefined ? [] : Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => b !== undefined && b[k] === a?.[k]);
}
