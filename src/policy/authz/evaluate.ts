// Decides one request or connection against the policies of one workload,
// in Istio's order: CUSTOM, then DENY, then ALLOW. AUDIT and dry-run
// policies are evaluated and reported but never decide. Nothing here
// allocates on the ALLOW path except the result object.

import type { RequestAttributes } from './attributes.ts';
import type { CompiledPolicy, CompiledRule } from './compile.ts';
import type { Clause } from './clause.ts';

export interface WorkloadAuthz {
  readonly custom: readonly CompiledPolicy[];
  readonly deny: readonly CompiledPolicy[];
  readonly allow: readonly CompiledPolicy[];
  /** AUDIT policies and dry-run policies of any action. */
  readonly observe: readonly CompiledPolicy[];
  /** CUSTOM providers known to the mesh config. */
  readonly providers: ReadonlySet<string>;
  /** More than one CUSTOM provider selects this workload: Istio refuses that, so each CUSTOM policy denies. */
  readonly conflictingProviders: boolean;
}

/** The extension authorizer's answer per provider name; absent means it did not answer. */
export type ExtAuthzAnswers = Readonly<Record<string, 'ALLOW' | 'DENY'>>;

export interface AuthzResult {
  readonly allowed: boolean;
  /** `<ns>/<name>` of the policy that decided, null when none did alone. */
  readonly policy: string | null;
  readonly action: 'CUSTOM' | 'DENY' | 'ALLOW' | null;
  readonly rule: number | null;
  readonly reason: string;
  /** AUDIT and dry-run policies whose rules matched. */
  readonly observed: readonly { readonly policy: string; readonly action: string; readonly rule: number; readonly dryRun: boolean }[];
}

function clausesMatch(clauses: readonly Clause[], a: RequestAttributes): boolean {
  for (let i = 0; i < clauses.length; i++) if (!clauses[i]!.test(a)) return false;
  return true;
}

function anyGroupMatches(groups: readonly (readonly Clause[])[], a: RequestAttributes): boolean {
  if (groups.length === 0) return true;
  for (let i = 0; i < groups.length; i++) if (clausesMatch(groups[i]!, a)) return true;
  return false;
}

export function ruleMatches(rule: CompiledRule, a: RequestAttributes): boolean {
  return anyGroupMatches(rule.sources, a) && anyGroupMatches(rule.operations, a) && clausesMatch(rule.when, a);
}

/** Index of the first matching rule, or -1. */
export function matchingRule(policy: CompiledPolicy, a: RequestAttributes): number {
  const rules = a.http ? policy.http : policy.tcp;
  for (let i = 0; i < rules.length; i++) if (ruleMatches(rules[i]!, a)) return rules[i]!.index;
  return -1;
}

const NO_OBSERVATIONS: AuthzResult['observed'] = Object.freeze([]);

function observe(w: WorkloadAuthz, a: RequestAttributes): AuthzResult['observed'] {
  if (w.observe.length === 0) return NO_OBSERVATIONS;
  const out: { policy: string; action: string; rule: number; dryRun: boolean }[] = [];
  for (const p of w.observe) {
    const r = matchingRule(p, a);
    if (r >= 0) out.push({ policy: p.key, action: p.action, rule: r, dryRun: p.dryRun });
  }
  return out.length === 0 ? NO_OBSERVATIONS : out;
}

export function authorize(w: WorkloadAuthz, a: RequestAttributes, extAuthz: ExtAuthzAnswers = {}): AuthzResult {
  const observed = observe(w, a);

  for (const p of w.custom) {
    const r = matchingRule(p, a);
    if (r < 0) continue;
    const provider = p.provider ?? '';
    let reason: string | null = null;
    if (w.conflictingProviders) reason = 'more than one CUSTOM provider selects this workload; CUSTOM policies deny';
    else if (!w.providers.has(provider)) reason = `CUSTOM provider "${provider}" is not defined in meshConfig.extensionProviders`;
    else {
      const answer = Object.hasOwn(extAuthz, provider) ? extAuthz[provider] : undefined;
      if (answer === undefined) reason = `extension provider "${provider}" gave no answer (fail closed)`;
      else if (answer !== 'ALLOW') reason = `extension provider "${provider}" denied the request`;
    }
    if (reason !== null) {
      return { allowed: false, policy: p.key, action: 'CUSTOM', rule: r, reason, observed };
    }
  }

  for (const p of w.deny) {
    const r = matchingRule(p, a);
    if (r >= 0) {
      return { allowed: false, policy: p.key, action: 'DENY', rule: r, reason: `matched rule ${r} of DENY policy ${p.key}`, observed };
    }
  }

  if (w.allow.length === 0) {
    return { allowed: true, policy: null, action: null, rule: null, reason: 'no ALLOW policy applies to the workload', observed };
  }
  for (const p of w.allow) {
    const r = matchingRule(p, a);
    if (r >= 0) {
      return { allowed: true, policy: p.key, action: 'ALLOW', rule: r, reason: `matched rule ${r} of ALLOW policy ${p.key}`, observed };
    }
  }
  return {
    allowed: false,
    policy: null,
    action: null,
    rule: null,
    reason: 'ALLOW policies apply to the workload but none matched',
    observed,
  };
}
