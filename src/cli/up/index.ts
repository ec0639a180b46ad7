// `meshward up [-f mesh.yaml]`: the whole local mesh in the foreground — the
// control plane, the proxies (one node proxy for all by default, or one per
// workload with --sidecars), the gateway, the apps and the mesh file's other
// processes, all supervised. It prints the status table and the mesh file's
// tour once everything is ready; Ctrl-C stops apps, then proxies, then the
// control plane, and leaves nothing running.
//
// <state>/up.json names the running `up` (for `meshward down`), <state>/logs
// holds every process's output, <state>/ca the CA, <state>/gateway the
// gateway's external certificate.

import { readFileSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import type { MeshFile } from '../../api/mesh-file.ts';
import { upstreamEnvName } from '../../api/mesh-file.ts';
import { findLiveServer } from '../ca-server-file.ts';
import { EXIT_OK, EXIT_USAGE } from '../io.ts';
import { caDirOf, readMesh } from '../mesh-common.ts';
import { untilSignal } from '../signals.ts';
import { collectMeshStatus, renderMeshStatus } from './mesh-status.ts';
import { formatForTerminal, isAccessLogLine, rateLimitedRequests } from './show.ts';
import { Supervisor, type ChildSpec, type Supervised } from './supervisor.ts';
import { processAlive } from '../../lib/process.ts';
import { nodeFlagsFor } from '../../lib/proxy-node-flags.ts';
import { packageFile } from '../../lib/installation.ts';
import { freshBundleEntry } from '../../lib/bundle-manifest.ts';

export interface UpOptions {
  filename: string;
  stateDir: string;
  sidecars?: boolean;
  /** Node proxy processes to spread the workloads over (node-proxy mode); default 1. */
  proxyProcesses?: number;
  /** How long to wait for everything to be ready; default 60 s. */
  readyTimeoutMs?: number;
}

export interface UpFile {
  pid: number;
  meshFile: string;
  stateDir: string;
  startedAt: string;
}

const BIN = packageFile('bin', 'meshward.js');
export const upFilePath = (stateDir: string): string => join(resolve(stateDir), 'up.json');


export function readUpFile(stateDir: string): UpFile | undefined {
  try {
    const f = JSON.parse(readFileSync(upFilePath(stateDir), 'utf8')) as UpFile;
    return Number.isSafeInteger(f.pid) && processAlive(f.pid) ? f : undefined;
  } catch {
    return undefined;
  }
}

/** `node` in a mesh file means this Node (the pinned one), not whatever is first on PATH. */
function commandOf(argv: readonly string[]): { command: string; args: string[] } {
  const [first, ...rest] = argv;
  return first === 'node' ? { command: process.execPath, args: rest } : { command: first!, args: rest };
}

/**
 * What `meshward` children run: the bundle, when this process found it
 * built from the sources as they are (once, so every child of one `up`
 * runs the same build, restarts included), else the launcher. Started on
 * the bundle directly, a proxy does not repeat the launcher's check in its
 * own process (src/lib/bundle-manifest.ts).
 */
let childEntry: string | undefined;
const meshwardEntry = (): string => (childEntry ??= freshBundleEntry() ?? BIN);

/** A `meshward` child; proxies get their Node flags here rather than from the launcher's relaunch (one Node start-up less each). */
function meshward(name: string, args: readonly string[], cwd: string): ChildSpec {
  const env = { ...process.env };
  return { name, command: process.execPath, args: [...nodeFlagsFor(args[0], [], env.NODE_OPTIONS), meshwardEntry(), ...args], cwd, env };
}

function appSpecs(mesh: MeshFile): ChildSpec[] {
  const specs: ChildSpec[] = [];
  for (const w of mesh.workloads) {
    if (w.command === undefined) continue;
    const env: NodeJS.ProcessEnv = { ...process.env, WORKLOAD_NAME: w.name, PORT: String(w.ports[0]!.appPort) };
    for (const p of w.ports) env[`APP_PORT_${p.port}`] = String(p.appPort);
    for (const u of w.upstreams) env[upstreamEnvName(u.service)] = `http://127.0.0.1:${u.localPort}`;
    Object.assign(env, w.env);
    specs.push({ name: w.name, ...commandOf(w.command), cwd: mesh.dir, env });
  }
  for (const p of mesh.processes) specs.push({ name: p.name, ...commandOf(p.command), cwd: mesh.dir, env: { ...process.env, ...p.env } });
  return specs;
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, aborted: () => string | undefined): Promise<true | string> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const stop = aborted();
    if (stop !== undefined) return stop;
    if (await check()) return true;
    if (Date.now() > until) return 'timed out';
    await new Promise((r) => setTimeout(r, 200));
  }
}

function tour(mesh: MeshFile, stateDir: string): string {
  if (mesh.tour.length === 0) return '';
  const shownState = relative(process.cwd(), resolve(stateDir)) || '.';
  const lines = ['Try it (in another terminal, from this directory):', ''];
  mesh.tour.forEach((step, i) => {
    lines.push(`${i + 1}. ${step.title}`);
    for (const c of step.commands) lines.push(`     ${c.replaceAll('{stateDir}', shownState)}`);
    lines.push('');
  });
  return lines.join('\n');
}

export async function runUp(opts: UpOptions): Promise<number> {
  const mesh = readMesh(opts.filename);
  if (mesh === undefined) return EXIT_USAGE;
  const stateDir = resolve(opts.stateDir);
  const running = readUpFile(stateDir);
  if (running !== undefined) {
    process.stderr.write(`meshward: a mesh is already running on ${stateDir} (pid ${running.pid}); stop it with \`meshward down\`\n`);
    return EXIT_USAGE;
  }
  if ((await findLiveServer(caDirOf(stateDir))) !== null) {
    process.stderr.write(`meshward: a control plane is already running on ${caDirOf(stateDir)}; stop it first\n`);
    return EXIT_USAGE;
  }
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const { signalled, release } = untilSignal();
  let signal: string | undefined;
  void signalled.then((s) => (signal = s));

  const say = (text: string): void => void process.stdout.write(`${text}\n`);
  const logDir = join(stateDir, 'logs');
  const requests = rateLimitedRequests(say, relative(process.cwd(), logDir) || logDir);
  const sup = new Supervisor({
    logDir,
    show: (name, line) => {
      if (isAccessLogLine(line)) {
        requests.request(() => formatForTerminal(name, line));
        return;
      }
      const shown = formatForTerminal(name, line);
      if (shown !== undefined) say(shown);
    },
    event: (name, message) => say(`[meshward] ${name} ${message}`),
  });
  const common = ['-f', mesh.file, '--state-dir', stateDir];
  const controlPlane = sup.start(meshward('controlplane', ['controlplane', ...common], process.cwd()));
  const proxies: Supervised[] = [];
  const apps: Supervised[] = [];
  const stop = async (code: number): Promise<number> => {
    release();
    say('[meshward] stopping: apps, then proxies, then the control plane');
    await sup.stopAll([apps, proxies, [controlPlane]]);
    requests.stop();
    await rm(upFilePath(stateDir), { force: true });
    say('[meshward] stopped');
    return code;
  };

  say(`[meshward] starting the mesh of ${relative(process.cwd(), mesh.file)} (state in ${relative(process.cwd(), stateDir) || '.'})`);
  // A control plane that exits while starting has said why (invalid policy,
  // a port in use); restarting it would only say it again.
  const cpUp = await waitUntil(
    async () => (await findLiveServer(caDirOf(stateDir))) !== null,
    opts.readyTimeoutMs ?? 60_000,
    () => signal ?? (controlPlane.restarts > 0 ? 'the control plane exited while starting (see above)' : undefined),
  );
  if (cpUp !== true) {
    process.stderr.write(`meshward: ${cpUp}\n`);
    return stop(EXIT_USAGE);
  }
  await writeFile(upFilePath(stateDir), `${JSON.stringify({ pid: process.pid, meshFile: mesh.file, stateDir, startedAt: new Date().toISOString() } satisfies UpFile, null, 2)}\n`, { mode: 0o600 });

  if (opts.sidecars === true) {
    for (const w of mesh.workloads) proxies.push(sup.start(meshward(`${w.name}-proxy`, ['node-proxy', ...common, '--workload', w.name], process.cwd())));
    if (mesh.gateway) proxies.push(sup.start(meshward(mesh.gateway.name, ['gateway', ...common], process.cwd())));
  } else {
    // Workloads dealt round-robin over the node proxies; the gateway goes with the first.
    const n = Math.max(1, Math.min(opts.proxyProcesses ?? 1, mesh.workloads.length));
    if (n === 1) proxies.push(sup.start(meshward('node-proxy', ['node-proxy', ...common], process.cwd())));
    else {
      for (let i = 0; i < n; i++) {
        const names = mesh.workloads.filter((_, j) => j % n === i).map((w) => w.name);
        if (i === 0 && mesh.gateway) names.push(mesh.gateway.name);
        proxies.push(sup.start(meshward(`node-proxy-${i + 1}`, ['node-proxy', ...common, ...names.flatMap((w) => ['--workload', w])], process.cwd())));
      }
    }
  }
  for (const spec of appSpecs(mesh)) apps.push(sup.start(spec));

  const ready = await waitUntil(
    async () => {
      const s = await collectMeshStatus(mesh, stateDir);
      return s.workloads.every((w) => w.ready) && (s.gateway?.ready ?? true);
    },
    opts.readyTimeoutMs ?? 60_000,
    () => signal,
  );
  if (signal !== undefined) return stop(EXIT_OK);
  const status = await collectMeshStatus(mesh, stateDir);
  say('');
  say(renderMeshStatus(status));
  if (ready !== true) say(`[meshward] not everything is ready (${ready}); see ${join(relative(process.cwd(), stateDir) || '.', 'logs')}/`);
  else {
    const t = tour(mesh, stateDir);
    if (t !== '') say(t);
    say('The mesh is up. Ctrl-C stops it (or `npm run -s meshward -- down` from another terminal).');
  }
  await signalled;
  return stop(EXIT_OK);
}

