// What a server-side sidecar holds after the connections it has served have
// gone, beside nginx and HAProxy doing the same mTLS termination. Each system
// is the server side of bench/two-hop.ts (same certificates, same configs);
// the load is new mTLS connections that offer HTTP/2 and HTTP/1.1, present
// the client's certificate with its issuer (as OpenSSL clients do when they
// can build the chain), and hang up as soon as the handshake is done: a
// client that went away, the case where a leak per connection shows.
//
//   node bench/connection-memory.ts [--connections 8000] [--steps 4] [--only meshward,nginx,haproxy]
//
// RSS (VmRSS of the process tree) is read after a warm-up of 500
// connections and after each step; meshward's also after `POST
// /memory/trim` (what the proxy does by itself after a few idle minutes),
// since a young generation grown by the load is not a leak.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { parseArgs } from 'node:util';
import { onPath } from './host.ts';
import { processTree, rssMiB } from './two-hop/measure.ts';
import { createPki } from './two-hop/pki.ts';
import { PORTS, assertPortsFree, SYSTEM_NAMES, isMeshward, startApp, startSystem, waitForPort, type RunningSystem, type SystemName } from './two-hop/systems.ts';

const { values: opts } = parseArgs({
  options: {
    connections: { type: 'string', default: '8000' },
    steps: { type: 'string', default: '4' },
    only: { type: 'string', default: 'meshward,nginx,haproxy' },
  },
});
const TOTAL = Number(opts.connections);
const STEPS = Number(opts.steps);
const WARM_UP = 500;
const CONCURRENCY = 20;
const SUT_CORE = '1';

const log = (msg: string): void => {
  process.stderr.write(`${msg}\n`);
};

const names = opts.only
  .split(',')
  .filter((n): n is SystemName => (SYSTEM_NAMES as readonly string[]).includes(n) && n !== 'meshward-nodelay')
  .filter((n) => {
    if (isMeshward(n) || onPath(n)) return true;
    log(`${n}: not installed (bench/two-hop.ts installs it as root); skipped`);
    return false;
  });

const dir = mkdtempSync(join(tmpdir(), 'meshward-conn-memory-'));
const pki = createPki(dir);
const client = pki.leaf('client');
const key = readFileSync(client.keyFile);
const cert = readFileSync(client.chainFile);

/** Connects, completes the handshake, hangs up; true if the handshake completed. */
function connectAndLeave(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    let ok = false;
    const s = connect({ host: '127.0.0.1', port, key, cert, rejectUnauthorized: false, ALPNProtocols: ['h2', 'http/1.1'] });
    s.once('secureConnect', () => {
      ok = true;
      setImmediate(() => s.destroy());
    });
    s.on('error', () => undefined);
    s.once('close', () => resolve(ok));
  });
}

async function serve(port: number, n: number): Promise<number> {
  let ok = 0;
  for (let i = 0; i < n; i += CONCURRENCY) {
    const batch = await Promise.all(Array.from({ length: Math.min(CONCURRENCY, n - i) }, () => connectAndLeave(port)));
    ok += batch.filter(Boolean).length;
  }
  return ok;
}

interface Reading {
  readonly served: number;
  readonly rss: number;
  readonly trimmed: number | null;
}

async function read(s: RunningSystem, served: number): Promise<Reading> {
  await new Promise((r) => setTimeout(r, 500));
  const pids = processTree(s.server.proc.pid!);
  const rss = rssMiB(pids);
  if (!isMeshward(s.name)) return { served, rss, trimmed: null };
  const trim = await fetch(`http://127.0.0.1:${PORTS[s.name].serverAdmin}/memory/trim`, { method: 'POST' });
  if (trim.status !== 200) throw new Error(`POST /memory/trim: HTTP ${trim.status}`);
  await new Promise((r) => setTimeout(r, 500));
  return { served, rss, trimmed: rssMiB(pids) };
}

await assertPortsFree();
const app = startApp(process.execPath, SUT_CORE, '/dev/null');
await waitForPort(PORTS.app);
const results = new Map<SystemName, Reading[]>();
try {
  for (const name of names) {
    const s = await startSystem(name, { dir, pki, nodeBin: process.execPath, core: SUT_CORE, logFile: '/dev/null' });
    try {
      const readings: Reading[] = [];
      let served = await serve(s.serverTlsPort, WARM_UP);
      readings.push(await read(s, served));
      for (let step = 1; step <= STEPS; step++) {
        served += await serve(s.serverTlsPort, Math.round(TOTAL / STEPS));
        readings.push(await read(s, served));
        log(`${name}: ${served} connections served, RSS ${readings.at(-1)!.rss.toFixed(1)} MiB`);
      }
      results.set(name, readings);
    } finally {
      for (const p of [s.client.proc, s.server.proc]) p.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 500));
    }
  }
} finally {
  app.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}

// --- report ---------------------------------------------------------------------

const lines: string[] = [];
lines.push(`node ${process.version}; ${TOTAL} connections after a warm-up of ${WARM_UP}, ${CONCURRENCY} at a time; server-side sidecar RSS (MiB)`);
lines.push('');
const header = ['connections served', ...names.flatMap((n) => (isMeshward(n) ? [n, `${n} after trim`] : [n]))];
lines.push(`| ${header.join(' | ')} |`);
lines.push(`|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`);
const rows = results.get(names[0]!)?.length ?? 0;
for (let i = 0; i < rows; i++) {
  const cells = [String(results.get(names[0]!)![i]!.served)];
  for (const n of names) {
    const r = results.get(n)![i]!;
    cells.push(r.rss.toFixed(1));
    if (isMeshward(n)) cells.push(r.trimmed!.toFixed(1));
  }
  lines.push(`| ${cells.join(' | ')} |`);
}
lines.push('');
for (const n of names) {
  const rs = results.get(n)!;
  const first = rs[0]!;
  const last = rs.at(-1)!;
  const base = isMeshward(n) ? last.trimmed! - first.trimmed! : last.rss - first.rss;
  lines.push(`${n}: ${((base * 1024) / (last.served - first.served)).toFixed(2)} KiB per connection after the warm-up${isMeshward(n) ? ' (after trims)' : ''}`);
}
process.stdout.write(`${lines.join('\n')}\n`);
