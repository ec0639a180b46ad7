// The certificate a TLS peer presented, read without leaking memory.
//
// Node 24 (to 24.21; Node 26 does not) builds the X509Certificate that the
// native `getPeerX509Certificate` returns by detaching every certificate
// after the leaf from the TLS session's peer chain, and never frees the
// originals. An OpenSSL client sends its issuer too whenever it can build the
// chain from its trust store (meshward's clients among them), so each
// connection whose peer sent one leaves about 6.5 KiB of native memory behind.
// Node's own TLS server makes that call once per handshake with a client
// certificate, so a sidecar that accepts many connections grows without
// bound: 12,000 mTLS handshakes into a bare `tls.createServer` left 80 MiB
// more than the same with the call avoided.
//
// Two parts:
//   - meshward reads peer certificates through `getPeerCertificate`, which
//     copies the chain instead of detaching it (peerLeaf, presentedSpiffeId);
//   - on Node 24, `avoidNodePeerChainLeak` replaces the native method with one
//     that answers the one question node's server asks it ("did the client
//     present a certificate?") without reading the chain, and the public
//     `TLSSocket#getPeerX509Certificate` with one built on `getPeerCertificate`.
//     No other part of node calls the native method.

import { X509Certificate } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { TLSSocket, type PeerCertificate } from 'node:tls';

/** Node's TLS handle, as far as it is used here. */
interface TlsHandle {
  getPeerX509Certificate(this: TlsHandle): unknown;
  getPeerCertificate(this: TlsHandle, detailed?: boolean): PeerCertificate | undefined;
  isSessionReused(this: TlsHandle): boolean;
}

// Parsed leaves by SHA-256 fingerprint: a peer presents the same SVID on every
// connection for the certificate's lifetime, and parsing costs more than the
// rest of the lookup. Cleared when full rather than kept in LRU order: refilling
// costs one parse per peer.
const MAX_PARSED = 256;
const parsed = new Map<string, X509Certificate>();

/** `cert` (as `getPeerCertificate` or `checkServerIdentity` gives it) parsed, or the same certificate parsed before. */
export function parsedCertificate(cert: PeerCertificate): X509Certificate {
  const key = cert.fingerprint256;
  if (typeof key !== 'string' || key.length === 0) return new X509Certificate(cert.raw);
  const hit = parsed.get(key);
  if (hit !== undefined) return hit;
  const x509 = new X509Certificate(cert.raw);
  if (parsed.size >= MAX_PARSED) parsed.clear();
  parsed.set(key, x509);
  return x509;
}

const sha256Hex = new WeakMap<X509Certificate, string>();

/**
 * The SHA-256 of a certificate's DER, lowercase hex (the `Hash=` of Envoy's
 * `x-forwarded-client-cert`). Read from the certificate's fingerprint, once
 * per parsed certificate: a peer's connections share one (`parsedCertificate`).
 */
export function certificateSha256Hex(cert: X509Certificate): string {
  let hex = sha256Hex.get(cert);
  if (hex === undefined) {
    hex = cert.fingerprint256.replaceAll(':', '').toLowerCase();
    sha256Hex.set(cert, hex);
  }
  return hex;
}

/** The leaf certificate the peer of an established TLS connection presented, or undefined without one. */
export function peerLeaf(socket: TLSSocket): X509Certificate | undefined {
  const cert = socket.getPeerCertificate();
  // node returns {} when there is no peer certificate.
  if (cert === null || !Buffer.isBuffer(cert.raw)) return undefined;
  return parsedCertificate(cert);
}

const presented = new WeakMap<TLSSocket, string | null>();

/** The SPIFFE ID in the certificate the peer of a TLS socket presented; null without one. Read once per socket. */
export function presentedSpiffeId(socket: TLSSocket): string | null {
  const known = presented.get(socket);
  if (known !== undefined) return known;
  const cert = socket.getPeerCertificate();
  const san = cert !== null && typeof cert.subjectaltname === 'string' ? cert.subjectaltname : '';
  const uri = san.split(', ').find((s) => s.startsWith('URI:spiffe://'));
  const id = uri === undefined ? null : uri.slice(4);
  // Before the handshake there is nothing to remember.
  if (Buffer.isBuffer(cert?.raw)) presented.set(socket, id);
  return id;
}

let avoided = false;

/**
 * On Node 24, stops node's TLS server leaking the certificates a client sent
 * after its leaf (see the top of this file). Idempotent; does nothing on
 * other versions, or if node's internals are not as expected.
 */
export function avoidNodePeerChainLeak(): void {
  if (avoided) return;
  avoided = true;
  if (process.versions.node.split('.')[0] !== '24') return;
  // The handle's class is not exported; a socket that is never connected has one.
  const probe = new TLSSocket(undefined as unknown as Duplex);
  const handle = (probe as unknown as { _handle?: object })._handle;
  probe.destroy();
  const proto = handle === undefined ? undefined : (Object.getPrototypeOf(handle) as Partial<TlsHandle>);
  if (
    proto === undefined ||
    typeof proto.getPeerX509Certificate !== 'function' ||
    typeof proto.getPeerCertificate !== 'function' ||
    typeof proto.isSessionReused !== 'function'
  ) {
    return;
  }
  // Node's server calls this only once `verifyError()` has found nothing
  // wrong, to refuse a TLS 1.3 resumption that carries no certificate:
  // `verifyError()` reports a missing certificate itself on a full handshake
  // (identity-peer-certificates.test.ts: not authorized), so only a resumed
  // session needs the lookup. Node only tests the value for truth.
  proto.getPeerX509Certificate = function peerPresentedCertificate(this: TlsHandle): unknown {
    if (!this.isSessionReused()) return true;
    const cert = this.getPeerCertificate(false);
    return cert !== undefined && cert !== null && Buffer.isBuffer(cert.raw) ? true : undefined;
  };
  // The public method wraps the native one's value, which is no longer a certificate.
  TLSSocket.prototype.getPeerX509Certificate = function getPeerX509Certificate(this: TLSSocket): X509Certificate | undefined {
    return peerLeaf(this);
  };
}
