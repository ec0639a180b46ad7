// The request JSON of `meshward authz check`: one request or connection as
// the destination's sidecar would see it, validated into a frozen
// AuthzCheckRequest, or diagnostics that name each wrong field.
//
//   const parsed = parseAuthzCheckRequest('request.json', JSON.parse(text));
//   if (parsed.request === undefined) ...print parsed.diagnostics...

import * as z from 'zod';
import type { Diagnostic } from './diagnostics.ts';
import { deepFreeze } from './freeze.ts';
import { describeValue, issuesToDiagnostics } from './issues.ts';
import { DEFAULT_MESH_CONFIG, type MeshConfig, type PathNormalization } from './mesh-config.ts';
import { checked, nonEmpty, present, recordField, withRules } from './schemas/build.ts';
import { ipAddress, isHeaderToken, namespaceName } from './schemas/values.ts';

export interface AuthzDestination {
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly serviceAccount: string;
  /** Workload (target) port the connection arrived on. */
  readonly port: number;
  readonly ip?: string;
  /** The service the client dialled; needed to decide TLS as the client would (`mtls: "auto"`). */
  readonly service?: { readonly host: string; readonly port: number };
}

export interface AuthzSource {
  /** Peer identity without `spiffe://`; null without mTLS. */
  readonly principal: string | null;
  readonly namespace: string | null;
  readonly ip: string;
  readonly remoteIp?: string;
  /** true: Istio mTLS; false: plaintext; 'auto': decide as the client's sidecar would. */
  readonly mtls: boolean | 'auto';
}

export interface AuthzHttpRequest {
  readonly protocol: 'http';
  readonly method: string;
  readonly path: string;
  /** `:authority`; "" when the request JSON leaves it out. */
  readonly host: string;
  /** Lower-case names; never `host` or pseudo-headers. */
  readonly headers: Readonly<Record<string, string>>;
  readonly sni?: string;
}

export interface AuthzTcpRequest {
  readonly protocol: 'tcp';
  readonly sni?: string;
  // Absent on TCP; declared so code can read `request.path` without narrowing first.
  readonly method?: undefined;
  readonly path?: undefined;
  readonly host?: undefined;
  readonly headers?: undefined;
}

export interface AuthzCheckRequest {
  readonly destination: AuthzDestination;
  readonly source: AuthzSource;
  readonly request: AuthzHttpRequest | AuthzTcpRequest;
  /** The request's meshConfig over Istio's defaults. */
  readonly meshConfig: MeshConfig;
  /** What each CUSTOM provider answers, by provider name. */
  readonly extAuthz?: Readonly<Record<string, 'ALLOW' | 'DENY'>>;
}

export type AuthzRequestResult =
  | { readonly request: AuthzCheckRequest; readonly diagnostics: readonly Diagnostic[] }
  | { readonly request: undefined; readonly diagnostics: readonly Diagnostic[] };

// ---------------------------------------------------------------- schema

const port = z.int().superRefine((n, ctx) => {
  if (n < 1 || n > 65535) ctx.addIssue({ code: 'custom', message: `invalid port ${n}: must be a number from 1 to 65535` });
});

const ip = checked(ipAddress);

const destination = z.strictObject({
  namespace: checked(namespaceName),
  labels: z.record(z.string(), z.string()),
  serviceAccount: nonEmpty(),
  port,
  ip: ip.optional(),
  service: z.strictObject({ host: nonEmpty(), port }).optional(),
});

const mtlsMode = z.custom<boolean | 'auto'>((v) => v === true || v === false || v === 'auto', {
  error: (iss) =>
    iss.input === undefined
      ? 'missing required field "mtls"'
      : `expected true, false or "auto", got ${describeValue(iss.input)}`,
});

const source = z.strictObject({
  principal: nonEmpty()
    .superRefine((p, ctx) => {
      if (p.startsWith('spiffe://')) {
        ctx.addIssue({ code: 'custom', message: `write the principal without "spiffe://" (e.g. "${p.slice(9)}")` });
      }
    })
    .nullable(),
  namespace: checked(namespaceName).nullable(),
  ip,
  remoteIp: ip.optional(),
  mtls: mtlsMode,
});

const headers = withRules(z.record(z.string(), z.string()), (map, ctx) => {
  const seen = new Map<string, string>();
  for (const name of Object.keys(map)) {
    const lower = name.toLowerCase();
    if (lower === 'host') ctx.error([name], 'the host header goes in request.host, not in headers');
    else if (name.startsWith(':')) ctx.error([name], 'pseudo-headers are not allowed in headers (put :authority in request.host)');
    else if (!isHeaderToken(name)) ctx.error([name], `invalid header name "${name}"`);
    const first = seen.get(lower);
    if (first !== undefined) ctx.error([name], `header "${lower}" is given twice ("${first}" and "${name}")`);
    else seen.set(lower, name);
  }
});

const HTTP_ONLY = ['method', 'path', 'host', 'headers'] as const;

const request = withRules(
  z.strictObject({
    protocol: z.enum(['http', 'tcp']),
    method: nonEmpty()
      .superRefine((m, ctx) => {
        if (m !== '' && !isHeaderToken(m)) ctx.addIssue({ code: 'custom', message: `invalid method "${m}"` });
      })
      .optional(),
    path: nonEmpty().optional(),
    host: z.string().optional(),
    headers: headers.optional(),
    sni: z.string().optional(),
  }),
  (req, ctx) => {
    if (req['protocol'] === 'http') {
      for (const f of ['method', 'path']) {
        if (!present(req, f)) ctx.error([f], `missing required field "${f}" (required for protocol http)`);
      }
    } else if (req['protocol'] === 'tcp') {
      for (const f of HTTP_ONLY) {
        if (present(req, f)) ctx.error([f], 'must not be set for protocol tcp (only sni is)');
      }
    }
  },
);

const NORMALIZATIONS = ['NONE', 'BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES', 'DEFAULT'] as const;

const meshConfig = withRules(
  z.strictObject({
    rootNamespace: checked(namespaceName).optional(),
    trustDomain: nonEmpty().optional(),
    trustDomainAliases: z.array(nonEmpty()).optional(),
    pathNormalization: z.strictObject({ normalization: z.enum(NORMALIZATIONS).optional() }).optional(),
    // Providers carry their own settings (envoyExtAuthzHttp...), which only the proxy reads.
    extensionProviders: z.array(z.looseObject({ name: nonEmpty() })).optional(),
  }),
  (mc, ctx) => {
    const providers = mc['extensionProviders'];
    if (!Array.isArray(providers)) return;
    const firstIndex = new Map<string, number>();
    providers.forEach((p: unknown, i) => {
      const name = typeof p === 'object' && p !== null ? (p as { name?: unknown }).name : undefined;
      if (typeof name !== 'string') return;
      const first = firstIndex.get(name);
      if (first === undefined) firstIndex.set(name, i);
      else ctx.error(['extensionProviders', i, 'name'], `duplicate extension provider name "${name}" (also extensionProviders[${first}])`);
    });
  },
);

const checkRequest = withRules(
  z.strictObject({
    destination,
    source,
    request,
    meshConfig: meshConfig.optional(),
    extAuthz: z.record(z.string(), z.enum(['ALLOW', 'DENY'])).optional(),
  }),
  (root, ctx) => {
    const src = recordField(root, 'source');
    const dst = recordField(root, 'destination');
    if (src === undefined || dst === undefined) return;
    if (src['mtls'] === 'auto') {
      if (!present(dst, 'service')) {
        ctx.error(['destination', 'service'], 'required when source.mtls is "auto": the client picks TLS by the service it dialled');
      }
      if (src['namespace'] === null) {
        ctx.error(['source', 'namespace'], 'must not be null when source.mtls is "auto": the client\'s DestinationRules depend on it');
      }
    }
    if (src['mtls'] === false && typeof src['principal'] === 'string') {
      ctx.error(['source', 'principal'], 'must be null when source.mtls is false: a plaintext connection has no peer identity');
    }
  },
);

// ---------------------------------------------------------------- parse

export function parseAuthzCheckRequest(file: string, json: unknown): AuthzRequestResult {
  const r = checkRequest.safeParse(json);
  if (!r.success) {
    const diagnostics = issuesToDiagnostics(r.error.issues, { file, input: json, schema: checkRequest });
    return { request: undefined, diagnostics: Object.freeze(diagnostics) };
  }
  const d = r.data;
  const req = d.request;
  const result: AuthzCheckRequest = {
    destination: {
      namespace: d.destination.namespace,
      labels: nullPrototype(Object.entries(d.destination.labels)),
      serviceAccount: d.destination.serviceAccount,
      port: d.destination.port,
      ...(d.destination.ip !== undefined ? { ip: d.destination.ip } : {}),
      ...(d.destination.service !== undefined ? { service: d.destination.service } : {}),
    },
    source: {
      principal: d.source.principal,
      namespace: d.source.namespace,
      ip: d.source.ip,
      ...(d.source.remoteIp !== undefined ? { remoteIp: d.source.remoteIp } : {}),
      mtls: d.source.mtls,
    },
    request:
      req.protocol === 'tcp'
        ? { protocol: 'tcp', ...(req.sni !== undefined ? { sni: req.sni } : {}) }
        : {
            protocol: 'http',
            method: req.method ?? '',
            path: req.path ?? '',
            host: req.host ?? '',
            headers: nullPrototype(Object.entries(req.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v])),
            ...(req.sni !== undefined ? { sni: req.sni } : {}),
          },
    meshConfig: resolveMeshConfig(d.meshConfig),
    ...(d.extAuthz !== undefined ? { extAuthz: nullPrototype(Object.entries(d.extAuthz)) } : {}),
  };
  return { request: deepFreeze(result), diagnostics: Object.freeze([]) };
}

function resolveMeshConfig(mc: z.output<typeof meshConfig> | undefined): MeshConfig {
  const normalization = mc?.pathNormalization?.normalization;
  const pathNormalization: PathNormalization =
    normalization === undefined || normalization === 'DEFAULT' ? 'BASE' : normalization;
  return {
    rootNamespace: mc?.rootNamespace ?? DEFAULT_MESH_CONFIG.rootNamespace,
    trustDomain: mc?.trustDomain ?? DEFAULT_MESH_CONFIG.trustDomain,
    trustDomainAliases: mc?.trustDomainAliases ?? [],
    pathNormalization,
    extensionProviders: (mc?.extensionProviders ?? []).map((p) => ({ name: p.name })),
  };
}

/** Maps looked up by user-controlled keys must not see Object.prototype (`headers["constructor"]`). */
function nullPrototype<V>(entries: Iterable<readonly [string, V]>): Record<string, V> {
  const out = Object.create(null) as Record<string, V>;
  for (const [k, v] of entries) out[k] = v;
  return out;
}
