// The meshward proxy pair of the two-hop benchmark after a quiet spell,
// under Node flag variants interleaved round by round: latency and CPU per
// proxy at a paced 1,000 requests/s over one connection, each run after a
// burst at saturation and some seconds with no traffic. What chose to run
// proxies with V8's memory reducer off (docs/benchmarks.md, "The memory
// reducer"; src/lib/proxy-node-flags.ts).
//
//   npx node bench/quiet-spell.ts [--rounds 4] [--quiet-seconds 20] [--variants JSON]
//
// --variants maps a name to the node flags of both proxies; the default
// compares the launcher's choice with the reducer turned back on. Each
// round starts a fresh pair per variant, warms it for 5 s at saturation,
// then twice: 4 s at saturation, the quiet spell, 8 s paced. Same pinning
// as bench/two-hop.ts: load on core 0, the app and both proxies on core 1.

import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { cpuSeconds, median, processTree, wrk } from './two-hop/measure.ts';
import { eachMeshwardVariant, startPairBench } from './two-hop/systems.ts';

const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: '4' },
    'quiet-seconds': { type: 'string', default: '20' },
    variants: { type: 'string' },
  },
});
const ROUNDS = Number(opts.rounds);
const QUIET_MS = Number(opts['quiet-seconds']) * 1000;
const VARIANTS: Record<string, string[]> = opts.variants !== undefined
  ? (JSON.parse(opts.variants) as Record<string, string[]>)
  : {
      'memory reducer off (the launcher)': [],
      'memory reducer on': ['--memory-reducer'],
    };
const RATE = 1000;
const PACED_S = 8;
const RUNS_PER_PAIR = 2;
const LOAD_CORE = '0';
const SUT_CORE = '1';

const { dir, pki, app } = await startPairBench('meshward-quiet-', SUT_CORE);

interface Run {
  readonly p50: number;
  readonly p99: number;
  readonly client: number;
  readonly server: number;
}
const runs = new Map<string, Run[]>(Object.keys(VARIANTS).map((n) => [n, []]));
const rows: string[] = [];

await eachMeshwardVariant({ rounds: ROUNDS, variants: VARIANTS, dir, pki, core: SUT_CORE }, async (s, name, round) => {
  const url = `http://127.0.0.1:${s.httpPort}/`;
  const pids = [s.client.proc.pid!, s.server.proc.pid!];
  await wrk({ core: LOAD_CORE, url, connections: 50, seconds: 5 });
  for (let k = 0; k < RUNS_PER_PAIR; k++) {
    await wrk({ core: LOAD_CORE, url, connections: 50, seconds: 4 });
    await sleep(QUIET_MS);
    const before = pids.map((p) => cpuSeconds(processTree(p)));
    const t0 = performance.now();
    const paced = await wrk({ core: LOAD_CORE, url, connections: 1, seconds: PACED_S, rate: RATE });
    const secs = (performance.now() - t0) / 1000;
    // vCPU at exactly RATE req/s: scaled by the rate achieved.
    const scale = RATE / (paced.requests / secs);
    const [client, server] = pids.map((p, i) => ((cpuSeconds(processTree(p)) - before[i]!) / secs) * scale) as [number, number];
    runs.get(name)!.push({ p50: paced.p50, p99: paced.p99, client, server });
    rows.push(`| ${round + 1} | ${name} | ${paced.p50} ms | ${paced.p99} ms | ${client.toFixed(3)} / ${server.toFixed(3)} |`);
    console.error(rows.at(-1));
  }
});
app.kill('SIGTERM');
rmSync(dir, { recursive: true, force: true });

const range = (xs: readonly number[], digits: number): string => `${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}`;

console.log(`After ${opts['quiet-seconds']} s of quiet: ${RATE} requests/s over 1 connection for ${PACED_S} s, ${ROUNDS} rounds × ${RUNS_PER_PAIR} runs per variant.\n`);
console.log('| variant | p50 | p99 (range) | vCPU client proxy (range) | vCPU server proxy (range) |');
console.log('|---|---:|---:|---:|---:|');
for (const [name, rs] of runs) {
  const p99 = rs.map((r) => r.p99);
  const client = rs.map((r) => r.client);
  const server = rs.map((r) => r.server);
  console.log(
    `| ${name} | ${median(rs.map((r) => r.p50)).toFixed(3)} ms | ${median(p99).toFixed(2)} ms (${range(p99, 2)}) | ${median(client).toFixed(3)} (${range(client, 3)}) | ${median(server).toFixed(3)} (${range(server, 3)}) |`,
  );
}
console.log('\n| round | variant | p50 | p99 | vCPU client / server |');
console.log('|---:|---|---:|---:|---:|');
for (const r of rows) console.log(r);
