// This tree's meshward proxy pair against another commit's, interleaved
// round by round, a fresh pair each time: what a change does to the
// two-hop path when both sides see the same stretch of a noisy machine,
// which separate full runs of bench/two-hop.ts do not. Per round and tree:
// one call at a time without pacing (CPU µs per request in each proxy),
// then a paced 1,000 requests/s over one connection (vCPU per proxy, p99),
// then saturation over 50 connections (docs/benchmarks.md, "The app's
// connection reads into the shared buffer too").
//
//   npx node bench/tree-pairs.ts --base REV [--rounds 6] [--seconds 8]
//
// REV is checked out into a temporary git worktree that shares this
// tree's node_modules and native build; its own bench/two-hop/systems.ts
// starts its proxies. Same pinning as bench/two-hop.ts: load on core 0,
// the app and both proxies on core 1.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { cpuSeconds, median, processTree, rotate, wrk } from './two-hop/measure.ts';
import * as here from './two-hop/systems.ts';

const { values: opts } = parseArgs({
  options: {
    base: { type: 'string' },
    rounds: { type: 'string', default: '6' },
    seconds: { type: 'string', default: '8' },
  },
});
if (opts.base === undefined) throw new Error('usage: bench/tree-pairs.ts --base REV [--rounds 6] [--seconds 8]');
const ROUNDS = Number(opts.rounds);
const SECONDS = Number(opts.seconds);

const worktree = join(mkdtempSync(join(tmpdir(), 'meshward-base-')), 'tree');
execFileSync('git', ['-C', here.REPO, 'worktree', 'add', '--detach', worktree, opts.base], { stdio: 'ignore' });
symlinkSync(join(here.REPO, 'node_modules'), join(worktree, 'node_modules'));
mkdirSync(join(worktree, 'build'));
symlinkSync(join(here.REPO, 'build', 'native'), join(worktree, 'build', 'native'));
// Each tree runs as installed: from its own bundle where it builds one.
for (const tree of [worktree, here.REPO]) {
  if (existsSync(join(tree, 'tools', 'build-bundle.ts'))) execFileSync(process.execPath, [join(tree, 'tools', 'build-bundle.ts')], { stdio: 'ignore' });
}
// Its first start compiles and caches its sources; none of the measured ones should.
execFileSync(process.execPath, [join(worktree, 'bin', 'meshward.js'), '--help'], { stdio: 'ignore' });
const base = (await import(join(worktree, 'bench', 'two-hop', 'systems.ts'))) as typeof here;
const TREES = { [`base (${opts.base})`]: base, 'this tree': here };
type Tree = keyof typeof TREES;

interface Reading {
  usClient: number;
  usServer: number;
  vcpuClient: number;
  vcpuServer: number;
  p99: number;
  saturation: number;
}

/** CPU of each proxy over one wrk run, per request (µs) or per 1,000 requests a second (vCPU). */
async function perRequest(pids: readonly number[], url: string, rate: number | undefined): Promise<{ perRequest: number[]; p99: number; seconds: number }> {
  const before = pids.map((p) => cpuSeconds(processTree(p)));
  const started = performance.now();
  const r = await wrk({ core: '0', url, connections: 1, seconds: SECONDS, rate });
  const seconds = (performance.now() - started) / 1000;
  return { perRequest: pids.map((p, i) => (cpuSeconds(processTree(p)) - before[i]!) / r.requests), p99: r.p99, seconds };
}

const { dir, pki, app } = await here.startPairBench('meshward-tree-pairs-', '1');
const readings = new Map<Tree, Reading[]>(Object.keys(TREES).map((t) => [t, []]));
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const tree of rotate(Object.keys(TREES), round)) {
      const s = await TREES[tree]!.startSystem('meshward', { dir, pki, nodeBin: process.execPath, core: '1', logFile: join(dir, 'proxies.log') });
      try {
        const url = `http://127.0.0.1:${s.httpPort}/`;
        const pids = [s.client.proc.pid!, s.server.proc.pid!];
        await wrk({ core: '0', url, connections: 50, seconds: 4 });
        await sleep(500);
        const unpaced = await perRequest(pids, url, undefined);
        await sleep(500);
        const paced = await perRequest(pids, url, 1000);
        await sleep(500);
        const saturation = (await wrk({ core: '0', url, connections: 50, seconds: 4 })).rps;
        const r: Reading = {
          usClient: unpaced.perRequest[0]! * 1e6,
          usServer: unpaced.perRequest[1]! * 1e6,
          vcpuClient: paced.perRequest[0]! * 1000,
          vcpuServer: paced.perRequest[1]! * 1000,
          p99: paced.p99,
          saturation,
        };
        readings.get(tree)!.push(r);
        console.error(`round ${round + 1} ${tree}: ${r.usClient.toFixed(1)} / ${r.usServer.toFixed(1)} µs, ${r.vcpuClient.toFixed(3)} / ${r.vcpuServer.toFixed(3)} vCPU, p99 ${r.p99} ms, ${r.saturation.toFixed(0)} req/s`);
      } finally {
        await TREES[tree]!.stopSystem(s);
      }
    }
  }
} finally {
  app.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
  execFileSync('git', ['-C', here.REPO, 'worktree', 'remove', '--force', worktree], { stdio: 'ignore' });
}

const m = (t: Tree, k: keyof Reading, digits: number): string => median(readings.get(t)!.map((r) => r[k])).toFixed(digits);
console.log(`Medians over ${ROUNDS} rounds; one call at a time, then 1,000 requests/s, over one connection.`);
console.log('| tree | µs CPU per request, client / server (unpaced) | vCPU client / server (1,000 req/s) | p99 (1,000 req/s) | req/s at saturation |');
console.log('|---|---:|---:|---:|---:|');
for (const t of Object.keys(TREES)) {
  console.log(`| ${t} | ${m(t, 'usClient', 1)} / ${m(t, 'usServer', 1)} | ${m(t, 'vcpuClient', 3)} / ${m(t, 'vcpuServer', 3)} | ${m(t, 'p99', 3)} ms | ${m(t, 'saturation', 0)} |`);
}
