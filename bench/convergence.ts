// Benchmark: control plane convergence — from a policy file change to every
// proxy concerned having ACKed the config that carries it.
//
// One `meshward controlplane` process (its own process, so its CPU and RSS
// can be read from /proc) serves N simulated proxies in this process. Each
// simulated proxy is what a real one does on the wire, minus listeners:
//
//   - a single-use bootstrap token from the admin endpoint (POST /bootstrap-token);
//   - a fresh P-256 key and CSR, and one CreateCertificate call with the
//     token (the agent's own code paths: keys.ts, ca-client.ts);
//   - one ConfigClient (src/proxy/config-client.ts) on its own gRPC channel
//     (one mTLS connection each) whose `apply` validates the pushed config
//     with parseProxyConfig (the JSON.parse is ConfigClient's) and ACKs.
//
// The mesh file has N workloads in namespace `bench` (svc-i, two upstreams
// each: svc-(i+1) and svc-(i+2)); the policy directory has a mesh-wide
// STRICT PeerAuthentication and a selector-less ALLOW policy in the root
// namespace, and one AuthorizationPolicy file per workload selecting it.
//
// Per size, after every proxy has ACKed its first config:
//   idle   CPU and RSS of the control plane over --idle-seconds;
//   (a)    rewrite the root-namespace policy (concerns all N proxies):
//          time from the write to each proxy's apply of the new config;
//   (b)    rewrite one workload's policy: time until that proxy applied it,
//          and how many pushes anyone else got (should be 0), counted both
//          here and by the server's pilot_xds_pushes.
// Files are rewritten in place (--write inplace, the default: O_TRUNC and
// one write, as most editors save) or replaced atomically (--write rename:
// written beside the policy directory, then renamed over the file, as
// `git checkout` does); the clock starts just before. The control plane
// notices through its watch (50 ms debounce, included in the figures).
// Server side, the pilot_proxy_convergence_time histogram (change seen →
// ACK received) is read before and after each change.
//
// --cpu-prof DIR runs the control plane of the largest size with --cpu-prof
// and prints, for the (a) windows, the (b) windows and the idle window, the
// top functions by self time and the src/ functions by inclusive time.
//
// Run: npx node bench/convergence.ts [--sizes 10,100,1000] [--repeats 5]
//        [--idle-seconds 30] [--write inplace|rename] [--pin] [--cpu-prof DIR]
//
// --pin puts the control plane on CPU 1 and this process on CPU 0 (off by
// default: other benchmarks on a shared machine pin to the same CPUs).
// Noise shows as the control plane's run-queue wait (/proc/<pid>/schedstat,
// its main thread) in the per-repeat lines.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CA_SERVER_NAMESPACE, CA_SERVER_SERVICE_ACCOUNT } from '../src/api/identity-messages.ts';
import { parseProxyConfig } from '../src/api/proxy-config-schema.ts';
import { createCertificate } from '../src/identity/agent/ca-client.ts';
import { generateKeyAndCsr } from '../src/identity/agent/keys.ts';
import { ConfigClient } from '../src/proxy/config-client.ts';

const REPO = new URL('..', import.meta.url).pathname;
const TD = 'cluster.local';
const NS = 'bench';
const ROOT_NS = 'istio-system';
const CONTROL_ID = `spiffe://${TD}/ns/${CA_SERVER_NAMESPACE}/sa/${CA_SERVER_SERVICE_ACCOUNT}`;

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10,100,1000' },
    repeats: { type: 'string', default: '5' },
    'idle-seconds': { type: 'string', default: '30' },
    pin: { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    write: { type: 'string', default: 'inplace' },
  },
});
const SIZES = args.sizes.split(',').map(Number);
const REPEATS = Number(args.repeats);
const IDLE_SECONDS = Number(args['idle-seconds']);
const WRITE = args.write;
if (WRITE !== 'inplace' && WRITE !== 'rename') throw new Error('--write is inplace or rename');

// --- /proc ---------------------------------------------------------------------------

let CLK_TCK = 100;
try {
  CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
} catch {
  // USER_HZ is 100 nearly everywhere.
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

function statusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? NaN : Number(m[1]);
}

/** Resets VmHWM to the current RSS (Linux ≥ 4.0); false where not allowed. */
function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Nanoseconds the process's main thread has spent waiting for a CPU while runnable. */
function runQueueWaitMs(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e6;
}

const loadAverage = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

// --- the mesh --------------------------------------------------------------------------

const svc = (i: number): string => `svc-${i}`;
const principal = (i: number): string => `${TD}/ns/${NS}/sa/${svc(i)}`;

function meshYaml(n: number, listen: number, admin: number): string {
  // Ports are claimed in the file but never bound: the simulator opens no listener.
  const base = { admin: 10_000, app: 10_000 + n, local: 10_000 + 2 * n };
  const lines = [
    `trustDomain: ${TD}`,
    `rootNamespace: ${ROOT_NS}`,
    'policies: policies',
    `controlPlane: { listen: 127.0.0.1:${listen}, admin: 127.0.0.1:${admin} }`,
    'workloads:',
  ];
  for (let i = 0; i < n; i++) {
    const ups = n === 1 ? [] : [...new Set([(i + 1) % n, (i + 2) % n])].filter((u) => u !== i);
    lines.push(
      `  - name: ${svc(i)}`,
      `    namespace: ${NS}`,
      `    serviceAccount: ${svc(i)}`,
      `    labels: { app: ${svc(i)}, version: v1 }`,
      `    address: 127.1.${Math.floor(i / 250)}.${(i % 250) + 1}`,
      `    adminPort: ${base.admin + i}`,
      `    ports: [{ port: 8080, protocol: http, appPort: ${base.app + i} }]`,
      `    upstreams: [${ups.map((u, j) => `{ service: ${svc(u)}, port: 8080, localPort: ${base.local + 2 * i + j} }`).join(', ')}]`,
    );
  }
  return `${lines.join('\n')}\n`;
}

const PEER_AUTHN = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: ${ROOT_NS} }
spec:
  mtls: { mode: STRICT }
`;

/** Selector-less ALLOW in the root namespace: part of every proxy's config. */
function rootPolicy(rev: number): string {
  return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-metrics-scrape, namespace: ${ROOT_NS} }
spec:
  action: ALLOW
  rules:
    - to:
        - operation: { methods: [GET], paths: [/stats/prometheus, /rev/${rev}] }
`;
}

/** svc-i may be called by the two workloads that have it as an upstream. */
function workloadPolicy(i: number, n: number, rev: number): string {
  const callers = [...new Set([(i - 1 + n) % n, (i - 2 + n) % n])].filter((c) => c !== i);
  return `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ${svc(i)}, namespace: ${NS} }
spec:
  selector: { matchLabels: { app: ${svc(i)} } }
  action: ALLOW
  rules:
    - from:
        - source: { principals: [${callers.map(principal).join(', ')}] }
      to:
        - operation: { methods: [GET, POST], paths: ["/api/v1/*", /rev/${rev}] }
`;
}

async function freePort(avoid: ReadonlySet<number>): Promise<number> {
  for (;;) {
    const s = createServer().listen(0, '127.0.0.1');
    await once(s, 'listening');
    const port = (s.address() as { port: number }).port;
    await new Promise((r) => s.close(r));
    if (!avoid.has(port)) return port;
  }
}

// --- the control plane process ------------------------------------------------------------

interface ServerFile {
  pid: number;
  grpcAddress: string;
  adminAddress: string;
  adminToken: string;
}

interface ControlPlaneProcess {
  child: ChildProcess;
  pid: number;
  server: ServerFile;
  logFile: string;
}

const running = new Set<ChildProcess>();
const scratch = new Set<string>();

/** Last resort on exit or a signal: kill what is still running, remove the temporary directories. */
function killAll(): void {
  for (const c of running) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

async function startControlPlane(dir: string, pin: boolean, profDir: string | undefined): Promise<ControlPlaneProcess> {
  const logFile = join(dir, 'controlplane.log');
  const fd = openSync(logFile, 'w');
  const nodeArgs = profDir !== undefined ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [];
  const cmd = [process.execPath, ...nodeArgs, join(REPO, 'bin/meshward.js'), 'controlplane', '-f', join(dir, 'mesh.yaml'), '--state-dir', join(dir, 'state')];
  const child = pin ? spawn('taskset', ['-c', '1', ...cmd], { stdio: ['ignore', fd, fd] }) : spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  running.add(child);
  child.once('exit', () => running.delete(child));
  const file = join(dir, 'state', 'ca', 'server.json');
  const until = Date.now() + 60_000;
  while (!existsSync(file)) {
    if (child.exitCode !== null || Date.now() > until) {
      throw new Error(`the control plane did not start (exit ${child.exitCode}):\n${readFileSync(logFile, 'utf8').slice(-2000)}`);
    }
    await sleep(50);
  }
  const server = JSON.parse(readFileSync(file, 'utf8')) as ServerFile;
  // taskset execs the command: the pid is the control plane's.
  return { child, pid: child.pid!, server, logFile };
}

async function stopControlPlane(cp: ControlPlaneProcess): Promise<void> {
  if (cp.child.exitCode !== null || cp.child.signalCode !== null) return;
  const exited = once(cp.child, 'exit');
  cp.child.kill('SIGTERM');
  const timer = setTimeout(() => cp.child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

async function admin<T>(cp: ControlPlaneProcess, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const res = await fetch(`http://${cp.server.adminAddress}${path}`, {
    method,
    headers: method === 'POST' ? { authorization: `Bearer ${cp.server.adminToken}`, 'content-type': 'application/json' } : {},
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  if (res.status !== 200) throw new Error(`${method} ${path}: HTTP ${res.status} ${await res.text()}`);
  return (path === '/metrics' ? await res.text() : await res.json()) as T;
}

interface Metrics {
  pushes: number;
  connected: number;
  /** Cumulative bucket counts by upper bound, and _sum/_count. */
  buckets: Map<number, number>;
  sum: number;
  count: number;
}

function parseMetrics(text: string): Metrics {
  const m: Metrics = { pushes: 0, connected: 0, buckets: new Map(), sum: 0, count: 0 };
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.startsWith('pilot_xds_pushes{')) m.pushes += value;
    else if (line.startsWith('pilot_xds{')) m.connected = value;
    else if (line.startsWith('pilot_proxy_convergence_time_bucket{')) {
      const le = /le="([^"]+)"/.exec(line)![1]!;
      m.buckets.set(le === '+Inf' ? Infinity : Number(le), value);
    } else if (line.startsWith('pilot_proxy_convergence_time_sum')) m.sum = value;
    else if (line.startsWith('pilot_proxy_convergence_time_count')) m.count = value;
  }
  return m;
}

/** The histogram's quantile as the upper bound of the bucket it falls in, over the observations between two scrapes. */
function bucketQuantile(before: Metrics, after: Metrics, q: number): number {
  const count = after.count - before.count;
  if (count === 0) return NaN;
  for (const [le, c] of [...after.buckets].sort((a, b) => a[0] - b[0])) {
    if (c - (before.buckets.get(le) ?? 0) >= q * count) return le;
  }
  return Infinity;
}

// --- simulated proxies ------------------------------------------------------------------------

interface Sim {
  readonly index: number;
  readonly key: string;
  client: ConfigClient | undefined;
  /** performance.now() of every apply that returned ok, in order. */
  readonly applied: number[];
  reconnects: number;
}

let wake: (() => void) | undefined;

async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!pred()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 20);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}

async function pool<T>(items: readonly T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function connectAll(cp: ControlPlaneProcess, n: number): Promise<{ sims: Sim[]; certSeconds: number; connectSeconds: number }> {
  const sims: Sim[] = Array.from({ length: n }, (_, i) => ({ index: i, key: `${NS}/${svc(i)}`, client: undefined, applied: [], reconnects: 0 }));
  const creds: { keyPem: string; certChainPem: string; bundlePem: string }[] = [];
  const t0 = performance.now();
  await pool(sims, 16, async (s) => {
    const spiffeId = `spiffe://${TD}/ns/${NS}/sa/${svc(s.index)}`;
    const grant = await admin<{ token: string; caAddress: string; trustBundlePem: string }>(cp, 'POST', '/bootstrap-token', { spiffeId });
    const { keyPem, csrPem } = await generateKeyAndCsr(spiffeId);
    const chain = await createCertificate(
      { address: grant.caAddress, bundlePem: grant.trustBundlePem, caIdentity: CONTROL_ID, agentId: `bench-${s.index}`, timeoutMs: 30_000 },
      { kind: 'token', token: grant.token },
      { csrPem, ttlSeconds: 0, metadata: { WorkloadName: s.key } },
    );
    creds[s.index] = { keyPem, certChainPem: chain.map((c) => (c.endsWith('\n') ? c : `${c}\n`)).join(''), bundlePem: grant.trustBundlePem };
  });
  const certSeconds = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  // Connect in waves, as a fleet rolling out would; each wave waits for its first configs.
  for (let i = 0; i < n; i += 100) {
    const wave = sims.slice(i, i + 100);
    for (const s of wave) {
      s.client = new ConfigClient({
        address: cp.server.grpcAddress,
        controlPlaneIdentity: CONTROL_ID,
        workload: s.key,
        credentials: () => creds[s.index]!,
        apply: async (config, version) => {
          const r = parseProxyConfig(`push ${version}`, config);
          if ('diagnostics' in r) return { ok: false, error: r.diagnostics.map((d) => d.message).join('; ') };
          s.applied.push(performance.now());
          wake?.();
          return { ok: true };
        },
        log: (_level, event) => {
          if (event === 'config-stream-retry') s.reconnects++;
        },
      });
      s.client.start();
    }
    await until(() => wave.every((s) => s.applied.length > 0), 60_000, `first configs of proxies ${i}..${i + wave.length - 1}`);
  }
  return { sims, certSeconds, connectSeconds: (performance.now() - t1) / 1000 };
}

// --- measurement -------------------------------------------------------------------------------

const pct = (sorted: readonly number[], q: number): number => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? NaN;
const median = (xs: readonly number[]): number => pct([...xs].sort((a, b) => a - b), 0.5);

interface ChangeResult {
  p50: number;
  p99: number;
  max: number;
  first: number;
  /** Pushes after the write, by the simulator's count: to the proxies concerned, and to the others. */
  pushesConcerned: number;
  pushesOthers: number;
  serverPushes: number;
  serverP50: number;
  serverP99: number;
  serverMean: number;
  serverCount: number;
  cpuSeconds: number;
  /** Control plane CPU over the window write → last ACK, as % of one core. */
  busyPercent: number;
  /** This process (the simulator) over the same window, as % of one core. */
  simBusyPercent: number;
  peakRssMiB: number;
  /** The control plane's main thread waited this long for a CPU during the window (other load). */
  waitMs: number;
  acked: number;
}

/**
 * Replaces `file`'s content; returns performance.now() just before the
 * change. inplace: open with O_TRUNC and write, as most editors save;
 * rename: write beside the policy directory and rename over the file, as
 * `git checkout` and atomic savers do.
 */
function replaceFile(staging: string, file: string, text: string): number {
  if (WRITE === 'inplace') {
    const t0 = performance.now();
    writeFileSync(file, text);
    return t0;
  }
  const tmp = join(staging, `next-${process.pid}.yaml`);
  writeFileSync(tmp, text);
  const t0 = performance.now();
  renameSync(tmp, file);
  return t0;
}

interface Window {
  kind: 'a' | 'b' | 'idle';
  startUs: number;
  endUs: number;
}
const windows: Window[] = [];
const hrUs = (): number => Number(process.hrtime.bigint() / 1000n);

async function measureChange(
  cp: ControlPlaneProcess,
  sims: readonly Sim[],
  concerned: readonly Sim[],
  staging: string,
  file: string,
  text: string,
  record: 'a' | 'b' | undefined,
): Promise<ChangeResult> {
  const before = parseMetrics(await admin<string>(cp, 'GET', '/metrics'));
  const counts = sims.map((s) => s.applied.length);
  const hwm = resetPeakRss(cp.pid);
  const cpu0 = cpuSeconds(cp.pid);
  const wait0 = runQueueWaitMs(cp.pid);
  const sim0 = process.cpuUsage();
  const us0 = hrUs();
  const t0 = replaceFile(staging, file, text);
  await until(() => concerned.every((s) => s.applied.length > counts[s.index]!), 60_000, `${concerned.length} proxies to apply the change`);
  const tDone = performance.now();
  const cpu1 = cpuSeconds(cp.pid);
  const wait1 = runQueueWaitMs(cp.pid);
  const sim1 = process.cpuUsage(sim0);
  if (record !== undefined) windows.push({ kind: record, startUs: us0, endUs: hrUs() });
  const peakRssMiB = (hwm ? statusKb(cp.pid, 'VmHWM') : statusKb(cp.pid, 'VmRSS')) / 1024;
  // Let stragglers (pushes to proxies that should get none) arrive.
  let last = -1;
  for (;;) {
    await sleep(400);
    const total = sims.reduce((n, s) => n + s.applied.length, 0);
    if (total === last) break;
    last = total;
  }
  const cpu2 = cpuSeconds(cp.pid);
  const after = parseMetrics(await admin<string>(cp, 'GET', '/metrics'));
  const inScope = new Set(concerned.map((s) => s.index));
  const latencies = concerned.map((s) => s.applied[counts[s.index]!]! - t0).sort((a, b) => a - b);
  let pushesConcerned = 0;
  let pushesOthers = 0;
  for (const s of sims) {
    const extra = s.applied.length - counts[s.index]!;
    if (inScope.has(s.index)) pushesConcerned += extra;
    else pushesOthers += extra;
  }
  const status = await admin<{ controlPlane: { proxies: { pushedVersion: number; ackedVersion: number | null }[] } }>(cp, 'GET', '/status');
  const acked = status.controlPlane.proxies.filter((p) => p.ackedVersion === p.pushedVersion).length;
  const count = after.count - before.count;
  return {
    p50: pct(latencies, 0.5),
    p99: pct(latencies, 0.99),
    max: latencies[latencies.length - 1]!,
    first: latencies[0]!,
    pushesConcerned,
    pushesOthers,
    serverPushes: after.pushes - before.pushes,
    serverP50: bucketQuantile(before, after, 0.5),
    serverP99: bucketQuantile(before, after, 0.99),
    serverMean: count > 0 ? ((after.sum - before.sum) / count) * 1000 : NaN,
    serverCount: count,
    cpuSeconds: cpu2 - cpu0,
    busyPercent: ((cpu1 - cpu0) / ((tDone - t0) / 1000)) * 100,
    simBusyPercent: ((sim1.user + sim1.system) / 1e6 / ((tDone - t0) / 1000)) * 100,
    peakRssMiB,
    waitMs: wait1 - wait0,
    acked,
  };
}

interface SizeResult {
  n: number;
  all: ChangeResult[];
  one: ChangeResult[];
  idle: { cpuPercent: number; rssMiB: number; seconds: number };
  rssConnectedMiB: number;
  certSeconds: number;
  connectSeconds: number;
  reconnects: number;
  load: string;
}

async function runSize(n: number, pin: boolean, profDir: string | undefined): Promise<SizeResult> {
  const dir = mkdtempSync(join(tmpdir(), 'meshward-bench-conv-'));
  scratch.add(dir);
  let cp: ControlPlaneProcess | undefined;
  const sims: Sim[] = [];
  try {
    const policies = join(dir, 'policies');
    const staging = join(dir, 'staging');
    mkdirSync(join(policies, ROOT_NS), { recursive: true });
    mkdirSync(join(policies, NS));
    mkdirSync(staging);
    writeFileSync(join(policies, ROOT_NS, 'mesh-strict.yaml'), PEER_AUTHN);
    writeFileSync(join(policies, ROOT_NS, 'allow-metrics-scrape.yaml'), rootPolicy(0));
    for (let i = 0; i < n; i++) writeFileSync(join(policies, NS, `${svc(i)}.yaml`), workloadPolicy(i, n, 0));
    const listen = await freePort(new Set());
    const adminPort = await freePort(new Set([listen]));
    writeFileSync(join(dir, 'mesh.yaml'), meshYaml(n, listen, adminPort));

    cp = await startControlPlane(dir, pin, profDir);
    const c = await connectAll(cp, n);
    sims.push(...c.sims);
    await sleep(2000);
    const rssConnectedMiB = statusKb(cp.pid, 'VmRSS') / 1024;

    // Idle: connected, nothing changes.
    const record = n === Math.max(...SIZES);
    const cpuA = cpuSeconds(cp.pid);
    const tA = performance.now();
    const usA = hrUs();
    await sleep(IDLE_SECONDS * 1000);
    if (record) windows.push({ kind: 'idle', startUs: usA, endUs: hrUs() });
    const idle = {
      cpuPercent: ((cpuSeconds(cp.pid) - cpuA) / ((performance.now() - tA) / 1000)) * 100,
      rssMiB: statusKb(cp.pid, 'VmRSS') / 1024,
      seconds: IDLE_SECONDS,
    };

    const all: ChangeResult[] = [];
    const one: ChangeResult[] = [];
    for (let k = 1; k <= REPEATS; k++) {
      all.push(await measureChange(cp, sims, sims, staging, join(policies, ROOT_NS, 'allow-metrics-scrape.yaml'), rootPolicy(k), record ? 'a' : undefined));
      const target = (k * 7919) % n;
      one.push(await measureChange(cp, sims, [sims[target]!], staging, join(policies, NS, `${svc(target)}.yaml`), workloadPolicy(target, n, k), record ? 'b' : undefined));
      process.stderr.write(`  n=${n} repeat ${k}: all p99 ${all.at(-1)!.p99.toFixed(0)} ms, one ${one.at(-1)!.max.toFixed(0)} ms\n`);
    }
    return {
      n,
      all,
      one,
      idle,
      rssConnectedMiB,
      certSeconds: c.certSeconds,
      connectSeconds: c.connectSeconds,
      reconnects: sims.reduce((r, s) => r + s.reconnects, 0),
      load: loadAverage(),
    };
  } finally {
    await Promise.all(sims.map((s) => s.client?.stop()));
    if (cp !== undefined) await stopControlPlane(cp);
    rmSync(dir, { recursive: true, force: true });
    scratch.delete(dir);
  }
}

// --- the profile -----------------------------------------------------------------------------

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/**
 * Self time per function and inclusive time per function of src/, over the
 * samples that fall within `within` (the profile's clock is the monotonic
 * clock process.hrtime reads, in µs).
 */
function summarizeProfile(file: string, within: readonly Window[], top: number): string[] {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const name = (id: number): string => {
    const f = byId.get(id)!.callFrame;
    const where = f.url === '' ? '' : ` ${f.url.replace(`file://${REPO}`, '').replace(/^.*node_modules\//, '')}:${f.lineNumber + 1}`;
    return `${f.functionName || '(anonymous)'}${where}`;
  };
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let t = prof.startTime;
  let total = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = prof.timeDeltas[i] ?? 0;
    t += dt;
    if (!within.some((w) => t >= w.startUs && t <= w.endUs)) continue;
    const id = prof.samples[i]!;
    self.set(name(id), (self.get(name(id)) ?? 0) + dt);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const k = name(at);
      if (k.includes(' src/') && !seen.has(k)) {
        seen.add(k);
        inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
      }
    }
    total += dt;
  }
  const table = (m: Map<string, number>, n: number) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, us]) => `| ${(us / 1000).toFixed(0)} | ${((us / total) * 100).toFixed(1)} | \`${k}\` |`);
  return [
    `${(total / 1000).toFixed(0)} ms of samples in ${within.length} windows.`,
    '',
    '| self ms | % | function |',
    '|---:|---:|---|',
    ...table(self, top),
    '',
    '| inclusive ms | % | function (src/) |',
    '|---:|---:|---|',
    ...table(inclusive, 12),
  ];
}

// --- main ----------------------------------------------------------------------------------

const ms = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(0)} ms` : x === Infinity ? '> 30 s' : '—');
const le = (s: number): string => (Number.isFinite(s) ? `≤ ${s * 1000} ms` : s === Infinity ? '> 30 s' : '—');

async function main(): Promise<void> {
  const onPath = (cmd: string): boolean => {
    try {
      execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  };
  const pin = args.pin && cpus().length >= 2 && onPath('taskset');
  if (pin) execFileSync('taskset', ['-cp', '0', String(process.pid)], { stdio: 'ignore' });
  const nofile = Number(execFileSync('sh', ['-c', 'ulimit -n']).toString().trim());
  const biggest = Math.max(...SIZES);
  if (Number.isFinite(nofile) && nofile < biggest * 2 + 200) {
    throw new Error(`ulimit -n is ${nofile}: ${biggest} proxies need about ${biggest * 2 + 200} descriptors (one connection each, both ends here); raise it`);
  }
  const profDir = args['cpu-prof'] === undefined ? undefined : resolve(args['cpu-prof']);
  if (profDir !== undefined) mkdirSync(profDir, { recursive: true });

  const started = Date.now();
  console.log('# meshward control plane convergence\n');
  console.log(
    `Node ${process.version}, ${cpus().length} CPU (${cpus()[0]?.model ?? 'unknown'}), ${REPEATS} repeats per size, load average at start ${loadAverage()}.` +
      (pin ? ' Control plane pinned to CPU 1, simulator to CPU 0.' : ' Not pinned.') +
      (profDir !== undefined ? ` The control plane at ${biggest} proxies runs with --cpu-prof: its CPU figures include the profiler's cost.` : '') +
      ` Apply: parseProxyConfig (schema validation) of each push. Policy files rewritten ${WRITE === 'inplace' ? 'in place' : 'by rename'}.\n`,
  );
  const results: SizeResult[] = [];
  for (const n of SIZES) {
    process.stderr.write(`n=${n}: issuing certificates and connecting\n`);
    // Profile only the largest size: it is the one the target is about.
    results.push(await runSize(n, pin, n === biggest ? profDir : undefined));
  }

  console.log('## Time from the policy file write to the ACKs (simulator clock; median over repeats of each repeat\'s figure)\n');
  console.log('| proxies | change | proxies concerned | first ACK | p50 | p99 | max | worst repeat p99 | server histogram p50 / p99 bucket, mean | pushes to others (server) | control plane CPU per change |');
  console.log('|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|');
  for (const r of results) {
    for (const [label, rows, concerned] of [
      ['(a) root-namespace policy', r.all, r.n],
      ['(b) one workload\'s policy', r.one, 1],
    ] as const) {
      const m = (f: (c: ChangeResult) => number) => median(rows.map(f));
      const others = rows.map((c) => c.pushesOthers);
      const serverOthers = rows.map((c) => c.serverPushes - concerned);
      console.log(
        `| ${r.n} | ${label} | ${concerned} | ${ms(m((c) => c.first))} | ${ms(m((c) => c.p50))} | ${ms(m((c) => c.p99))} | ${ms(m((c) => c.max))} | ${ms(Math.max(...rows.map((c) => c.p99)))} | ` +
          `${le(m((c) => c.serverP50))} / ${le(m((c) => c.serverP99))}, ${ms(m((c) => c.serverMean))} | ` +
          `${Math.max(...others)} (${Math.max(...serverOthers)}) | ${(m((c) => c.cpuSeconds) * 1000).toFixed(0)} ms |`,
      );
    }
  }

  console.log('\n## Control plane process (RSS from /proc/<pid>/status, CPU from /proc/<pid>/stat)\n');
  console.log('| proxies | certificates issued in | connected in | RSS connected | idle CPU | idle RSS | CPU during (a), % of one core | simulator CPU during (a) | peak RSS during (a) | reconnects | load average after |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const r of results) {
    console.log(
      `| ${r.n} | ${r.certSeconds.toFixed(1)} s | ${r.connectSeconds.toFixed(1)} s | ${r.rssConnectedMiB.toFixed(0)} MiB | ${r.idle.cpuPercent.toFixed(1)} % (${r.idle.seconds} s) | ${r.idle.rssMiB.toFixed(0)} MiB | ` +
        `${median(r.all.map((c) => c.busyPercent)).toFixed(0)} % | ${median(r.all.map((c) => c.simBusyPercent)).toFixed(0)} % | ${Math.max(...r.all.map((c) => c.peakRssMiB)).toFixed(0)} MiB | ${r.reconnects} | ${r.load} |`,
    );
  }
  const bad = results.flatMap((r) => [...r.all, ...r.one].filter((c) => c.acked !== r.n).map(() => r.n));
  if (bad.length > 0) console.log(`\nWarning: after some changes not every proxy's ackedVersion equalled its pushedVersion in /status (sizes ${[...new Set(bad)].join(', ')}).`);

  console.log('\nPer repeat: p99 / max ms, control plane CPU ms, its run-queue wait ms; extra pushes to proxies concerned:');
  const rep = (c: ChangeResult, concerned: number) =>
    `${c.p99.toFixed(0)}/${c.max.toFixed(0)}, ${(c.cpuSeconds * 1000).toFixed(0)}, ${c.waitMs.toFixed(0)}${c.pushesConcerned > concerned ? `, +${c.pushesConcerned - concerned}` : ''}`;
  for (const r of results) {
    console.log(`- ${r.n} (a): ${r.all.map((c) => rep(c, r.n)).join(' | ')}`);
    console.log(`- ${r.n} (b): ${r.one.map((c) => rep(c, 1)).join(' | ')}`);
  }

  if (profDir !== undefined) {
    const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(profDir, f));
    const newest = files.sort().at(-1);
    if (newest !== undefined) {
      for (const kind of ['a', 'b', 'idle'] as const) {
        console.log(`\n## Control plane profile within the ${kind === 'idle' ? 'idle window' : `(${kind}) windows`} at ${biggest} proxies (${newest})\n`);
        console.log(summarizeProfile(newest, windows.filter((w) => w.kind === kind), 15).join('\n'));
      }
    }
  }
  console.log(`\nTotal ${((Date.now() - started) / 1000).toFixed(0)} s.`);
}

try {
  await main();
} finally {
  killAll();
}
