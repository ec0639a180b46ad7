// How a client sidecar secures a connection to a service port, as Istio
// builds the client's cluster (pilot/pkg/networking/core/cluster_builder.go,
// buildAutoMtlsSettings; cluster_traffic_policy GetPortLevelTrafficPolicy).
//
// The TLS settings come from the DestinationRule the client applies
// (./rules-index.ts). A `portLevelSettings` entry for the service port
// replaces the top-level trafficPolicy wholesale: an entry without `tls`
// means no TLS setting at all, not the top-level one. The first entry for the
// port wins.
//
// With a TLS setting, its mode is used as written and auto mTLS plays no
// part: ISTIO_MUTUAL is then sent even to endpoints without a sidecar. A
// `tls` block without `mode` is DISABLE, the proto's zero value.
//
// Without one, auto mTLS (meshConfig.enableAutoMtls, on by default) decides.
// Istio sends Istio mTLS to endpoints labelled as having a sidecar and
// plaintext to the rest; our destinations always have one, so auto means
// ISTIO_MUTUAL, except where Istio's hint says the server would refuse it:
// when the mesh and namespace PeerAuthentication of the service's namespace
// resolves to DISABLE (workload and port policies are not consulted, exactly
// as in Istio). Pass that mode as `serviceMtlsMode`
// (CompiledPeerAuthn.namespaceMode) to get this right.
//
//   const drs = compileDestinationRules(resources.destinationRules, mesh);
//   drs.resolve({ clientNamespace: 'bar', host: 'httpbin.foo.svc.cluster.local', port: 8000 })
//   // → { mode: 'ISTIO_MUTUAL', auto: true, destinationRule: null, reason: '…' }

import type { ClientTlsSettings, DestinationRule, PortTrafficPolicy } from '../../api/resources.ts';
import {
  indexDestinationRules,
  type DestinationRuleIndex,
  type DestinationRuleMatch,
  type DestinationRuleSettings,
} from './rules-index.ts';

export type ClientTlsOutcome = 'ISTIO_MUTUAL' | 'DISABLE' | 'SIMPLE' | 'MUTUAL';

export interface ClientTlsDecision {
  readonly mode: ClientTlsOutcome;
  /** True when no TLS setting applied and auto mTLS chose the mode. */
  readonly auto: boolean;
  /** "<ns>/<name>" of the DestinationRule in effect, or null when none applies. */
  readonly destinationRule: string | null;
  readonly reason: string;
}

export interface ClientTlsQuery {
  readonly clientNamespace: string;
  /** The service's FQDN, e.g. httpbin.foo.svc.cluster.local. */
  readonly host: string;
  /** The service port (not the target port). */
  readonly port: number;
  readonly clientLabels?: Readonly<Record<string, string>>;
  /** For hosts not of the form name.ns.svc.<domain>. */
  readonly serviceNamespace?: string;
  /** Mesh and namespace PeerAuthentication mode of the service's namespace; PERMISSIVE when unknown, as in Istio. */
  readonly serviceMtlsMode?: 'STRICT' | 'PERMISSIVE' | 'DISABLE';
}

export interface ClientTlsSettingsInMesh extends DestinationRuleSettings {
  /** meshConfig.enableAutoMtls; Istio's default is true. */
  readonly enableAutoMtls?: boolean;
}

export interface CompiledDestinationRules {
  /** The rules indexed by host, for lookups that need more than TLS. */
  readonly rules: DestinationRuleIndex;
  resolve(q: ClientTlsQuery): ClientTlsDecision;
}

/** Indexes the rules once; `resolve` then reads the index without scanning every rule. */
export function compileDestinationRules(
  all: readonly DestinationRule[],
  mesh: ClientTlsSettingsInMesh,
): CompiledDestinationRules {
  const rules = indexDestinationRules(all, mesh);
  return Object.freeze({
    rules,
    resolve: (q: ClientTlsQuery): ClientTlsDecision => decideClientTls(rules, q, mesh),
  });
}

/** One-shot form; anything that asks repeatedly should keep compileDestinationRules' result. */
export function resolveClientTls(
  all: readonly DestinationRule[],
  q: ClientTlsQuery,
  mesh: ClientTlsSettingsInMesh,
): ClientTlsDecision {
  return compileDestinationRules(all, mesh).resolve(q);
}

/** The decision for one query, from an index built by indexDestinationRules. */
export function decideClientTls(
  rules: DestinationRuleIndex,
  q: ClientTlsQuery,
  mesh: ClientTlsSettingsInMesh,
): ClientTlsDecision {
  const options: { clientLabels?: Readonly<Record<string, string>>; serviceNamespace?: string } = {};
  if (q.clientLabels !== undefined) options.clientLabels = q.clientLabels;
  if (q.serviceNamespace !== undefined) options.serviceNamespace = q.serviceNamespace;
  const match = rules.lookup(q.clientNamespace, q.host, options);
  const rule = match?.rule ?? null;

  if (match === null || rule === null) {
    const why =
      match === null
        ? `no DestinationRule applies to ${q.host} for a client in ${q.clientNamespace}`
        : `${poolName(match, q, mesh)} has DestinationRules for ${match.matchedHost} only with a workloadSelector ` +
          `that does not select the client; Istio stops looking there and applies none`;
    return automatic(null, why, q, mesh);
  }

  const tp = rule.trafficPolicy;
  const name = rule.trafficPolicyFrom ?? rule.from[0] ?? null;
  const subject = rule.from.length > 1 ? `DestinationRules ${rule.from.join(' + ')} (merged) match` : `DestinationRule ${rule.from[0]} matches`;
  const found = `${subject} host ${match.matchedHost} in ${poolName(match, q, mesh)}`;
  if (tp === undefined) return automatic(name, `${found}, but it has no trafficPolicy`, q, mesh);

  const portPolicy = portLevel(tp.portLevelSettings, q.port);
  const tls: ClientTlsSettings | undefined = portPolicy !== undefined ? portPolicy.tls : tp.tls;
  const where = portPolicy !== undefined ? `the portLevelSettings entry for port ${q.port}` : 'the trafficPolicy';
  if (tls === undefined) {
    const replaced = portPolicy !== undefined ? ' (which replaces the top-level trafficPolicy)' : '';
    return automatic(name, `${found}, but ${where}${replaced} sets no tls`, q, mesh);
  }
  const written = tls.mode ?? 'DISABLE';
  const unset = tls.mode === undefined ? ' (tls without mode is DISABLE)' : '';
  // OPTIONAL_MUTUAL never gets here (the index drops such rules); were it to,
  // Istio mTLS is the safe reading toward a destination that has a sidecar.
  const mode: ClientTlsOutcome = written === 'OPTIONAL_MUTUAL' ? 'ISTIO_MUTUAL' : written;
  return Object.freeze({
    mode,
    auto: false,
    destinationRule: name,
    reason: `${found}; ${where} sets tls.mode ${written}${unset}, so auto mTLS does not apply`,
  });
}

function portLevel(settings: readonly PortTrafficPolicy[] | undefined, port: number): PortTrafficPolicy | undefined {
  if (settings === undefined) return undefined;
  for (const p of settings) if (p.port !== undefined && p.port.number === port) return p;
  return undefined;
}

function automatic(rule: string | null, why: string, q: ClientTlsQuery, mesh: ClientTlsSettingsInMesh): ClientTlsDecision {
  if (mesh.enableAutoMtls === false) {
    return Object.freeze({ mode: 'DISABLE', auto: false, destinationRule: rule, reason: `${why}; auto mTLS is off in the mesh config, so plaintext` });
  }
  if (q.serviceMtlsMode === 'DISABLE') {
    return Object.freeze({
      mode: 'DISABLE',
      auto: true,
      destinationRule: rule,
      reason: `${why}; auto mTLS sends plaintext because the service namespace's PeerAuthentication mode is DISABLE`,
    });
  }
  return Object.freeze({
    mode: 'ISTIO_MUTUAL',
    auto: true,
    destinationRule: rule,
    reason: `${why}; auto mTLS sends Istio mTLS to a destination with a sidecar`,
  });
}

function poolName(match: DestinationRuleMatch, q: ClientTlsQuery, mesh: ClientTlsSettingsInMesh): string {
  switch (match.step) {
    case 'client-namespace':
      return `the client's namespace ${q.clientNamespace}`;
    case 'root-namespace-private':
      return `the root namespace ${mesh.rootNamespace} (the client's own, private rules only)`;
    case 'service-namespace':
      return `the service's namespace (rules exported to ${q.clientNamespace})`;
    case 'root-namespace':
      return `the root namespace ${mesh.rootNamespace} (rules exported to ${q.clientNamespace})`;
  }
}
