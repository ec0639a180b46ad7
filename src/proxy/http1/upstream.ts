// One keep-alive HTTP/1.1 connection to an upstream (the app, or a peer
// proxy over mTLS) carrying one exchange at a time: it writes a request
// head and body, reads the response head strictly, and passes the body on
// to the downstream socket as it arrives, byte for byte, with back-pressure,
// until its framing says it has ended. The listeners are set once per
// connection, not per request. A connection dialed with ./shared-reads.ts
// reads into the buffer the process shares: what is kept past a read (a
// partial head, a body slice passed on as it is) is copied first.
//
//   const reads = new SharedReads();
//   const up = new H1Upstream(net.connect({ host, port, onread: reads.onread }), reads);
//   up.send(head, body, { downstream, headRequest: false, decorate: () => '', done: (end) => … });

import type { Duplex } from 'node:stream';
import { ChunkedScanner } from './chunked.ts';
import { parseResponseHead, writeResponseHead, type ResponseHead } from './head.ts';
import { keep, type SharedReads } from './shared-reads.ts';

const CR = 0x0d;
const LF = 0x0a;

/** Methods whose request may be sent again on a new connection when a kept-alive one failed before any response (RFC 9110 §9.2.2). */
const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** A response head larger than this is refused (Envoy's default max_request_headers_kb is 60). */
const MAX_RESPONSE_HEAD_BYTES = 60 * 1024;

export type ExchangeEnd =
  /** The whole response was passed on. `reusable`: the connection can carry another exchange. */
  | { readonly kind: 'complete'; readonly status: number; readonly reusable: boolean; readonly keepAliveMs: number; readonly closes: boolean }
  /**
   * The upstream reset, closed early or sent what is not HTTP/1.1.
   * `headSent`: the response had begun downstream (it can only be cut short
   * now); `responseSeen`: any byte came back for this request.
   */
  | { readonly kind: 'failed'; readonly headSent: boolean; readonly status: number; readonly responseSeen: boolean; readonly reason: 'reset' | 'protocol' }
  /** The downstream went away first (`abort`); `status` is 0 unless the response had begun. */
  | { readonly kind: 'aborted'; readonly headSent: boolean; readonly status: number };

/**
 * Whether a failed exchange was a kept-alive connection the server closed
 * just as the request went out (nothing came back), for an idempotent
 * method: the request may then go once more, on a new connection.
 */
export function sendAgain(end: ExchangeEnd, up: H1Upstream, method: string): boolean {
  return end.kind === 'failed' && !end.headSent && !end.responseSeen && up.reused && IDEMPOTENT.has(method);
}

export interface Exchange {
  readonly downstream: Duplex;
  /** A HEAD request's response has no body whatever its headers say. */
  readonly headRequest: boolean;
  /** Header lines (each `\r\n`-prefixed) to add to the response head; `closes`: the downstream connection ends after this response. */
  decorate(head: ResponseHead, closes: boolean): string;
  done(end: ExchangeEnd): void;
}

/**
 * A response's first body bytes up to this size go out in one buffer with
 * its head: one write, one TLS record, one system call. Larger ones are
 * written after the head, not copied.
 */
const INLINE_BODY_BYTES = 16 * 1024;

/** Bodies up to this size are copied byte by byte here: fewer than a call into Buffer#copy's native side costs. */
const COPY_IN_JS = 64;

/** The response head re-serialized, `extra` lines and the empty line, then buf[from, to). */
function headBytes(h: ResponseHead, extra: string, buf: Buffer, from: number, to: number): Buffer {
  const out = Buffer.allocUnsafe(h.size + extra.length + 4 + (to - from));
  let o = writeResponseHead(h, out, 0);
  if (extra !== '') o += out.write(extra, o, 'latin1');
  out[o++] = CR;
  out[o++] = LF;
  out[o++] = CR;
  out[o++] = LF;
  if (to - from > COPY_IN_JS) buf.copy(out, o, from, to);
  else for (let i = from; i < to; i++) out[o++] = buf[i]!;
  return out;
}

const NONE = 0;
const LENGTH = 1;
const CHUNKED = 2;
const UNTIL_CLOSE = 3;

export class H1Upstream {
  readonly socket: Duplex;
  /** When the pool should stop reusing this connection (ms, performance.now() clock). */
  expiresAt = Number.POSITIVE_INFINITY;
  /** The SPIFFE ID a TLS server presented, for metrics; null over plaintext. */
  peer: string | null = null;
  #ex: Exchange | null = null;
  #pending: Buffer | null = null;
  #head: ResponseHead | null = null;
  #mode = NONE;
  #remaining = 0;
  #scanner: ChunkedScanner | null = null;
  #seen = false;
  #broken = false;
  #uses = 0;
  readonly #resume = (): void => {
    this.socket.resume();
  };

  /** `reads`: the socket was dialed with its `onread` (then it emits no 'data'). */
  constructor(socket: Duplex, reads: SharedReads | null = null) {
    this.socket = socket;
    if (reads === null) socket.on('data', (chunk: Buffer) => this.#data(chunk));
    else reads.attach((chunk) => this.#data(chunk));
    socket.on('end', () => this.#ended());
    socket.on('close', () => this.#ended());
    // 'close' follows every error.
    socket.on('error', () => undefined);
  }

  /** Has carried an exchange before this one: it may have been closed by the server meanwhile. */
  get reused(): boolean {
    return this.#uses > 1;
  }

  /** Free, open and in a clean state. */
  get usable(): boolean {
    return this.#ex === null && !this.#broken && !this.socket.destroyed;
  }

  /** Starts an exchange: the request's head (latin1, ending in the empty line) and its body, if any. */
  send(head: string, body: Buffer | null, ex: Exchange): void {
    this.#ex = ex;
    this.#uses++;
    this.#head = null;
    this.#pending = null;
    this.#seen = false;
    const s = this.socket;
    if (body === null) {
      s.write(head, 'latin1');
      return;
    }
    s.cork();
    s.write(head, 'latin1');
    s.write(body);
    s.uncork();
  }

  /** The downstream went away: this connection is dropped, and the exchange ends as 'aborted'. */
  abort(): void {
    const ex = this.#ex;
    this.#ex = null;
    this.#broken = true;
    this.socket.destroy();
    if (ex !== null) ex.done({ kind: 'aborted', headSent: this.#head !== null, status: this.#head?.status ?? 0 });
  }

  #data(chunk: Buffer): void {
    const ex = this.#ex;
    if (ex === null) {
      // Bytes nobody asked for: the connection's state is unknown.
      this.#broken = true;
      this.socket.destroy();
      return;
    }
    this.#seen = true;
    if (this.#head !== null) {
      this.#body(ex, chunk, 0);
      return;
    }
    const buf = this.#pending === null ? chunk : Buffer.concat([this.#pending, chunk]);
    let at = 0;
    for (;;) {
      const h = parseResponseHead(buf, at, MAX_RESPONSE_HEAD_BYTES);
      if (h === 'incomplete') {
        const rest = at === 0 ? buf : buf.subarray(at);
        this.#pending = keep(rest);
        return;
      }
      if (h === 'unsupported' || h.status === 101) {
        this.#fail('protocol');
        return;
      }
      // Interim responses (100, 103) are dropped: the request carried no Expect.
      if (h.status < 200) {
        at = h.end;
        continue;
      }
      this.#pending = null;
      this.#begin(ex, h, buf, h.end);
      return;
    }
  }

  #begin(ex: Exchange, h: ResponseHead, buf: Buffer, at: number): void {
    this.#head = h;
    const bodyless = ex.headRequest || h.status === 204 || h.status === 304;
    this.#mode = bodyless ? NONE : h.framing === 'length' ? LENGTH : h.framing === 'chunked' ? CHUNKED : UNTIL_CLOSE;
    this.#remaining = h.contentLength;
    this.#scanner = this.#mode === CHUNKED ? new ChunkedScanner() : null;
    const extra = ex.decorate(h, this.#mode === UNTIL_CLOSE);
    if (this.#mode === NONE || (this.#mode === LENGTH && this.#remaining === 0)) {
      ex.downstream.write(headBytes(h, extra, buf, at, at));
      // Anything after a complete response is not ours to pass on.
      if (at < buf.length) this.#broken = true;
      this.#complete(ex);
      return;
    }
    this.#body(ex, buf, at, extra);
  }

  /**
   * Passes on the body bytes of `buf` from `at` that belong to this
   * response. `extra`: the head has not been written yet (the first chunk of
   * a response), and goes first with these decorations.
   */
  #body(ex: Exchange, buf: Buffer, at: number, extra: string | null = null): void {
    const down = ex.downstream;
    let end = buf.length;
    let complete = false;
    if (this.#mode === LENGTH) {
      const take = Math.min(this.#remaining, buf.length - at);
      this.#remaining -= take;
      end = at + take;
      complete = this.#remaining === 0;
    } else if (this.#mode === CHUNKED) {
      const r = this.#scanner!.scan(buf, at);
      if (r === -2) {
        // Nothing of this response has been written yet if this is its first chunk: the caller may still answer with an error of its own.
        if (extra !== null) this.#head = null;
        this.#fail('protocol');
        return;
      }
      if (r >= 0) {
        end = r;
        complete = true;
      }
    }
    let written: boolean;
    if (extra === null) written = down.write(keep(at === 0 && end === buf.length ? buf : buf.subarray(at, end)));
    else if (end - at <= INLINE_BODY_BYTES) written = down.write(headBytes(this.#head!, extra, buf, at, end));
    else {
      down.cork();
      down.write(headBytes(this.#head!, extra, buf, at, at));
      written = down.write(keep(buf.subarray(at, end)));
      down.uncork();
    }
    if (complete) {
      if (end < buf.length) this.#broken = true;
      this.#complete(ex);
      return;
    }
    if (!written) {
      this.socket.pause();
      down.once('drain', this.#resume);
    }
  }

  #complete(ex: Exchange): void {
    const h = this.#head!;
    const closes = this.#mode === UNTIL_CLOSE;
    this.#ex = null;
    this.#head = null;
    this.#scanner = null;
    ex.done({ kind: 'complete', status: h.status, reusable: !this.#broken && !h.close && !closes && !this.socket.destroyed, keepAliveMs: h.keepAliveMs, closes });
  }

  #ended(): void {
    const ex = this.#ex;
    this.#broken = true;
    if (ex === null) {
      this.socket.destroy();
      return;
    }
    if (this.#head !== null && this.#mode === UNTIL_CLOSE) {
      this.#complete(ex);
      this.socket.destroy();
      return;
    }
    this.#fail('reset');
  }

  #fail(reason: 'reset' | 'protocol'): void {
    const ex = this.#ex;
    this.#ex = null;
    this.#broken = true;
    this.socket.destroy();
    if (ex === null) return;
    ex.done({ kind: 'failed', headSent: this.#head !== null, status: this.#head?.status ?? 0, responseSeen: this.#seen, reason });
    this.#head = null;
  }
}
