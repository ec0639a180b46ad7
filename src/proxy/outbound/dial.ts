// How one upstream is dialled, decided once per configuration from the
// engine's client TLS decision (DestinationRule, auto mTLS):
//   ISTIO_MUTUAL  mesh mTLS with the workload's SVID; the server must present
//                 one of the endpoint's `identities` (secure naming).
//   DISABLE       plaintext.
//   SIMPLE        TLS without a client certificate. The server's chain is
//                 verified against the mesh trust bundle and its name against
//                 the upstream's host: without DestinationRule certificate
//                 files there are no other roots to trust, and accepting any
//                 server would make SIMPLE look safer than it is.
//   MUTUAL        needs client certificate files, which meshward does not
//                 read; refused with a reason rather than silently degraded.
// Dial errors become an UpstreamError naming what failed, so the HTTP side
// can answer 503 and the counters can say why.

import { performance } from 'node:perf_hooks';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Upstream, UpstreamEndpoint } from '../../api/proxy-config.ts';
import type { ClientTlsDecision } from '../../policy/destination/index.ts';
import { mtlsClientOptions, mtlsSecureContextOptions, refusalOf, type MtlsMaterial } from '../../identity/tls-options.ts';
import { presentedSpiffeId } from '../../identity/peer-certificates.ts';
import type { HandshakeObserver, UpstreamFailure } from './metrics.ts';

export type Security = 'mutual_tls' | 'tls' | 'none';

export type DialPlan =
  | { readonly kind: 'mtls'; readonly security: 'mutual_tls'; readonly decision: ClientTlsDecision }
  | { readonly kind: 'simple'; readonly security: 'tls'; readonly decision: ClientTlsDecision }
  | { readonly kind: 'plaintext'; readonly security: 'none'; readonly decision: ClientTlsDecision }
  | { readonly kind: 'refuse'; readonly security: 'none'; readonly decision: ClientTlsDecision; readonly reason: string };

export function planFor(upstream: Upstream, decision: ClientTlsDecision): DialPlan {
  switch (decision.mode) {
    case 'ISTIO_MUTUAL':
      return { kind: 'mtls', security: 'mutual_tls', decision };
    case 'SIMPLE':
      return { kind: 'simple', security: 'tls', decision };
    case 'DISABLE':
      return { kind: 'plaintext', security: 'none', decision };
    case 'MUTUAL':
      return {
        kind: 'refuse',
        security: 'none',
        decision,
        reason:
          `${decision.destinationRule ?? 'a DestinationRule'} sets tls.mode MUTUAL for ${upstream.host}, which needs client ` +
          `certificate files; meshward does not support MUTUAL (use ISTIO_MUTUAL for mesh peers)`,
      };
  }
}

/** The namespace of a service FQDN `name.ns.svc.…`, else the fallback. */
export function serviceNamespace(host: string, fallback: string): string {
  const labels = host.split('.');
  return labels.length >= 3 && labels[2] === 'svc' ? labels[1]! : fallback;
}

export class UpstreamError extends Error {
  readonly reason: UpstreamFailure;
  /** For handshake failures: the check that refused the server. */
  readonly check: string | undefined;
  constructor(reason: UpstreamFailure, message: string, check?: string) {
    super(message);
    this.name = 'UpstreamError';
    this.reason = reason;
    this.check = check;
  }
}

/** TLS options per plan and endpoint; built once per SVID, since each holds a SecureContext. */
export class TlsOptionsCache {
  readonly #material: MtlsMaterial;
  readonly #cache = new Map<string, tls.ConnectionOptions>();

  /** Throws (naming what is wrong, never the key) if the material is unusable. */
  constructor(material: MtlsMaterial) {
    // Fail at setMaterial, not on the first request after it.
    mtlsSecureContextOptions(material).key.fill(0);
    this.#material = material;
  }

  get(plan: DialPlan, upstream: Upstream, endpoint: UpstreamEndpoint, alpn: readonly string[]): tls.ConnectionOptions | null {
    if (plan.kind !== 'mtls' && plan.kind !== 'simple') return null;
    const key = `${plan.kind}|${upstream.host}|${endpoint.identities.join(',')}|${alpn.join(',')}`;
    let options = this.#cache.get(key);
    if (options === undefined) {
      options =
        plan.kind === 'mtls'
          ? mtlsClientOptions(this.#material, { allowedIds: new Set(endpoint.identities), alpn })
          : {
              ca: this.#material.bundle.pem,
              servername: upstream.host,
              minVersion: 'TLSv1.2',
              rejectUnauthorized: true,
              ALPNProtocols: [...alpn],
            };
      this.#cache.set(key, options);
    }
    return options;
  }
}

/** The SPIFFE ID in the certificate a TLS peer presented; null without one, or on a plaintext socket. */
export function presentedId(socket: net.Socket | null | undefined): string | null {
  const tlsSocket = socket as tls.TLSSocket | null | undefined;
  return typeof tlsSocket?.getPeerCertificate === 'function' ? presentedSpiffeId(tlsSocket) : null;
}

/**
 * Reports the handshake of a TLS socket that is still connecting: success
 * with its duration from TCP connected to verified, or the check that failed
 * it. A connection that never reached TCP is not a handshake.
 */
export function observeHandshake(socket: tls.TLSSocket, observer: HandshakeObserver): void {
  let tcpUp = 0;
  socket.once('connect', () => {
    tcpUp = performance.now();
  });
  const onError = (err: Error): void => {
    if (tcpUp !== 0) observer.failed(refusalOf(err));
  };
  socket.once('error', onError);
  socket.once('secureConnect', () => {
    socket.off('error', onError);
    observer.succeeded(performance.now() - (tcpUp || performance.now()));
  });
}

/**
 * Connects (and for TLS, completes the handshake) or rejects with an
 * UpstreamError. `observer` hears about the TLS handshake, if one begins;
 * `onread`, when given, takes the socket's reads (../http1/shared-reads.ts).
 */
export function dial(
  endpoint: UpstreamEndpoint,
  options: tls.ConnectionOptions | null,
  timeoutMs: number,
  observer?: HandshakeObserver,
  onread?: net.OnReadOpts,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const where = `${endpoint.host}:${endpoint.port}`;
    const socket =
      options === null
        ? net.connect({ host: endpoint.host, port: endpoint.port, allowHalfOpen: true, onread })
        : // node passes allowHalfOpen and onread on to the TLSSocket; its typings leave them out.
          tls.connect({ ...options, host: endpoint.host, port: endpoint.port, allowHalfOpen: true, onread } as tls.ConnectionOptions);
    let tcpUp = false;
    let tcpAt = 0;
    const timer = setTimeout(() => {
      socket.destroy();
      if (options !== null && tcpUp) observer?.failed('timeout');
      reject(new UpstreamError('connect-timeout', `connection to ${where} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      if (options !== null && tcpUp) {
        const check = refusalOf(err);
        observer?.failed(check);
        const what =
          check === 'not-allowed'
            ? `secure naming: the server at ${where} is not one of ${endpoint.identities.join(', ') || '(no identities)'}`
            : `TLS handshake with ${where} failed`;
        reject(new UpstreamError('handshake', `${what} (check ${check}): ${err.message}`, check));
        return;
      }
      const code = (err as { code?: unknown }).code;
      reject(new UpstreamError('connect-refused', `connection to ${where} failed: ${typeof code === 'string' ? code : err.message}`));
    };
    socket.once('connect', () => {
      tcpUp = true;
      tcpAt = performance.now();
    });
    socket.once('error', onError);
    socket.once(options === null ? 'connect' : 'secureConnect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      if (options !== null) observer?.succeeded(performance.now() - tcpAt);
      resolve(socket);
    });
  });
}
