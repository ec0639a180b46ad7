// One builder per AuthorizationPolicy attribute: each turns a list of policy
// values into a predicate over RequestAttributes, with Istio's semantics for
// that attribute. Everything that can be prepared (sets, parsed CIDRs,
// regexes for the few wildcard forms that need one) is prepared here, once.

import { compileStringMatch, type StringPredicate } from '../../lib/string-match.ts';
import { compileCidrSet, parseCidr, type CidrRange } from '../../lib/cidr.ts';
import type { AttributePredicate } from './clause.ts';
import type { RequestAttributes } from './attributes.ts';
import { compilePathTemplate, isPathTemplate } from './path-template.ts';

/** Istio treats `cluster.local` in a policy as "the local trust domain" and expands aliases. */
export interface TrustDomainBundle {
  /** Local trust domain first, then its aliases. */
  readonly trustDomains: readonly string[];
}

const CLUSTER_LOCAL = 'cluster.local';

/**
 * Rewrites `td/ns/x/sa/y` principals for every trust domain of the bundle,
 * as Istio does when it generates Envoy config. Principals whose trust
 * domain is `*` or not in the bundle are kept as written.
 */
export function expandTrustDomainAliases(principals: readonly string[], bundle: TrustDomainBundle): string[] {
  const out: string[] = [];
  for (const p of principals) {
    const parts = p.split('/');
    if (parts.length !== 5 || parts[0] === '*') {
      out.push(p);
      continue;
    }
    const td = parts[0]!;
    if (!bundle.trustDomains.includes(td) && td !== CLUSTER_LOCAL) {
      out.push(p);
      continue;
    }
    const rest = parts.slice(1).join('/');
    for (const alias of bundle.trustDomains) {
      // A "*suffix" trust domain that covers the alias stays as written.
      const candidate = td.startsWith('*') && alias.endsWith(td.slice(1)) ? p : `${alias}/${rest}`;
      if (!out.includes(candidate)) out.push(candidate);
    }
  }
  return out;
}

// ------------------------------------------------------------------ peer identity

export function principalPredicate(values: readonly string[], bundle: TrustDomainBundle): AttributePredicate {
  const match = compileStringMatch(expandTrustDomainAliases(values, bundle));
  return (a) => a.principal !== null && match(a.principal);
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Istio matches namespaces as the regex `.*\/ns/<value>/.*` over the peer's
 * SPIFFE URI, with `*` in the value meaning `.*`. Plain values need no regex.
 */
export function namespacePredicate(values: readonly string[]): AttributePredicate {
  const needles: string[] = [];
  const regexes: RegExp[] = [];
  for (const v of values) {
    if (v.includes('*')) regexes.push(new RegExp(`^.*/ns/${v.split('*').map(escapeRegex).join('.*')}/.*$`, 's'));
    else needles.push(`/ns/${v}/`);
  }
  return (a) => {
    const uri = a.principalUri;
    if (uri === null) return false;
    for (let i = 0; i < needles.length; i++) if (uri.includes(needles[i]!)) return true;
    for (let i = 0; i < regexes.length; i++) if (regexes[i]!.test(uri)) return true;
    return false;
  };
}

/** `name` or `namespace/name`; the namespace defaults to the policy's own. */
export function serviceAccountPredicate(values: readonly string[], policyNamespace: string): AttributePredicate {
  const regexes = values.map((v) => {
    const slash = v.indexOf('/');
    const ns = slash < 0 ? policyNamespace : v.slice(0, slash);
    const sa = slash < 0 ? v : v.slice(slash + 1);
    return new RegExp(`^spiffe://.+/ns/${escapeRegex(ns)}/(.+/|)sa/${escapeRegex(sa)}(/.+)?$`, 's');
  });
  return (a) => {
    const uri = a.principalUri;
    if (uri === null) return false;
    for (let i = 0; i < regexes.length; i++) if (regexes[i]!.test(uri)) return true;
    return false;
  };
}

// ------------------------------------------------------------------ request principal (JWT)

const ANY_NON_EMPTY: StringPredicate = (s) => s.length > 0;

/**
 * Istio splits a request principal at its last `/` into issuer and subject
 * and matches each separately, with `*` allowed at the front or back.
 */
function requestPrincipalPair(value: string): [StringPredicate, StringPredicate] {
  const idx = value.lastIndexOf('/');
  const found = idx >= 0;
  const iss = found ? value.slice(0, idx) : value;
  const sub = found ? value.slice(idx + 1) : '';
  const exact = (s: string): StringPredicate => (x) => x === s;
  const prefix = (s: string): StringPredicate => (x) => x.startsWith(s);
  const suffix = (s: string): StringPredicate => (x) => x.endsWith(s);
  if (value === '*') return [ANY_NON_EMPTY, ANY_NON_EMPTY];
  if (value.startsWith('*')) {
    if (found) return [iss === '*' ? ANY_NON_EMPTY : suffix(iss.slice(1)), exact(sub)];
    return [ANY_NON_EMPTY, suffix(value.slice(1))];
  }
  if (value.endsWith('*')) {
    if (found) return [exact(iss), sub === '*' ? ANY_NON_EMPTY : prefix(sub.slice(0, -1))];
    return [prefix(value.slice(0, -1)), ANY_NON_EMPTY];
  }
  return [exact(iss), exact(sub)];
}

export function requestPrincipalPredicate(values: readonly string[]): AttributePredicate {
  const pairs = values.map(requestPrincipalPair);
  return (a) => {
    const jwt = a.jwt;
    if (jwt === null) return false;
    for (let i = 0; i < pairs.length; i++) {
      const [iss, sub] = pairs[i]!;
      if (iss(jwt.issuer) && sub(jwt.subject)) return true;
    }
    return false;
  };
}

/** A claim is matched if it is a string that matches, or a list holding a string that matches. */
function claimValueMatches(value: unknown, match: StringPredicate): boolean {
  if (typeof value === 'string') return match(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      if (typeof v === 'string' && match(v)) return true;
    }
  }
  return false;
}

export function claimPredicate(path: readonly string[], values: readonly string[]): AttributePredicate {
  const match = compileStringMatch(values);
  return (a) => {
    if (a.jwt === null) return false;
    let node: unknown = a.jwt.claims;
    for (let i = 0; i < path.length; i++) {
      if (node === null || typeof node !== 'object' || Array.isArray(node)) return false;
      const key = path[i]!;
      if (!Object.hasOwn(node, key)) return false;
      node = (node as Record<string, unknown>)[key];
    }
    return claimValueMatches(node, match);
  };
}

export function audiencePredicate(values: readonly string[]): AttributePredicate {
  const match = compileStringMatch(values);
  return (a) => a.jwt !== null && claimValueMatches(a.jwt.audiences, match);
}

export function presenterPredicate(values: readonly string[]): AttributePredicate {
  const match = compileStringMatch(values);
  return (a) => a.jwt !== null && a.jwt.presenter !== null && match(a.jwt.presenter);
}

// ------------------------------------------------------------------ addresses and ports

type IpField = 'sourceIp' | 'remoteIp' | 'destinationIp';

export function ipPredicate(values: readonly string[], field: IpField): AttributePredicate {
  const ranges: CidrRange[] = [];
  for (const v of values) {
    const r = parseCidr(v);
    // Validation rejects bad CIDRs before compile; one that slips through matches nothing.
    if (!('error' in r)) ranges.push(r);
  }
  const contains = compileCidrSet(ranges);
  return (a) => {
    const ip = a[field];
    return ip !== null && contains(ip);
  };
}

export function portPredicate(values: readonly string[]): AttributePredicate {
  const ports = new Set<number>();
  for (const v of values) {
    if (/^[0-9]{1,5}$/.test(v)) ports.add(Number(v));
  }
  return (a) => ports.has(a.destinationPort);
}

// ------------------------------------------------------------------ HTTP request

export function methodPredicate(values: readonly string[]): AttributePredicate {
  const match = compileStringMatch(values);
  return (a) => match(a.method);
}

export function hostPredicate(values: readonly string[]): AttributePredicate {
  const match = compileStringMatch(values, { ignoreCase: true });
  return (a) => a.hostLower !== '' && match(a.hostLower);
}

export function pathPredicate(values: readonly string[]): AttributePredicate {
  const plain = values.filter((v) => !isPathTemplate(v));
  const templates = values.filter(isPathTemplate).map(compilePathTemplate);
  const match = compileStringMatch(plain);
  return (a) => {
    if (match(a.path)) return true;
    for (let i = 0; i < templates.length; i++) if (templates[i]!.test(a.path)) return true;
    return false;
  };
}

/**
 * `request.headers[name]`: `*` means present; otherwise exact, prefix or
 * suffix on the value. With `elementwise` (Istio's
 * `request.experimental.inline.headers[name]`) the value is a
 * comma-separated list and one element must match, as Istio's generated
 * regex `^v$|^v,.*|.*,v,.*|.*,v$` does.
 */
export function headerPredicate(name: string, values: readonly string[], elementwise = false): AttributePredicate {
  const lower = name.toLowerCase();
  const match = compileStringMatch(values.filter((v) => v !== '*'));
  const presence = values.includes('*');
  const matchValue = elementwise ? (v: string) => v.split(',').some(match) : match;
  return (a) => {
    if (!Object.hasOwn(a.headers, lower)) return false;
    return presence || matchValue(a.headers[lower]!);
  };
}

export function sniPredicate(values: readonly string[]): AttributePredicate {
  const match = compileStringMatch(values);
  return (a) => match(a.sni);
}

/** Attributes the engine cannot see (Envoy dynamic metadata): decided by the policy's action, fail closed. */
export function unknowablePredicate(outcome: boolean): AttributePredicate {
  return () => outcome;
}

export type { RequestAttributes };
