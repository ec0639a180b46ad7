// Key lookups for `jwksUri`. Istio's default has istiod fetch the set and
// refresh it every 20 minutes (PILOT_JWT_PUB_KEY_REFRESH_INTERVAL); jose's
// remote key set gives the same shape: a cached set, a refetch when it is
// older than the refresh interval, and a cooldown-limited refetch when a
// token names a key the set does not have. A set that cannot be fetched
// rejects every token of its issuer with 401 (fail closed).

import type { JWTVerifyGetKey } from 'jose';

import type { JwksResolver } from './compile.ts';
import { jose } from './jose.ts';

export type { JwksResolver } from './compile.ts';

/** istiod's default JWKS refresh interval. */
export const JWKS_CACHE_MAX_AGE_MS = 20 * 60_000;
/** jose's default minimum time between refetches triggered by an unknown key. */
export const JWKS_COOLDOWN_MS = 30_000;

export interface RemoteJwksResolverOptions {
  readonly cacheMaxAgeMs?: number;
  readonly cooldownMs?: number;
}

/**
 * The error every lookup of a fail-closed resolver throws. A plain Error
 * with jose's generic code rather than a subclass of jose's JOSEError, so
 * that defining it does not load jose (./jose.ts); signature checks treat
 * it, like any error that is not a key-set verdict, as a failed fetch.
 */
export class JwksFetchDisabledError extends Error {
  readonly code = 'ERR_JOSE_GENERIC';
  constructor(uri: string) {
    super(`fetching JWKS from ${uri} is not allowed here`);
    this.name = 'JwksFetchDisabledError';
  }
}

/**
 * A resolver fetching over HTTP(S) with jose, one key set per URI and
 * timeout for the life of the resolver, so every rule naming the same URI
 * shares one cache.
 */
export function createRemoteJwksResolver(options: RemoteJwksResolverOptions = {}): JwksResolver {
  const cacheMaxAge = options.cacheMaxAgeMs ?? JWKS_CACHE_MAX_AGE_MS;
  const cooldownDuration = options.cooldownMs ?? JWKS_COOLDOWN_MS;
  const sets = new Map<string, JWTVerifyGetKey>();
  return (uri, timeoutMs) => {
    const timeoutDuration = Math.max(1, Math.ceil(timeoutMs));
    const key = `${timeoutDuration} ${uri}`;
    let getKey = sets.get(key);
    if (getKey === undefined) {
      getKey = remoteSet(uri, timeoutDuration, cacheMaxAge, cooldownDuration);
      sets.set(key, getKey);
    }
    return getKey;
  };
}

function remoteSet(uri: string, timeoutDuration: number, cacheMaxAge: number, cooldownDuration: number): JWTVerifyGetKey {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return failing(uri);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return failing(uri);
  return jose().createRemoteJWKSet(url, { timeoutDuration, cacheMaxAge, cooldownDuration });
}

function failing(uri: string): JWTVerifyGetKey {
  return async () => {
    throw new JwksFetchDisabledError(uri);
  };
}

/** The resolver used when none is given: shared by the whole process. */
export const defaultJwksResolver: JwksResolver = createRemoteJwksResolver();

/** For places that must not touch the network: every token of a `jwksUri` rule is rejected with 401. */
export const failClosedJwksResolver: JwksResolver = (uri) => failing(uri);
