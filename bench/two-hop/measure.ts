// Measurement helpers for the two-hop benchmark: wrk runs (pinned to the
// load generator's core) and their parsed output, CPU time and RSS of a
// process tree read from /proc, and the TLS handshake loop.

import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { join } from 'node:path';

const CLK_TCK = 100;

export interface WrkResult {
  readonly rps: number;
  readonly requests: number;
  readonly errors: number;
  /** Latency percentiles in milliseconds. */
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
}

function toMs(value: string, unit: string): number {
  const v = Number(value);
  if (unit === 'us') return v / 1000;
  if (unit === 'ms') return v;
  if (unit === 's') return v * 1000;
  if (unit === 'm') return v * 60_000;
  return Number.NaN;
}

export function parseWrk(out: string): WrkResult {
  const pct = (p: string): number => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
    return m === null ? Number.NaN : toMs(m[1]!, m[2]!);
  };
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const total = /(\d+) requests in/.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const errors = (sock === null ? 0 : sock.slice(1).reduce((a, b) => a + Number(b), 0)) + (non2xx === null ? 0 : Number(non2xx[1]));
  return { rps: rps === null ? 0 : Number(rps[1]), requests: total === null ? 0 : Number(total[1]), errors, p50: pct('50'), p90: pct('90'), p99: pct('99') };
}

export interface WrkOptions {
  readonly core: string;
  readonly url: string;
  readonly connections: number;
  readonly seconds: number;
  /** Paced run: the total request rate (pace.lua); omitted: as fast as possible. */
  readonly rate?: number;
  readonly headers?: readonly string[];
}

export const PACE_SCRIPT = join(import.meta.dirname, 'pace.lua');

export function wrk(o: WrkOptions): Promise<WrkResult & { readonly raw: string }> {
  const args = ['-c', o.core, 'wrk', '-t1', `-c${o.connections}`, `-d${o.seconds}s`, '--latency', '--timeout', '5s'];
  for (const h of o.headers ?? []) args.push('-H', h);
  if (o.rate !== undefined) args.push('-s', PACE_SCRIPT);
  args.push(o.url);
  if (o.rate !== undefined) args.push('--', String(o.rate), String(o.connections), '1');
  return new Promise((resolve, reject) => {
    execFile('taskset', args, { maxBuffer: 1 << 20 }, (err, stdout) => {
      if (err !== null) reject(new Error(`wrk failed: ${err.message}`));
      else resolve({ ...parseWrk(stdout), raw: stdout });
    });
  });
}

// --- /proc -----------------------------------------------------------------------

function children(pid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) out.push(Number(e));
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

/** The process and all its descendants (nginx: master and worker). */
export function processTree(pid: number): number[] {
  const all = [pid];
  for (let i = 0; i < all.length; i++) all.push(...children(all[i]!));
  return all;
}

/** utime+stime in seconds, summed over `pids`. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // gone
    }
  }
  return ticks / CLK_TCK;
}

/**
 * VmRSS in MiB, summed over `pids`; or VmHWM (the peak), or RssAnon (the
 * process's own pages, without the file-backed ones of its binary and
 * libraries that every process running the same binary shares).
 */
export function rssMiB(pids: readonly number[], field: 'VmRSS' | 'VmHWM' | 'RssAnon' = 'VmRSS'): number {
  let kb = 0;
  for (const pid of pids) {
    try {
      const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m !== null) kb += Number(m[1]);
    } catch {
      // gone
    }
  }
  return kb / 1024;
}

// --- handshakes --------------------------------------------------------------------

export interface HandshakeOptions {
  readonly port: number;
  readonly seconds: number;
  readonly concurrency: number;
  readonly keyFile: string;
  readonly chainFile: string;
}

/**
 * New mTLS connections as fast as `concurrency` loops can make them: full
 * TLS 1.3 handshakes (no session resumption), client certificate sent,
 * ALPN http/1.1, no request. A connection counts once the server's first
 * session ticket arrives: a TLS 1.3 server sends it only after it has
 * verified the client's certificate and Finished, so the count is of
 * handshakes the server completed, not ones the client merely started.
 * The client does not check the server's certificate (its cost is not what
 * is measured).
 */
export async function handshakeLoop(o: HandshakeOptions): Promise<{ ok: number; noTicket: number; errors: number }> {
  const key = readFileSync(o.keyFile);
  const cert = readFileSync(o.chainFile);
  const until = Date.now() + o.seconds * 1000;
  let ok = 0;
  let noTicket = 0;
  let errors = 0;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      let done = false;
      const finish = (count: () => void): void => {
        if (done) return;
        done = true;
        count();
        clearTimeout(timer);
        s.end();
        s.destroy();
        resolve();
      };
      const s = connect({ host: '127.0.0.1', port: o.port, key, cert, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], minVersion: 'TLSv1.3' });
      const timer = setTimeout(() => finish(() => (s.encrypted && s.authorized !== undefined ? noTicket++ : errors++)), 2000);
      s.once('session', () => finish(() => ok++));
      s.once('error', () => finish(() => errors++));
      s.once('close', () => finish(() => errors++));
    });
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      while (Date.now() < until) await one();
    }),
  );
  return { ok, noTicket, errors };
}

/** The median of the finite values; NaN when there are none. */
export function median(xs: readonly number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** `xs` rotated left by `k`: round k's order, so that no configuration always runs first. */
export const rotate = <T>(xs: readonly T[], k: number): T[] => xs.map((_, i) => xs[(i + k) % xs.length]!);
