// The inbound limits at work (the numbers and their defaults:
// src/api/proxy-limits.ts). Each limit ends in a response code, a count in
// `meshward_proxy_limit_exceeded_total{limit}`, and, for a request, an access
// log entry naming the limit; none throws on the data plane.
//
// Where node enforces a limit itself, it is configured to: the HTTP/1.1
// parser checks the header size (HPE_HEADER_OVERFLOW), and the http server's
// connection tracking checks the header and request timeouts. That tracking
// starts on the server's 'listening' event, which a server that is only
// handed sockets (`emit('connection')`, as here) never gets, so
// `guardH1Server` emits it. Node answers through 'clientError', which is
// mapped to a response here. What node does not do is done here: header
// count (node 24 turns too many headers into HPE_HEADER_OVERFLOW, which
// cannot be told from too many bytes), the HTTP/2 header checks and request
// timeout, the HTTP/2 idle timeout, the handshake deadline, and the
// connection limit.

import { performance } from 'node:perf_hooks';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import { constants as h2, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session, type ServerOptions } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { resolveProxyLimits, type ResolvedProxyLimits } from '../../api/proxy-limits.ts';
import type { LimitName, LimitSeries } from '../admin/limit-metrics.ts';
import { inboundPort } from '../snapshot.ts';
import type { ConnectionInfo, InboundContext } from './context.ts';

type Req = IncomingMessage | Http2ServerRequest;
type Res = ServerResponse | Http2ServerResponse;

/** How long a rejected connection may take to flush its response before it is destroyed. */
const CLOSE_GRACE_MS = 1000;

const REASON: Record<LimitName, string> = {
  header_size: 'Request Header Fields Too Large',
  header_count: 'Request Header Fields Too Large',
  header_timeout: 'request header timeout',
  request_timeout: 'request timeout',
  idle_timeout: 'idle timeout',
  max_connections: 'too many connections',
  handshake_timeout: 'handshake timeout',
};

export function limitsOf(ctx: InboundContext): ResolvedProxyLimits {
  return resolveProxyLimits(ctx.snapshot().config.limits);
}

/** The limit that ended a request, for its access log entry; set when a limit answered or reset it. */
export interface LimitHit {
  readonly limit: LimitName;
  readonly status: number;
}

const hits = new WeakMap<object, LimitHit>();

export function limitHit(req: Req): LimitHit | undefined {
  return hits.get(req);
}

/**
 * The downstream connections open across one proxy's inbound ports. Shared
 * by its listeners; a connection over the limit is refused at accept.
 */
export class DownstreamConnections {
  #open = 0;
  readonly #series: LimitSeries;

  constructor(series: LimitSeries) {
    this.#series = series;
    series.downstreamConnections(0);
  }

  get open(): number {
    return this.#open;
  }

  /** Counts `socket` in until it closes; false (and counted as refused) when `max` are open already. */
  admit(socket: Socket, max: number): boolean {
    if (this.#open >= max) {
      this.#series.exceeded('max_connections');
      return false;
    }
    this.#open++;
    this.#series.downstreamConnections(this.#open);
    socket.once('close', () => {
      this.#open--;
      this.#series.downstreamConnections(this.#open);
    });
    return true;
  }
}

/** The HTTP/2 server options for these limits: node's hard caps, above the limits checked per request. */
export function h2ServerOptions(limits: ResolvedProxyLimits): ServerOptions {
  // nghttp2 resets a stream over these caps before node sees it (and nothing
  // counts it); between the configured limit and the cap, the request is
  // answered 431 and counted. Pairs include the pseudo-headers, and
  // nghttp2 adds 32 bytes per header to the list size.
  const pairs = Math.max(128, 2 * limits.maxRequestHeadersCount + 8);
  return { maxHeaderListPairs: pairs, settings: { maxHeaderListSize: Math.min(2 ** 32 - 1, 2 * limits.maxRequestHeadersBytes + 32 * pairs) } };
}

function rawResponse(status: 400 | 408 | 431, body: string): string {
  const text = status === 400 ? 'Bad Request' : status === 408 ? 'Request Timeout' : 'Request Header Fields Too Large';
  return `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

/** Sends `raw` (if any), closes the write side, and destroys the socket once it has flushed, or after a grace period. */
function closeWith(socket: Duplex, raw: string | null): void {
  if (socket.destroyed) return;
  const force = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
  force.unref();
  socket.once('close', () => clearTimeout(force));
  if (raw === null || !socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(raw, () => socket.destroy());
}

interface InFlight {
  readonly req: Req;
  readonly res: Res;
}

/**
 * The limits of one inbound listener: its HTTP/1.1 server configured and
 * guarded, its HTTP/2 sessions watched, its requests checked, its
 * handshakes given a deadline.
 */
export class ListenerLimits {
  readonly #ctx: InboundContext;
  readonly #h1: HttpServer;
  readonly #infoOf: (socket: Duplex) => ConnectionInfo | undefined;
  /** HTTP/1.1 sockets with a request whose handler has run and whose response has not finished. */
  readonly #inFlight = new WeakMap<Duplex, InFlight>();
  /** Sockets being closed by a limit (node may report the same parse error twice). */
  readonly #closing = new WeakSet<Duplex>();
  /** TLS handshakes under way, by the peer's address and port: settling one clears its deadline. */
  readonly #handshakes = new Map<string, () => void>();
  #checkingInterval = 0;

  constructor(ctx: InboundContext, h1: HttpServer, infoOf: (socket: Duplex) => ConnectionInfo | undefined) {
    this.#ctx = ctx;
    this.#h1 = h1;
    this.#infoOf = infoOf;
    h1.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.#clientError(err, socket));
    // Only the keep-alive timeout sets a timeout on these sockets (`timeout` is 0): an idle connection.
    h1.on('timeout', (socket: Duplex) => {
      if (!this.#inFlight.has(socket)) this.#series.exceeded('idle_timeout');
      socket.destroy();
    });
    this.configureH1();
  }

  get #series(): LimitSeries {
    return this.#ctx.metrics.limits;
  }

  /**
   * Accepts a new downstream connection, or closes it when the proxy has
   * `maxDownstreamConnections` open. An accepted one must settle its
   * handshake (`settled`, or `settleTls` with the TLS socket) within
   * `handshakeTimeoutMs`, or is closed without a response.
   */
  accept(socket: Socket): { readonly admitted: boolean; readonly settled: () => void } {
    const limits = limitsOf(this.#ctx);
    if (!this.#ctx.connections.admit(socket, limits.maxDownstreamConnections)) {
      socket.destroy();
      return { admitted: false, settled: () => {} };
    }
    const key = `${socket.remoteAddress}|${socket.remotePort}`;
    const timer = setTimeout(() => {
      this.#series.exceeded('handshake_timeout');
      socket.destroy();
    }, limits.handshakeTimeoutMs);
    const settled = (): void => {
      clearTimeout(timer);
      if (this.#handshakes.get(key) === settled) this.#handshakes.delete(key);
    };
    this.#handshakes.set(key, settled);
    socket.once('close', settled);
    return { admitted: true, settled };
  }

  /** The TLS handshake of a connection `accept` took has completed. */
  settleTls(socket: Socket): void {
    this.#handshakes.get(`${socket.remoteAddress}|${socket.remotePort}`)?.();
  }

  /**
   * Sets the HTTP/1.1 server's limits from the config in force; called
   * before each connection is handed to it (they all share it). Node reads
   * them per connection (header size), per response (keep-alive) or per
   * check (timeouts).
   */
  configureH1(): void {
    const l = limitsOf(this.#ctx);
    const s = this.#h1 as HttpServer & { maxHeaderSize: number; connectionsCheckingInterval: number };
    s.maxHeaderSize = l.maxRequestHeadersBytes;
    // Counted per request in `checkRequest`: node's own count is reported as a size overflow.
    s.maxHeadersCount = 0;
    s.headersTimeout = l.headerTimeoutMs;
    s.requestTimeout = l.requestTimeoutMs;
    s.keepAliveTimeout = l.idleTimeoutMs;
    s.keepAliveTimeoutBuffer = 0;
    s.timeout = 0;
    // The timeouts are checked every interval: a quarter of the shortest, within [10 ms, 1 s].
    const shortest = l.requestTimeoutMs === 0 ? l.headerTimeoutMs : Math.min(l.headerTimeoutMs, l.requestTimeoutMs);
    const interval = Math.min(1000, Math.max(10, Math.floor(shortest / 4)));
    if (interval !== this.#checkingInterval) {
      this.#checkingInterval = interval;
      s.connectionsCheckingInterval = interval;
      // (Re)starts node's connection tracking; see the top of this file.
      s.emit('listening');
    }
  }

  /** Watches an HTTP/2 session: closed with GOAWAY after `idleTimeoutMs` without open streams. */
  watchSession(session: ServerHttp2Session): void {
    let open = 0;
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (open > 0 || session.closed || session.destroyed) return;
        this.#series.exceeded('idle_timeout');
        session.goaway(h2.NGHTTP2_NO_ERROR);
        session.close();
        setTimeout(() => session.destroy(), CLOSE_GRACE_MS).unref();
      }, limitsOf(this.#ctx).idleTimeoutMs);
      timer.unref();
    };
    arm();
    session.on('stream', (stream: Duplex) => {
      open++;
      clearTimeout(timer);
      stream.once('close', () => {
        if (--open === 0 && !session.closed) arm();
      });
    });
    session.once('close', () => clearTimeout(timer));
  }

  /**
   * Checks a request whose headers have arrived, before policy sees it: over
   * the header count (or, on HTTP/2, size) it is answered 431 and false is
   * returned. Otherwise the request is tracked for the request timeout.
   */
  checkRequest(req: Req, res: Res, info: ConnectionInfo): boolean {
    const started = performance.now();
    const l = limitsOf(this.#ctx);
    const isH2 = 'stream' in res;
    let count = 0;
    let bytes = 0;
    const raw = req.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      if (!raw[i]!.startsWith(':')) count++;
      bytes += raw[i]!.length + raw[i + 1]!.length;
    }
    const over: LimitName | null = count > l.maxRequestHeadersCount ? 'header_count' : isH2 && bytes > l.maxRequestHeadersBytes ? 'header_size' : null;
    if (over !== null) {
      hits.set(req, { limit: over, status: 431 });
      const body = REASON[over];
      const headers = { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), ...(isH2 ? {} : { connection: 'close' }) };
      (res as ServerResponse).writeHead(431, headers);
      res.end(body);
      this.#series.exceeded(over);
      this.#log(info, 431, over, req, started);
      return false;
    }
    if (isH2) this.#h2RequestTimeout(req as Http2ServerRequest, res as Http2ServerResponse, l.requestTimeoutMs);
    else {
      const socket = req.socket as Duplex;
      const flight = { req, res };
      this.#inFlight.set(socket, flight);
      const done = (): void => {
        if (this.#inFlight.get(socket) === flight) this.#inFlight.delete(socket);
      };
      res.once('finish', done);
      res.once('close', done);
    }
    return true;
  }

  /**
   * An HTTP/2 request must be received whole within the timeout, counted
   * from its headers; the timer is disarmed once the response has begun
   * (as Envoy's `request_timeout`).
   */
  #h2RequestTimeout(req: Http2ServerRequest, res: Http2ServerResponse, ms: number): void {
    // A request whose HEADERS frame ended the stream (a GET, usually) has been received whole: no timer.
    if (ms === 0 || res.stream.endAfterHeaders || req.complete) return;
    const timer = setTimeout(() => {
      if (req.complete || res.headersSent || res.stream.closed) return;
      hits.set(req, { limit: 'request_timeout', status: 408 });
      this.#series.exceeded('request_timeout');
      const body = REASON.request_timeout;
      res.writeHead(408, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    }, ms);
    timer.unref();
    const clear = (): void => clearTimeout(timer);
    req.once('end', clear);
    res.once('close', clear);
  }

  /** Node's HTTP/1.1 server reports a parse error or an expired timeout on a connection. */
  #clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    if (this.#closing.has(socket)) return;
    this.#closing.add(socket);
    const info = this.#infoOf(socket);
    const flight = this.#inFlight.get(socket);
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      this.#series.exceeded('header_size');
      if (info !== undefined) this.#log(info, 431, 'header_size', undefined, performance.now());
      closeWith(socket, rawResponse(431, REASON.header_size));
      return;
    }
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      if (flight === undefined) {
        // Headers incomplete: at least one byte of this request has arrived
        // (the listener reads the first before handing the connection over;
        // on keep-alive, node starts the clock at the next request's first byte).
        this.#series.exceeded('header_timeout');
        if (info !== undefined) this.#log(info, 408, 'header_timeout', undefined, performance.now());
        closeWith(socket, rawResponse(408, REASON.header_timeout));
        return;
      }
      if (flight.res.headersSent) {
        // The response has begun: Envoy's request timeout is disarmed by then.
        this.#closing.delete(socket);
        return;
      }
      // The request is in the handler, its body still arriving. The 408 goes
      // on the socket; the handler sees its connection close and logs the
      // request with this limit.
      hits.set(flight.req, { limit: 'request_timeout', status: 408 });
      this.#series.exceeded('request_timeout');
      closeWith(socket, rawResponse(408, REASON.request_timeout));
      return;
    }
    // Anything else node would answer 400 (a malformed request), unless the
    // peer is gone or a response has begun.
    const answerable = err.code !== 'ECONNRESET' && (flight === undefined || !flight.res.headersSent);
    closeWith(socket, answerable ? rawResponse(400, 'Bad Request') : null);
  }

  /** The access log entry and request metric of a request a limit refused before policy saw it. */
  #log(info: ConnectionInfo, status: number, limit: LimitName, req: Req | undefined, started: number): void {
    const ctx = this.#ctx;
    const w = info.snapshot.config.workload;
    const protocol = inboundPort(info.snapshot, info.port)?.protocol ?? 'http';
    const ms = performance.now() - started;
    ctx.metrics.request(
      {
        // Refused before its headers arrived, or for them: none of them is read.
        source_workload: 'unknown',
        source_principal: info.principal === null ? 'unknown' : `spiffe://${info.principal}`,
        destination_principal: ctx.selfId,
        destination_workload: w.name,
        destination_workload_namespace: w.namespace,
        destination_service: w.service ?? 'unknown',
        response_code: String(status),
        connection_security_policy: info.mtls ? 'mutual_tls' : 'none',
        request_protocol: protocol === 'grpc' ? 'grpc' : 'http',
      },
      ms,
    );
    ctx.log({
      time: new Date().toISOString(),
      workload: `${w.namespace}/${w.name}`,
      port: info.port,
      protocol,
      ...(req !== undefined ? { method: req.method ?? 'GET', path: req.url ?? '/' } : {}),
      responseCode: status,
      decision: 'DENY',
      stage: 'limits',
      policy: null,
      principal: info.principal,
      reason: REASON[limit],
      durationMs: Math.round(ms * 1000) / 1000,
      mtls: info.mtls,
      limit,
    });
  }
}
