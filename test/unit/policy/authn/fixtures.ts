// Real keys and tokens for the request authentication tests.

import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTPayload } from 'jose';

import type { JwtRule, RequestAuthentication, WorkloadSelector } from '../../../../src/api/resources.ts';
import type { HttpRequest } from '../../../../src/policy/facts.ts';

export const NOW = new Date('2030-01-01T00:00:00Z');
export const NOW_S = Math.floor(NOW.getTime() / 1000);
export const ISSUER = 'https://issuer.example.com';

export interface TestKey {
  readonly alg: string;
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  readonly jwk: JWK;
}

export async function testKey(alg: 'RS256' | 'ES256' | 'EdDSA' | 'PS256', kid: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, publicKey, jwk };
}

export function jwks(...keys: (TestKey | JWK)[]): string {
  return JSON.stringify({ keys: keys.map((k) => ('jwk' in k ? k.jwk : k)) });
}

export interface SignOptions {
  readonly claims?: JWTPayload & Record<string, unknown>;
  /** Seconds relative to NOW; null leaves the claim out. */
  readonly exp?: number | null;
  readonly nbf?: number | null;
  readonly kid?: string | null;
}

export async function sign(key: TestKey, options: SignOptions = {}): Promise<string> {
  const claims: Record<string, unknown> = { iss: ISSUER, sub: 'user-1', ...options.claims };
  const exp = options.exp === undefined ? 3600 : options.exp;
  const nbf = options.nbf === undefined ? null : options.nbf;
  if (exp !== null) claims['exp'] = NOW_S + exp;
  if (nbf !== null) claims['nbf'] = NOW_S + nbf;
  const kid = options.kid === undefined ? key.kid : options.kid;
  return new SignJWT(claims)
    .setProtectedHeader(kid === null ? { alg: key.alg } : { alg: key.alg, kid })
    .setIssuedAt(NOW_S)
    .sign(key.privateKey);
}

/** base64url of a JSON value, for hand-made tokens. */
export function b64(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

export function requestAuthentication(
  name: string,
  namespace: string,
  jwtRules: readonly JwtRule[],
  selector?: WorkloadSelector,
): RequestAuthentication {
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'RequestAuthentication',
    metadata: { name, namespace, labels: {}, annotations: {} },
    spec: selector === undefined ? { jwtRules } : { selector, jwtRules },
    source: { file: 'test.yaml', documentIndex: 0, line: 1 },
  };
}

export function request(headers: Record<string, string> = {}, path = '/api', method = 'GET'): HttpRequest {
  return { method, path, host: 'httpbin.foo', headers };
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}
