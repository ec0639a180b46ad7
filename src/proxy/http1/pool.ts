// Idle keep-alive HTTP/1.1 connections by destination, for the fast lane:
// to the app on loopback (inbound), and to peer proxies over mTLS
// (outbound). A connection is taken for one exchange and given back when
// its response has ended cleanly; the server's announced keep-alive
// timeout, less a margin, bounds how long it is kept, so the pool does not
// hand out a connection the server is closing. An idle connection is
// closed when that time is up, as Envoy's upstream idle timeout does: a
// burst leaves no crowd of idle sockets (and their TLS buffers) open behind
// it for the peer to time out. `drain()` (a new SVID, a new config) hands
// out nothing more and closes each connection as it comes back.

import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { SharedReads } from './shared-reads.ts';
import { H1Upstream } from './upstream.ts';

/** Stop reusing a connection this long before the server said it would close it. */
const KEEP_ALIVE_MARGIN_MS = 1000;

export class H1Pool {
  readonly #idle = new Map<string, H1Upstream[]>();
  readonly #all = new Set<H1Upstream>();
  readonly #idleMs: number;
  #draining = false;
  /** One timer for the whole pool, set for the earliest expiry among idle connections. */
  #sweepTimer: NodeJS.Timeout | null = null;
  #sweepAt = Number.POSITIVE_INFINITY;

  /** `idleMs`: the longest an idle connection is kept when the server announces nothing. */
  constructor(idleMs: number) {
    this.#idleMs = idleMs;
  }

  /** An idle connection to `key` that is still open, or null. */
  take(key: string): H1Upstream | null {
    const list = this.#idle.get(key);
    if (list === undefined) return null;
    const now = performance.now();
    while (list.length > 0) {
      const up = list.pop()!;
      if (up.usable && up.expiresAt > now) return up;
      up.socket.destroy();
    }
    return null;
  }

  /** Wraps a newly connected socket (dialed with `reads.onread`, when given); it is the caller's until `release`. */
  adopt(socket: Duplex, reads: SharedReads | null = null): H1Upstream {
    const up = new H1Upstream(socket, reads);
    this.#all.add(up);
    socket.once('close', () => this.#all.delete(up));
    return up;
  }

  /** Gives a connection back after an exchange; it is kept only if it can carry another. */
  release(key: string, up: H1Upstream, reusable: boolean, keepAliveMs: number): void {
    if (!reusable || this.#draining || !up.usable) {
      up.socket.destroy();
      return;
    }
    const keep = keepAliveMs >= 0 ? Math.min(this.#idleMs, keepAliveMs - KEEP_ALIVE_MARGIN_MS) : this.#idleMs;
    if (keep <= 0) {
      up.socket.destroy();
      return;
    }
    up.expiresAt = performance.now() + keep;
    let list = this.#idle.get(key);
    if (list === undefined) {
      list = [];
      this.#idle.set(key, list);
    }
    list.push(up);
    if (up.expiresAt < this.#sweepAt) this.#sweepAfter(keep, up.expiresAt);
  }

  #sweepAfter(ms: number, at: number): void {
    if (this.#sweepTimer !== null) clearTimeout(this.#sweepTimer);
    this.#sweepAt = at;
    // Unreferenced: idle connections must not keep a stopping process alive.
    this.#sweepTimer = setTimeout(() => this.#sweep(), ms + 1).unref();
  }

  /** Closes the idle connections whose time is up (or that the server closed); waits for the next. */
  #sweep(): void {
    this.#sweepTimer = null;
    this.#sweepAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    let next = Number.POSITIVE_INFINITY;
    for (const [key, list] of this.#idle) {
      let kept = 0;
      for (const up of list) {
        if (up.usable && up.expiresAt > now) {
          list[kept++] = up;
          if (up.expiresAt < next) next = up.expiresAt;
        } else {
          up.socket.destroy();
        }
      }
      list.length = kept;
      if (kept === 0) this.#idle.delete(key);
    }
    if (next !== Number.POSITIVE_INFINITY) this.#sweepAfter(next - now, next);
  }

  #stopSweeping(): void {
    if (this.#sweepTimer !== null) clearTimeout(this.#sweepTimer);
    this.#sweepTimer = null;
    this.#sweepAt = Number.POSITIVE_INFINITY;
  }

  /** No connection is handed out again; idle ones close now, busy ones when given back. */
  drain(): void {
    this.#draining = true;
    for (const list of this.#idle.values()) for (const up of list) up.socket.destroy();
    this.#idle.clear();
    this.#stopSweeping();
  }

  /** Drained, with no connection open. */
  get idle(): boolean {
    return this.#draining && this.#all.size === 0;
  }

  /** Closes every connection now. */
  destroy(): void {
    this.#draining = true;
    for (const up of this.#all) up.socket.destroy();
    this.#all.clear();
    this.#idle.clear();
    this.#stopSweeping();
  }
}
