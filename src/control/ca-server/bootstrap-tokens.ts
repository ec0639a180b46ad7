// Bootstrap tokens: how a workload the control plane just launched proves
// who it is before it has a certificate. The control plane mints one per
// launch, bound to that workload's SPIFFE ID, valid for minutes, usable once
// (SPIRE's join tokens are single-use for the same reason: a token seen in
// a log or a process listing must not be worth anything afterwards).
//
// A JWT (HS256) signed with a key that exists only in this server's memory:
// a restarted server cannot honour old tokens, which is what we want, since
// a workload that has its certificate renews with it instead.

import { randomBytes, randomUUID } from 'node:crypto';
import { SignJWT, jwtVerify, errors } from 'jose';

export type TokenRefusal =
  | 'malformed' // not a compact JWS, or not HS256
  | 'bad-signature' // signed with another key (another server, or forged)
  | 'expired'
  | 'not-yet-valid'
  | 'wrong-audience' // minted for another CA
  | 'wrong-issuer'
  | 'missing-claims' // no sub, jti, iat or exp
  | 'replayed'; // this jti was accepted before

export type TokenCheck =
  | { ok: true; spiffeId: string; jti: string; expiresAt: Date }
  | { ok: false; reason: TokenRefusal; detail: string };

export interface BootstrapTokensOptions {
  /** Who the tokens are for: this CA server's SPIFFE ID. */
  audience: string;
  /** Default `meshward-control`. */
  issuer?: string;
  /** Default 300 (5 minutes). */
  ttlSeconds?: number;
  /** HMAC key; default 32 random bytes. Pass one only to share it between servers. */
  key?: Uint8Array;
  /** Milliseconds since the epoch; default Date.now. */
  now?: () => number;
}

export interface MintOptions {
  ttlSeconds?: number;
}

const ALG = 'HS256';

export class BootstrapTokens {
  readonly audience: string;
  readonly issuer: string;
  readonly ttlSeconds: number;
  readonly #key: Uint8Array;
  readonly #now: () => number;
  /** jti → expiry (ms): remembered until the token would have expired anyway. */
  readonly #seen = new Map<string, number>();

  constructor(opts: BootstrapTokensOptions) {
    this.audience = opts.audience;
    this.issuer = opts.issuer ?? 'meshward-control';
    this.ttlSeconds = opts.ttlSeconds ?? 300;
    this.#key = opts.key ?? randomBytes(32);
    this.#now = opts.now ?? Date.now;
  }

  /** A single-use token for the workload `spiffeId`. */
  async mint(spiffeId: string, opts: MintOptions = {}): Promise<string> {
    const iat = Math.floor(this.#now() / 1000);
    return new SignJWT({})
      .setProtectedHeader({ alg: ALG, typ: 'JWT' })
      .setSubject(spiffeId)
      .setAudience(this.audience)
      .setIssuer(this.issuer)
      .setJti(randomUUID())
      .setIssuedAt(iat)
      .setExpirationTime(iat + (opts.ttlSeconds ?? this.ttlSeconds))
      .sign(this.#key);
  }

  /**
   * Verifies `token` and, if it is good, spends it: the same jti is refused
   * from then on, even if the request that carried it fails later.
   */
  async consume(token: string): Promise<TokenCheck> {
    const nowMs = this.#now();
    this.#forgetExpired(nowMs);
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.#key, {
        algorithms: [ALG],
        audience: this.audience,
        issuer: this.issuer,
        currentDate: new Date(nowMs),
        requiredClaims: ['sub', 'jti', 'iat', 'exp'],
      }));
    } catch (err) {
      return { ok: false, ...classify(err) };
    }
    const jti = payload.jti!;
    if (this.#seen.has(jti)) return { ok: false, reason: 'replayed', detail: `token ${jti} was used before` };
    const expMs = payload.exp! * 1000;
    this.#seen.set(jti, expMs);
    return { ok: true, spiffeId: payload.sub!, jti, expiresAt: new Date(expMs) };
  }

  #forgetExpired(nowMs: number): void {
    for (const [jti, exp] of this.#seen) if (exp <= nowMs) this.#seen.delete(jti);
  }
}

function classify(err: unknown): { reason: TokenRefusal; detail: string } {
  if (err instanceof errors.JWTExpired) return { reason: 'expired', detail: err.message };
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'aud':
        return { reason: 'wrong-audience', detail: err.message };
      case 'iss':
        return { reason: 'wrong-issuer', detail: err.message };
      case 'nbf':
      case 'iat':
        return { reason: err.reason === 'missing' ? 'missing-claims' : 'not-yet-valid', detail: err.message };
      default:
        return { reason: 'missing-claims', detail: err.message };
    }
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return { reason: 'bad-signature', detail: err.message };
  return { reason: 'malformed', detail: err instanceof Error ? err.message : String(err) };
}
