// Compiles AuthorizationPolicies into rules of clauses, once per config
// change. Every policy gets two forms: one for HTTP requests and one for TCP
// connections, because Istio treats HTTP-only fields on TCP differently by
// action (builder's checkError):
//   - ALLOW: a rule that holds any HTTP-only field is dropped, so the policy
//     allows less;
//   - DENY, AUDIT and CUSTOM: only those fields are dropped, so the rule
//     matches more.
// Either way a TCP connection is never let through by a field it cannot have.

import type { AuthorizationAction, AuthorizationPolicy, Condition, Operation, Rule, Source } from '../../api/resources.ts';
import { resourceKey } from '../../api/resources.ts';
import { makeClause, type Clause } from './clause.ts';
import * as f from './fields.ts';
import type { TrustDomainBundle } from './fields.ts';

export interface CompiledRule {
  readonly index: number;
  /** OR of sources, each an AND of clauses; an empty list means any source. */
  readonly sources: readonly (readonly Clause[])[];
  /** OR of operations, each an AND of clauses; an empty list means any operation. */
  readonly operations: readonly (readonly Clause[])[];
  /** AND of conditions. */
  readonly when: readonly Clause[];
}

export interface CompiledPolicy {
  /** `<namespace>/<name>`. */
  readonly key: string;
  readonly action: AuthorizationAction;
  /** CUSTOM only. */
  readonly provider: string | null;
  /** Annotated `istio.io/dry-run: "true"`: evaluated and reported, never enforced. */
  readonly dryRun: boolean;
  readonly http: readonly CompiledRule[];
  readonly tcp: readonly CompiledRule[];
  /** Rules dropped from the TCP form, with why, for explanations. */
  readonly tcpDropped: readonly { readonly index: number; readonly reason: string }[];
  readonly resource: AuthorizationPolicy;
}

const DRY_RUN_ANNOTATION = 'istio.io/dry-run';

function sourceClauses(s: Source, bundle: TrustDomainBundle, policyNs: string): Clause[] {
  const out: (Clause | null)[] = [
    makeClause('source.principals', s.principals, s.notPrincipals, false, (v) => f.principalPredicate(v, bundle)),
    makeClause('source.requestPrincipals', s.requestPrincipals, s.notRequestPrincipals, true, f.requestPrincipalPredicate),
    makeClause('source.namespaces', s.namespaces, s.notNamespaces, false, f.namespacePredicate),
    makeClause('source.serviceAccounts', s.serviceAccounts, s.notServiceAccounts, false, (v) =>
      f.serviceAccountPredicate(v, policyNs),
    ),
    makeClause('source.ipBlocks', s.ipBlocks, s.notIpBlocks, false, (v) => f.ipPredicate(v, 'sourceIp')),
    makeClause('source.remoteIpBlocks', s.remoteIpBlocks, s.notRemoteIpBlocks, false, (v) => f.ipPredicate(v, 'remoteIp')),
  ];
  return out.filter((c): c is Clause => c !== null);
}

function operationClauses(o: Operation): Clause[] {
  const out: (Clause | null)[] = [
    makeClause('operation.hosts', o.hosts, o.notHosts, true, f.hostPredicate),
    makeClause('operation.methods', o.methods, o.notMethods, true, f.methodPredicate),
    makeClause('operation.paths', o.paths, o.notPaths, true, f.pathPredicate),
    makeClause('operation.ports', o.ports, o.notPorts, false, f.portPredicate),
  ];
  return out.filter((c): c is Clause => c !== null);
}

/** Splits `[a][b]` into `['a', 'b']`; null when the brackets are malformed. */
function bracketNames(s: string): string[] | null {
  const names: string[] = [];
  let i = 0;
  while (i < s.length) {
    if (s[i] !== '[') return null;
    const end = s.indexOf(']', i);
    if (end < 0 || end === i + 1) return null;
    names.push(s.slice(i + 1, end));
    i = end + 1;
  }
  return names.length > 0 ? names : null;
}

function conditionClause(c: Condition, action: AuthorizationAction, bundle: TrustDomainBundle, policyNs: string): Clause | null {
  const field = `when[${c.key}]`;
  const k = c.key;
  const mk = (httpOnly: boolean, build: Parameters<typeof makeClause>[4]) =>
    makeClause(field, c.values, c.notValues, httpOnly, build);
  switch (k) {
    case 'source.ip':
      return mk(false, (v) => f.ipPredicate(v, 'sourceIp'));
    case 'remote.ip':
      return mk(false, (v) => f.ipPredicate(v, 'remoteIp'));
    case 'source.namespace':
      return mk(false, f.namespacePredicate);
    case 'source.principal':
      return mk(false, (v) => f.principalPredicate(v, bundle));
    case 'source.serviceAccount':
      return mk(false, (v) => f.serviceAccountPredicate(v, policyNs));
    case 'request.auth.principal':
      return mk(true, f.requestPrincipalPredicate);
    case 'request.auth.audiences':
      return mk(true, f.audiencePredicate);
    case 'request.auth.presenter':
      return mk(true, f.presenterPredicate);
    case 'destination.ip':
      return mk(false, (v) => f.ipPredicate(v, 'destinationIp'));
    case 'destination.port':
      return mk(false, f.portPredicate);
    case 'connection.sni':
      return mk(false, f.sniPredicate);
  }
  if (k.startsWith('request.experimental.inline.headers')) {
    const names = bracketNames(k.slice('request.experimental.inline.headers'.length));
    if (names === null || names.length !== 1) return unknowable(field, c, action);
    const name = names[0]!;
    return mk(true, (v) => f.headerPredicate(name, v, true));
  }
  if (k.startsWith('request.headers')) {
    const names = bracketNames(k.slice('request.headers'.length));
    if (names === null || names.length !== 1) return unknowable(field, c, action);
    const name = names[0]!;
    return mk(true, (v) => f.headerPredicate(name, v));
  }
  if (k.startsWith('request.auth.claims')) {
    const names = bracketNames(k.slice('request.auth.claims'.length));
    if (names === null) return unknowable(field, c, action);
    return mk(true, (v) => f.claimPredicate(names, v));
  }
  // experimental.envoy.filters.* reads Envoy dynamic metadata, which does
  // not exist here; so does any key validation let through by mistake.
  return unknowable(field, c, action);
}

/** A condition the engine cannot evaluate: it fails the rule of an ALLOW policy and satisfies any other. */
function unknowable(field: string, c: Condition, action: AuthorizationAction): Clause {
  const outcome = action !== 'ALLOW';
  return Object.freeze({
    field,
    values: c.values ?? [],
    notValues: c.notValues ?? [],
    httpOnly: false,
    test: f.unknowablePredicate(outcome),
  });
}

function compileRule(
  rule: Rule,
  index: number,
  action: AuthorizationAction,
  bundle: TrustDomainBundle,
  policyNs: string,
): CompiledRule {
  const sources = (rule.from ?? []).map((from) => sourceClauses(from.source ?? {}, bundle, policyNs));
  const operations = (rule.to ?? []).map((to) => operationClauses(to.operation ?? {}));
  const when = (rule.when ?? []).map((c) => conditionClause(c, action, bundle, policyNs)).filter((c): c is Clause => c !== null);
  return Object.freeze({ index, sources, operations, when });
}

function hasHttpOnly(rule: CompiledRule): Clause | null {
  for (const group of [...rule.sources, ...rule.operations, rule.when]) {
    for (const c of group) if (c.httpOnly) return c;
  }
  return null;
}

function withoutHttpOnly(rule: CompiledRule): CompiledRule {
  const strip = (cs: readonly Clause[]) => cs.filter((c) => !c.httpOnly);
  return Object.freeze({
    index: rule.index,
    sources: rule.sources.map(strip),
    operations: rule.operations.map(strip),
    when: strip(rule.when),
  });
}

export function compilePolicy(policy: AuthorizationPolicy, bundle: TrustDomainBundle): CompiledPolicy {
  const action: AuthorizationAction = policy.spec.action ?? 'ALLOW';
  const ns = policy.metadata.namespace;
  const http = (policy.spec.rules ?? []).map((r, i) => compileRule(r, i, action, bundle, ns));
  const tcp: CompiledRule[] = [];
  const tcpDropped: { index: number; reason: string }[] = [];
  for (const rule of http) {
    const httpOnly = hasHttpOnly(rule);
    if (httpOnly === null) tcp.push(rule);
    else if (action === 'ALLOW') {
      tcpDropped.push({ index: rule.index, reason: `${httpOnly.field} is HTTP-only; an ALLOW rule using it never matches TCP` });
    } else tcp.push(withoutHttpOnly(rule));
  }
  return Object.freeze({
    key: resourceKey(policy),
    action,
    provider: policy.spec.provider?.name ?? null,
    dryRun: policy.metadata.annotations[DRY_RUN_ANNOTATION] === 'true',
    http: Object.freeze(http),
    tcp: Object.freeze(tcp),
    tcpDropped: Object.freeze(tcpDropped),
    resource: policy,
  });
}
