// Who is calling. Each CallerAuthenticator handles one kind of credential
// (Istio's security.Authenticator: client certificate, JWT, Kubernetes
// token review) and says one of three things: this credential is absent
// (ask the next one), it proves identity X, or it is present and refused
// (and why, for the log and the metrics; the caller only learns it was
// refused). The server tries them in order and the first success wins, so
// a Kubernetes ServiceAccount token reviewer is one more entry in the list,
// with no change to the handlers.

import type { PeerCertificate } from 'node:tls';
import type { Metadata } from '@grpc/grpc-js';
import { AUTHORIZATION_METADATA, BEARER_PREFIX } from '../../api/identity-messages.ts';
import type { BootstrapTokens } from './bootstrap-tokens.ts';

export interface CallContext {
  metadata: Metadata;
  /** The TLS client certificate, present only when it chains to the trust bundle (Node verified it). */
  peerCertificate: PeerCertificate | undefined;
  /** Remote address, for logs. */
  peer: string;
  /** gRPC method name, e.g. `CreateCertificate`. */
  method: string;
}

export interface Caller {
  /** The SPIFFE ID the caller proved: the only name its certificate may carry. */
  spiffeId: string;
  trustDomain: string;
  /** Name of the authenticator that accepted it. */
  authenticator: string;
  /** What the credential was, for the log (never the credential itself). */
  credential: string;
}

export type AuthnOutcome =
  | { kind: 'absent' }
  | { kind: 'ok'; caller: Caller }
  | { kind: 'refused'; reason: string; detail: string };

export interface CallerAuthenticator {
  readonly name: string;
  /** Methods this authenticator may authenticate; absent means all. */
  readonly methods?: ReadonlySet<string>;
  authenticate(ctx: CallContext): Promise<AuthnOutcome>;
}

export type AuthnResult =
  | { ok: true; caller: Caller }
  | { ok: false; authenticator: string; reason: string; detail: string };

/** Tries each authenticator in order; the first `ok` wins, else the first refusal is reported. */
export async function authenticate(authenticators: readonly CallerAuthenticator[], ctx: CallContext): Promise<AuthnResult> {
  let refusal: AuthnResult | undefined;
  for (const a of authenticators) {
    if (a.methods && !a.methods.has(ctx.method)) continue;
    const out = await a.authenticate(ctx);
    if (out.kind === 'ok') return { ok: true, caller: out.caller };
    if (out.kind === 'refused') refusal ??= { ok: false, authenticator: a.name, reason: out.reason, detail: out.detail };
  }
  return refusal ?? { ok: false, authenticator: 'none', reason: 'no-credentials', detail: 'no client certificate and no bearer token' };
}

export type SpiffeParse = (uri: string) => { uri: string; trustDomain: string } | { error: string };

// --- bootstrap token --------------------------------------------------------

/**
 * `authorization: Bearer <token>` minted by this server for a workload it
 * launched. Only CreateCertificate accepts it: the token buys one
 * certificate, and everything after that authenticates with the certificate.
 */
export class BootstrapTokenAuthenticator implements CallerAuthenticator {
  readonly name = 'bootstrap-token';
  readonly methods = new Set(['CreateCertificate']);
  readonly #tokens: BootstrapTokens;
  readonly #parse: SpiffeParse;

  constructor(tokens: BootstrapTokens, parse: SpiffeParse) {
    this.#tokens = tokens;
    this.#parse = parse;
  }

  async authenticate(ctx: CallContext): Promise<AuthnOutcome> {
    const values = ctx.metadata.get(AUTHORIZATION_METADATA);
    if (values.length === 0) return { kind: 'absent' };
    if (values.length > 1) return { kind: 'refused', reason: 'malformed', detail: 'more than one authorization header' };
    const header = String(values[0]);
    if (!header.startsWith(BEARER_PREFIX)) return { kind: 'refused', reason: 'malformed', detail: 'authorization is not a Bearer token' };
    const check = await this.#tokens.consume(header.slice(BEARER_PREFIX.length).trim());
    if (!check.ok) return { kind: 'refused', reason: check.reason, detail: check.detail };
    const id = this.#parse(check.spiffeId);
    if ('error' in id) return { kind: 'refused', reason: 'bad-subject', detail: `token subject: ${id.error}` };
    return {
      kind: 'ok',
      caller: { spiffeId: id.uri, trustDomain: id.trustDomain, authenticator: this.name, credential: `token ${check.jti}` },
    };
  }
}

// --- client certificate -------------------------------------------------------

export type SvidCheck = { ok: true; spiffeId: string; trustDomain: string; serial: string } | { ok: false; reason: string; detail: string };

/**
 * The caller's current SVID as its TLS client certificate. Node has already
 * checked the chain against the trust bundle; `verify` applies the SPIFFE
 * rules on top (one URI SAN, in this trust domain, a leaf, in its validity
 * window), and the identity is the SVID's SPIFFE ID.
 */
export class ClientCertificateAuthenticator implements CallerAuthenticator {
  readonly name = 'client-certificate';
  readonly #verify: (leaf: PeerCertificate) => SvidCheck;

  constructor(verify: (leaf: PeerCertificate) => SvidCheck) {
    this.#verify = verify;
  }

  async authenticate(ctx: CallContext): Promise<AuthnOutcome> {
    if (!ctx.peerCertificate) return { kind: 'absent' };
    const check = this.#verify(ctx.peerCertificate);
    if (!check.ok) return { kind: 'refused', reason: check.reason, detail: check.detail };
    return {
      kind: 'ok',
      caller: { spiffeId: check.spiffeId, trustDomain: check.trustDomain, authenticator: this.name, credential: `certificate ${check.serial}` },
    };
  }
}
