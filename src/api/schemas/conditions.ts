// The `when` condition keys Istio supports, and the value syntax each key
// takes. Istio accepts any key that starts with a known prefix; here the
// bracketed part must be well formed too, since a malformed key can never
// match and would quietly narrow an ALLOW or widen a DENY.

import {
  ipOrCidr,
  matchValue,
  portString,
  principalValue,
  serviceAccountValue,
  type Check,
} from './values.ts';

const EXACT_KEYS: Readonly<Record<string, Check>> = {
  'source.ip': ipOrCidr,
  'remote.ip': ipOrCidr,
  'destination.ip': ipOrCidr,
  'destination.port': portString,
  'source.namespace': matchValue,
  'source.principal': principalValue,
  'source.serviceAccount': serviceAccountValue,
  'request.auth.principal': matchValue,
  'request.auth.audiences': matchValue,
  'request.auth.presenter': matchValue,
  'connection.sni': matchValue,
};

const RETIRED_KEYS: Readonly<Record<string, string>> = {
  'destination.namespace': 'is replaced by the policy\'s metadata.namespace',
  'destination.name': 'was only supported in v1alpha1 policies',
  'destination.user': 'was only supported in v1alpha1 policies',
};

export const SUPPORTED_KEYS =
  'request.headers[<name>], source.ip, remote.ip, source.namespace, source.principal, source.serviceAccount, ' +
  'request.auth.principal, request.auth.audiences, request.auth.presenter, request.auth.claims[<name>]..., ' +
  'destination.ip, destination.port, connection.sni, experimental.envoy.filters.<filter>[<key>]';

export type KeyCheck = { readonly ok: true; readonly values: Check } | { readonly ok: false; readonly reason: string };

/** Splits `[a][b]` into `['a', 'b']`; null unless it is one or more non-empty bracketed names. */
export function bracketNames(s: string): string[] | null {
  const names: string[] = [];
  let i = 0;
  while (i < s.length) {
    if (s[i] !== '[') return null;
    const end = s.indexOf(']', i);
    const name = end < 0 ? '' : s.slice(i + 1, end);
    if (name === '' || name.includes('[')) return null;
    names.push(name);
    i = end + 1;
  }
  return names.length > 0 ? names : null;
}

export function checkConditionKey(key: string): KeyCheck {
  const exact = EXACT_KEYS[key];
  if (exact !== undefined) return { ok: true, values: exact };
  const retired = RETIRED_KEYS[key];
  if (retired !== undefined) return { ok: false, reason: `condition key "${key}" ${retired}` };
  if (key.startsWith('destination.labels')) {
    return { ok: false, reason: `condition key "${key}" is replaced by the workload selector` };
  }
  for (const prefix of ['request.headers', 'request.experimental.inline.headers']) {
    if (key.startsWith(prefix)) {
      const names = bracketNames(key.slice(prefix.length));
      if (names === null || names.length !== 1) {
        return { ok: false, reason: `invalid condition key "${key}": expected ${prefix}[<header-name>]` };
      }
      return { ok: true, values: matchValue };
    }
  }
  if (key.startsWith('request.auth.claims')) {
    if (bracketNames(key.slice('request.auth.claims'.length)) === null) {
      return {
        ok: false,
        reason: `invalid condition key "${key}": expected request.auth.claims[<claim>] or request.auth.claims[<claim>][<nested>]`,
      };
    }
    return { ok: true, values: matchValue };
  }
  if (key.startsWith('experimental.envoy.filters.')) {
    const open = key.indexOf('[');
    const ok = open > 'experimental.envoy.filters.'.length && key.endsWith(']') && open < key.length - 2;
    if (!ok) return { ok: false, reason: `invalid condition key "${key}": expected experimental.envoy.filters.<filter>[<key>]` };
    return { ok: true, values: matchValue };
  }
  return { ok: false, reason: `unknown condition key "${key}"; supported keys: ${SUPPORTED_KEYS}` };
}

/** Keys Istio does not support in CUSTOM policies (the external authorizer sees no peer or JWT identity). */
export function unsupportedWithCustom(key: string): boolean {
  return (
    key === 'source.namespace' ||
    key === 'source.serviceAccount' ||
    key === 'source.principal' ||
    key.startsWith('request.auth.')
  );
}
