// AuthorizationPolicy (security.istio.io/v1, v1beta1), with the rules of
// Istio's ValidateAuthorizationPolicy plus a few that close gaps where Istio
// accepts a policy that cannot mean what it says (see values.ts).

import * as z from 'zod';
import type { AuthorizationPolicySpec } from '../resources.ts';
import {
  checked,
  isRecord,
  listField,
  listLength,
  nonEmptyList,
  present,
  recordField,
  stringField,
  withRules,
  type Finding,
  type Raw,
  type RuleContext,
} from './build.ts';
import { oneWayToSelect, policyTargetReference, workloadSelector } from './common.ts';
import { checkConditionKey, unsupportedWithCustom } from './conditions.ts';
import { documentSchema, type DecodeResult } from './document.ts';
import {
  ipOrCidr,
  matchValue,
  pathValue,
  portString,
  principalValue,
  SERVICE_ACCOUNT_LIMIT,
  serviceAccountValue,
  type Check,
} from './values.ts';

const ANY = 'omit the field to leave it unconstrained';

const values = (check: Check) => nonEmptyList(checked(check), ANY);

const serviceAccounts = values(serviceAccountValue).superRefine((list, ctx) => {
  if (list.length > SERVICE_ACCOUNT_LIMIT) {
    ctx.addIssue({ code: 'custom', message: `at most ${SERVICE_ACCOUNT_LIMIT} service accounts are allowed` });
  }
});

const SOURCE_FIELDS = [
  'principals',
  'notPrincipals',
  'requestPrincipals',
  'notRequestPrincipals',
  'namespaces',
  'notNamespaces',
  'serviceAccounts',
  'notServiceAccounts',
  'ipBlocks',
  'notIpBlocks',
  'remoteIpBlocks',
  'notRemoteIpBlocks',
] as const;

const source = withRules(
  z.strictObject({
    principals: values(principalValue).optional(),
    notPrincipals: values(principalValue).optional(),
    requestPrincipals: values(matchValue).optional(),
    notRequestPrincipals: values(matchValue).optional(),
    namespaces: values(matchValue).optional(),
    notNamespaces: values(matchValue).optional(),
    serviceAccounts: serviceAccounts.optional(),
    notServiceAccounts: serviceAccounts.optional(),
    ipBlocks: values(ipOrCidr).optional(),
    notIpBlocks: values(ipOrCidr).optional(),
    remoteIpBlocks: values(ipOrCidr).optional(),
    notRemoteIpBlocks: values(ipOrCidr).optional(),
  }),
  (src, ctx) => {
    if (!SOURCE_FIELDS.some((f) => present(src, f))) {
      ctx.errorUnlessUnknownFields([], 'source must set at least one field (Istio rejects an empty source)');
    }
    const identity = ['principals', 'notPrincipals', 'namespaces', 'notNamespaces'].find((f) => present(src, f));
    const sa = ['serviceAccounts', 'notServiceAccounts'].find((f) => present(src, f));
    if (identity !== undefined && sa !== undefined) {
      ctx.error([sa], `cannot set ${sa} together with ${identity}: use serviceAccounts, or principals/namespaces`);
    }
  },
);

const OPERATION_FIELDS = ['hosts', 'notHosts', 'ports', 'notPorts', 'methods', 'notMethods', 'paths', 'notPaths'] as const;

const operation = withRules(
  z.strictObject({
    hosts: values(matchValue).optional(),
    notHosts: values(matchValue).optional(),
    ports: values(portString).optional(),
    notPorts: values(portString).optional(),
    methods: values(matchValue).optional(),
    notMethods: values(matchValue).optional(),
    paths: values(pathValue).optional(),
    notPaths: values(pathValue).optional(),
  }),
  (op, ctx) => {
    if (!OPERATION_FIELDS.some((f) => present(op, f))) {
      ctx.errorUnlessUnknownFields([], 'operation must set at least one field (Istio rejects an empty operation)');
    }
  },
);

const condition = withRules(
  z.strictObject({
    key: z.string(),
    values: z.array(z.string()).optional(),
    notValues: z.array(z.string()).optional(),
  }),
  (c, ctx) => {
    for (const field of ['values', 'notValues']) {
      if (present(c, field) && listLength(c, field) === 0) ctx.error([field], `cannot be empty; ${ANY}`);
    }
    const key = stringField(c, 'key');
    if (key === undefined) return;
    if (key === '') {
      ctx.error(['key'], 'must not be empty');
      return;
    }
    if (!present(c, 'values') && !present(c, 'notValues')) {
      ctx.error([], `at least one of values or notValues must be set for key "${key}"`);
    }
    const keyCheck = checkConditionKey(key);
    if (!keyCheck.ok) {
      ctx.error(['key'], keyCheck.reason);
      return;
    }
    for (const field of ['values', 'notValues']) {
      const list = listField(c, field);
      if (key === 'source.serviceAccount' && list.length > SERVICE_ACCOUNT_LIMIT) {
        ctx.error([field], `at most ${SERVICE_ACCOUNT_LIMIT} service accounts are allowed`);
      }
      list.forEach((v, i) => {
        if (typeof v !== 'string') return;
        const reason = keyCheck.values(v);
        if (reason !== null) ctx.error([field, i], reason);
      });
    }
  },
);

const rule = z.strictObject({
  from: nonEmptyList(z.strictObject({ source }), 'omit "from" to match any source').optional(),
  to: nonEmptyList(z.strictObject({ operation }), 'omit "to" to match any operation').optional(),
  when: nonEmptyList(condition, 'omit "when" to add no conditions').optional(),
});

const ACTIONS = ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'] as const;

// Fields the external authorizer of a CUSTOM policy cannot be told about.
const CUSTOM_UNSUPPORTED_SOURCE = [
  'principals',
  'notPrincipals',
  'requestPrincipals',
  'notRequestPrincipals',
  'namespaces',
  'notNamespaces',
  'serviceAccounts',
  'notServiceAccounts',
] as const;

export const authorizationPolicySpec = withRules(
  z.strictObject({
    selector: workloadSelector.optional(),
    targetRef: policyTargetReference.optional(),
    targetRefs: z.array(policyTargetReference).optional(),
    action: z.enum(ACTIONS).optional(),
    provider: z.strictObject({ name: z.string() }).optional(),
    rules: z.array(rule).optional(),
  }),
  (spec, ctx) => {
    oneWayToSelect(spec, ctx);
    const action = stringField(spec, 'action') ?? 'ALLOW';
    const hasRules = listLength(spec, 'rules') > 0;
    if (action === 'CUSTOM') {
      const provider = recordField(spec, 'provider');
      if (provider === undefined) {
        ctx.error(['provider'], 'action CUSTOM needs provider.name (an extension provider from meshConfig)');
      } else if (provider['name'] === '') {
        ctx.error(['provider', 'name'], 'must not be empty: name an extension provider from meshConfig');
      }
      if (!hasRules) {
        ctx.error(['rules'], 'a CUSTOM policy without rules is never triggered; add an empty rule {} to check every request');
      }
      customRestrictions(spec, ctx.error);
    } else if (present(spec, 'provider')) {
      ctx.error(['provider'], `provider is only allowed with action CUSTOM, not ${action}`);
    }
    if (action === 'DENY' && !hasRules) {
      ctx.error(['rules'], 'a DENY policy without rules never matches; add an empty rule {} to deny every request');
    }
  },
);

function customRestrictions(spec: Raw, error: RuleContext['error']): void {
  listField(spec, 'rules').forEach((r, i) => {
    if (!isRecord(r)) return;
    listField(r, 'from').forEach((from, j) => {
      const src = isRecord(from) ? recordField(from, 'source') : undefined;
      if (src === undefined) return;
      for (const f of CUSTOM_UNSUPPORTED_SOURCE) {
        if (present(src, f)) error(['rules', i, 'from', j, 'source', f], `${f} is not supported with action CUSTOM`);
      }
    });
    listField(r, 'when').forEach((c, k) => {
      const key = isRecord(c) ? stringField(c, 'key') : undefined;
      if (key !== undefined && unsupportedWithCustom(key)) {
        error(['rules', i, 'when', k, 'key'], `condition key "${key}" is not supported with action CUSTOM`);
      }
    });
  });
}

// An AuthorizationPolicy without a spec is an ALLOW policy with no rules: it denies everything.
export const authorizationPolicyDocument = documentSchema(authorizationPolicySpec.nullable().optional(), {
  dryRun: 'authorization',
});

/** The parsed spec is exactly the typed spec; this fails to compile if they drift apart. */
export function toAuthorizationPolicySpec(spec: z.output<typeof authorizationPolicySpec>): AuthorizationPolicySpec {
  return spec;
}

const TCP_SOURCE_FIELDS = SOURCE_FIELDS.filter((f) => f !== 'requestPrincipals' && f !== 'notRequestPrincipals');

/**
 * Istio's warning for DENY rules that only use HTTP attributes: on a TCP
 * port such a rule loses those attributes and denies every connection.
 */
export function authorizationPolicyWarnings(spec: AuthorizationPolicySpec): Finding[] {
  const out: Finding[] = [];
  if (spec.selector !== undefined && Object.keys(spec.selector.matchLabels).length === 0) {
    out.push({ path: ['selector'], message: 'selector has no labels: the policy applies to every workload in the namespace' });
  }
  if (spec.action !== 'DENY') return out;
  (spec.rules ?? []).forEach((r, i) => {
    const from = r.from ?? [];
    const to = r.to ?? [];
    const tcpInFrom = from.some((f) => TCP_SOURCE_FIELDS.some((field) => f.source?.[field] !== undefined));
    const tcpInTo = to.some((t) => t.operation?.ports !== undefined || t.operation?.notPorts !== undefined);
    if ((from.length > 0 && to.length === 0 && !tcpInFrom) || (to.length > 0 && !tcpInTo)) {
      out.push({
        path: ['rules', i],
        message:
          'this DENY rule uses only HTTP attributes, so it denies all traffic to TCP ports the policy applies to; ' +
          'add ports to limit it',
      });
    }
  });
  return out;
}

export function decodeAuthorizationPolicy(value: unknown): DecodeResult<AuthorizationPolicySpec> {
  const r = authorizationPolicyDocument.safeParse(value);
  if (!r.success) return { ok: false, issues: r.error.issues };
  const spec = toAuthorizationPolicySpec(r.data.spec ?? {});
  return { ok: true, metadata: r.data.metadata, spec, findings: authorizationPolicyWarnings(spec) };
}
