// Connections to HTTP upstreams, one pool per SVID generation. Over TLS the
// first dial to an endpoint offers h2 then http/1.1: when the server selects
// h2, that one connection is kept as a multiplexed HTTP/2 session for every
// later request to the endpoint; otherwise the endpoint is remembered as
// HTTP/1.1 and served by a keep-alive agent. Plaintext endpoints get HTTP/1.1
// keep-alive, or h2c with prior knowledge for http2/grpc upstreams.
// An HTTPS agent holds its endpoint's TLS options itself (secure context,
// the secure-naming `checkServerIdentity`, SNI) and requests pass none: node
// (since 24.x) gives a request carrying its own `checkServerIdentity` a pool
// key of its own, so no connection would ever be reused. The check still
// runs on every connection the agent opens.
// `drain()` stops handing out the pool's connections and lets the requests
// already on them finish (certificate rotation, new configuration).

import type * as Http from 'node:http';
import { http } from '../../lib/node-http.ts';
import * as http2 from 'node:http2';
import * as https from 'node:https';
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import type { Upstream, UpstreamEndpoint } from '../../api/proxy-config.ts';
import { dial, observeHandshake, presentedId, type DialPlan, type TlsOptionsCache } from './dial.ts';
import { handshakeObserver, type OutboundMetrics } from './metrics.ts';
import { H1Pool } from '../http1/pool.ts';
import { SharedReads } from '../http1/shared-reads.ts';
import type { H1Upstream } from '../http1/upstream.ts';

export type Transport =
  /** `peer`: the SPIFFE ID the server presented, null over plaintext. */
  | { readonly kind: 'h2'; readonly session: http2.ClientHttp2Session; readonly peer: string | null }
  /** `secure`: the agent speaks TLS, with the endpoint's options built in. */
  | { readonly kind: 'h1'; readonly agent: Http.Agent; readonly secure: boolean };

const HTTP_ALPN: readonly string[] = Object.freeze(['h2', 'http/1.1']);
const H1_ALPN: readonly string[] = Object.freeze(['http/1.1']);
/** An idle HTTP/1.1 connection to a peer proxy is closed well inside the peer's idle timeout (default 300 s). */
const PEER_IDLE_MS = 60_000;

/** The HTTP/1.1 pool's key for an endpoint, built once per endpoint object (configs are frozen and replaced whole). */
const h1Keys = new WeakMap<UpstreamEndpoint, string>();
function h1Key(upstream: Upstream, endpoint: UpstreamEndpoint): string {
  let key = h1Keys.get(endpoint);
  if (key === undefined) {
    key = `${upstream.name}|${endpoint.host}|${endpoint.port}`;
    h1Keys.set(endpoint, key);
  }
  return key;
}

export class ConnectionPool {
  readonly #tlsOptions: TlsOptionsCache;
  readonly #timeoutMs: number;
  readonly #metrics: OutboundMetrics | undefined;
  readonly #sessions = new Map<string, Promise<Transport>>();
  readonly #agents = new Map<string, Http.Agent>();
  readonly #live = new Set<http2.ClientHttp2Session>();
  readonly #ready = new Map<string, http2.ClientHttp2Session>();
  /** Kept-alive HTTP/1.1 connections over mTLS, for the fast lane (./fast-h1.ts). */
  readonly #h1 = new H1Pool(PEER_IDLE_MS);
  #draining = false;

  /** `metrics` hears about every TLS handshake the pool makes. */
  constructor(tlsOptions: TlsOptionsCache, timeoutMs: number, metrics?: OutboundMetrics) {
    this.#tlsOptions = tlsOptions;
    this.#timeoutMs = timeoutMs;
    this.#metrics = metrics;
  }

  /**
   * `upgrade`: HTTP/1.1 from an `http` upstream's app may travel as HTTP/2
   * (the DestinationRule's h2UpgradePolicy UPGRADE); without it, such an
   * upstream over TLS gets the HTTP/1.1 agent at once, as Istio's
   * DO_NOT_UPGRADE default has it.
   */
  get(plan: DialPlan, upstream: Upstream, endpoint: UpstreamEndpoint, upgrade = true): Promise<Transport> {
    const key = `${plan.kind}|${upstream.name}|${endpoint.host}|${endpoint.port}`;
    const agent = this.#agents.get(key);
    if (agent !== undefined) return Promise.resolve({ kind: 'h1', agent, secure: plan.kind !== 'plaintext' });
    if (!upgrade && upstream.protocol === 'http' && plan.kind !== 'plaintext') {
      const h1 = this.#tlsOptions.get(plan, upstream, endpoint, H1_ALPN)!;
      return Promise.resolve({ kind: 'h1', agent: this.#agent(key, upstream.host, h1), secure: true });
    }
    let pending = this.#sessions.get(key);
    const ready = this.#ready.get(key);
    if (pending !== undefined && ready !== undefined && (ready.closed || ready.destroyed)) {
      // Closed, and the close event has not run yet: dial afresh.
      this.#sessions.delete(key);
      this.#ready.delete(key);
      pending = undefined;
    }
    if (pending === undefined) {
      pending = this.#open(key, plan, upstream, endpoint);
      this.#sessions.set(key, pending);
      pending.catch(() => {
        if (this.#sessions.get(key) === pending) this.#sessions.delete(key);
      });
    }
    return pending;
  }

  async #open(key: string, plan: DialPlan, upstream: Upstream, endpoint: UpstreamEndpoint): Promise<Transport> {
    const authority = `${endpoint.host}:${endpoint.port}`;
    if (plan.kind === 'plaintext') {
      if (upstream.protocol === 'http') return { kind: 'h1', agent: this.#agent(key, upstream.host, null), secure: false };
      const socket = await dial(endpoint, null, this.#timeoutMs);
      return this.#session(key, `http://${authority}`, socket);
    }
    const options = this.#tlsOptions.get(plan, upstream, endpoint, HTTP_ALPN)!;
    const observer = this.#metrics === undefined ? undefined : handshakeObserver(this.#metrics, upstream.host);
    const socket = (await dial(endpoint, options, this.#timeoutMs, observer)) as tls.TLSSocket;
    if (socket.alpnProtocol === 'h2') return this.#session(key, `https://${authority}`, socket);
    // The server speaks HTTP/1.1 only; the probe connection is not reused.
    socket.destroy();
    this.#sessions.delete(key);
    const h1 = this.#tlsOptions.get(plan, upstream, endpoint, ['http/1.1'])!;
    return { kind: 'h1', agent: this.#agent(key, upstream.host, h1), secure: true };
  }

  /**
   * A kept-alive HTTP/1.1 connection to a mesh endpoint, free for one
   * exchange, or null (then `dialH1`). Given back with `releaseH1`.
   */
  takeH1(upstream: Upstream, endpoint: UpstreamEndpoint): { readonly key: string; readonly up: H1Upstream } | null {
    const key = h1Key(upstream, endpoint);
    const up = this.#h1.take(key);
    return up === null ? null : { key, up };
  }

  /**
   * A new HTTP/1.1 connection to a mesh endpoint over mTLS (ALPN http/1.1,
   * secure naming checked in its handshake, as on every dial), for one
   * exchange; given back with `releaseH1`.
   */
  async dialH1(plan: DialPlan, upstream: Upstream, endpoint: UpstreamEndpoint): Promise<{ readonly key: string; readonly up: H1Upstream }> {
    const options = this.#tlsOptions.get(plan, upstream, endpoint, H1_ALPN)!;
    const observer = this.#metrics === undefined ? undefined : handshakeObserver(this.#metrics, upstream.host);
    const reads = new SharedReads();
    const socket = (await dial(endpoint, options, this.#timeoutMs, observer, reads.onread)) as tls.TLSSocket;
    socket.setNoDelay(true);
    const up = this.#h1.adopt(socket, reads);
    up.peer = presentedId(socket);
    return { key: h1Key(upstream, endpoint), up };
  }

  releaseH1(key: string, up: H1Upstream, reusable: boolean, keepAliveMs: number): void {
    this.#h1.release(key, up, reusable && !this.#draining, keepAliveMs);
  }

  /** The endpoint's HTTP/1.1 agent; `tls` (null for plaintext) is used by every connection it opens. */
  #agent(key: string, host: string, tlsOptions: tls.ConnectionOptions | null): Http.Agent {
    let agent = this.#agents.get(key);
    if (agent === undefined) {
      const keepAlive = !this.#draining;
      agent = tlsOptions === null ? new http.Agent({ keepAlive }) : this.#httpsAgent(keepAlive, host, tlsOptions);
      this.#agents.set(key, agent);
    }
    return agent;
  }

  /**
   * An https agent that dials with `tlsOptions` (node lets agent options
   * override the request's), whose handshakes are counted like the pool's own.
   * Without a servername in the options it sends no SNI, as the pool's own
   * dial does, rather than one taken from each request's Host header, which
   * would also split the agent's connections by Host. No TLS session is
   * cached: node skips `checkServerIdentity` on a resumed session, and every
   * new connection must pass secure naming.
   */
  #httpsAgent(keepAlive: boolean, host: string, tlsOptions: tls.ConnectionOptions): https.Agent {
    const agent = new https.Agent({ ...tlsOptions, servername: tlsOptions.servername ?? '', keepAlive, maxCachedSessions: 0 });
    const metrics = this.#metrics;
    if (metrics === undefined) return agent;
    const create = agent.createConnection.bind(agent) as (...args: unknown[]) => net.Socket;
    (agent as unknown as { createConnection: (...args: unknown[]) => net.Socket }).createConnection = (...args) => {
      const socket = create(...args);
      observeHandshake(socket as tls.TLSSocket, handshakeObserver(metrics, host));
      return socket;
    };
    return agent;
  }

  #session(key: string, authority: string, socket: net.Socket): Transport {
    const session = http2.connect(authority, { createConnection: () => socket });
    this.#live.add(session);
    // Dialled for a request that began before drain(): serve it, then close.
    if (this.#draining) setImmediate(() => session.close());
    this.#ready.set(key, session);
    const forget = (): void => {
      this.#live.delete(session);
      if (this.#ready.get(key) === session) this.#ready.delete(key);
      const current = this.#sessions.get(key);
      if (current !== undefined) {
        current.then(
          (t) => {
            if (t.kind === 'h2' && t.session === session && this.#sessions.get(key) === current) this.#sessions.delete(key);
          },
          () => undefined,
        );
      }
    };
    session.on('error', forget);
    session.on('goaway', forget);
    session.on('close', forget);
    return { kind: 'h2', session, peer: presentedId(socket) };
  }

  /** No new requests on this pool's connections; those in flight finish. */
  drain(): void {
    this.#draining = true;
    this.#h1.drain();
    this.#sessions.clear();
    this.#ready.clear();
    for (const session of this.#live) session.close();
    for (const agent of this.#agents.values()) {
      // Busy sockets close when their request ends; idle ones now.
      (agent as Http.Agent & { keepAlive: boolean }).keepAlive = false;
      for (const sockets of Object.values(agent.freeSockets)) for (const s of sockets ?? []) s.destroy();
    }
    this.#agents.clear();
  }

  /** Drained, with no HTTP/2 session left open. */
  get idle(): boolean {
    return this.#draining && this.#live.size === 0 && this.#h1.idle;
  }

  /** Closes every connection now. */
  destroy(): void {
    this.#h1.destroy();
    this.#sessions.clear();
    this.#ready.clear();
    for (const session of this.#live) session.destroy();
    this.#live.clear();
    for (const agent of this.#agents.values()) agent.destroy();
    this.#agents.clear();
  }
}
