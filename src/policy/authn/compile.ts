// RequestAuthentication → what the jwt_authn filter needs per workload,
// prepared once per configuration: rules in the order Istio gives Envoy
// (sorted by issuer), locations normalized and ordered as Envoy's extractor
// orders them, audiences sanitized, and JWKS parsed or resolved up front.

import type { JWK, JWTVerifyGetKey } from 'jose';

import { resourceKey, type JwtRule, type RequestAuthentication } from '../../api/resources.ts';
import { selectorMatches } from '../selector.ts';
import { jose } from './jose.ts';
import { DEFAULT_LOCATIONS, type HeaderLocation, type TokenLocations } from './extract.ts';
import { sanitizeAudience, type JwtStatus } from './jwt.ts';

/**
 * Turns a `jwksUri` into a key lookup. Called once per rule at compile time
 * with the rule's timeout; the returned function is called per token that
 * needs a signature check and may fetch.
 */
export type JwksResolver = (uri: string, timeoutMs: number) => JWTVerifyGetKey;

/** Where a rule's keys come from, or why it has none. */
export type CompiledKeys =
  | {
      readonly kind: 'inline';
      readonly getKey: JWTVerifyGetKey;
      /** Every key of the set, for Envoy's kid/alg pre-selection and for HMAC keys, which jose's key sets refuse. */
      readonly all: readonly JWK[];
    }
  | { readonly kind: 'remote'; readonly uri: string; readonly getKey: JWTVerifyGetKey }
  | { readonly kind: 'unavailable'; readonly status: Extract<JwtStatus, 'JwksNoValidKeys' | 'JwksFetchFail'>; readonly detail: string };

export interface CompiledJwtRule {
  readonly issuer: string;
  /** Sanitized (no scheme, no trailing slash); empty allows any audience. */
  readonly audiences: ReadonlySet<string>;
  readonly locations: TokenLocations;
  readonly forwardOriginalToken: boolean;
  /** Lower-case header name, or null. */
  readonly outputPayloadToHeader: string | null;
  readonly outputClaimToHeaders: readonly { readonly header: string; readonly claim: string }[];
  readonly keys: CompiledKeys;
  readonly timeoutMs: number;
  /** "<namespace>/<name>" of the RequestAuthentication the rule came from. */
  readonly policy: string;
}

export interface CompiledRequestAuthn {
  readonly rules: readonly CompiledJwtRule[];
  /** "<namespace>/<name>" of every RequestAuthentication that applied, in input order. */
  readonly sources: readonly string[];
}

export interface CompileRequestAuthnOptions {
  readonly jwksResolver: JwksResolver;
}

/** Istio's default for `JWTRule.timeout`. */
export const DEFAULT_JWKS_TIMEOUT_MS = 5000;

/**
 * The RequestAuthentications Istio attaches to a sidecar workload: those in
 * the workload's namespace and those in the root namespace whose selector
 * (absent = every workload) is a subset of the workload's labels. Policies
 * using targetRef(s) bind to gateways and waypoints, never to a sidecar.
 */
export function selectRequestAuthentications(
  all: readonly RequestAuthentication[],
  workload: { readonly namespace: string; readonly labels: Readonly<Record<string, string>> },
  rootNamespace: string,
): RequestAuthentication[] {
  const namespaces = workload.namespace === rootNamespace ? [rootNamespace] : [workload.namespace, rootNamespace];
  const selected: RequestAuthentication[] = [];
  for (const ns of namespaces) {
    for (const ra of all) {
      if (ra.metadata.namespace !== ns) continue;
      if (ra.spec.targetRef !== undefined || (ra.spec.targetRefs?.length ?? 0) > 0) continue;
      if (selectorMatches(ra.spec.selector, workload.labels)) selected.push(ra);
    }
  }
  return selected;
}

/**
 * Compiles the jwtRules of every applicable RequestAuthentication. Never
 * throws on rule content: a rule whose keys cannot be obtained still exists
 * and rejects every token of its issuer, as Envoy does.
 */
export function compileRequestAuthn(
  applicable: readonly RequestAuthentication[],
  opts: CompileRequestAuthnOptions,
): CompiledRequestAuthn {
  const sources: string[] = [];
  const pending: { rule: JwtRule; policy: string }[] = [];
  for (const ra of applicable) {
    const policy = resourceKey(ra);
    if (!sources.includes(policy)) sources.push(policy);
    for (const rule of ra.spec.jwtRules ?? []) pending.push({ rule, policy });
  }
  // Istio sorts the merged rules by issuer so the generated config is stable;
  // the order decides which failure Envoy reports when several providers fail.
  pending.sort((a, b) => (a.rule.issuer < b.rule.issuer ? -1 : a.rule.issuer > b.rule.issuer ? 1 : 0));
  const rules = pending.map(({ rule, policy }) => compileRule(rule, policy, opts.jwksResolver));
  return Object.freeze({ rules: Object.freeze(rules), sources: Object.freeze(sources) });
}

function compileRule(rule: JwtRule, policy: string, resolver: JwksResolver): CompiledJwtRule {
  const timeoutMs = parseTimeout(rule.timeout);
  return Object.freeze({
    issuer: rule.issuer,
    audiences: new Set((rule.audiences ?? []).map(sanitizeAudience)),
    locations: compileLocations(rule),
    forwardOriginalToken: rule.forwardOriginalToken === true,
    outputPayloadToHeader: rule.outputPayloadToHeader ? rule.outputPayloadToHeader.toLowerCase() : null,
    outputClaimToHeaders: Object.freeze(
      (rule.outputClaimToHeaders ?? []).map((c) => Object.freeze({ header: c.header.toLowerCase(), claim: c.claim })),
    ),
    keys: compileKeys(rule, timeoutMs, resolver),
    timeoutMs,
    policy,
  });
}

function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Envoy keys header locations by name + prefix and parameters and cookies by name, in sorted maps. */
function compileLocations(rule: JwtRule): TokenLocations {
  const hasAny =
    (rule.fromHeaders?.length ?? 0) > 0 || (rule.fromParams?.length ?? 0) > 0 || (rule.fromCookies?.length ?? 0) > 0;
  if (!hasAny) return DEFAULT_LOCATIONS;

  const headers = new Map<string, HeaderLocation>();
  for (const h of rule.fromHeaders ?? []) {
    const name = h.name.toLowerCase();
    const prefix = h.prefix ?? '';
    headers.set(name + prefix, Object.freeze({ name, prefix }));
  }
  const sortedHeaders = [...headers.entries()].sort(([a], [b]) => byteOrder(a, b)).map(([, loc]) => loc);
  const params = [...new Set(rule.fromParams ?? [])].sort(byteOrder);
  const cookies = [...new Set(rule.fromCookies ?? [])].sort(byteOrder);
  return Object.freeze({
    headers: Object.freeze(sortedHeaders),
    params: Object.freeze(params),
    cookies: Object.freeze(cookies),
  });
}

/**
 * Inline `jwks` wins over `jwksUri` (istiod only fetches when no inline set
 * is given). With neither, istiod would discover the URI from the issuer's
 * OpenID configuration; that needs the network at configuration time, so
 * here such a rule has no keys and fails closed.
 */
function compileKeys(rule: JwtRule, timeoutMs: number, resolver: JwksResolver): CompiledKeys {
  if (rule.jwks !== undefined && rule.jwks !== '') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(rule.jwks);
    } catch {
      return unavailable('JwksNoValidKeys', 'inline jwks is not valid JSON');
    }
    let getKey: JWTVerifyGetKey;
    try {
      const { createLocalJWKSet } = jose();
      getKey = createLocalJWKSet(parsed as Parameters<typeof createLocalJWKSet>[0]);
    } catch (err) {
      return unavailable('JwksNoValidKeys', `inline jwks is not a JSON Web Key Set: ${(err as Error).message}`);
    }
    const all = ((parsed as { keys: JWK[] }).keys ?? []).filter((k) => typeof k === 'object' && k !== null);
    if (all.length === 0) return unavailable('JwksNoValidKeys', 'inline jwks has no keys');
    return Object.freeze({ kind: 'inline', getKey, all: Object.freeze(all) });
  }
  if (rule.jwksUri !== undefined && rule.jwksUri !== '') {
    try {
      return Object.freeze({ kind: 'remote', uri: rule.jwksUri, getKey: resolver(rule.jwksUri, timeoutMs) });
    } catch (err) {
      return unavailable('JwksFetchFail', `jwksUri ${rule.jwksUri} cannot be used: ${(err as Error).message}`);
    }
  }
  return unavailable('JwksNoValidKeys', 'rule has neither jwks nor jwksUri');
}

function unavailable(status: 'JwksNoValidKeys' | 'JwksFetchFail', detail: string): CompiledKeys {
  return Object.freeze({ kind: 'unavailable', status, detail });
}

const DURATION_PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
const UNIT_MS: Readonly<Record<string, number>> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `timeout` as protobuf JSON ("1.5s") or Go ("1m30s", "500ms"); anything unusable means the default. */
export function parseTimeout(value: string | undefined): number {
  if (value === undefined || value === '') return DEFAULT_JWKS_TIMEOUT_MS;
  DURATION_PART.lastIndex = 0;
  let total = 0;
  let consumed = 0;
  for (let m = DURATION_PART.exec(value); m !== null; m = DURATION_PART.exec(value)) {
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    consumed = DURATION_PART.lastIndex;
  }
  if (consumed !== value.length || !(total > 0) || !Number.isFinite(total)) return DEFAULT_JWKS_TIMEOUT_MS;
  return Math.max(1, Math.ceil(total));
}
