// `meshward node-proxy -f mesh.yaml [--workload NAME ...]`: the proxies of
// several workloads in one process (node-proxy mode, as ztunnel runs one
// proxy per node), each with its own identity, listeners and config stream.
// Without --workload it hosts every workload of the mesh file and the
// gateway; `meshward gateway` is this command for the gateway alone, and
// `meshward up --sidecars` runs one per workload.
//
// Identities come from the control plane found through <state>/ca/server.json:
// a single-use bootstrap token per workload from its admin endpoint, then a
// key in memory and certificates renewed over mTLS.

import type { MeshFile } from '../api/mesh-file.ts';
import { meshIdentity } from '../api/mesh-file.ts';
import type { BootstrapTokenGrant } from '../control/ca-server/index.ts';
import { trimMemoryWhenIdle } from '../lib/memory-trim.ts';
import { ManagedProxy } from '../proxy/managed-proxy.ts';
import { callAdmin, findLiveServer, type LiveServer } from './ca-server-file.ts';
import { EXIT_OK, EXIT_USAGE } from './io.ts';
import { caDirOf, jsonLog, readMesh } from './mesh-common.ts';
import { untilSignal } from './signals.ts';
import { RUNNING_FROM } from '../lib/installation.ts';

export interface NodeProxyOptions {
  filename: string;
  stateDir: string;
  workload: string[];
  /** How long to wait for the control plane to answer; default 30 s. */
  waitMs?: number;
}

interface Hosted {
  readonly key: string;
  readonly name: string;
  readonly spiffeId: string;
}

function hostedOf(mesh: MeshFile, only: readonly string[]): Hosted[] | string {
  const all: Hosted[] = mesh.workloads.map((w) => ({ key: `${w.namespace}/${w.name}`, name: w.name, spiffeId: meshIdentity(mesh, w) }));
  const g = mesh.gateway;
  if (g !== undefined) all.push({ key: `${g.namespace}/${g.name}`, name: g.name, spiffeId: meshIdentity(mesh, g) });
  if (only.length === 0) return all;
  const unknown = only.filter((n) => !all.some((h) => h.name === n || h.key === n));
  if (unknown.length > 0) return `no workload or gateway named ${unknown.join(', ')} in ${mesh.file}`;
  return all.filter((h) => only.includes(h.name) || only.includes(h.key));
}

async function waitForControlPlane(caDir: string, waitMs: number): Promise<LiveServer | null> {
  const until = Date.now() + waitMs;
  for (;;) {
    const live = await findLiveServer(caDir);
    if (live !== null || Date.now() > until) return live;
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function grant(caDir: string, spiffeId: string): Promise<BootstrapTokenGrant> {
  const live = await findLiveServer(caDir);
  if (live === null) throw new Error(`no control plane is running on ${caDir}`);
  const reply = await callAdmin(live.file, 'POST', '/bootstrap-token', { spiffeId });
  if (reply.status !== 200) throw new Error(`bootstrap token for ${spiffeId}: HTTP ${reply.status}`);
  return reply.body as BootstrapTokenGrant;
}

export async function runNodeProxy(opts: NodeProxyOptions): Promise<number> {
  const mesh = readMesh(opts.filename);
  if (mesh === undefined) return EXIT_USAGE;
  const hosted = hostedOf(mesh, opts.workload);
  if (typeof hosted === 'string') {
    process.stderr.write(`meshward: ${hosted}\n`);
    return EXIT_USAGE;
  }
  const log = jsonLog('node-proxy');
  const { signalled, release } = untilSignal();
  const caDir = caDirOf(opts.stateDir);
  const live = await waitForControlPlane(caDir, opts.waitMs ?? 30_000);
  if (live === null) {
    release();
    process.stderr.write(`meshward: no control plane answers on ${caDir}/server.json; start it with \`meshward controlplane -f ${opts.filename}\`\n`);
    return EXIT_USAGE;
  }
  const proxies: ManagedProxy[] = [];
  const started = Promise.all(
    hosted.map(async (h) => {
      const first = await grant(caDir, h.spiffeId);
      const p = await ManagedProxy.start({
        workload: h.key,
        spiffeId: h.spiffeId,
        trustDomain: mesh.trustDomain,
        controlPlane: first.caAddress,
        trustBundlePem: first.trustBundlePem,
        // Needed again only if the certificate expired while the control plane was away.
        bootstrapToken: async () => (await grant(caDir, h.spiffeId)).token,
        log: (level, event, fields) => log(level, event, { workload: h.key, ...fields }),
      }).catch((err: unknown) => {
        throw new Error(`${h.key}: ${(err as Error).message}`);
      });
      // The token above was single-use and is spent; later ones are minted on demand.
      proxies.push(p);
      const st = p.status().proxy;
      log('info', 'proxy-started', { workload: h.key, spiffeId: h.spiffeId, adminPort: st?.adminPort, inbound: st?.inbound.map((i) => `${i.port}:${i.mode}`), runningFrom: RUNNING_FROM });
    }),
  );
  const outcome = await Promise.race([started.then(() => 'started' as const, (err: unknown) => err as Error), signalled]);
  if (outcome instanceof Error) {
    release();
    process.stderr.write(`meshward: ${outcome.message}\n`);
    await Promise.all(proxies.map((p) => p.stop()));
    return EXIT_USAGE;
  }
  const stopTrim = trimMemoryWhenIdle();
  const sig = outcome === 'started' ? await signalled : outcome;
  stopTrim();
  log('info', 'node-proxy-stopping', { signal: sig });
  await Promise.all(proxies.map((p) => p.stop()));
  return EXIT_OK;
}
