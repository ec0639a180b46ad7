// Which apiVersion/kind pairs meshward reads, and what to say about the
// rest. Other resources (Services, VirtualServices...) are skipped with a
// warning. A document that looks like it was meant to be one of ours but
// is not quite (an unsupported version, a misspelled kind) is an error:
// skipping it would silently drop a security policy.

import type { ResourceKind } from './resources.ts';
import { closest } from './suggest.ts';

interface KindInfo {
  readonly group: string;
  readonly versions: readonly string[];
}

export const KINDS: Readonly<Record<ResourceKind, KindInfo>> = {
  PeerAuthentication: { group: 'security.istio.io', versions: ['v1', 'v1beta1'] },
  AuthorizationPolicy: { group: 'security.istio.io', versions: ['v1', 'v1beta1'] },
  RequestAuthentication: { group: 'security.istio.io', versions: ['v1', 'v1beta1'] },
  DestinationRule: { group: 'networking.istio.io', versions: ['v1', 'v1beta1', 'v1alpha3'] },
};

const KIND_NAMES = Object.keys(KINDS) as ResourceKind[];

export type Classification =
  | { readonly type: 'read'; readonly kind: ResourceKind }
  | { readonly type: 'error'; readonly field: 'apiVersion' | 'kind'; readonly message: string }
  | { readonly type: 'skip'; readonly message: string };

function isOurKind(kind: string): kind is ResourceKind {
  return Object.hasOwn(KINDS, kind);
}

function versionsOf(info: KindInfo): string {
  return info.versions.map((v) => `${info.group}/${v}`).join(', ');
}

export function classify(apiVersion: string, kind: string): Classification {
  const slash = apiVersion.indexOf('/');
  const group = slash < 0 ? '' : apiVersion.slice(0, slash);
  const version = slash < 0 ? apiVersion : apiVersion.slice(slash + 1);
  const istioGroup = group === 'istio.io' || group.endsWith('.istio.io');

  if (isOurKind(kind)) {
    const info = KINDS[kind];
    if (group === info.group && info.versions.includes(version)) return { type: 'read', kind };
    if (group === info.group || istioGroup) {
      return { type: 'error', field: 'apiVersion', message: `${kind} must have apiVersion ${versionsOf(info)}, got "${apiVersion}"` };
    }
    // Another project's kind with the same name (Linkerd has an AuthorizationPolicy too).
  } else if (istioGroup) {
    const guess = closest(kind, KIND_NAMES);
    if (guess !== null || group === 'security.istio.io') {
      const hint = guess !== null ? ` (did you mean "${guess}"?)` : '';
      return { type: 'error', field: 'kind', message: `unknown kind "${kind}" in ${group}${hint}` };
    }
  }
  return {
    type: 'skip',
    message:
      `skipped ${apiVersion} ${kind}: meshward reads PeerAuthentication, AuthorizationPolicy and ` +
      'RequestAuthentication (security.istio.io) and DestinationRule (networking.istio.io) only',
  };
}
