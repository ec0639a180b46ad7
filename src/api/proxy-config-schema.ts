// Validation of ProxyConfig (proxy-config.ts). A proxy config is accepted
// whole or not at all: every problem is reported, with the file and the field
// path, and the accepted object is frozen so nothing can change it while
// requests hold it.

import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
import * as z from 'zod';
import type { Diagnostic } from './diagnostics.ts';
import { issuesToDiagnostics } from './issues.ts';
import { lineFinder } from './yaml-lines.ts';
import type { ProxyConfig } from './proxy-config.ts';
import { DEFAULT_PROXY_LIMITS, PROXY_LIMIT_BOUNDS } from './proxy-limits.ts';

const port = z.number().int().min(1).max(65535);
const name = z.string().min(1);
const protocol = z.enum(['http', 'http2', 'grpc', 'tcp']);

const inboundPort = z.strictObject({
  port,
  protocol,
  appPort: port,
  healthPaths: z.array(z.string().startsWith('/')).optional(),
  tls: z.strictObject({ certFile: name, keyFile: name }).optional(),
});

// Loopback only: a proxy in local mode has no business listening elsewhere.
const loopbackAddress = z
  .string()
  .refine((a) => /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a) && a.split('.').every((o) => Number(o) <= 255), {
    message: 'expected a loopback IPv4 address (127.0.0.0/8)',
  });

const inlineResource = z.strictObject({ file: name, documentIndex: z.number().int().min(0), object: z.unknown() });

const upstream = z.strictObject({
  name,
  host: name,
  servicePort: port,
  protocol,
  localPort: port.optional(),
  endpoints: z.array(z.strictObject({ host: name, port, identities: z.array(z.string().startsWith('spiffe://')) })),
  loadBalancer: z.enum(['ROUND_ROBIN', 'LEAST_REQUEST']).optional(),
});

const identity = z
  .strictObject({
    files: z.strictObject({ keyFile: name, certChainFile: name, bundleFile: name }).optional(),
    ca: z.strictObject({ address: name, bundleFile: name, bootstrapToken: name }).optional(),
  })
  .refine((i) => (i.files === undefined) !== (i.ca === undefined), { message: 'set exactly one of "files" or "ca"' });

const meshConfig = z.strictObject({
  rootNamespace: name.optional(),
  trustDomain: name.optional(),
  trustDomainAliases: z.array(name).optional(),
  pathNormalization: z.enum(['NONE', 'BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES']).optional(),
  extensionProviders: z.array(z.strictObject({ name })).optional(),
});

const tracing = z.strictObject({
  otlpEndpoint: z
    .string()
    .refine((u) => URL.canParse(u) && ['http:', 'https:'].includes(new URL(u).protocol), { message: 'expected an http:// or https:// URL, e.g. http://127.0.0.1:4318/v1/traces' })
    .optional(),
  sampling: z.number().min(0).max(100).optional(),
  serviceName: name.optional(),
});

const limitField = (b: { min: number; max: number }): z.ZodOptional<z.ZodNumber> => z.number().int().min(b.min).max(b.max).optional();
const B = PROXY_LIMIT_BOUNDS;
const limits = z
  .strictObject({
    maxRequestHeadersBytes: limitField(B.maxRequestHeadersBytes),
    maxRequestHeadersCount: limitField(B.maxRequestHeadersCount),
    headerTimeoutMs: limitField(B.headerTimeoutMs),
    requestTimeoutMs: limitField(B.requestTimeoutMs),
    idleTimeoutMs: limitField(B.idleTimeoutMs),
    handshakeTimeoutMs: limitField(B.handshakeTimeoutMs),
    maxDownstreamConnections: limitField(B.maxDownstreamConnections),
  })
  .superRefine((l, ctx) => {
    // A request cannot take less time than its headers; 0 turns the request timeout off.
    const request = l.requestTimeoutMs;
    const header = l.headerTimeoutMs ?? DEFAULT_PROXY_LIMITS.headerTimeoutMs;
    if (request !== undefined && request !== 0 && request < header) {
      ctx.addIssue({ code: 'custom', path: ['requestTimeoutMs'], message: `requestTimeoutMs (${request}) is shorter than headerTimeoutMs (${header}); raise it, or set 0 to turn it off` });
    }
  });

export const proxyConfigSchema = z
  .strictObject({
    version: z.number().int().min(0),
    workload: z.strictObject({
      name,
      namespace: name,
      serviceAccount: name,
      labels: z.record(z.string(), z.string()),
      trustDomain: name,
      service: name.optional(),
    }),
    identity: identity.optional(),
    address: loopbackAddress.optional(),
    inbound: z.array(inboundPort),
    outbound: z.array(upstream),
    httpProxyPort: port.optional(),
    adminPort: port,
    policyPaths: z.array(name),
    resources: z.array(inlineResource).optional(),
    meshConfig: meshConfig.optional(),
    tracing: tracing.optional(),
    limits: limits.optional(),
  })
  .superRefine((c, ctx) => {
    // Two listeners cannot share a port; say which entry repeats which.
    const seen = new Map<number, number>();
    c.inbound.forEach((p, i) => {
      const first = seen.get(p.port);
      if (first !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['inbound', i, 'port'], message: `port ${p.port} is already used by inbound[${first}]` });
      } else seen.set(p.port, i);
    });
  });

export type ProxyConfigResult = { readonly config: ProxyConfig } | { readonly diagnostics: readonly Diagnostic[] };

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Validates an already-parsed config; `file` names it in diagnostics. */
export function parseProxyConfig(file: string, input: unknown, lineOf?: (path: readonly (string | number)[]) => number): ProxyConfigResult {
  const r = proxyConfigSchema.safeParse(input);
  if (!r.success) {
    return { diagnostics: Object.freeze(issuesToDiagnostics(r.error.issues, { file, input, schema: proxyConfigSchema, ...(lineOf ? { lineOf } : {}) })) };
  }
  return { config: deepFreeze(r.data as ProxyConfig) };
}

/** Reads and validates a proxy config file (YAML or JSON). */
export function loadProxyConfig(file: string): ProxyConfigResult {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { diagnostics: [{ severity: 'error', file, message: `cannot read: ${(err as Error).message}` }] };
  }
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: false, uniqueKeys: true });
  const syntax = doc.errors[0];
  if (syntax !== undefined) {
    return { diagnostics: [{ severity: 'error', file, line: counter.linePos(syntax.pos[0]).line, message: `YAML syntax error: ${syntax.message}` }] };
  }
  return parseProxyConfig(file, doc.toJS({ maxAliasCount: 100 }), lineFinder(doc, counter));
}
