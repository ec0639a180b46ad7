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

import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuSeconds, processTree, rssMiB, wrk } from './two-hop/measure.ts';
import { createPki } from './two-hop/pki.ts';
import { PORTS, assertPortsFree, startApp, startSystem, waitForPort } from './two-hop/systems.ts';
import { onPath } from './host.ts';

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

for (const tool of ['wrk', 'taskset']) {
  if (!onPath(tool)) throw new Error(`${tool} is not installed (bench/two-hop.ts installs it)`);
}

const dir = mkdtempSync(join(tmpdir(), 'meshward-young-'));
const pki = createPki(dir);
await assertPortsFree();
const app = startApp(process.execPath, SUT_CORE, join(dir, 'app.log'));
await waitForPort(PORTS.app);

async function youngGeneration(adminPort: number): Promise<string> {
  const m = (await (await fetch(`http://127.0.0.1:${adminPort}/memory`)).json()) as { youngGenerationMiB: number; youngGenerationResidentMiB: number };
  return `${m.youngGenerationMiB} MiB (${m.youngGenerationResidentMiB} resident)`;
}

const rows: string[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const names = Object.keys(VARIANTS);
  // Rotate the order per round, so no variant always runs first.
  const order = [...names.slice(round % names.length), ...names.slice(0, round % names.length)];
  for (const name of order) {
    const s = await startSystem('meshward', { dir, pki, nodeBin: process.execPath, core: SUT_CORE, logFile: join(dir, 'proxies.log'), nodeArgs: VARIANTS[name] });
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
    for (const p of [s.client.proc, s.server.proc]) {
      p.kill('SIGTERM');
      await once(p, 'exit');
    }
  }
}
app.kill('SIGTERM');
rmSync(dir, { recursive: true, force: true });

console.log('| round | variant | vCPU client / server at 1,000 rps | p50 | p99 | req/s at saturation | RSS client / server after | young generation (server) after the paced run |');
console.log('|---:|---|---:|---:|---:|---:|---:|---|');
for (const r of rows) console.log(r);
