// DestinationRule (networking.istio.io/v1, v1beta1, v1alpha3). meshward
// reads what decides client TLS (tls, per-port tls, subsets, visibility)
// and whether HTTP/1.1 is carried as HTTP/2 (connectionPool.http.
// h2UpgradePolicy); load balancing, the rest of the connection pool,
// outlier detection, tunnel and proxy protocol are checked to be objects
// and otherwise kept opaque.

import * as z from 'zod';
import type { ClientTlsSettings, DestinationRuleSpec, TrafficPolicy } from '../resources.ts';
import {
  checked,
  isRecord,
  listField,
  nonEmpty,
  present,
  recordField,
  stringField,
  withRules,
  type Finding,
  type PathSegment,
  type Raw,
  type RuleContext,
} from './build.ts';
import { workloadSelector } from './common.ts';
import { documentSchema, type DecodeResult } from './document.ts';
import { isIstioDnsLabel, labelKey, labelValue, wildcardDomain } from './values.ts';

const opaque = () => z.looseObject({}).optional();

/** The connection pool, opaque but for the one field meshward reads, whose misspelling must not pass for "do not upgrade". */
const connectionPool = () =>
  z.looseObject({ http: z.looseObject({ h2UpgradePolicy: z.enum(['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE']).optional() }).optional() }).optional();

const TLS_MODES = ['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL'] as const;

/** Set and non-empty, the way Istio's Go code tests string fields. */
function isSet(obj: Raw, key: string): boolean {
  const v = stringField(obj, key);
  return v !== undefined && v !== '';
}

// Istio's agent.ValidateTLS.
const clientTls = withRules(
  z.strictObject({
    mode: z.enum(TLS_MODES).optional(),
    clientCertificate: z.string().optional(),
    privateKey: z.string().optional(),
    caCertificates: z.string().optional(),
    credentialName: z.string().optional(),
    subjectAltNames: z.array(nonEmpty()).optional(),
    sni: z.string().optional(),
    insecureSkipVerify: z.boolean().optional(),
    caCrl: z.string().optional(),
  }),
  (tls, ctx) => {
    const mode = stringField(tls, 'mode') ?? 'DISABLE';
    if (tls['insecureSkipVerify'] === true) {
      const conflicting =
        mode === 'SIMPLE'
          ? ['caCertificates', 'credentialName', 'subjectAltNames']
          : mode === 'MUTUAL'
            ? ['caCertificates', 'subjectAltNames']
            : [];
      for (const f of conflicting) {
        if (f === 'subjectAltNames' ? present(tls, f) : isSet(tls, f)) {
          ctx.error([f], `cannot be set when insecureSkipVerify is true (the server certificate is not verified)`);
        }
      }
    }
    if ((mode === 'SIMPLE' || mode === 'MUTUAL') && isSet(tls, 'credentialName')) {
      for (const f of ['clientCertificate', 'privateKey', 'caCertificates', 'caCrl']) {
        if (isSet(tls, f)) ctx.error([f], 'cannot be set together with credentialName: the credential provides it');
      }
      return;
    }
    if (mode === 'MUTUAL') {
      for (const f of ['clientCertificate', 'privateKey']) {
        if (!isSet(tls, f)) ctx.error([f], `mode MUTUAL needs ${f} (or a credentialName)`);
      }
    }
  },
);

const portNumber = z.int().superRefine((n, ctx) => {
  if (n < 1 || n > 65535) ctx.addIssue({ code: 'custom', message: `invalid port ${n}: must be a number from 1 to 65535` });
});

const PORT_POLICY_FIELDS = ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls'] as const;

const portTrafficPolicy = withRules(
  z.strictObject({
    port: z.strictObject({ number: portNumber }),
    loadBalancer: opaque(),
    connectionPool: connectionPool(),
    outlierDetection: opaque(),
    tls: clientTls.optional(),
  }),
  (p, ctx) => {
    if (!PORT_POLICY_FIELDS.some((f) => present(p, f))) {
      ctx.errorUnlessUnknownFields([], `port traffic policy must set at least one of ${PORT_POLICY_FIELDS.join(', ')}`);
    }
  },
);

const TRAFFIC_POLICY_FIELDS = [
  'loadBalancer',
  'connectionPool',
  'outlierDetection',
  'tls',
  'portLevelSettings',
  'tunnel',
  'proxyProtocol',
] as const;

const trafficPolicy = withRules(
  z.strictObject({
    loadBalancer: opaque(),
    connectionPool: connectionPool(),
    outlierDetection: opaque(),
    tls: clientTls.optional(),
    portLevelSettings: z.array(portTrafficPolicy).optional(),
    tunnel: opaque(),
    proxyProtocol: opaque(),
  }),
  (tp, ctx) => {
    if (!TRAFFIC_POLICY_FIELDS.some((f) => present(tp, f))) {
      ctx.errorUnlessUnknownFields([], `traffic policy must set at least one of ${TRAFFIC_POLICY_FIELDS.join(', ')}`);
    }
    if (present(tp, 'tunnel') && present(tp, 'proxyProtocol')) {
      ctx.error(['proxyProtocol'], 'cannot be set together with tunnel');
    }
    const firstIndex = new Map<number, number>();
    listField(tp, 'portLevelSettings').forEach((entry, i) => {
      const n = isRecord(entry) ? recordField(entry, 'port')?.['number'] : undefined;
      if (typeof n !== 'number') return;
      const first = firstIndex.get(n);
      if (first === undefined) firstIndex.set(n, i);
      else ctx.error(['portLevelSettings', i, 'port', 'number'], `port ${n} already has settings in portLevelSettings[${first}]`);
    });
  },
);

const subsetLabels = withRules(z.record(z.string(), z.string()), (labels, ctx) => {
  for (const [k, v] of Object.entries(labels)) {
    const reason = labelKey(k) ?? (typeof v === 'string' ? labelValue(v) : null);
    if (reason !== null) ctx.error([k], reason);
  }
});

const subset = z.strictObject({
  name: z.string().superRefine((name, ctx) => {
    if (name === '') ctx.addIssue({ code: 'custom', message: 'must not be empty' });
    else if (!isIstioDnsLabel(name)) {
      ctx.addIssue({ code: 'custom', message: `invalid subset name "${name}": must be an RFC 1123 label` });
    }
  }),
  labels: subsetLabels.optional(),
  trafficPolicy: trafficPolicy.optional(),
});

export const destinationRuleSpec = withRules(
  z.strictObject({
    host: checked(wildcardDomain),
    trafficPolicy: trafficPolicy.optional(),
    subsets: z.array(subset).optional(),
    exportTo: z.array(z.string()).optional(),
    workloadSelector: workloadSelector.optional(),
  }),
  (spec, ctx) => {
    const firstIndex = new Map<string, number>();
    listField(spec, 'subsets').forEach((s, i) => {
      const name = isRecord(s) ? stringField(s, 'name') : undefined;
      if (name === undefined) return;
      const first = firstIndex.get(name);
      if (first === undefined) firstIndex.set(name, i);
      else ctx.error(['subsets', i, 'name'], `duplicate subset name "${name}" (also subsets[${first}])`);
    });
  },
);

/** Istio's validateExportTo for a DestinationRule; needs the resource's namespace. */
function checkExportTo(doc: Raw, ctx: RuleContext): void {
  const spec = recordField(doc, 'spec');
  if (spec === undefined) return;
  const entries = listField(spec, 'exportTo');
  const namespace = stringField(recordField(doc, 'metadata') ?? {}, 'namespace') ?? 'default';
  const seen = new Set<string>();
  entries.forEach((e, i) => {
    if (typeof e !== 'string') return;
    const path = ['spec', 'exportTo', i];
    const key = e === '.' ? namespace : e;
    if (seen.has(key)) {
      ctx.error(path, key === e ? `duplicate exportTo entry "${e}"` : `duplicate exportTo entry: "." is this namespace (${namespace})`);
    } else if (e === '~') {
      ctx.error(path, 'exportTo "~" (visible to no one) is only allowed on a ServiceEntry');
    } else if (e !== '.' && e !== '*' && !isIstioDnsLabel(e)) {
      ctx.error(path, `invalid exportTo entry "${e}": expected ".", "*" or a namespace name`);
    } else {
      seen.add(key);
    }
  });
  if (present(spec, 'workloadSelector') && seen.size > 0 && (!seen.has(namespace) || seen.size > 1)) {
    ctx.error(['spec', 'exportTo'], 'a DestinationRule with a workloadSelector can only be exported to its own namespace');
  }
  if (seen.has('*') && entries.length > 1) {
    ctx.error(['spec', 'exportTo'], 'cannot mix "*" (all namespaces) with other entries');
  }
}

// A DestinationRule needs at least its host, so the spec is required.
export const destinationRuleDocument = documentSchema(destinationRuleSpec, { dryRun: 'unsupported', rules: checkExportTo });

export function toDestinationRuleSpec(spec: z.output<typeof destinationRuleSpec>): DestinationRuleSpec {
  return spec;
}

const IGNORED_WITH_ISTIO_MUTUAL = ['clientCertificate', 'privateKey', 'caCertificates', 'credentialName'] as const;

function tlsWarnings(tls: ClientTlsSettings | undefined, at: readonly PathSegment[], out: Finding[]): void {
  if (tls?.mode !== 'ISTIO_MUTUAL') return;
  for (const f of IGNORED_WITH_ISTIO_MUTUAL) {
    if (tls[f] !== undefined && tls[f] !== '') {
      out.push({ path: [...at, 'tls', f], message: `ignored with mode ISTIO_MUTUAL, which always uses the mesh certificates` });
    }
  }
}

function trafficPolicyWarnings(tp: TrafficPolicy | undefined, at: readonly PathSegment[], out: Finding[]): void {
  if (tp === undefined) return;
  tlsWarnings(tp.tls, at, out);
  tp.portLevelSettings?.forEach((p, i) => tlsWarnings(p.tls, [...at, 'portLevelSettings', i], out));
}

export function destinationRuleWarnings(spec: DestinationRuleSpec): Finding[] {
  const out: Finding[] = [];
  if (spec.workloadSelector !== undefined && Object.keys(spec.workloadSelector.matchLabels).length === 0) {
    out.push({ path: ['workloadSelector'], message: 'workloadSelector has no labels: the rule applies to every workload in the namespace' });
  }
  trafficPolicyWarnings(spec.trafficPolicy, ['trafficPolicy'], out);
  spec.subsets?.forEach((s, i) => trafficPolicyWarnings(s.trafficPolicy, ['subsets', i, 'trafficPolicy'], out));
  return out;
}

export function decodeDestinationRule(value: unknown): DecodeResult<DestinationRuleSpec> {
  const r = destinationRuleDocument.safeParse(value);
  if (!r.success) return { ok: false, issues: r.error.issues };
  const spec = toDestinationRuleSpec(r.data.spec);
  return { ok: true, metadata: r.data.metadata, spec, findings: destinationRuleWarnings(spec) };
}
