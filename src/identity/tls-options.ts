// TLS settings for mesh mTLS, in one place so that every listener and every
// upstream connection gets the same ones, and the peer checks that go with
// them.
//
// Version: TLS 1.3 only, both ends. Both ends are meshward. TLS 1.3 encrypts
// the certificates, so the SPIFFE IDs of clients and servers are not readable
// on the wire (TLS 1.2 sends the client certificate in the clear), and it
// leaves out renegotiation, static-RSA key exchange and CBC suites. Istio's
// default minimum (meshMTLS.minProtocolVersion) is TLS 1.2, for peers that
// a meshward mesh does not have.
//
// Peer verification happens twice, independently: OpenSSL verifies the chain
// against `ca: bundle.pem` (`rejectUnauthorized: true` on both ends), then
// the X509-SVID checks of verify-svid.ts run on the result — from
// `checkServerIdentity` on clients, and on `secureConnection` for servers
// (`guardMtlsServer`). Hostnames are never checked: in the mesh, the SPIFFE
// ID is the name (secure naming, `allowedIds`).
//
// ALPN: clients offer `istio` (Istio's marker for in-mesh mTLS, so a server
// can tell mesh traffic from TLS the application itself speaks) followed by
// `h2` and `http/1.1`; servers pick `h2`, then `http/1.1`, then `istio` (for a
// client that offers only the marker: opaque TCP). We do not offer
// `istio-peer-exchange`: it commits both ends to Istio's in-band metadata
// exchange, which meshward does not speak, and a selected protocol must be
// spoken.
//
// Keys: the private key is taken as a KeyObject or PEM text held in memory,
// and is never logged or put in an error message. Client options carry a
// ready SecureContext instead of the key, so printing them shows no key;
// server options must hand node the PEM, which `createMtlsServer` and
// `setMtlsMaterial` zero as soon as node has parsed it.

import { KeyObject, X509Certificate, createPrivateKey } from 'node:crypto';
import {
  createSecureContext,
  createServer,
  type ConnectionOptions,
  type PeerCertificate,
  type SecureContext,
  type SecureContextOptions,
  type Server,
  type TLSSocket,
  type TlsOptions,
} from 'node:tls';
import type { TrustBundle } from './trust-bundle.ts';
import { avoidNodePeerChainLeak, parsedCertificate } from './peer-certificates.ts';
import {
  MAX_CHAIN_LENGTH,
  checkForTlsError,
  verifySvid,
  verifyTlsPeer,
  type SvidCheck,
  type SvidVerdict,
  type VerifySvidOptions,
} from './verify-svid.ts';

export const MESH_TLS_VERSION = 'TLSv1.3';
/** What a mesh client offers, most preferred first. */
export const MESH_ALPN_CLIENT: readonly string[] = Object.freeze(['istio', 'h2', 'http/1.1']);
/** What a mesh server selects from, in its order of preference. */
export const MESH_ALPN_SERVER: readonly string[] = Object.freeze(['h2', 'http/1.1', 'istio']);

/** Why a peer was refused: an SVID check, or a handshake that never got that far. */
export type PeerRefusal =
  | SvidCheck
  /** The first bytes were not a TLS handshake (plaintext, HTTP, garbage). */
  | 'not-tls'
  /** TLS failed for another reason: no shared version, cipher or ALPN; reset mid-handshake. */
  | 'tls-handshake';

export interface PeerRefusalReport {
  readonly check: PeerRefusal;
  readonly reason: string;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
}

/** Raised (as the connection's error) when a client refuses the server it reached. */
export class PeerRefusedError extends Error {
  readonly code = 'ERR_MW_PEER_REFUSED';
  readonly check: PeerRefusal;
  constructor(check: PeerRefusal, reason: string) {
    super(`peer refused (${check}): ${reason}`);
    this.name = 'PeerRefusedError';
    this.check = check;
  }
}

/** A workload's SVID and what it trusts. */
export interface MtlsMaterial {
  /** The private key: a private KeyObject, or PEM text (PKCS#8, SEC1 or PKCS#1) held in memory. */
  readonly key: KeyObject | string;
  /** Leaf first, then the intermediates up to (not including) the root: certificates or concatenated PEM. */
  readonly chain: readonly X509Certificate[] | string;
  /** The roots peers' SVIDs must chain to. */
  readonly bundle: TrustBundle;
}

/** Errors here describe the material, never contain it. */
function materialError(message: string): Error {
  const err = new Error(message);
  err.name = 'MtlsMaterialError';
  return err;
}

function privateKey(key: KeyObject | string): KeyObject {
  if (key instanceof KeyObject) {
    if (key.type !== 'private') throw materialError(`the key must be a private key (got a ${key.type} key)`);
    return key;
  }
  if (typeof key !== 'string') throw materialError('the key must be a private KeyObject or PEM text');
  try {
    return createPrivateKey({ key, format: 'pem' });
  } catch {
    // node's parse error could quote the input; say only what failed.
    throw materialError('the key is not a readable PEM private key');
  }
}

function chainPem(chain: readonly X509Certificate[] | string): { pem: string; leaf: X509Certificate } {
  if (typeof chain === 'string') {
    let leaf: X509Certificate;
    try {
      leaf = new X509Certificate(chain);
    } catch {
      throw materialError('the certificate chain is not readable PEM');
    }
    return { pem: chain, leaf };
  }
  if (!Array.isArray(chain) || chain.length === 0) throw materialError('the certificate chain is empty');
  for (const c of chain) if (!(c instanceof X509Certificate)) throw materialError('the certificate chain holds a non-certificate');
  return { pem: chain.map((c) => c.toString()).join(''), leaf: chain[0]! };
}

/**
 * The SecureContext options for mesh mTLS: key, chain, the bundle as `ca`,
 * TLS 1.3. `key` is a fresh Buffer of PEM; zero it (`key.fill(0)`) once node
 * has built the context from it.
 */
export function mtlsSecureContextOptions(material: MtlsMaterial): SecureContextOptions & { key: Buffer } {
  const key = privateKey(material.key);
  const { pem, leaf } = chainPem(material.chain);
  if (!leaf.checkPrivateKey(key)) throw materialError('the key does not belong to the first certificate of the chain');
  if (typeof material.bundle?.pem !== 'string' || material.bundle.roots.length === 0) {
    throw materialError('the trust bundle has no roots');
  }
  return {
    key: Buffer.from(key.export({ type: 'pkcs8', format: 'pem' })),
    cert: pem,
    ca: material.bundle.pem,
    minVersion: MESH_TLS_VERSION,
    maxVersion: MESH_TLS_VERSION,
  };
}

/** A SecureContext for mesh mTLS; the PEM copy of the key is zeroed before it returns. */
export function mtlsSecureContext(material: MtlsMaterial): SecureContext {
  const options = mtlsSecureContextOptions(material);
  try {
    return createSecureContext(options);
  } finally {
    options.key.fill(0);
  }
}

export interface MtlsServerOptions {
  /** ALPN protocols to select from; default MESH_ALPN_SERVER. */
  readonly alpn?: readonly string[];
}

/**
 * Options for `tls.createServer` (or https/http2 secure servers): the
 * context options plus `requestCert` and `rejectUnauthorized`, so OpenSSL
 * refuses clients without a certificate chaining to the bundle. Pair the
 * server with `guardMtlsServer` for the SVID checks, and zero `key` after
 * creating it (or use `createMtlsServer`, which does both).
 */
export function mtlsServerOptions(material: MtlsMaterial, opts: MtlsServerOptions = {}): TlsOptions & { key: Buffer } {
  return {
    ...mtlsSecureContextOptions(material),
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: [...(opts.alpn ?? MESH_ALPN_SERVER)],
  };
}

export interface MtlsClientOptions {
  /**
   * Secure naming: the SPIFFE IDs the server may present. Required, so that
   * "any workload in the trust domain" (null) is a decision, not a default.
   */
  readonly allowedIds: ReadonlySet<string> | null;
  readonly expectedTrustDomain?: string;
  /** ALPN protocols to offer; default MESH_ALPN_CLIENT. */
  readonly alpn?: readonly string[];
  /** SNI to send; none by default (the mesh names peers by SPIFFE ID, not host). */
  readonly servername?: string;
  /** Clock for validity checks; defaults to the current time. */
  readonly now?: () => Date;
}

/** The chain node hands `checkServerIdentity`: leaf first, following issuerCertificate. */
function legacyChain(cert: PeerCertificate): X509Certificate[] {
  const chain: X509Certificate[] = [];
  const seen = new Set<PeerCertificate>();
  let cur: PeerCertificate | undefined = cert;
  while (cur !== undefined && cur !== null && Buffer.isBuffer(cur.raw) && !seen.has(cur) && chain.length <= MAX_CHAIN_LENGTH) {
    seen.add(cur);
    chain.push(parsedCertificate(cur));
    cur = (cur as { issuerCertificate?: PeerCertificate }).issuerCertificate;
  }
  return chain;
}

/**
 * Options for `tls.connect` to a mesh server: a SecureContext built from the
 * material (the key is not in the returned object), `rejectUnauthorized`,
 * and a `checkServerIdentity` that refuses a server whose SVID fails
 * verifySvid, with a PeerRefusedError naming the check. Build once per SVID
 * and reuse for every connection.
 */
export function mtlsClientOptions(material: MtlsMaterial, opts: MtlsClientOptions): ConnectionOptions {
  if (opts === undefined || opts.allowedIds === undefined) {
    throw materialError('allowedIds is required: a set of SPIFFE IDs, or null to accept any ID in the trust domain');
  }
  const bundle = material.bundle;
  const secureContext = mtlsSecureContext(material);
  const verifyOpts = (): VerifySvidOptions => ({
    now: opts.now?.() ?? new Date(),
    ...(opts.expectedTrustDomain !== undefined ? { expectedTrustDomain: opts.expectedTrustDomain } : {}),
    ...(opts.allowedIds !== null ? { allowedIds: opts.allowedIds } : {}),
  });
  return {
    secureContext,
    minVersion: MESH_TLS_VERSION,
    maxVersion: MESH_TLS_VERSION,
    rejectUnauthorized: true,
    ALPNProtocols: [...(opts.alpn ?? MESH_ALPN_CLIENT)],
    ...(opts.servername !== undefined ? { servername: opts.servername } : {}),
    // Only called once OpenSSL has verified the chain, and never for a
    // resumed session — these options never set `session`, so there is none.
    checkServerIdentity: (_host: string, cert: PeerCertificate): Error | undefined => {
      let verdict: SvidVerdict;
      try {
        verdict = verifySvid(legacyChain(cert), bundle, verifyOpts());
      } catch {
        verdict = { ok: false, check: 'malformed', reason: 'the server certificate could not be examined' };
      }
      return verdict.ok ? undefined : new PeerRefusedError(verdict.check, verdict.reason);
    },
  };
}

// TLS errors that mean the bytes were not TLS at all.
const NOT_TLS = new Set([
  'ERR_SSL_HTTP_REQUEST',
  'ERR_SSL_HTTPS_PROXY_REQUEST',
  'ERR_SSL_WRONG_VERSION_NUMBER',
  'ERR_SSL_UNKNOWN_PROTOCOL',
  'ERR_SSL_PACKET_LENGTH_TOO_LONG',
  'ERR_SSL_RECORD_LENGTH_MISMATCH',
]);

/**
 * What refused a connection, from the error a TLS socket or server reported:
 * a PeerRefusedError's check, an OpenSSL certificate verification code mapped
 * to its SvidCheck, a missing client certificate, non-TLS bytes, or any other
 * handshake failure.
 */
export function refusalOf(err: unknown): PeerRefusal {
  if (err instanceof PeerRefusedError) return err.check;
  const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
  const check = checkForTlsError(code);
  if (check !== null) return check;
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE' || code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED') {
    return 'no-certificate';
  }
  if (NOT_TLS.has(code)) return 'not-tls';
  return 'tls-handshake';
}

function reasonOf(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    // OpenSSL messages carry file/line noise after the reason; keep the code and the reason.
    const reason = (err as { reason?: unknown }).reason;
    return [typeof code === 'string' ? code : null, typeof reason === 'string' ? reason : err.message.split('\n')[0]]
      .filter((p) => p !== null && p !== '')
      .join(': ');
  }
  return 'handshake failed';
}

export interface GuardOptions extends Omit<VerifySvidOptions, 'now'> {
  /** The bundle peers must chain to: the one the server's context uses as `ca`. A function is read per connection. */
  readonly bundle: TrustBundle | (() => TrustBundle);
  /** Clock for validity checks; defaults to the current time. */
  readonly now?: () => Date;
  /** Every refused connection, with the check that refused it (count these). */
  readonly onRefused?: (report: PeerRefusalReport, socket: TLSSocket) => void;
  /** Every accepted connection, with the peer's verified SVID. */
  readonly onAccepted?: (socket: TLSSocket, peer: SvidVerdict & { ok: true }) => void;
}

const acceptedPeers = new WeakMap<TLSSocket, SvidVerdict & { ok: true }>();

/** The verified SVID of a connection a guarded server accepted; undefined for any other socket. */
export function verifiedPeer(socket: TLSSocket): (SvidVerdict & { ok: true }) | undefined {
  return acceptedPeers.get(socket);
}

/**
 * Runs the SVID checks on every connection `server` completes, destroying the
 * refused ones and reporting each refusal — including handshakes OpenSSL
 * refused, which never reach `secureConnection` — to `onRefused`. The server
 * must have been made with mtlsServerOptions (`rejectUnauthorized: true`, the
 * same bundle as `ca`). The check runs before any other `secureConnection`
 * listener (https and http2 install theirs when created), and
 * `verifiedPeer(socket)` tells later code whether, and as whom, a socket was
 * accepted. Returns a function that removes the guard.
 */
export function guardMtlsServer(server: Server, opts: GuardOptions): () => void {
  const bundleOf = typeof opts.bundle === 'function' ? opts.bundle : () => opts.bundle as TrustBundle;
  const report = (check: PeerRefusal, reason: string, socket: TLSSocket): void => {
    if (opts.onRefused === undefined) return;
    try {
      opts.onRefused({ check, reason, remoteAddress: socket.remoteAddress, remotePort: socket.remotePort }, socket);
    } catch {
      // A metrics callback must not take the server down.
    }
  };

  const onSecure = (socket: TLSSocket): void => {
    const verdict = verifyTlsPeer(socket, bundleOf(), {
      now: opts.now?.() ?? new Date(),
      ...(opts.expectedTrustDomain !== undefined ? { expectedTrustDomain: opts.expectedTrustDomain } : {}),
      ...(opts.allowedIds !== undefined ? { allowedIds: opts.allowedIds } : {}),
    });
    if (!verdict.ok) {
      socket.destroy();
      report(verdict.check, verdict.reason, socket);
      return;
    }
    acceptedPeers.set(socket, verdict);
    opts.onAccepted?.(socket, verdict);
  };

  const onClientError = (err: Error, socket: TLSSocket): void => {
    // With rejectUnauthorized, node destroys a peer OpenSSL refused and
    // reports only "socket hang up"; the verify error is on the socket.
    const verifyError: unknown = socket.authorizationError;
    const check = typeof verifyError === 'string' && verifyError.length > 0 ? (checkForTlsError(verifyError) ?? 'untrusted-chain') : refusalOf(err);
    const reason = typeof verifyError === 'string' && verifyError.length > 0 ? `TLS refused the peer's chain: ${verifyError}` : reasonOf(err);
    socket.destroy();
    report(check, reason, socket);
  };

  server.prependListener('secureConnection', onSecure);
  server.on('tlsClientError', onClientError);
  return () => {
    server.off('secureConnection', onSecure);
    server.off('tlsClientError', onClientError);
  };
}

export interface MtlsServer {
  readonly server: Server;
  /**
   * Replaces key, chain and bundle for new handshakes (SVID or root
   * rotation). Established connections keep the context they began with.
   */
  update(material: MtlsMaterial): void;
}

/** Replaces a live server's key, chain and bundle for new handshakes, zeroing the PEM copy of the key. */
export function setMtlsMaterial(server: Server, material: MtlsMaterial): void {
  const options = mtlsSecureContextOptions(material);
  try {
    server.setSecureContext(options);
  } finally {
    options.key.fill(0);
  }
}

/** A TLS server for mesh mTLS: mtlsServerOptions plus guardMtlsServer, kept in step by `update`. */
export function createMtlsServer(material: MtlsMaterial, opts: MtlsServerOptions & Omit<GuardOptions, 'bundle'> = {}): MtlsServer {
  avoidNodePeerChainLeak();
  let bundle = material.bundle;
  const options = mtlsServerOptions(material, opts);
  let server: Server;
  try {
    server = createServer(options);
  } finally {
    // node keeps a reference to this Buffer as `server.key`; it has parsed it already.
    options.key.fill(0);
  }
  guardMtlsServer(server, { ...opts, bundle: () => bundle });
  return {
    server,
    update(next: MtlsMaterial): void {
      setMtlsMaterial(server, next);
      bundle = next.bundle;
    },
  };
}
