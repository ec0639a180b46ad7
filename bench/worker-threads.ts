// The meshward proxy pair with V8's worker pool at four threads (Node's
// default), two (the launcher's choice) and one, interleaved round by
// round: the tail and CPU per proxy at a paced 1,000 requests/s over one
// connection, and RSS settled after traffic, the two-hop benchmark's
// reading (docs/benchmarks.md, "Two V8 worker threads, and upstream reads
// into one shared buffer").
//
//   npx node bench/worker-threads.ts [--rounds 4] [--settle-seconds 62] [--variants JSON]
//
// --variants maps a name to the node flags of both proxies. Same pinning
// as bench/two-hop.ts: load on core 0, the app and both proxies on core 1.

import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { cpuSeconds, median, processTree, rssMiB, wrk } from './two-hop/measure.ts';
import { PORTS, eachMeshwardVariant, startPairBench } from './two-hop/systems.ts';

const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: '4' },
    'settle-seconds': { type: 'string', default: '62' },
    variants: { type: 'string' },
  },
});
const ROUNDS = Number(opts.rounds);
const SETTLE_S = Number(opts['settle-seconds']);
const VARIANTS: Record<string, string[]> = opts.variants !== undefined
  ? (JSON.parse(opts.variants) as Record<string, string[]>)
  : { four: ['--v8-pool-size=4'], 'two (the launcher)': [], one: ['--v8-pool-size=1'] };
const PACED_S = 8;
const LOAD_CORE = '0';
const SUT_CORE = '1';

const { dir, pki, app } = await startPairBench('meshward-threads-', SUT_CORE);

interface Reading {
  readonly p99: number;
  readonly vcpu: readonly number[];
  readonly settled: readonly number[];
}
const readings = new Map<string, Reading[]>(Object.keys(VARIANTS).map((n) => [n, []]));
const rows: string[] = [];

await eachMeshwardVariant({ rounds: ROUNDS, variants: VARIANTS, dir, pki, core: SUT_CORE }, async (s, name, round) => {
  const url = `http://127.0.0.1:${s.httpPort}/`;
  const pids = [s.client.proc.pid!, s.server.proc.pid!];
  // Warmed, then loaded as the two-hop rounds load it: many connections at saturation.
  await wrk({ core: LOAD_CORE, url, connections: 50, seconds: 3 });
  await wrk({ core: LOAD_CORE, url, connections: 50, seconds: 4 });
  await sleep(1000);
  const before = pids.map((p) => cpuSeconds(processTree(p)));
  const started = performance.now();
  const paced = await wrk({ core: LOAD_CORE, url, connections: 1, seconds: PACED_S, rate: 1000 });
  const seconds = (performance.now() - started) / 1000;
  // Scaled to 1,000 requests/s: a slow stretch of the machine may pace fewer.
  const scale = 1000 / (paced.requests / seconds);
  const vcpu = pids.map((p, i) => ((cpuSeconds(processTree(p)) - before[i]!) / seconds) * scale);
  // Settled: the pools have closed their idle connections (60 s after last use), then trimmed.
  await sleep(SETTLE_S * 1000);
  const settled: number[] = [];
  for (const [pid, admin] of [[pids[0]!, PORTS.meshward.clientAdmin], [pids[1]!, PORTS.meshward.serverAdmin]] as const) {
    const trim = await fetch(`http://127.0.0.1:${admin}/memory/trim`, { method: 'POST' });
    if (trim.status !== 200) throw new Error(`POST /memory/trim: HTTP ${trim.status}`);
    await sleep(1300);
    settled.push(rssMiB(processTree(pid)));
  }
  readings.get(name)!.push({ p99: paced.p99, vcpu, settled });
  rows.push(`| ${round + 1} | ${name} | ${paced.p99} ms | ${vcpu.map((v) => v.toFixed(3)).join(' / ')} | ${settled.map((v) => v.toFixed(1)).join(' / ')} MiB |`);
  console.error(rows.at(-1));
});
app.kill('SIGTERM');
rmSync(dir, { recursive: true, force: true });

console.log('| round | V8 worker threads | p99 at 1,000 req/s, 1 conn. | vCPU client / server | settled client / server |');
console.log('|---:|---|---:|---:|---:|');
for (const r of rows) console.log(r);
console.log('');
console.log('| V8 worker threads | p99 (median) | vCPU client / server (median) | settled client / server (median) |');
console.log('|---|---:|---:|---:|');
for (const [name, rs] of readings) {
  const m = (f: (r: Reading) => number): number => median(rs.map(f));
  console.log(`| ${name} | ${m((r) => r.p99).toFixed(3)} ms | ${m((r) => r.vcpu[0]!).toFixed(3)} / ${m((r) => r.vcpu[1]!).toFixed(3)} | ${m((r) => r.settled[0]!).toFixed(1)} / ${m((r) => r.settled[1]!).toFixed(1)} MiB |`);
}
