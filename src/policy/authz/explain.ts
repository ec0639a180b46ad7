// "RBAC: access denied — but why?" For a denied request, find the ALLOW rule
// that came closest (most clauses satisfied) and the first clause that did
// not hold. Only runs when a person asks; the proxy never calls it.

import type { RequestAttributes } from './attributes.ts';
import type { Clause } from './clause.ts';
import type { CompiledRule } from './compile.ts';
import type { WorkloadAuthz } from './evaluate.ts';

export interface NearMiss {
  readonly policy: string;
  readonly rule: number;
  /** Clauses of that rule that held / did not hold. */
  readonly satisfied: number;
  readonly total: number;
  readonly firstFailure: { readonly field: string; readonly values: readonly string[]; readonly notValues: readonly string[] } | null;
}

interface Score {
  satisfied: number;
  total: number;
  failure: Clause | null;
}

function scoreClauses(clauses: readonly Clause[], a: RequestAttributes): Score {
  let satisfied = 0;
  let failure: Clause | null = null;
  for (const c of clauses) {
    if (c.test(a)) satisfied++;
    else failure ??= c;
  }
  return { satisfied, total: clauses.length, failure };
}

/** The best-scoring alternative of an OR of groups; an empty OR is satisfied. */
function bestGroup(groups: readonly (readonly Clause[])[], a: RequestAttributes): Score {
  if (groups.length === 0) return { satisfied: 0, total: 0, failure: null };
  let best: Score | null = null;
  for (const g of groups) {
    const s = scoreClauses(g, a);
    if (best === null || s.total - s.satisfied < best.total - best.satisfied) best = s;
  }
  return best!;
}

function scoreRule(rule: CompiledRule, a: RequestAttributes): Score {
  const parts = [bestGroup(rule.sources, a), bestGroup(rule.operations, a), scoreClauses(rule.when, a)];
  let satisfied = 0;
  let total = 0;
  let failure: Clause | null = null;
  for (const p of parts) {
    satisfied += p.satisfied;
    total += p.total;
    failure ??= p.failure;
  }
  return { satisfied, total, failure };
}

export function nearestAllowRule(view: WorkloadAuthz, a: RequestAttributes): NearMiss | null {
  let best: NearMiss | null = null;
  for (const p of view.allow) {
    for (const rule of a.http ? p.http : p.tcp) {
      const s = scoreRule(rule, a);
      const missing = s.total - s.satisfied;
      if (best === null || missing < best.total - best.satisfied) {
        best = {
          policy: p.key,
          rule: rule.index,
          satisfied: s.satisfied,
          total: s.total,
          firstFailure: s.failure ? { field: s.failure.field, values: s.failure.values, notValues: s.failure.notValues } : null,
        };
      }
    }
  }
  return best;
}
