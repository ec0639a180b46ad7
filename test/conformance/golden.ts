// The golden conformance suite's machinery: read the case files under
// cases/, turn each into Istio YAML plus authz-check requests (JWKS and
// tokens filled in from a key pair made for this run), decide each request
// exactly as `meshward authz check -o json` does, and compare with what
// Istio does. The case format is described in README.md.
//
//   const files = await loadCaseFiles();
//   for (const f of files) for (const c of f.cases) {
//     const actual = await decide(f, c);
//     mismatches(c.expect, actual); // [] when meshward agrees with Istio
//   }

import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { parse } from 'yaml';
import * as z from 'zod';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';

import { loadResourcesFromText } from '../../src/api/load.ts';
import { formatDiagnostic } from '../../src/api/diagnostics.ts';
import { parseAuthzCheckRequest } from '../../src/api/authz-request.ts';
import type { ResourceSet } from '../../src/api/resources.ts';
import { PolicyEngine } from '../../src/policy/engine.ts';
import { decisionJson, toEngineInput } from '../../src/cli/authz-check.ts';

export const CASES_DIR = resolve(import.meta.dirname, 'cases');

// ---------------------------------------------------------------- case file schema

const STAGES = ['peer-authentication', 'normalization', 'request-authentication', 'authorization'] as const;

const tokenSpec = z.strictObject({
  /** RS256 unless given; `none` makes an unsigned token. */
  alg: z.enum(['RS256', 'ES256', 'none']).optional(),
  /** `other` signs with a key that is not in {{JWKS}} (same kid, so only the signature is wrong). */
  key: z.enum(['default', 'other']).optional(),
  /** The payload; `exp`, `nbf` and `iat` are seconds relative to now (`exp: +3600`, `exp: -3600`). */
  claims: z.record(z.string(), z.unknown()),
});

const expectation = z
  .strictObject({
    decision: z.enum(['ALLOW', 'DENY']),
    status: z.union([z.literal(200), z.literal(400), z.literal(401), z.literal(403), z.literal('reset')]),
    stage: z.enum(STAGES).nullable().optional(),
    policy: z.string().nullable().optional(),
    principal: z.string().nullable().optional(),
    requestPrincipal: z.string().nullable().optional(),
  })
  .superRefine((e, ctx) => {
    if (e.decision === 'DENY' && (e.stage === undefined || e.stage === null)) {
      ctx.addIssue({ code: 'custom', path: ['stage'], message: 'a DENY expectation must name the stage that refused' });
    }
    if (e.decision === 'ALLOW' && e.stage !== undefined && e.stage !== null) {
      ctx.addIssue({ code: 'custom', path: ['stage'], message: 'an ALLOW has no stage (leave it out or write null)' });
    }
    if ((e.decision === 'ALLOW') !== (e.status === 200)) {
      ctx.addIssue({ code: 'custom', path: ['status'], message: 'status 200 goes with ALLOW and only with ALLOW' });
    }
  });

const requestObject = z.record(z.string(), z.unknown());

const caseSpec = z.strictObject({
  name: z.string().min(1),
  request: requestObject,
  expect: expectation,
  /** Istio's behaviour is the expectation; this says why meshward differs. The case is reported as todo. */
  knownDifference: z.string().min(1).optional(),
});

const caseFileSpec = z
  .strictObject({
    description: z.string().min(1),
    resources: z.string(),
    defaults: requestObject.optional(),
    tokens: z.record(z.string(), tokenSpec).optional(),
    cases: z.array(caseSpec).min(1),
  })
  .superRefine((f, ctx) => {
    const seen = new Set<string>();
    f.cases.forEach((c, i) => {
      if (seen.has(c.name)) ctx.addIssue({ code: 'custom', path: ['cases', i, 'name'], message: `duplicate case name "${c.name}"` });
      seen.add(c.name);
    });
  });

export type TokenSpec = z.output<typeof tokenSpec>;
export type Expectation = z.output<typeof expectation>;
export type CaseSpec = z.output<typeof caseSpec>;

export interface GoldenCase {
  readonly name: string;
  /** The authz-check request JSON: defaults merged, tokens substituted. */
  readonly request: Record<string, unknown>;
  readonly expect: Expectation;
  readonly knownDifference?: string;
}

export interface GoldenFile {
  /** Path under cases/, e.g. `tcp/allow-ports.yaml`. */
  readonly id: string;
  readonly path: string;
  readonly description: string;
  /** The Istio YAML with {{JWKS}} filled in. */
  readonly resourcesText: string;
  readonly cases: readonly GoldenCase[];
}

export type LoadedFile = { readonly id: string; readonly file: GoldenFile } | { readonly id: string; readonly error: string };

// ---------------------------------------------------------------- keys and tokens

interface KeyPair {
  readonly privateKey: CryptoKey;
  readonly jwk: JWK;
}

const KID: Record<'RS256' | 'ES256', string> = { RS256: 'conformance-rs256', ES256: 'conformance-es256' };
const keyPairs = new Map<string, Promise<KeyPair>>();

/** One key pair per (key, alg) for the whole run; `other` keys reuse the default kid. */
function keyPair(key: 'default' | 'other', alg: 'RS256' | 'ES256'): Promise<KeyPair> {
  const id = `${key}/${alg}`;
  let p = keyPairs.get(id);
  if (p === undefined) {
    p = (async () => {
      const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
      const jwk: JWK = { ...(await exportJWK(publicKey)), kid: KID[alg], alg, use: 'sig' };
      return { privateKey, jwk };
    })();
    keyPairs.set(id, p);
  }
  return p;
}

/** The public JWKS every case file's `{{JWKS}}` stands for: the default RS256 and ES256 keys. */
export async function publicJwks(): Promise<string> {
  const keys = await Promise.all([keyPair('default', 'RS256'), keyPair('default', 'ES256')]);
  return JSON.stringify({ keys: keys.map((k) => k.jwk) });
}

const RELATIVE_TIME_CLAIMS = ['exp', 'nbf', 'iat'] as const;

export async function signToken(spec: TokenSpec, nowSeconds = Math.floor(Date.now() / 1000)): Promise<string> {
  const claims: Record<string, unknown> = { ...spec.claims };
  for (const c of RELATIVE_TIME_CLAIMS) {
    const v = claims[c];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new Error(`token claim ${c} must be whole seconds relative to now, got ${JSON.stringify(v)}`);
    claims[c] = nowSeconds + v;
  }
  const alg = spec.alg ?? 'RS256';
  if (alg === 'none') {
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    return `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`;
  }
  const { privateKey } = await keyPair(spec.key ?? 'default', alg);
  return new SignJWT(claims).setProtectedHeader({ alg, kid: KID[alg], typ: 'JWT' }).sign(privateKey);
}

// ---------------------------------------------------------------- loading

function listYaml(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listYaml(full));
    else if (entry.name.endsWith('.yaml')) out.push(full);
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Sections whose fields a case overrides one by one; every other section (request, extAuthz) a case replaces whole. */
const MERGED_SECTIONS = new Set(['destination', 'source', 'meshConfig']);

export function mergeRequest(defaults: Record<string, unknown>, own: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = structuredClone(defaults);
  for (const [k, v] of Object.entries(own)) {
    const base = out[k];
    out[k] = MERGED_SECTIONS.has(k) && isPlainObject(base) && isPlainObject(v) ? { ...base, ...structuredClone(v) } : structuredClone(v);
  }
  return out;
}

const TOKEN_REF = /\{\{jwt:([A-Za-z0-9_.-]+)\}\}/g;

function substituteTokens(value: unknown, tokens: ReadonlyMap<string, string>, where: string): unknown {
  if (typeof value === 'string') {
    return value.replace(TOKEN_REF, (_m, name: string) => {
      const t = tokens.get(name);
      if (t === undefined) throw new Error(`${where}: {{jwt:${name}}} names no token in tokens:`);
      return t;
    });
  }
  if (Array.isArray(value)) return value.map((v) => substituteTokens(v, tokens, where));
  if (isPlainObject(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substituteTokens(v, tokens, where)]));
  }
  return value;
}

function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `  ${i.path.join('.') || '(file)'}: ${i.message}`).join('\n');
}

async function loadOne(id: string, path: string): Promise<GoldenFile> {
  const raw: unknown = parse(readFileSync(path, 'utf8'), { uniqueKeys: true });
  const parsed = caseFileSpec.safeParse(raw);
  if (!parsed.success) throw new Error(`${id}: not a valid case file:\n${describeIssues(parsed.error)}`);
  const spec = parsed.data;

  let resourcesText = spec.resources;
  if (resourcesText.includes('{{JWKS}}')) resourcesText = resourcesText.split('{{JWKS}}').join(`'${await publicJwks()}'`);

  const tokens = new Map<string, string>();
  for (const [name, t] of Object.entries(spec.tokens ?? {})) tokens.set(name, await signToken(t));

  const cases = spec.cases.map((c): GoldenCase => {
    const merged = mergeRequest(spec.defaults ?? {}, c.request);
    const request = substituteTokens(merged, tokens, `${id} › ${c.name}`) as Record<string, unknown>;
    return { name: c.name, request, expect: c.expect, ...(c.knownDifference !== undefined ? { knownDifference: c.knownDifference } : {}) };
  });
  return { id, path, description: spec.description, resourcesText, cases };
}

/** Every case file under cases/, in path order; a file that cannot be read becomes an error entry, not an exception. */
export async function loadCaseFiles(dir = CASES_DIR): Promise<LoadedFile[]> {
  const out: LoadedFile[] = [];
  for (const path of listYaml(dir)) {
    const id = relative(dir, path).split('\\').join('/');
    try {
      out.push({ id, file: await loadOne(id, path) });
    } catch (err) {
      out.push({ id, error: (err as Error).message });
    }
  }
  return out;
}

// ---------------------------------------------------------------- deciding, as the CLI does

const resourceCache = new WeakMap<GoldenFile, ResourceSet>();

/** The file's resources, loaded as `meshward authz check -f` loads them; any error diagnostic throws. */
export function resourcesOf(file: GoldenFile): ResourceSet {
  const cached = resourceCache.get(file);
  if (cached !== undefined) return cached;
  // Diagnostics say `<case file>#resources:<line>`, the line counted from the first line of the block.
  const { resources, diagnostics } = loadResourcesFromText(`${file.id}#resources`, file.resourcesText);
  const errors = diagnostics.filter((d) => d.severity === 'error');
  if (errors.length > 0) {
    throw new Error(`${file.id}: resources are invalid (the CLI would exit 2):\n${errors.map((d) => `  ${formatDiagnostic(d)}`).join('\n')}`);
  }
  resourceCache.set(file, resources);
  return resources;
}

/** The `-o json` object the CLI would print for this case. */
export async function decide(file: GoldenFile, c: GoldenCase): Promise<Record<string, unknown>> {
  const resources = resourcesOf(file);
  const parsed = parseAuthzCheckRequest(`${file.id} › ${c.name}`, c.request);
  if (parsed.request === undefined) {
    throw new Error(`request is invalid (the CLI would exit 2):\n${parsed.diagnostics.map((d) => `  ${formatDiagnostic(d)}`).join('\n')}`);
  }
  const engine = new PolicyEngine(resources, parsed.request.meshConfig);
  return decisionJson(await engine.check(toEngineInput(parsed.request)));
}

// ---------------------------------------------------------------- comparing

const OPTIONAL_FIELDS = ['policy', 'principal', 'requestPrincipal'] as const;

/** Where `actual` differs from what Istio does; empty when they agree. */
export function mismatches(expect: Expectation, actual: Record<string, unknown>): string[] {
  const out: string[] = [];
  const check = (field: string, want: unknown) => {
    if (actual[field] !== want) out.push(`${field}: expected ${JSON.stringify(want)}, got ${JSON.stringify(actual[field])}`);
  };
  check('decision', expect.decision);
  check('status', expect.status);
  check('stage', expect.decision === 'DENY' ? expect.stage : null);
  for (const f of OPTIONAL_FIELDS) if (Object.hasOwn(expect, f)) check(f, expect[f]);
  return out;
}

export function describeMismatch(file: GoldenFile, c: GoldenCase, problems: readonly string[], actual: Record<string, unknown>): string {
  return [
    `${file.id} › ${c.name}`,
    ...problems.map((p) => `  ${p}`),
    `  meshward said: ${JSON.stringify(actual)}`,
    `  request: ${JSON.stringify(c.request)}`,
  ].join('\n');
}
