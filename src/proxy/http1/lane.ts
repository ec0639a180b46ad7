// One downstream HTTP/1.1 connection on the proxy's fast lane, the part both
// directions share: read requests, take each whose head (and body) has
// arrived whole and parses in the strict subset (./head.ts), one at a time,
// in order; hand the connection to node's HTTP/1.1 server for good at the
// first that does not, with the bytes already read. The direction
// (inbound/fast-h1.ts, outbound/fast-h1.ts) serves each request it takes.

// node:perf_hooks' `performance` rather than the global, in this and the
// proxy's other modules: the global is a lazy getter that checks its
// receiver on every read, a cost that showed in profiles of the request path.
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { parseRequestHead, type RequestHead } from './head.ts';
import { keep, type SharedReads } from './shared-reads.ts';
import type { ExchangeEnd, H1Upstream } from './upstream.ts';

/** Bytes read ahead of the request in progress before the connection stops reading. */
const MAX_READ_AHEAD = 64 * 1024;
const REASONS: Readonly<Record<number, string>> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 502: 'Bad Gateway', 503: 'Service Unavailable' };

/**
 * Gives `socket` to node's HTTP server (one that never listens, only takes
 * connections), the bytes the lane read first. Paused while the server
 * attaches: resuming then delivers `pending` before anything the socket
 * reads next (node's parser reads the socket directly once it has it).
 */
export function handToServer(server: { emit(event: 'connection', socket: Duplex): boolean }, socket: Duplex, pending: Buffer | null): void {
  socket.pause();
  if (pending !== null) socket.unshift(pending);
  server.emit('connection', socket);
  socket.resume();
}

export interface LaneLimits {
  readonly maxHeadBytes: number;
  readonly maxHeaders: number;
  readonly idleMs: number;
}

export abstract class DownstreamLane {
  protected readonly socket: Duplex;
  /** The exchange in flight, aborted when the downstream goes away. */
  #upstream: H1Upstream | null = null;
  readonly #handOff: (socket: Duplex, pending: Buffer | null) => void;
  /** Where the socket's reads go when they come through the shared buffer; null: 'data' events. */
  readonly #reads: SharedReads | null;
  #buf: Buffer | null = null;
  #busy = false;
  #closing = false;
  #gone = false;
  #idle: NodeJS.Timeout | null = null;
  /** When the connection last became idle (performance.now()), and for how long it may stay so. */
  #idleSince = 0;
  #idleMs = 0;
  readonly #onData = (chunk: Buffer): void => this.#data(chunk);
  readonly #onClose = (): void => this.#closed();
  readonly #onEnd = (): void => this.#ended();

  /**
   * `handOff`: node's HTTP/1.1 server takes the connection, `pending` first.
   * `reads`: the socket reads into the shared buffer (./accepted-reads.ts).
   */
  constructor(socket: Duplex, handOff: (socket: Duplex, pending: Buffer | null) => void, reads: SharedReads | null = null) {
    this.socket = socket;
    this.#handOff = handOff;
    this.#reads = reads;
    if (reads === null) socket.on('data', this.#onData);
    else reads.attach(this.#onData);
    socket.on('close', this.#onClose);
    socket.on('end', this.#onEnd);
    // A reset by the peer ends the connection, never the process; 'close' follows.
    socket.on('error', () => socket.destroy());
  }

  /** The limits in force for the next request, or null to hand the connection over (a feature only the full path has). */
  protected abstract limits(): LaneLimits | null;

  /** Serves one whole request; must end in `done()`, or destroy the socket. */
  protected abstract serve(head: RequestHead, body: Buffer | null): void;

  /** The connection sat idle for the idle timeout and is being closed. */
  protected abstract idleTimedOut(): void;

  /** The downstream connection is gone. */
  protected get gone(): boolean {
    return this.#gone;
  }

  /** A response of the proxy's own. */
  protected answer(status: number, text: string, extra = ''): void {
    const close = this.#closing ? '\r\nconnection: close' : '';
    this.socket.write(
      `HTTP/1.1 ${status} ${REASONS[status] ?? ''}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(text)}${extra}${close}\r\n\r\n${text}`,
      'latin1',
    );
  }

  /**
   * Sends one request (head and body) on `up` and passes its response to
   * this connection, ending it after a response read until the server
   * closed or when the caller asked to close; `done` hears how it ended.
   */
  protected relay(up: H1Upstream, request: string, body: Buffer | null, headRequest: boolean, done: (end: ExchangeEnd) => void): void {
    this.#upstream = up;
    up.send(request, body, {
      downstream: this.socket,
      headRequest,
      decorate: (_h, closes) => (closes || this.#closing ? '\r\nconnection: close' : ''),
      done: (end) => {
        this.#upstream = null;
        if (end.kind === 'complete' && end.closes) this.#closing = true;
        done(end);
      },
    });
  }

  /** The exchange is over: the next request, or the end of a connection asked to close. */
  protected done(): void {
    this.#busy = false;
    if (this.#closing) {
      this.socket.end();
      return;
    }
    this.#next();
  }

  /** Starts serving what has arrived; called once the subclass is built. */
  protected begin(): void {
    this.#next();
  }

  #data(chunk: Buffer): void {
    this.#buf = this.#buf === null ? chunk : Buffer.concat([this.#buf, chunk]);
    if (this.#busy) {
      if (this.#buf.length > MAX_READ_AHEAD) this.socket.pause();
    } else this.#next();
    // Bytes read ahead of the request in progress outlive this read.
    if (this.#buf !== null) this.#buf = keep(this.#buf);
  }

  #closed(): void {
    this.#gone = true;
    if (this.#idle !== null) clearTimeout(this.#idle);
    this.#upstream?.abort();
  }

  /**
   * The caller has finished sending (listeners allow half-open connections,
   * for TCP): what it sent whole is still answered, then the connection
   * ends, as node's server does.
   */
  #ended(): void {
    this.#closing = true;
    if (!this.#busy) {
      this.#buf = null;
      this.socket.end();
    }
  }

  /**
   * Between requests the connection may stay idle for the idle timeout, as
   * node's keep-alive timeout does on the full path. The timer is not moved
   * per request (moving a node timer costs about as much as parsing a
   * request head): each request notes when the idle time began, and the
   * timer, when it fires, waits again for what is left.
   */
  #armIdle(ms: number): void {
    this.#idleSince = performance.now();
    this.#idleMs = ms;
    if (this.#idle !== null) return;
    this.#idle = setTimeout(this.#onIdleTimer, ms);
    this.#idle.unref();
  }

  readonly #onIdleTimer = (): void => {
    this.#idle = null;
    // Busy now: the request's end starts the idle time again, and a timer with it.
    if (this.#busy || this.#gone || this.#buf !== null) return;
    const left = this.#idleMs - (performance.now() - this.#idleSince);
    if (left >= 1) {
      this.#idle = setTimeout(this.#onIdleTimer, left);
      this.#idle.unref();
      return;
    }
    this.idleTimedOut();
    this.socket.destroy();
  };

  #give(): void {
    const socket = this.socket;
    const reads = this.#reads;
    // Node's server reads the socket's handle itself once it has it; any
    // read that still comes this way (after an upgrade gives the handle
    // back) goes on as 'data', as it would on any socket.
    if (reads === null) socket.off('data', this.#onData);
    else reads.attach((chunk) => socket.push(Buffer.from(chunk)));
    socket.off('close', this.#onClose);
    socket.off('end', this.#onEnd);
    if (this.#idle !== null) clearTimeout(this.#idle);
    // Node's server parses these before its next read, but nothing says it must: a copy, once per hand-off.
    const pending = this.#buf === null ? null : keep(this.#buf);
    this.#buf = null;
    this.#handOff(socket, pending);
  }

  #next(): void {
    if (this.#gone || this.#closing) return;
    const limits = this.limits();
    if (limits === null) return this.#give();
    const buf = this.#buf;
    if (buf === null) {
      this.socket.resume();
      this.#armIdle(limits.idleMs);
      return;
    }
    const head = parseRequestHead(buf, 0, limits.maxHeadBytes, limits.maxHeaders);
    if (typeof head === 'string') return this.#give();
    const total = head.end + head.contentLength;
    if (buf.length < total) return this.#give();
    // The body is written after this read, maybe once a new connection is up.
    const body = head.contentLength > 0 ? keep(buf.subarray(head.end, total)) : null;
    this.#buf = total < buf.length ? buf.subarray(total) : null;
    this.#busy = true;
    if (head.close) this.#closing = true;
    this.serve(head, body);
  }
}
