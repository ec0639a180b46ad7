// Benchmark: the two-hop proxy path.
//
//   wrk → client-side proxy → mTLS → server-side proxy → app
//
// for meshward (two `meshward proxy` processes: one AuthorizationPolicy,
// STRICT mTLS, Istio metrics on, access log on stderr), nginx and HAProxy
// configured for the same mTLS on the same certificates (ECDSA P-256, SPIFFE
// URI SANs, made with openssl into a temporary directory), against wrk → app
// directly. See bench/two-hop/systems.ts for what each configuration does.
//
// Method, for a noisy 2-core machine: wrk (and the handshake client) run on
// core 0, the whole system under test (app and both proxies of every
// configuration) on core 1, via taskset. Every round runs each phase for
// every configuration back to back, in an order rotated per round, with a
// pause between runs, and the report quotes medians over rounds of
// per-round values and of ratios paired within a round. Before the first
// round every path runs at saturation for --warm-seconds (default 5): a
// proxy that has just started spends its first seconds of traffic
// compiling its hot code on V8's helper threads, which share the core and
// would otherwise land in the first round's paced tail, a state a sidecar
// in service has long left.
//
// Phases per round, in this order:
//   paced       ~1,000 requests/s (bench/two-hop/pace.lua), latency p50/p99
//               and the CPU seconds of each proxy process over the run,
//               once per --paced-connections count: 1 connection (each
//               request alone on the path: what the proxies add to one
//               call) and 20 (requests from different connections queue
//               behind each other on the one core);
//   handshakes  new mTLS connections into each server-side proxy's listener
//               from a Node client on core 0, per server CPU-second;
//   saturation  wrk -c50, as fast as possible (HTTP/1.1 keep-alive; then
//               through the TCP ports, unless --no-tcp).
// The configurations: direct, meshward, meshward-nodelay (meshward with
// bench/two-hop/nodelay.ts preloaded, an experiment), nginx, haproxy, and,
// when named in --only, node-pipe: a floor, not a proxy (two Node
// processes that only copy bytes over the same mTLS hop; what meshward
// costs above it is its own work).
// Then RSS of each sidecar process: idle before the rounds, after them,
// trimmed at once, and settled (--settle-seconds without traffic, long
// enough for the pools to close their idle connections, then trimmed);
// and node-proxy mode: N WorkloadProxy objects in one process, RSS per
// extra workload.
//
// Run (as root it installs nginx, haproxy, wrk with apt-get when missing;
// otherwise a missing baseline is skipped and the table says so):
//   npx node bench/two-hop.ts [--rounds 3] [--sat-seconds 5] [--paced-seconds 10]
//     [--rate 1000] [--paced-connections 1,20] [--warm-seconds 5]
//     [--hs-seconds 4] [--workloads 1,5,10] [--no-tcp]
//     [--access-log null|file] [--cpu-prof DIR] [--meshward-import FILE] [--gap-ms 1000]
//     [--settle-seconds 62]  (0: no settled measurement)
//     [--meshward-node-flags=--max-semi-space-size=4]  (with '=': the value starts with --)
//     [--only meshward,meshward-nodelay,nginx,haproxy,node-pipe]

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuSeconds, handshakeLoop, median, processTree, rotate, rssMiB, wrk, type WrkResult } from './two-hop/measure.ts';
import { createPki } from './two-hop/pki.ts';
import { PORTS, assertPortsFree, REPO, SYSTEM_NAMES, isMeshward, startApp, startSystem, stopSystem, waitForPort, type RunningSystem, type SystemName } from './two-hop/systems.ts';
import { runWorkloads } from './two-hop/workloads.ts';
import { onPath } from './host.ts';
import { freshBundleEntry } from '../src/lib/bundle-manifest.ts';

const LOAD_CORE = '0';
const SUT_CORE = '1';

// --- internal subcommands (child processes) -----------------------------------------

const sub = process.argv[2];
if (sub === 'handshake-client') {
  const [port, seconds, concurrency, keyFile, chainFile] = process.argv.slice(3);
  const r = await handshakeLoop({ port: Number(port), seconds: Number(seconds), concurrency: Number(concurrency), keyFile: keyFile!, chainFile: chainFile! });
  process.stdout.write(`${JSON.stringify(r)}\n`);
  process.exit(0);
}
if (sub === 'workloads') {
  const [dir, rootFile, appPort, requestsEach, list] = process.argv.slice(3);
  const files = JSON.parse(list!) as { sa: string; keyFile: string; chainFile: string }[];
  await runWorkloads(dir!, rootFile!, Number(appPort), files, Number(requestsEach));
}

// --- the benchmark -------------------------------------------------------------------

const { values: opts } = parseArgs({
  args: process.argv.slice(2),
  options: {
    rounds: { type: 'string', default: '3' },
    'sat-seconds': { type: 'string', default: '5' },
    'paced-seconds': { type: 'string', default: '10' },
    rate: { type: 'string', default: '1000' },
    'sat-connections': { type: 'string', default: '50' },
    'paced-connections': { type: 'string', default: '1,20' },
    'warm-seconds': { type: 'string', default: '5' },
    'hs-seconds': { type: 'string', default: '4' },
    'hs-concurrency': { type: 'string', default: '8' },
    workloads: { type: 'string', default: '1,5,10' },
    'no-tcp': { type: 'boolean', default: false },
    'access-log': { type: 'string', default: 'null' },
    'cpu-prof': { type: 'string' },
    'meshward-import': { type: 'string' },
    'meshward-node-flags': { type: 'string' },
    only: { type: 'string', default: 'meshward,meshward-nodelay,nginx,haproxy' },
    'gap-ms': { type: 'string', default: '1000' },
    'settle-seconds': { type: 'string', default: '62' },
    keep: { type: 'boolean', default: false },
  },
});

const ROUNDS = Number(opts.rounds);
const SAT_S = Number(opts['sat-seconds']);
const PACED_S = Number(opts['paced-seconds']);
const RATE = Number(opts.rate);
const SAT_C = Number(opts['sat-connections']);
const PACED_CS = opts['paced-connections'].split(',').filter((s) => s !== '').map(Number);
const WARM_S = Number(opts['warm-seconds']);
const HS_S = Number(opts['hs-seconds']);
const HS_C = Number(opts['hs-concurrency']);
const WORKLOAD_COUNTS = opts.workloads.split(',').filter((s) => s !== '').map(Number);
const TCP = !opts['no-tcp'];
const GAP_MS = Number(opts['gap-ms']);
const SETTLE_S = Number(opts['settle-seconds']);
/** A pause between runs, so one run's after-effects (GC, a throttled vCPU) fall less on the next. */
const gap = (): Promise<void> => new Promise((r) => setTimeout(r, GAP_MS));

const log = (msg: string): void => {
  process.stderr.write(`${msg}\n`);
};


/** As root, apt-get installs what is missing; otherwise reports it. */
function ensureTools(): { missing: string[] } {
  const want: [string, string][] = [
    ['wrk', 'wrk'],
    ['nginx', 'nginx-light'],
    ['haproxy', 'haproxy'],
    ['taskset', 'util-linux'],
    ['openssl', 'openssl'],
  ];
  let missing = want.filter(([cmd]) => !onPath(cmd));
  const root = process.getuid?.() === 0;
  if (missing.length > 0 && root) {
    const pkgs = missing.map(([, pkg]) => pkg);
    log(`installing ${pkgs.join(' ')} with apt-get`);
    try {
      execFileSync('apt-get', ['install', '-y', ...pkgs], { stdio: 'ignore' });
    } catch {
      execFileSync('apt-get', ['update'], { stdio: 'ignore' });
      execFileSync('apt-get', ['install', '-y', ...pkgs], { stdio: 'ignore' });
    }
    missing = want.filter(([cmd]) => !onPath(cmd));
  }
  if (root && onPath('nginx')) {
    try {
      readFileSync('/usr/lib/nginx/modules/ngx_stream_module.so');
    } catch {
      try {
        execFileSync('apt-get', ['install', '-y', 'libnginx-mod-stream'], { stdio: 'ignore' });
      } catch {
        log('libnginx-mod-stream not installed: nginx has no TCP row');
      }
    }
  }
  return { missing: missing.map(([cmd]) => cmd) };
}

function fmt(x: number, digits = 2): string {
  if (!Number.isFinite(x)) return '–';
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

// --- main ------------------------------------------------------------------------------

const tools = ensureTools();
if (tools.missing.includes('wrk') || tools.missing.includes('taskset') || tools.missing.includes('openssl')) {
  log(`missing ${tools.missing.join(', ')}: run as root to install, or install them`);
  process.exit(2);
}
// meshward as installed runs from its bundle: built again here if the
// sources changed since, so the proxies measured are the ones users run.
if (freshBundleEntry() === null) {
  execFileSync(process.execPath, [join(REPO, 'tools', 'build-bundle.ts')], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (freshBundleEntry() === null) log('meshward runs from its TypeScript sources: no bundle (esbuild is not installed)');
}
const wanted = opts.only.split(',').filter((n): n is SystemName => (SYSTEM_NAMES as readonly string[]).includes(n));
const skipped: string[] = [];
const names = wanted.filter((n) => {
  if (!isMeshward(n) && tools.missing.includes(n)) {
    skipped.push(`${n} (not installed; run as root to install)`);
    return false;
  }
  return true;
});

const nodeBin = process.execPath;
const dir = mkdtempSync(join(tmpdir(), 'meshward-two-hop-'));
const logFile = opts['access-log'] === 'file' ? join(dir, 'sidecars.log') : '/dev/null';
const procs: ChildProcess[] = [];
const cleanup = (): void => {
  for (const p of procs) if (p.exitCode === null && p.pid !== undefined) p.kill('SIGTERM');
};
process.on('exit', () => {
  cleanup();
  if (!opts.keep) rmSync(dir, { recursive: true, force: true });
});
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

log(`node ${process.version} (${nodeBin}); temp dir ${dir}; sidecar stderr → ${logFile}`);
const pki = createPki(dir);
await assertPortsFree();
const app = startApp(nodeBin, SUT_CORE, '/dev/null');
procs.push(app);
await waitForPort(PORTS.app);

const systems: RunningSystem[] = [];
for (const n of names) {
  const extra: string[] = [];
  if (isMeshward(n) && opts['cpu-prof'] !== undefined) {
    mkdirSync(opts['cpu-prof'], { recursive: true });
    extra.push('--cpu-prof', '--cpu-prof-dir', opts['cpu-prof']);
  }
  if (isMeshward(n) && opts['meshward-import'] !== undefined) extra.push('--import', resolve(opts['meshward-import']));
  if (isMeshward(n) && opts['meshward-node-flags'] !== undefined) extra.push(...opts['meshward-node-flags'].split(' ').filter((f) => f !== ''));
  const s = await startSystem(n, { dir, pki, nodeBin, core: SUT_CORE, logFile, nodeArgs: extra });
  procs.push(s.client.proc, s.server.proc);
  systems.push(s);
  log(`${n}: client :${s.httpPort} → server :${s.serverTlsPort} → app :${PORTS.app}`);
}

// RSS before any request: what the process costs to exist.
const rssIdle = new Map<string, number>();
const anonIdle = new Map<string, number>();
await new Promise((r) => setTimeout(r, 1000));
for (const s of systems) {
  for (const side of [s.client, s.server]) {
    rssIdle.set(side.label, rssMiB(processTree(side.proc.pid!)));
    anonIdle.set(side.label, rssMiB(processTree(side.proc.pid!), 'RssAnon'));
  }
}

type Config = 'direct' | SystemName;
const configs: Config[] = ['direct', ...systems.map((s) => s.name)];
const sys = (c: Config): RunningSystem | undefined => systems.find((s) => s.name === c);
const url = (c: Config, tcp = false): string => {
  const s = sys(c);
  const port = s === undefined ? PORTS.app : tcp ? s.tcpPort : s.httpPort;
  return `http://127.0.0.1:${port}/`;
};

// Every path must answer 200 before anything is measured, and has run hot
// long enough for its code to be compiled (see the top of this file).
for (const c of configs) {
  const r = await wrk({ core: LOAD_CORE, url: url(c), connections: SAT_C, seconds: WARM_S });
  if (r.requests === 0 || r.errors > 0) throw new Error(`${c}: warm-up failed (${r.requests} requests, ${r.errors} errors)\n${r.raw}`);
  if (TCP && sys(c) !== undefined && sys(c)!.tcpPort !== 0) await wrk({ core: LOAD_CORE, url: url(c, true), connections: 10, seconds: 1 });
  log(`warm-up ${c}: ${fmt(r.rps, 0)} req/s`);
}

interface Paced extends WrkResult {
  readonly clientVcpu: number;
  readonly serverVcpu: number;
  readonly appVcpu: number;
}
const sat = new Map<Config, number[]>(configs.map((c) => [c, []]));
const satTcp = new Map<Config, number[]>(configs.map((c) => [c, []]));
/** Paced runs by connection count, then by configuration; one entry per round. */
const paced = new Map<number, Map<Config, Paced[]>>(PACED_CS.map((n) => [n, new Map(configs.map((c) => [c, []]))]));
const hs = new Map<Config, { perCpu: number; perSec: number; errors: number }[]>(configs.map((c) => [c, []]));
let wrkErrors = 0;

for (let round = 0; round < ROUNDS; round++) {
  const order = rotate(configs, round);
  log(`round ${round + 1}/${ROUNDS}: ${order.join(', ')}`);
  // Paced runs first, while the machine is coolest; then handshakes, then saturation.
  for (const n of PACED_CS) for (const c of order) {
    const s = sys(c);
    const clientPids = s === undefined ? [] : processTree(s.client.proc.pid!);
    const serverPids = s === undefined ? [] : processTree(s.server.proc.pid!);
    await gap();
    const before = [cpuSeconds(clientPids), cpuSeconds(serverPids), cpuSeconds([app.pid!])];
    const t0 = performance.now();
    const r = await wrk({ core: LOAD_CORE, url: url(c), connections: n, seconds: PACED_S, rate: RATE });
    const secs = (performance.now() - t0) / 1000;
    const after = [cpuSeconds(clientPids), cpuSeconds(serverPids), cpuSeconds([app.pid!])];
    wrkErrors += r.errors;
    // vCPU at exactly RATE req/s: scale by the rate achieved.
    const scale = RATE / (r.requests / secs);
    const v = (i: number): number => ((after[i]! - before[i]!) / secs) * scale;
    paced.get(n)!.get(c)!.push({ ...r, clientVcpu: v(0), serverVcpu: v(1), appVcpu: v(2) });
    log(`  paced ${c} (${n} conn.): ${fmt(r.rps, 0)} req/s p50 ${fmt(r.p50, 3)} ms p99 ${fmt(r.p99, 3)} ms cpu client ${fmt(v(0), 3)} server ${fmt(v(1), 3)}`);
  }
  for (const c of order) {
    const s = sys(c);
    if (s === undefined) continue;
    const pids = processTree(s.server.proc.pid!);
    const client = pki.leaf('client');
    await gap();
    const before = cpuSeconds(pids);
    const child = spawn('taskset', ['-c', LOAD_CORE, nodeBin, join(REPO, 'bench', 'two-hop.ts'), 'handshake-client', String(s.serverTlsPort), String(HS_S), String(HS_C), client.keyFile, client.chainFile], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await once(child, 'exit');
    const cpu = cpuSeconds(pids) - before;
    const r = JSON.parse(out) as { ok: number; noTicket: number; errors: number };
    hs.get(c)!.push({ perCpu: r.ok / cpu, perSec: r.ok / HS_S, errors: r.errors + r.noTicket });
    log(`  handshakes ${c}: ${r.ok} in ${HS_S} s, server ${fmt(cpu, 2)} CPU-s → ${fmt(r.ok / cpu, 0)}/CPU-s (errors ${r.errors}, no ticket ${r.noTicket})`);
  }
  for (const c of order) {
    await gap();
    const r = await wrk({ core: LOAD_CORE, url: url(c), connections: SAT_C, seconds: SAT_S });
    wrkErrors += r.errors;
    sat.get(c)!.push(r.rps);
    log(`  saturation ${c}: ${fmt(r.rps, 0)} req/s`);
  }
  if (TCP) {
    for (const c of order) {
      if (sys(c)?.tcpPort === 0) continue;
      await gap();
      const r = await wrk({ core: LOAD_CORE, url: url(c, true), connections: SAT_C, seconds: SAT_S });
      wrkErrors += r.errors;
      satTcp.get(c)!.push(r.rps);
      log(`  saturation tcp ${c}: ${fmt(r.rps, 0)} req/s`);
    }
  }
}

// RSS of each sidecar after all the load.
const rss = new Map<string, number>();
const hwm = new Map<string, number>();
for (const s of systems) {
  rss.set(s.client.label, rssMiB(processTree(s.client.proc.pid!)));
  rss.set(s.server.label, rssMiB(processTree(s.server.proc.pid!)));
  hwm.set(s.client.label, rssMiB(processTree(s.client.proc.pid!), 'VmHWM'));
  hwm.set(s.server.label, rssMiB(processTree(s.server.proc.pid!), 'VmHWM'));
}
/**
 * Each meshward proxy's RSS right after POST /memory/trim and the trim's
 * second pass at the C allocator a second later (src/lib/memory-trim.ts).
 */
async function rssAfterTrim(): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const s of systems) {
    if (!isMeshward(s.name)) continue;
    const P = PORTS[s.name];
    for (const [side, admin] of [[s.client, P.clientAdmin], [s.server, P.serverAdmin]] as const) {
      const trim = await fetch(`http://127.0.0.1:${admin}/memory/trim`, { method: 'POST' });
      if (trim.status !== 200) throw new Error(`POST /memory/trim on ${side.label}: HTTP ${trim.status}`);
      await new Promise((r) => setTimeout(r, 1300));
      out.set(side.label, rssMiB([side.proc.pid!]));
    }
  }
  return out;
}

// And once a meshward proxy has given its idle memory back, as it does by
// itself after three idle minutes (asked for now: POST /memory/trim).
const rssTrimmed = await rssAfterTrim();
// And settled: once the proxies' pools have closed their idle connections
// (60 s after last use) and the connections' memory is free, as a sidecar
// stands after traffic has stopped, trimmed again.
let rssSettled = new Map<string, number>();
if (SETTLE_S > 0 && systems.some((s) => isMeshward(s.name))) {
  log(`settling: ${SETTLE_S} s without traffic`);
  await new Promise((r) => setTimeout(r, SETTLE_S * 1000));
  rssSettled = await rssAfterTrim();
}

// CPU profiles are written when the proxies exit.
if (opts['cpu-prof'] !== undefined) {
  for (const s of systems.filter((x) => isMeshward(x.name))) await stopSystem(s);
}

// Node-proxy mode: N workloads in one process.
const nodeMode: { n: number; rss: number; requests: number; errors: number }[] = [];
for (const n of WORKLOAD_COUNTS) {
  const files = Array.from({ length: n }, (_, i) => {
    const l = pki.leaf(`w${i}`);
    return { sa: l.sa, keyFile: l.keyFile, chainFile: l.chainFile };
  });
  const child = spawn('taskset', ['-c', SUT_CORE, nodeBin, join(REPO, 'bench', 'two-hop.ts'), 'workloads', dir, pki.rootFile, String(PORTS.app), '200', JSON.stringify(files)], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  procs.push(child);
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`node-proxy mode with ${n} workloads exited (${code})`)));
  });
  await new Promise((r) => setTimeout(r, 500));
  const r = JSON.parse(out) as { requests: number; errors: number };
  nodeMode.push({ n, rss: rssMiB([child.pid!]), requests: r.requests, errors: r.errors });
  child.kill('SIGTERM');
  await once(child, 'exit');
  log(`node-proxy mode: ${n} workloads → ${fmt(nodeMode.at(-1)!.rss, 1)} MiB (${r.requests} requests, ${r.errors} errors)`);
}
const slope = ((): number => {
  if (nodeMode.length < 2) return Number.NaN;
  const mx = nodeMode.reduce((a, p) => a + p.n, 0) / nodeMode.length;
  const my = nodeMode.reduce((a, p) => a + p.rss, 0) / nodeMode.length;
  const num = nodeMode.reduce((a, p) => a + (p.n - mx) * (p.rss - my), 0);
  const den = nodeMode.reduce((a, p) => a + (p.n - mx) ** 2, 0);
  return num / den;
})();

// --- report ------------------------------------------------------------------------------

const paired = (c: Config, f: (round: number) => number): number => median(Array.from({ length: ROUNDS }, (_, i) => f(i)));
const satOf = (c: Config, i: number, tcp = false): number => (tcp ? satTcp : sat).get(c)![i] ?? Number.NaN;
const pacedOf = (n: number, c: Config, i: number): Paced | undefined => paced.get(n)!.get(c)![i];

const lines: string[] = [];
lines.push('');
lines.push(`Two-hop proxy path: ${ROUNDS} rounds; wrk on core ${LOAD_CORE}, app and proxies on core ${SUT_CORE}; medians over rounds, ratios paired within a round.`);
lines.push('');
lines.push(`| path | req/s at saturation (c=${SAT_C}) | × direct | × nginx | spread over rounds (min–max) |`);
lines.push('|---|---:|---:|---:|---:|');
const range = (xs: readonly number[], d: number, unit = ''): string => `${fmt(Math.min(...xs), d)}–${fmt(Math.max(...xs), d)}${unit}`;
const pathLabel = (c: Config): string => (c === 'direct' ? 'direct (wrk → app)' : `${c} pair`);
for (const c of configs) {
  const xDirect = paired(c, (i) => satOf(c, i) / satOf('direct', i));
  const xNginx = sys('nginx') === undefined ? Number.NaN : paired(c, (i) => satOf(c, i) / satOf('nginx', i));
  lines.push(`| ${pathLabel(c)} | ${fmt(median(sat.get(c)!), 0)} | ${fmt(xDirect, 3)} | ${fmt(xNginx, 2)} | ${range(sat.get(c)!, 0)} |`);
}
for (const n of PACED_CS) {
  lines.push('');
  lines.push(`| at ${RATE} req/s over ${n} connection${n === 1 ? '' : 's'} | p50 | p99 | added p50 | added p99 | p99 spread (min–max) | vCPU client proxy | vCPU server proxy | vCPU client / server × nginx |`);
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const c of configs) {
    const s = sys(c);
    const runs = paced.get(n)!.get(c)!;
    const add = (f: (p: Paced) => number): string => (c === 'direct' ? '–' : `${fmt(paired(c, (i) => f(pacedOf(n, c, i)!) - f(pacedOf(n, 'direct', i)!)), 3)} ms`);
    const vcpu = (f: (p: Paced) => number): string => (s === undefined ? '–' : fmt(median(runs.map(f)), 3));
    // The machine's speed moves every configuration's CPU together: the ratio to nginx's, paired within a round, moves far less.
    const vcpuXNginx = (f: (p: Paced) => number): string =>
      s === undefined || sys('nginx') === undefined ? '–' : fmt(paired(c, (i) => f(pacedOf(n, c, i)!) / f(pacedOf(n, 'nginx', i)!)), 2);
    lines.push(
      `| ${pathLabel(c)} | ${fmt(median(runs.map((p) => p.p50)), 3)} ms | ${fmt(median(runs.map((p) => p.p99)), 3)} ms | ${add((p) => p.p50)} | ${add((p) => p.p99)} | ${range(runs.map((p) => p.p99), 3, ' ms')} | ${vcpu((p) => p.clientVcpu)} | ${vcpu((p) => p.serverVcpu)} | ${vcpuXNginx((p) => p.clientVcpu)} / ${vcpuXNginx((p) => p.serverVcpu)} |`,
    );
  }
}
lines.push('');
lines.push(`| sidecar process | RSS idle | of which its own (RssAnon) | RSS after the rounds | then trimmed | settled (${SETTLE_S} s without traffic, then trimmed) | peak RSS (VmHWM) |`);
lines.push('|---|---:|---:|---:|---:|---:|---:|');
const mib = (x: number | undefined): string => (x === undefined ? '–' : `${fmt(x, 1)} MiB`);
for (const s of systems) {
  for (const side of [s.client, s.server]) {
    lines.push(`| ${side.label} | ${mib(rssIdle.get(side.label))} | ${mib(anonIdle.get(side.label))} | ${mib(rss.get(side.label))} | ${mib(rssTrimmed.get(side.label))} | ${mib(rssSettled.get(side.label))} | ${mib(hwm.get(side.label))} |`);
  }
}
for (const s of systems) {
  if (s.idleProbe === undefined) continue;
  lines.push('');
  const p = s.idleProbe;
  lines.push(`${s.name}: a server proxy started alone for the purpose, ${fmt(p.idle, 1)} MiB idle (${fmt(p.anonIdle, 1)} MiB its own), ${fmt(p.trimmed, 1)} MiB (${fmt(p.anonTrimmed, 1)} MiB) after \`POST /memory/trim\` (which the proxy also runs by itself once ready, and after idle minutes).`);
}
if (TCP) {
  lines.push('');
  lines.push(`| TCP path (HTTP/1.1 bytes through protocol: tcp ports) | req/s at saturation | × direct | × nginx |`);
  lines.push('|---|---:|---:|---:|');
  for (const c of configs) {
    if (satTcp.get(c)!.length === 0) continue;
    const xNginx = satTcp.get('nginx')?.length ? paired(c, (i) => satOf(c, i, true) / satOf('nginx', i, true)) : Number.NaN;
    // Paired with the direct run of the same phase and round.
    lines.push(`| ${c === 'direct' ? 'direct (wrk → app)' : `${c} pair`} | ${fmt(median(satTcp.get(c)!), 0)} | ${fmt(paired(c, (i) => satOf(c, i, true) / satOf('direct', i, true)), 3)} | ${fmt(xNginx, 2)} |`);
  }
}
lines.push('');
lines.push(`| server-side mTLS listener | handshakes/s | handshakes per server CPU-s | × nginx | errors |`);
lines.push('|---|---:|---:|---:|---:|');
for (const s of systems) {
  const h = hs.get(s.name)!;
  const xNginx = sys('nginx') === undefined ? Number.NaN : paired(s.name, (i) => h[i]!.perCpu / hs.get('nginx')![i]!.perCpu);
  lines.push(`| ${s.name} | ${fmt(median(h.map((x) => x.perSec)), 0)} | ${fmt(median(h.map((x) => x.perCpu)), 0)} | ${fmt(xNginx, 2)} | ${h.reduce((a, x) => a + x.errors, 0)} |`);
}
if (nodeMode.length > 0) {
  lines.push('');
  lines.push('| node-proxy mode: workloads in one process | RSS |');
  lines.push('|---|---:|');
  for (const p of nodeMode) lines.push(`| ${p.n} | ${fmt(p.rss, 1)} MiB |`);
  lines.push(`| slope (least squares) | ${fmt(slope, 2)} MiB per extra workload |`);
}
lines.push('');
for (const n of PACED_CS) lines.push(`Achieved paced rates over ${n} connection${n === 1 ? '' : 's'} (median): ${configs.map((c) => `${c} ${fmt(median(paced.get(n)!.get(c)!.map((p) => p.rps)), 0)}`).join(', ')} req/s.`);
lines.push(`wrk errors: ${wrkErrors}.`);
if (skipped.length > 0) lines.push(`Skipped: ${skipped.join('; ')}.`);
console.log(lines.join('\n'));
cleanup();
process.exit(0);
