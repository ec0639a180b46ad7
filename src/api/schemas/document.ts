// The envelope every resource shares: apiVersion, kind, metadata, spec and
// an ignored status. Unknown top-level fields are errors: a misplaced
// `rules:` next to `spec:` would otherwise vanish and change the policy.

import * as z from 'zod';
import { recordField, stringField, withRules, type Finding, type Raw, type RuleContext } from './build.ts';
import { objectMeta, type ParsedObjectMeta } from './metadata.ts';

export const DRY_RUN_ANNOTATION = 'istio.io/dry-run';

export interface DocumentOptions {
  /** Only AuthorizationPolicy understands `istio.io/dry-run`; Istio rejects it elsewhere. */
  readonly dryRun: 'authorization' | 'unsupported';
  /** Rules that need both metadata and spec (e.g. exportTo and the resource's namespace). */
  readonly rules?: (doc: Raw, ctx: RuleContext) => void;
}

/**
 * The document schema around a spec field: pass `spec.nullable().optional()`
 * where an absent spec means "all defaults", or `spec` where it is required.
 */
export function documentSchema<S extends z.ZodType>(specField: S, options: DocumentOptions) {
  return withRules(
    z.strictObject({
      apiVersion: z.string(),
      kind: z.string(),
      metadata: objectMeta,
      spec: specField,
      status: z.unknown().optional(),
    }),
    (doc, ctx) => {
      checkDryRun(doc, ctx, options.dryRun);
      options.rules?.(doc, ctx);
    },
  );
}

export type DecodeResult<S> =
  | { readonly ok: true; readonly metadata: ParsedObjectMeta; readonly spec: S; readonly findings: readonly Finding[] }
  | { readonly ok: false; readonly issues: readonly z.core.$ZodIssue[] };

function checkDryRun(doc: Raw, ctx: RuleContext, support: DocumentOptions['dryRun']): void {
  const annotations = recordField(recordField(doc, 'metadata') ?? {}, 'annotations');
  const value = annotations?.[DRY_RUN_ANNOTATION];
  if (value === undefined) return;
  const path = ['metadata', 'annotations', DRY_RUN_ANNOTATION];
  if (support === 'unsupported') {
    ctx.error(path, `${DRY_RUN_ANNOTATION} is only supported on AuthorizationPolicy; remove it`);
    return;
  }
  const action = stringField(recordField(doc, 'spec') ?? {}, 'action') ?? 'ALLOW';
  if (action !== 'ALLOW' && action !== 'DENY') {
    ctx.error(path, `${DRY_RUN_ANNOTATION} only supports action ALLOW or DENY, not ${action}`);
  }
  // Istio also takes Go's other spellings ("1", "True"...); only these two
  // read the same everywhere, so anything else is refused instead of guessed.
  if (typeof value === 'string' && value !== 'true' && value !== 'false') {
    ctx.error(path, `invalid ${DRY_RUN_ANNOTATION} value "${value}": expected "true" or "false"`);
  }
}
