// The outbound side of a workload proxy: what the app dials to reach other
// services. Two kinds of listener, both on 127.0.0.1 only, since they speak
// plaintext for the app and anyone reaching them would borrow the workload's
// identity:
//   - one per upstream with a `localPort` (Consul-style: localhost:19001 is
//     payment-service): opaque TCP for tcp upstreams, HTTP/1.1 for http,
//     h2c with prior knowledge for http2 and grpc;
//   - an HTTP proxy on `httpProxyPort` (HTTP_PROXY), routing by the request
//     target's host or the Host header to the upstream with that name or host.
// Upstream connections follow the engine's client TLS decision per upstream
// (./dial.ts) and carry HTTP as HTTP/2 over one mTLS connection per endpoint
// (./pool.ts).
//
//   const router = new OutboundRouter(config, engine, material, { registry });
//   await router.start();
//   router.setMaterial(rotated);      // new connections present the new SVID
//   await router.update(next, nextEngine);
//   await router.stop();

import type * as Http from 'node:http';
import { http } from '../../lib/node-http.ts';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import { Registry } from '../../lib/prometheus.ts';
import type { ProxyConfig } from '../../api/proxy-config.ts';
import type { PolicyEngine } from '../../policy/engine.ts';
import type { MtlsMaterial } from '../../identity/tls-options.ts';
import type { Tracer } from '../tracing/tracer.ts';
import { TlsOptionsCache } from './dial.ts';
import { requestTarget } from './headers.ts';
import { forwardH2Stream } from './h2-forward.ts';
import { forwardHttp, type ForwardContext } from './http-forward.ts';
import { createOutboundMetrics, type OutboundMetrics, type Source } from './metrics.ts';
import { ConnectionPool } from './pool.ts';
import { RouteTable, type Route } from './route.ts';
import { forwardTcp } from './tcp-forward.ts';
import { OutboundFastLane } from './fast-h1.ts';
import { isPeerWorkload } from '../peer-workload.ts';
import { handToServer } from '../http1/lane.ts';
import { readIntoSharedBuffer } from '../http1/accepted-reads.ts';
import type { Duplex } from 'node:stream';

export interface OutboundRouterOptions {
  /** Where the metrics go; a private registry when omitted. */
  readonly registry?: Registry;
  /** Time allowed for TCP connect plus TLS handshake to an endpoint; default 10 s (Envoy's connect_timeout). */
  readonly connectTimeoutMs?: number;
  /** Listen address; loopback, and only a test has reason to change it. */
  readonly host?: string;
  /** The tracer in force, read per request; absent or null: trace headers pass through untouched. */
  readonly tracer?: () => Tracer | null;
}

type ListenerKind = 'tcp' | 'http' | 'h2c' | 'proxy';

interface Listener {
  readonly key: string;
  readonly server: net.Server | Http.Server | http2.Http2Server;
  readonly sockets: Set<net.Socket>;
}

function listenerKind(route: Route): ListenerKind {
  const p = route.upstream.protocol;
  return p === 'tcp' ? 'tcp' : p === 'http' ? 'http' : 'h2c';
}

/** Keeps `socket` in `sockets` while it is open (a listener's close destroys them). */
function hold(sockets: Set<net.Socket>, socket: net.Socket): void {
  sockets.add(socket);
  socket.once('close', () => sockets.delete(socket));
}

function plainResponse(res: Http.ServerResponse, status: number, body: string, headers: Http.OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

export class OutboundRouter {
  readonly metrics: OutboundMetrics;
  readonly registry: Registry;
  readonly #timeoutMs: number;
  readonly #tracer: () => Tracer | null;
  readonly #host: string;
  #table: RouteTable;
  #tlsOptions: TlsOptionsCache;
  #pool: ConnectionPool;
  readonly #pools = new Set<ConnectionPool>();
  readonly #listeners = new Map<string, Listener>();
  readonly #upstreamSockets = new Set<net.Socket>();
  #started = false;
  #forwardContext: ForwardContext | undefined;
  #forwardContextTable: RouteTable | undefined;

  constructor(config: ProxyConfig, engine: PolicyEngine, material: MtlsMaterial, options: OutboundRouterOptions = {}) {
    this.registry = options.registry ?? new Registry();
    this.metrics = createOutboundMetrics(this.registry);
    this.#timeoutMs = options.connectTimeoutMs ?? 10_000;
    this.#host = options.host ?? '127.0.0.1';
    this.#tracer = options.tracer ?? (() => null);
    this.#table = new RouteTable(config, engine);
    this.#tlsOptions = new TlsOptionsCache(material);
    this.#pool = this.#newPool();
  }

  /** Opens the listeners. Rejects (and opens none) if a port is taken. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    try {
      await this.#reconcile();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Closes the listeners and every connection, in both directions. */
  async stop(): Promise<void> {
    this.#started = false;
    const closing = [...this.#listeners.values()].map((l) => this.#close(l));
    this.#listeners.clear();
    for (const pool of this.#pools) pool.destroy();
    this.#pools.clear();
    for (const s of this.#upstreamSockets) s.destroy();
    this.#upstreamSockets.clear();
    await Promise.all(closing);
  }

  /**
   * Replaces the configuration and engine: requests and connections in
   * flight finish on the routes they began with, new ones use the new
   * table, listeners are opened and closed to match.
   */
  async update(config: ProxyConfig, engine: PolicyEngine): Promise<void> {
    this.#table = new RouteTable(config, engine);
    this.#retirePool();
    if (this.#started) await this.#reconcile();
  }

  /**
   * A new SVID (or trust bundle): new upstream connections present it;
   * established ones keep theirs until their requests finish. Throws, and
   * keeps the current material, if the new one is unusable.
   */
  setMaterial(material: MtlsMaterial): void {
    const next = new TlsOptionsCache(material);
    this.#tlsOptions = next;
    this.#retirePool();
  }

  /** The port each listener is bound to: upstream name → port, and `httpProxy`. */
  ports(): { readonly upstreams: ReadonlyMap<string, number>; readonly httpProxy: number | undefined } {
    const upstreams = new Map<string, number>();
    let httpProxy: number | undefined;
    for (const l of this.#listeners.values()) {
      const address = l.server.address();
      if (address === null || typeof address === 'string') continue;
      const [kind, name] = l.key.split('|');
      if (kind === 'proxy') httpProxy = address.port;
      else upstreams.set(name!, address.port);
    }
    return { upstreams, httpProxy };
  }

  /** In-flight requests per endpoint of an upstream, in endpoint order. */
  inFlight(upstreamName: string): readonly number[] {
    return this.#table.byName(upstreamName)?.balancer.inFlight() ?? [];
  }

  #newPool(): ConnectionPool {
    const pool = new ConnectionPool(this.#tlsOptions, this.#timeoutMs, this.metrics);
    this.#pools.add(pool);
    return pool;
  }

  #retirePool(): void {
    this.#pool.drain();
    // Retired pools stay until their last session closes, so stop() can close them.
    for (const pool of this.#pools) if (pool.idle) this.#pools.delete(pool);
    this.#pool = this.#newPool();
  }

  get #source(): Source {
    const w = this.#table.config.workload;
    return { workload: w.name, namespace: w.namespace, principal: `spiffe://${w.trustDomain}/ns/${w.namespace}/sa/${w.serviceAccount}` };
  }

  /**
   * What a request forwards with: the same object until the pool, the table
   * or the tracer changes, so requests allocate no context of their own. A
   * method, not a private getter: V8 reads a private getter through its
   * runtime where it does not inline the call.
   */
  #context(): ForwardContext {
    const tracer = this.#tracer();
    const c = this.#forwardContext;
    if (c !== undefined && c.pool === this.#pool && c.tracer === tracer && this.#forwardContextTable === this.#table) return c;
    this.#forwardContextTable = this.#table;
    const source = this.#source;
    const peerWorkload = isPeerWorkload(source.workload) ? source.workload : null;
    return (this.#forwardContext = { pool: this.#pool, metrics: this.metrics, source, tracer, peerWorkload });
  }

  async #reconcile(): Promise<void> {
    const wanted = new Map<string, () => Listener>();
    for (const route of this.#table.routes()) {
      const { name, localPort } = route.upstream;
      if (localPort === undefined) continue;
      const kind = listenerKind(route);
      const key = `${kind}|${name}|${localPort}`;
      wanted.set(key, () => this.#upstreamListener(key, kind, name));
    }
    const proxyPort = this.#table.config.httpProxyPort;
    if (proxyPort !== undefined) {
      const key = `proxy||${proxyPort}`;
      wanted.set(key, () => this.#proxyListener(key));
    }
    const closing: Promise<void>[] = [];
    for (const [key, l] of this.#listeners) {
      if (!wanted.has(key)) {
        this.#listeners.delete(key);
        closing.push(this.#close(l));
      }
    }
    await Promise.all(closing);
    for (const [key, make] of wanted) {
      if (this.#listeners.has(key)) continue;
      const listener = make();
      const port = Number(key.split('|')[2]);
      await new Promise<void>((resolve, reject) => {
        listener.server.once('error', reject);
        listener.server.listen(port, this.#host, () => {
          listener.server.off('error', reject);
          // Accept errors (EMFILE) are the listener's problem, not the process's.
          listener.server.on('error', () => undefined);
          resolve();
        });
      });
      this.#listeners.set(key, listener);
    }
  }

  #track(server: net.Server | Http.Server | http2.Http2Server): Set<net.Socket> {
    const sockets = new Set<net.Socket>();
    server.on('connection', (s: net.Socket) => hold(sockets, s));
    return sockets;
  }

  #upstreamListener(key: string, kind: ListenerKind, name: string): Listener {
    if (kind === 'tcp') {
      const server = net.createServer({ allowHalfOpen: true }, (socket) => {
        const route = this.#table.byName(name);
        if (route === undefined) {
          socket.destroy();
          return;
        }
        forwardTcp(
          {
            tlsOptions: () => this.#tlsOptions,
            metrics: this.metrics,
            source: this.#source,
            timeoutMs: this.#timeoutMs,
            track: (s) => {
              this.#upstreamSockets.add(s);
              s.once('close', () => this.#upstreamSockets.delete(s));
            },
          },
          route,
          socket,
        );
      });
      return { key, server, sockets: this.#track(server) };
    }
    if (kind === 'h2c') {
      const server = http2.createServer();
      server.on('stream', (stream, headers) => {
        const route = this.#table.byName(name);
        if (route === undefined) {
          stream.respond({ ':status': 502 });
          stream.end(`no upstream ${name}\n`);
          return;
        }
        forwardH2Stream(this.#context(), route, stream, headers);
      });
      server.on('sessionError', () => undefined);
      return { key, server, sockets: this.#track(server) };
    }
    // Node's server is never listening: it is handed the connections the fast lane gives up.
    const full = http.createServer((req, res) => {
      const route = this.#table.byName(name);
      if (route === undefined) {
        plainResponse(res, 502, `no upstream ${name}\n`);
        return;
      }
      const target = requestTarget(req.url ?? '/', req.headers.host);
      if (target === null) {
        plainResponse(res, 400, 'the request target is not an http URL or a path\n');
        return;
      }
      forwardHttp(this.#context(), route, req, res, { authority: target.authority ?? route.upstream.host, path: target.path });
    });
    full.on('clientError', (_err, socket) => socket.destroy());
    const handOff = (socket: Duplex, pending: Buffer | null): void => handToServer(full, socket, pending);
    // Accepted paused: the connection's reads go to the shared buffer from its first byte.
    const sockets = new Set<net.Socket>();
    const server = net.createServer({ pauseOnConnect: true }, (accepted) => {
      const { socket, reads } = readIntoSharedBuffer(accepted);
      hold(sockets, socket);
      socket.setNoDelay(true);
      new OutboundFastLane(socket, reads, () => this.#table.byName(name), () => this.#context(), handOff);
    });
    return { key, server, sockets };
  }

  #proxyListener(key: string): Listener {
    const server = http.createServer((req, res) => {
      const target = requestTarget(req.url ?? '/', req.headers.host);
      if (target === null || target.authority === undefined || target.authority === '') {
        plainResponse(res, 400, 'the request names no host: send an absolute URL (http://service/...) or a Host header\n');
        return;
      }
      const route = this.#table.byAuthority(target.authority);
      if (route === undefined) {
        plainResponse(res, 502, `no upstream named ${target.authority}: the HTTP proxy routes only to the upstreams configured for this workload\n`);
        return;
      }
      if (route.upstream.protocol === 'tcp') {
        plainResponse(res, 502, `upstream ${route.upstream.name} is TCP; dial its local port instead of the HTTP proxy\n`);
        return;
      }
      forwardHttp(this.#context(), route, req, res, { authority: target.authority, path: target.path });
    });
    server.on('connect', (_req: Http.IncomingMessage, socket: net.Socket) => {
      const body = 'CONNECT is not supported: send plain http:// requests through this proxy\n';
      socket.end(
        `HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    });
    server.on('clientError', (_err, socket) => socket.destroy());
    return { key, server, sockets: this.#track(server) };
  }

  #close(l: Listener): Promise<void> {
    return new Promise((resolve) => {
      l.server.close(() => resolve());
      for (const s of l.sockets) s.destroy();
    });
  }
}
