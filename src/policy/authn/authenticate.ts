// Request authentication for one request: what Envoy's jwt_authn filter
// decides under the requirement Istio generates from RequestAuthentication.
//
// Istio names each rule a provider (P1…Pn, sorted by issuer) and requires
//
//   one provider:  any{ P1, allow_missing }
//   several:       any{ P1, …, Pn, all{ any{P1, allow_missing}, …, any{Pn, allow_missing} } }
//
// and Envoy verifies a provider by extracting every token at that provider's
// locations and checking them last-to-first, stopping at the first failure:
// all of them must be valid (a bad token next to a good one is rejected, so
// the application cannot pick up the unverified one). So a request with no
// token passes with no principal; a request whose tokens all belong to one
// provider and are all valid passes; otherwise it fails with the status
// Envoy's any-aggregation prefers: a real error over "unknown issuer" over
// "missing". Only "audience not allowed" is 403; every other failure is 401.
//
// The evaluation below is that tree, run over statuses computed once per
// (rule, token). Everything that does not need a signature check is
// synchronous, so a request without a token never allocates a promise.

import type { CryptoKey, FlattenedJWSInput, JWK, CompactJWSHeaderParameters, KeyObject } from 'jose';

import type { HttpRequest } from '../facts.ts';
import type { CompiledJwtRule, CompiledRequestAuthn } from './compile.ts';
import { jose } from './jose.ts';
import { RequestTokens, percentDecode, type ExtractedToken } from './extract.ts';
import {
  JWT_STATUS,
  audiencesAllowed,
  checkTime,
  httpStatusFor,
  parseJwt,
  type JwtStatus,
  type ParseResult,
  type ParsedJwt,
} from './jwt.ts';

export type HeaderMutation =
  | { readonly op: 'remove'; readonly name: string }
  | { readonly op: 'set'; readonly name: string; readonly value: string };

export interface AuthnOutcome {
  readonly status: 'ok' | 401 | 403;
  /** Envoy's wording, e.g. "Jwt is expired", "Jwt issuer is not configured", "Audiences in Jwt are not allowed". */
  readonly reason: string;
  /** `iss + "/" + sub` of the verified token; null without one. */
  readonly requestPrincipal: string | null;
  readonly issuer: string | null;
  /** The verified token's full payload. */
  readonly claims: Readonly<Record<string, unknown>> | null;
  readonly audiences: readonly string[];
  /** The `azp` claim. */
  readonly presenter: string | null;
  /**
   * Changes to the request forwarded upstream, in order. Header names are
   * lower-case; a token removed from the query shows up as a `set` of
   * `:path`. Empty when the request is rejected.
   */
  readonly headerMutations: readonly HeaderMutation[];
  /** "<namespace>/<name>" of the RequestAuthentication whose rule judged the token. */
  readonly policy: string | null;
}

export interface AuthenticateOptions {
  /** The clock; defaults to the current time. */
  readonly now?: Date;
}

const NO_MUTATIONS: readonly HeaderMutation[] = Object.freeze([]);
const NO_AUDIENCES: readonly string[] = Object.freeze([]);

const NO_RULES: AuthnOutcome = Object.freeze({
  status: 'ok',
  reason: 'no RequestAuthentication applies',
  requestPrincipal: null,
  issuer: null,
  claims: null,
  audiences: NO_AUDIENCES,
  presenter: null,
  headerMutations: NO_MUTATIONS,
  policy: null,
});

/**
 * Authenticates `request` against the compiled rules. Returns synchronously
 * unless a signature has to be checked; never throws and never rejects (an
 * internal error is a 401).
 *
 * @example
 * const outcome = await authenticate(compiled, { method: 'GET', path: '/', host: 'a', headers: { authorization: `Bearer ${jwt}` } });
 * outcome.requestPrincipal // "https://issuer.example/user-1"
 */
export function authenticate(
  compiled: CompiledRequestAuthn,
  request: HttpRequest,
  opts?: AuthenticateOptions,
): Promise<AuthnOutcome> | AuthnOutcome {
  try {
    const result = run(compiled, request, opts?.now);
    if (result instanceof Promise) return result.catch(internalError);
    return result;
  } catch (err) {
    return internalError(err);
  }
}

function internalError(_err: unknown): AuthnOutcome {
  return rejected('JwtVerificationFail', null);
}

/** A token that passed every check, with the rule that accepted it. */
interface GoodToken {
  readonly rule: CompiledJwtRule;
  readonly extracted: ExtractedToken;
  readonly jwt: ParsedJwt;
}

interface ProviderResult {
  readonly status: JwtStatus;
  /** Tokens accepted before the provider finished, in the order Envoy checked them. */
  readonly good: readonly GoodToken[];
}

function run(compiled: CompiledRequestAuthn, request: HttpRequest, now: Date | undefined): Promise<AuthnOutcome> | AuthnOutcome {
  const rules = compiled.rules;
  if (rules.length === 0) return NO_RULES;

  // Headers the filter itself writes are removed from what the client sent
  // before anything else, so they cannot be forged.
  const sanitize = sanitizeMutations(rules);

  if (isCorsPreflight(request)) return passed('CORS preflight request bypasses JWT authentication', sanitize);

  const view = new RequestTokens(request);
  const tokens = rules.map((rule) => view.extract(rule.locations));
  if (tokens.every((t) => t.length === 0)) return passed(JWT_STATUS.JwtMissed, sanitize);

  const nowMs = now instanceof Date ? now.getTime() : undefined;
  const nowSeconds = Math.floor(nowMs !== undefined && Number.isFinite(nowMs) ? nowMs / 1000 : Date.now() / 1000);
  const parsed = new Map<string, ParseResult>();
  const statuses = rules.map(() => new Map<string, JwtStatus>());
  const signatureChecks: Promise<void>[] = [];

  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i]!;
    const found = tokens[i]!;
    const byToken = statuses[i]!;
    // Envoy checks a provider's tokens last to first and stops at the first
    // failure, so tokens before it are never verified (nor keys fetched for them).
    for (let t = found.length - 1; t >= 0; t--) {
      const token = found[t]!.token;
      const known = byToken.get(token);
      if (known !== undefined) {
        if (known === 'Ok') continue;
        break;
      }
      let result = parsed.get(token);
      if (result === undefined) {
        result = parseJwt(token);
        parsed.set(token, result);
      }
      const status = precheck(rule, result, nowSeconds);
      if (status !== 'NeedsSignature') {
        byToken.set(token, status);
        break;
      }
      // Provisionally good so a repeat of the same token is not checked twice; the check below has the last word.
      byToken.set(token, 'Ok');
      const jwt = (result as { jwt: ParsedJwt }).jwt;
      signatureChecks.push(verifySignature(rule, jwt).then((s) => void byToken.set(token, s)));
    }
  }

  const finish = (): AuthnOutcome => decide(rules, tokens, statuses, parsed, sanitize, request);
  if (signatureChecks.length === 0) return finish();
  return Promise.all(signatureChecks).then(finish);
}

/** Envoy's order: parse, issuer, time, audience, keys; the signature comes last. */
function precheck(rule: CompiledJwtRule, result: ParseResult, nowSeconds: number): JwtStatus | 'NeedsSignature' {
  if (result.status !== 'Ok') return result.status;
  const jwt = result.jwt;
  if (jwt.iss !== rule.issuer) return 'JwtUnknownIssuer';
  const time = checkTime(jwt, nowSeconds);
  if (time !== 'Ok') return time;
  if (!audiencesAllowed(rule.audiences, jwt)) return 'JwtAudienceNotAllowed';
  if (rule.keys.kind === 'unavailable') return rule.keys.status;
  return 'NeedsSignature';
}

// ---------------------------------------------------------------- the requirement tree

function decide(
  rules: readonly CompiledJwtRule[],
  tokens: readonly (readonly ExtractedToken[])[],
  statuses: readonly Map<string, JwtStatus>[],
  parsed: ReadonlyMap<string, ParseResult>,
  sanitize: readonly HeaderMutation[],
  request: HttpRequest,
): AuthnOutcome {
  const provider = (i: number): ProviderResult => {
    const found = tokens[i]!;
    if (found.length === 0) return { status: 'JwtMissed', good: [] };
    const good: GoodToken[] = [];
    for (let t = found.length - 1; t >= 0; t--) {
      const extracted = found[t]!;
      const status = statuses[i]!.get(extracted.token) ?? 'JwtVerificationFail';
      if (status !== 'Ok') return { status, good };
      const jwt = (parsed.get(extracted.token) as { jwt: ParsedJwt }).jwt;
      good.push({ rule: rules[i]!, extracted, jwt });
    }
    return { status: 'Ok', good };
  };

  // Tokens accepted along the way, in the order Envoy's verifiers ran. Each
  // acceptance writes output headers and overwrites the payload that
  // authorization reads, so the last one is the principal.
  const accepted: GoodToken[] = [];

  if (rules.length === 1) {
    const only = provider(0);
    if (only.status === 'Ok') return verified([...only.good], sanitize, request);
    if (only.status === 'JwtMissed') return passed(JWT_STATUS.JwtMissed, sanitize);
    return rejected(only.status, rules[0]!.policy);
  }

  const children: { status: JwtStatus; policy: string | null }[] = [];
  for (let i = 0; i < rules.length; i++) {
    const result = provider(i);
    accepted.push(...result.good);
    if (result.status === 'Ok') return verified(accepted, sanitize, request);
    children.push({ status: result.status, policy: rules[i]!.policy });
  }

  // all{ any{Pi, allow_missing} }: stops at the first provider that failed for a reason other than a missing token.
  const firstFailure = children.find((c) => c.status !== 'JwtMissed');
  if (firstFailure === undefined) return passed(JWT_STATUS.JwtMissed, sanitize);
  children.push(firstFailure);

  let final: { status: JwtStatus; policy: string | null } = { status: 'JwtMissed', policy: null };
  for (const child of children) {
    const weak = child.status === 'JwtMissed' || child.status === 'JwtUnknownIssuer';
    if (!weak || final.status === 'JwtMissed') final = child;
  }
  return rejected(final.status, final.policy);
}

// ---------------------------------------------------------------- outcomes

const NO_TOKEN = passedOutcome(JWT_STATUS.JwtMissed, NO_MUTATIONS);

function passed(reason: string, headerMutations: readonly HeaderMutation[]): AuthnOutcome {
  if (headerMutations === NO_MUTATIONS && reason === JWT_STATUS.JwtMissed) return NO_TOKEN;
  return passedOutcome(reason, headerMutations);
}

function passedOutcome(reason: string, headerMutations: readonly HeaderMutation[]): AuthnOutcome {
  return Object.freeze({
    status: 'ok',
    reason,
    requestPrincipal: null,
    issuer: null,
    claims: null,
    audiences: NO_AUDIENCES,
    presenter: null,
    headerMutations,
    policy: null,
  });
}

function rejected(status: JwtStatus, policy: string | null): AuthnOutcome {
  return Object.freeze({
    status: httpStatusFor(status),
    reason: JWT_STATUS[status],
    requestPrincipal: null,
    issuer: null,
    claims: null,
    audiences: NO_AUDIENCES,
    presenter: null,
    headerMutations: NO_MUTATIONS,
    policy,
  });
}

function verified(accepted: readonly GoodToken[], sanitize: readonly HeaderMutation[], request: HttpRequest): AuthnOutcome {
  const last = accepted[accepted.length - 1]!;
  const { jwt } = last;
  const azp = jwt.payload['azp'];
  return Object.freeze({
    status: 'ok',
    reason: JWT_STATUS.Ok,
    requestPrincipal: `${jwt.iss}/${jwt.sub}`,
    issuer: jwt.iss,
    claims: jwt.payload,
    audiences: Object.freeze([...jwt.audiences]),
    presenter: typeof azp === 'string' ? azp : null,
    headerMutations: Object.freeze(outputMutations(accepted, sanitize, request)),
    policy: last.rule.policy,
  });
}

function sanitizeMutations(rules: readonly CompiledJwtRule[]): readonly HeaderMutation[] {
  const names = new Set<string>();
  for (const rule of rules) {
    if (rule.outputPayloadToHeader !== null) names.add(rule.outputPayloadToHeader);
    for (const { header } of rule.outputClaimToHeaders) names.add(header);
  }
  if (names.size === 0) return NO_MUTATIONS;
  return Object.freeze([...names].map((name) => Object.freeze({ op: 'remove' as const, name })));
}

/** Per accepted token, as Envoy's handleGoodJwt: payload header, claim headers, then the token itself removed. */
function outputMutations(
  accepted: readonly GoodToken[],
  sanitize: readonly HeaderMutation[],
  request: HttpRequest,
): HeaderMutation[] {
  const mutations: HeaderMutation[] = [...sanitize];
  const removedParams = new Set<string>();
  for (const { rule, extracted, jwt } of accepted) {
    if (rule.outputPayloadToHeader !== null) {
      mutations.push({ op: 'set', name: rule.outputPayloadToHeader, value: jwt.payloadB64 });
    }
    for (const { header, claim } of rule.outputClaimToHeaders) {
      const value = claimHeaderValue(jwt.payload, claim);
      if (value !== null) mutations.push({ op: 'set', name: header, value });
    }
    if (!rule.forwardOriginalToken) {
      // Cookies are left in place, as Envoy does.
      if (extracted.source.kind === 'header') mutations.push({ op: 'remove', name: extracted.source.name });
      else if (extracted.source.kind === 'param') removedParams.add(extracted.source.name);
    }
  }
  if (removedParams.size > 0) {
    mutations.push({ op: 'set', name: ':path', value: withoutQueryParams(request.path, removedParams) });
  }
  return dedupe(mutations);
}

function dedupe(mutations: HeaderMutation[]): HeaderMutation[] {
  const seen = new Set<string>();
  const out: HeaderMutation[] = [];
  for (const m of mutations) {
    const key = m.op === 'set' ? `s\0${m.name}\0${m.value}` : `r\0${m.name}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(Object.freeze(m));
  }
  return out;
}

/**
 * A claim as a header value the way Envoy copies it: strings as they are,
 * booleans as "true"/"false", whole non-negative numbers as integers and
 * other numbers in C's "%f" form. Objects, arrays, null, missing claims and
 * empty strings produce no header. `a.b` reads a nested claim.
 */
export function claimHeaderValue(payload: Readonly<Record<string, unknown>>, claim: string): string | null {
  let value: unknown = payload;
  for (const part of claim.split('.')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, part)) return null;
    value = (value as Record<string, unknown>)[part];
  }
  if (typeof value === 'string') return value === '' ? null : value;
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number' && Number.isFinite(value)) {
    if (value >= 0 && value < 2 ** 64 && Number.isInteger(value)) return BigInt(value).toString();
    return Math.abs(value) < 1e21 ? value.toFixed(6) : String(value);
  }
  return null;
}

/** The request target with every pair of the removed parameters dropped; the rest of the query is kept verbatim. */
function withoutQueryParams(target: string, names: ReadonlySet<string>): string {
  const hash = target.indexOf('#');
  const withoutFragment = hash >= 0 ? target.slice(0, hash) : target;
  const q = withoutFragment.indexOf('?');
  if (q < 0) return withoutFragment;
  const kept = withoutFragment
    .slice(q + 1)
    .split('&')
    .filter((pair) => {
      const eq = pair.indexOf('=');
      return !names.has(percentDecode(eq >= 0 ? pair.slice(0, eq) : pair));
    });
  return kept.length > 0 ? `${withoutFragment.slice(0, q)}?${kept.join('&')}` : withoutFragment.slice(0, q);
}

function isCorsPreflight(request: HttpRequest): boolean {
  if (request.method !== 'OPTIONS') return false;
  const h = request.headers;
  return Object.hasOwn(h, 'origin') && h['origin'] !== '' && Object.hasOwn(h, 'access-control-request-method') && h['access-control-request-method'] !== '';
}

// ---------------------------------------------------------------- signatures

type KeyLike = CryptoKey | KeyObject | JWK | Uint8Array;

/**
 * Signature check with jose. Keys are chosen as jose's JWKS does (kid, alg
 * and key type must agree, so an HS256 token can never be checked against
 * an RSA key's bytes); HMAC keys, which jose's key sets refuse, are tried
 * from an inline set the way Envoy does.
 */
async function verifySignature(rule: CompiledJwtRule, jwt: ParsedJwt): Promise<JwtStatus> {
  const keys = rule.keys;
  if (keys.kind === 'unavailable') return keys.status;
  if (jwt.alg.startsWith('HS')) {
    return keys.kind === 'inline' ? verifyHmac(keys.all, jwt) : 'JwtVerificationFail';
  }

  const input: FlattenedJWSInput = { protected: jwt.headerB64, payload: jwt.payloadB64, signature: jwt.signatureB64 };
  let key: KeyLike;
  try {
    key = await keys.getKey(jwt.header as unknown as CompactJWSHeaderParameters, input);
  } catch (err) {
    const { errors } = jose();
    if (err instanceof errors.JWKSMultipleMatchingKeys) {
      for await (const candidate of err as unknown as AsyncIterable<KeyLike>) {
        if (await signedBy(candidate, jwt)) return 'Ok';
      }
      return 'JwtVerificationFail';
    }
    if (err instanceof errors.JWKSNoMatchingKey) return 'JwksKidAlgMismatch';
    if (err instanceof errors.JOSENotSupported) return 'JwtVerificationFail';
    if (err instanceof errors.JWKSInvalid) return 'JwksNoValidKeys';
    // Timeouts, connection errors, non-200 answers, fetching disabled: fail closed.
    return 'JwksFetchFail';
  }
  return (await signedBy(key, jwt)) ? 'Ok' : 'JwtVerificationFail';
}

async function signedBy(key: KeyLike, jwt: ParsedJwt): Promise<boolean> {
  try {
    await jose().compactVerify(jwt.token, key, { algorithms: [jwt.alg] });
    return true;
  } catch {
    return false;
  }
}

/** Envoy's selection: skip a key whose kid (both set) or alg (key's set) differs; try the rest. */
async function verifyHmac(all: readonly JWK[], jwt: ParsedJwt): Promise<JwtStatus> {
  let candidates = 0;
  for (const jwk of all) {
    if (jwt.kid !== '' && typeof jwk.kid === 'string' && jwk.kid !== '' && jwk.kid !== jwt.kid) continue;
    if (typeof jwk.alg === 'string' && jwk.alg !== '' && jwk.alg !== jwt.alg) continue;
    candidates++;
    if (jwk.kty !== 'oct' || typeof jwk.k !== 'string') continue;
    let key: KeyLike;
    try {
      key = await jose().importJWK({ ...jwk, alg: jwt.alg }, jwt.alg);
    } catch {
      continue;
    }
    if (await signedBy(key, jwt)) return 'Ok';
  }
  return candidates > 0 ? 'JwtVerificationFail' : 'JwksKidAlgMismatch';
}
