// Pieces several kinds share: workload selectors, policy target references,
// and the rule that a policy picks its workloads one way only.

import * as z from 'zod';
import { listLength, present, recordField, withRules, type Raw, type RuleContext } from './build.ts';

export const workloadSelector = withRules(
  z.strictObject({
    matchLabels: z.record(z.string(), z.string()).default(() => ({})),
  }),
  (selector, ctx) => {
    const labels = recordField(selector, 'matchLabels') ?? {};
    for (const [k, v] of Object.entries(labels)) {
      if (k === '') ctx.error(['matchLabels', k], 'empty label key is not allowed in a selector');
      else if (k.includes('*') || (typeof v === 'string' && v.includes('*'))) {
        ctx.error(['matchLabels', k], `wildcards are not supported in selectors: "${k}=${String(v)}"`);
      }
    }
  },
);

// Istio's allowed targets: group and kind only, the version is not checked.
const TARGET_KINDS: readonly { readonly group: string; readonly kind: string }[] = [
  { group: 'core', kind: 'Service' },
  { group: 'networking.istio.io', kind: 'ServiceEntry' },
  { group: 'gateway.networking.k8s.io', kind: 'Gateway' },
  { group: 'gateway.networking.k8s.io', kind: 'GatewayClass' },
];

export const policyTargetReference = withRules(
  z.strictObject({
    group: z.string().default(''),
    kind: z.string(),
    name: z.string(),
    namespace: z.string().optional(),
  }),
  (ref, ctx) => {
    if (ref['name'] === '') ctx.error(['name'], 'must not be empty: name the target resource');
    if (typeof ref['namespace'] === 'string' && ref['namespace'] !== '') {
      ctx.error(['namespace'], 'cross-namespace target references are not supported; remove namespace');
    }
    const kind = ref['kind'];
    if (typeof kind !== 'string') return;
    const group = typeof ref['group'] === 'string' && ref['group'] !== '' ? ref['group'] : 'core';
    if (!TARGET_KINDS.some((t) => t.group === group && t.kind === kind)) {
      ctx.error(
        ['kind'],
        `unsupported target "${group === 'core' ? '' : group}/${kind}": expected Service, ServiceEntry ` +
          '(networking.istio.io), Gateway or GatewayClass (gateway.networking.k8s.io)',
      );
    }
  },
);

/** A policy applies to workloads by selector or by target reference, never both (Istio: "only one of targetRefs or workloadSelector"). */
export function oneWayToSelect(spec: Raw, ctx: RuleContext): void {
  const selector = present(spec, 'selector');
  const targetRef = present(spec, 'targetRef');
  const targetRefs = listLength(spec, 'targetRefs') > 0;
  if (targetRef && targetRefs) {
    ctx.error(['targetRefs'], 'cannot be set together with targetRef: use one of them');
  }
  if (selector && targetRef) ctx.error(['targetRef'], 'cannot be set together with selector: use one of them');
  if (selector && targetRefs) ctx.error(['targetRefs'], 'cannot be set together with selector: use one of them');
}
