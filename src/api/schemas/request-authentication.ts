// RequestAuthentication (security.istio.io/v1, v1beta1): which JWTs a
// workload accepts, following Istio's validateJwtRule.

import * as z from 'zod';
import type { RequestAuthenticationSpec } from '../resources.ts';
import { checked, nonEmpty, present, withRules } from './build.ts';
import type { Finding } from './build.ts';
import { oneWayToSelect, policyTargetReference, workloadSelector } from './common.ts';
import { documentSchema, type DecodeResult } from './document.ts';
import { duration, jwksDocument, jwksUri, outputHeaderName } from './values.ts';

const jwtRule = withRules(
  z.strictObject({
    // Istio now accepts an empty issuer when jwksUri is set; meshward matches
    // tokens to rules by issuer, so it stays required here.
    issuer: nonEmpty(),
    audiences: z.array(nonEmpty()).optional(),
    jwksUri: checked(jwksUri).optional(),
    jwks: checked(jwksDocument).optional(),
    fromHeaders: z.array(z.strictObject({ name: nonEmpty(), prefix: z.string().optional() })).optional(),
    fromParams: z.array(nonEmpty()).optional(),
    fromCookies: z.array(nonEmpty()).optional(),
    outputPayloadToHeader: z.string().optional(),
    forwardOriginalToken: z.boolean().optional(),
    outputClaimToHeaders: z
      .array(z.strictObject({ header: checked(outputHeaderName), claim: nonEmpty() }))
      .optional(),
    timeout: checked(duration).optional(),
  }),
  (rule, ctx) => {
    if (present(rule, 'jwks') && present(rule, 'jwksUri')) {
      ctx.error(['jwks'], 'cannot be set together with jwksUri: give the keys inline (jwks) or by URL (jwksUri)');
    }
  },
);

export const requestAuthenticationSpec = withRules(
  z.strictObject({
    selector: workloadSelector.optional(),
    targetRef: policyTargetReference.optional(),
    targetRefs: z.array(policyTargetReference).optional(),
    jwtRules: z.array(jwtRule).optional(),
  }),
  oneWayToSelect,
);

export const requestAuthenticationDocument = documentSchema(requestAuthenticationSpec.nullable().optional(), {
  dryRun: 'unsupported',
});

export function toRequestAuthenticationSpec(spec: z.output<typeof requestAuthenticationSpec>): RequestAuthenticationSpec {
  return spec;
}

export function requestAuthenticationWarnings(spec: RequestAuthenticationSpec): Finding[] {
  if (spec.selector !== undefined && Object.keys(spec.selector.matchLabels).length === 0) {
    return [{ path: ['selector'], message: 'selector has no labels: the policy applies to every workload in the namespace' }];
  }
  return [];
}

export function decodeRequestAuthentication(value: unknown): DecodeResult<RequestAuthenticationSpec> {
  const r = requestAuthenticationDocument.safeParse(value);
  if (!r.success) return { ok: false, issues: r.error.issues };
  const spec = toRequestAuthenticationSpec(r.data.spec ?? {});
  return { ok: true, metadata: r.data.metadata, spec, findings: requestAuthenticationWarnings(spec) };
}
