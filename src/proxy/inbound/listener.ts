// One inbound port: a TCP listener that looks at the first bytes of each
// connection. A TLS ClientHello (record type 0x16) goes to a mesh mTLS server
// that is never listening itself, only handed sockets; anything else is
// plaintext. Which of the two the port accepts is the PeerAuthentication mode
// in force when the connection arrives (STRICT, PERMISSIVE, DISABLE), and the
// decrypted or plain stream is then served as HTTP/1.1, HTTP/2 or TCP.

import { performance } from 'node:perf_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { http } from '../../lib/node-http.ts';
import { createServer as createH2Server, type Http2Server, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session } from 'node:http2';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { createServer as createTlsServer, TLSSocket, type Server as TlsServer } from 'node:tls';
import type { InboundPort } from '../../api/proxy-config.ts';
import type { Duplex } from 'node:stream';
import { createMtlsServer, verifiedPeer, type MtlsMaterial, type MtlsServer } from '../../identity/tls-options.ts';
import { toPrincipal } from '../../identity/spiffe.ts';
import { certificateSha256Hex } from '../../identity/peer-certificates.ts';
import { destinationOf, inboundPort } from '../snapshot.ts';
import type { ConnectionInfo, InboundContext } from './context.ts';
import { handleInboundRequest } from './http.ts';
import { handleInboundTcp } from './tcp.ts';
import { InboundFastLane, type LaneHost } from './fast-h1.ts';
import { handToServer } from '../http1/lane.ts';
import { readSecuredIntoSharedBuffer } from '../http1/secured-reads.ts';
import { h2ServerOptions, limitsOf, ListenerLimits } from './limits.ts';

const TLS_HANDSHAKE = 0x16;
// An HTTP/2 connection without TLS starts with this preface.
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n');

function peerKey(socket: Socket | TLSSocket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`;
}

function plainIp(address: string | undefined): string {
  if (address === undefined) return '0.0.0.0';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

/**
 * The TLS socket node builds around `socket` takes its `allowHalfOpen`. The
 * listener keeps half-open connections (for TCP ports), but a peer that
 * ends its side before the handshake is over has left: half-open, its
 * connection would hold a descriptor and a connection slot until the
 * handshake timeout, though nothing more can come of it. So the handshake
 * runs with half-open off, and the secured socket gets it back (`#serve`).
 */
function closeWhenPeerLeavesHandshake(socket: Socket): void {
  socket.allowHalfOpen = false;
}

export class InboundListener {
  readonly port: number;
  readonly #ctx: InboundContext;
  readonly #server: NetServer;
  readonly #mtls: MtlsServer;
  readonly #h1 = http.createServer({ keepAlive: true });
  readonly #h2: Http2Server;
  readonly #limits: ListenerLimits;
  readonly #conn = new WeakMap<object, ConnectionInfo>();
  readonly #sockets = new Set<Duplex>();
  /** When each pending mesh handshake's ClientHello arrived, by peer address and port. */
  readonly #helloAt = new Map<string, number>();
  #pendingSession: ConnectionInfo | undefined;
  /** The external TLS server of an ingress port, built for the `tls` setting it was read from. */
  readonly #lane: LaneHost;
  #ingress: { readonly tls: NonNullable<InboundPort['tls']>; readonly server: TlsServer } | undefined;

  private constructor(port: number, material: MtlsMaterial, ctx: InboundContext) {
    this.port = port;
    this.#ctx = ctx;
    this.#lane = { ctx, port, handOff: (s, pending) => this.#handOff(s, pending) };
    this.#h2 = createH2Server(h2ServerOptions(limitsOf(ctx)));
    this.#limits = new ListenerLimits(ctx, this.#h1, (s) => this.#conn.get(s));
    this.#mtls = createMtlsServer(material, {
      onRefused: (r) => ctx.metrics.handshakeFailed(r.check),
      onAccepted: (s) => {
        const at = this.#helloAt.get(peerKey(s));
        ctx.metrics.handshakeSucceeded(at === undefined ? 0 : performance.now() - at);
      },
    });
    this.#server = createNetServer({ allowHalfOpen: true, pauseOnConnect: false, noDelay: true }, (s) => this.#accept(s));
    this.#mtls.server.on('secureConnection', (s: TLSSocket) => this.#secure(s));
    // A broken peer session is that peer's problem; the listener carries on.
    this.#h2.on('sessionError', () => {});
    this.#mtls.server.on('error', () => {});
    this.#h1.on('request', (req: IncomingMessage, res: ServerResponse) => this.#request(this.#conn.get(req.socket), req, res));
    this.#h2.on('session', (session: ServerHttp2Session) => {
      if (this.#pendingSession !== undefined) this.#conn.set(session, this.#pendingSession);
      this.#limits.watchSession(session);
    });
    this.#h2.on('request', (req: Http2ServerRequest, res: Http2ServerResponse) => this.#request(this.#conn.get(req.stream.session!), req, res));
  }

  /** Listens on `host`:`bindPort` (0 for any port). */
  static async open(port: number, host: string, bindPort: number, material: MtlsMaterial, ctx: InboundContext): Promise<InboundListener> {
    const l = new InboundListener(port, material, ctx);
    // An ingress port's certificate is read now, so a missing file refuses the config.
    const tls = inboundPort(ctx.snapshot(), port)?.tls;
    if (tls !== undefined) l.#ingressServer(tls);
    await new Promise<void>((resolve, reject) => {
      l.#server.once('error', reject);
      l.#server.listen(bindPort, host, () => {
        l.#server.off('error', reject);
        resolve();
      });
    });
    return l;
  }

  get boundPort(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** New handshakes use this material; established connections keep theirs. */
  setMaterial(material: MtlsMaterial): void {
    this.#mtls.update(material);
  }

  /** Stops accepting, gives open connections `graceMs` to finish, then closes them. */
  async close(graceMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    // Closes the idle keep-alive connections and stops node's timeout checks (limits.ts).
    this.#h1.close();
    const deadline = setTimeout(() => {
      for (const s of this.#sockets) s.destroy();
    }, graceMs);
    await closed;
    clearTimeout(deadline);
  }

  #accept(socket: Socket): void {
    socket.on('error', () => socket.destroy());
    // Over the connection limit: closed at once. Otherwise the first byte,
    // and for TLS the handshake, must arrive within the handshake timeout.
    const { admitted, settled } = this.#limits.accept(socket);
    if (!admitted) return;
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.once('readable', () => {
      const first = socket.read() as Buffer | null;
      if (first === null) {
        socket.destroy();
        return;
      }
      socket.unshift(first);
      const snap = this.#ctx.snapshot();
      const tls = inboundPort(snap, this.port)?.tls;
      if (tls !== undefined) {
        if (first[0] !== TLS_HANDSHAKE) {
          this.#ctx.metrics.handshakeFailed('not-tls');
          socket.destroy();
          return;
        }
        let server: TlsServer;
        try {
          server = this.#ingressServer(tls);
        } catch {
          // The certificate files went missing after the config was accepted.
          this.#ctx.metrics.handshakeFailed('ingress-certificate-unreadable');
          socket.destroy();
          return;
        }
        closeWhenPeerLeavesHandshake(socket);
        server.emit('connection', socket);
        return;
      }
      const { mode } = snap.engine.peerMode(destinationOf(snap, this.port, plainIp(socket.localAddress)));
      if (first[0] === TLS_HANDSHAKE) {
        if (mode === 'DISABLE') {
          socket.destroy();
          return;
        }
        // The TLS socket node wraps around this one has the same peer address: the key to the handshake's start.
        const key = peerKey(socket);
        this.#helloAt.set(key, performance.now());
        socket.once('close', () => this.#helloAt.delete(key));
        closeWhenPeerLeavesHandshake(socket);
        this.#mtls.server.emit('connection', socket);
        return;
      }
      const port = inboundPort(snap, this.port);
      const healthOnly = mode === 'STRICT' && port !== undefined && port.protocol !== 'tcp' && (port.healthPaths?.length ?? 0) > 0;
      if (mode === 'STRICT' && !healthOnly) {
        this.#ctx.metrics.handshakeFailed('not-tls');
        socket.destroy();
        return;
      }
      settled();
      this.#serve(socket, first, {
        port: this.port,
        mtls: false,
        ingress: false,
        principal: null,
        peerCertHash: null,
        remoteIp: plainIp(socket.remoteAddress),
        localIp: plainIp(socket.localAddress),
        snapshot: snap,
      });
    });
  }

  #secure(socket: TLSSocket): void {
    this.#limits.settleTls(socket);
    const peer = verifiedPeer(socket);
    // The guard has destroyed a refused peer already.
    if (peer === undefined) return;
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const info: ConnectionInfo = {
      port: this.port,
      mtls: true,
      ingress: false,
      principal: toPrincipal(peer.id),
      peerCertHash: certificateSha256Hex(peer.leaf),
      remoteIp: plainIp(socket.remoteAddress),
      localIp: plainIp(socket.localAddress),
      snapshot: this.#ctx.snapshot(),
    };
    this.#serve(socket, socket.alpnProtocol === 'h2' ? H2_PREFACE : null, info);
  }

  /** The TLS server for an ingress port's certificate; rebuilt only when the config names other files. */
  #ingressServer(tls: NonNullable<InboundPort['tls']>): TlsServer {
    if (this.#ingress !== undefined && this.#ingress.tls === tls) return this.#ingress.server;
    const server = createTlsServer({ key: readFileSync(tls.keyFile), cert: readFileSync(tls.certFile), ALPNProtocols: ['h2', 'http/1.1'] });
    server.on('error', () => {});
    server.on('tlsClientError', () => this.#ctx.metrics.handshakeFailed('ingress-tls'));
    server.on('secureConnection', (socket: TLSSocket) => {
      this.#limits.settleTls(socket);
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
      socket.on('error', () => socket.destroy());
      this.#serve(socket, socket.alpnProtocol === 'h2' ? H2_PREFACE : null, {
        port: this.port,
        mtls: false,
        ingress: true,
        principal: null,
        peerCertHash: null,
        remoteIp: plainIp(socket.remoteAddress),
        localIp: plainIp(socket.localAddress),
        snapshot: this.#ctx.snapshot(),
      });
    });
    this.#ingress = { tls, server };
    return server;
  }

  /** `first` tells HTTP/2 from HTTP/1.1 on plaintext; on TLS, ALPN has (null: not h2). */
  #serve(socket: Duplex, first: Buffer | null, info: ConnectionInfo): void {
    // The listener's half-open, which a TLS handshake ran without (closeWhenPeerLeavesHandshake).
    socket.allowHalfOpen = true;
    const port = inboundPort(info.snapshot, this.port);
    if (port === undefined) {
      socket.destroy();
      return;
    }
    if (port.protocol === 'tcp') {
      handleInboundTcp(socket, info, port, this.#ctx);
      return;
    }
    this.#conn.set(socket, info);
    const h2 = first !== null && first.length >= 3 && first.subarray(0, 3).equals(H2_PREFACE.subarray(0, 3));
    if (h2) {
      // The port's listener keeps half-open connections, for TCP ports. Node's
      // HTTP/2 server expects a socket that closes when its peer does: on a
      // half-open one, a session whose peer left before acknowledging its
      // SETTINGS closes but is never freed (about 75 KiB each).
      socket.allowHalfOpen = false;
      this.#pendingSession = info;
      try {
        this.#h2.emit('connection', socket);
      } finally {
        this.#pendingSession = undefined;
      }
    } else {
      // Still inside 'secureConnection' for a TLS socket: no decrypted byte read yet.
      const reads = socket instanceof TLSSocket ? readSecuredIntoSharedBuffer(socket) : null;
      new InboundFastLane(socket, info, this.#lane, reads);
    }
  }

  /** Node's HTTP/1.1 server takes a connection the fast lane will not serve, `pending` (the bytes the lane read) first. */
  #handOff(socket: Duplex, pending: Buffer | null): void {
    this.#limits.configureH1();
    handToServer(this.#h1, socket, pending);
  }

  #request(info: ConnectionInfo | undefined, req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse): void {
    const port = info === undefined ? undefined : inboundPort(info.snapshot, this.port);
    if (info === undefined || port === undefined) {
      res.destroy();
      return;
    }
    // Each request decides with the policy in force when it began, not
    // when its connection did.
    const current = this.#ctx.snapshot();
    const now = current === info.snapshot ? port : (inboundPort(current, this.port) ?? port);
    const facts = current === info.snapshot ? info : { ...info, snapshot: current };
    if (!this.#limits.checkRequest(req, res, facts)) return;
    handleInboundRequest(req, res, facts, now, this.#ctx);
  }
}
