// The meshward proxy pair of the two-hop benchmark under Node flag variants,
// interleaved round by round: CPU per proxy and latency at a paced 1,000
// requests/s, throughput at saturation, RSS after the load and the young
// generation's size then. What chose the size bin/meshward.js holds V8's
// young generation at (docs/benchmarks.md, "Memory at start-up").
//
//   npx node bench/young-generation.ts [--rounds 3] [--variants JSON]
//
// --variants maps a name to the node flags of both proxies; the default
// compares the launcher's choice with V8 left alone (an explicit
// --max-semi-space-size=0 keeps the launcher from holding the size) and with
// a larger held size. Same pinning as bench/two-hop.ts: load on core 0, the
// app and both proxies on core 1.

import { rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { cpuSeconds, processTree, rssMiB, wrk } from './two-hop/measure.ts';
import { PORTS, eachMeshwardVariant, startPairBench } from './two-hop/systems.ts';

const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    variants: { type: 'string' },
  },
});
const ROUNDS = Number(opts.rounds);
const VARIANTS: Record<string, string[]> = opts.variants !== undefined
  ? (JSON.parse(opts.variants) as Record<string, string[]>)
  : {
      'held at 8 MiB (the launcher)': [],
      'left to V8': ['--max-semi-space-size=0'],
      'held at 16 MiB': ['--min-semi-space-size=16'],
    };
const PACED_S = 15;
const LOAD_CORE = '0';
const SUT_CORE = '1';

const { dir, pki, app } = await startPairBench('meshward-young-', SUT_CORE);

async function youngGeneration(adminPort: number): Promise<string> {
  const m = (await (await fetch(`http://127.0.0.1:${adminPort}/memory`)).json()) as { youngGenerationMiB: number; youngGenerationResidentMiB: number };
  return `${m.youngGenerationMiB} MiB (${m.youngGenerationResidentMiB} resident)`;
}

const rows: string[] = [];
await eachMeshwardVariant({ rounds: ROUNDS, variants: VARIANTS, dir, pki, core: SUT_CORE }, async (s, name, round) => {
  const url = `http://127.0.0.1:${s.httpPort}/`;
  await wrk({ core: LOAD_CORE, url, connections: 10, seconds: 3, rate: 1000 });
  const pids = [s.client.proc.pid!, s.server.proc.pid!];
  const before = pids.map((p) => cpuSeconds(processTree(p)));
  const paced = await wrk({ core: LOAD_CORE, url, connections: 10, seconds: PACED_S, rate: 1000 });
  const vcpu = pids.map((p, i) => ((cpuSeconds(processTree(p)) - before[i]!) / PACED_S).toFixed(3));
  const young = await youngGeneration(PORTS.meshward.serverAdmin);
  const sat = await wrk({ core: LOAD_CORE, url, connections: 50, seconds: 5 });
  const rss = pids.map((p) => rssMiB([p]).toFixed(1));
  rows.push(`| ${round + 1} | ${name} | ${vcpu.join(' / ')} | ${paced.p50} ms | ${paced.p99} ms | ${Math.round(sat.rps).toLocaleString('en')} | ${rss.join(' / ')} MiB | ${young} |`);
  console.error(rows.at(-1));
});
app.kill('SIGTERM');
rmSync(dir, { recursive: true, force: true });

console.log('| round | variant | vCPU client / server at 1,000 rps | p50 | p99 | req/s at saturation | RSS client / server after | young generation (server) after the paced run |');
console.log('|---:|---|---:|---:|---:|---:|---:|---|');
for (const r of rows) console.log(r);
