// The running mesh as `meshward status -o json` reports it — a stable,
// documented shape (docs/mesh-file.md, "meshward status") that scripts and
// the dashboard read: per workload its identity, ports and their mTLS mode,
// upstream ports, admin port, certificate and readiness, asked of each
// proxy's admin API; the control plane's view (policy version, invalid
// policy, ACKs and NACKs) from its admin endpoint.

import type { MeshFile } from '../../api/mesh-file.ts';
import { meshIdentity } from '../../api/mesh-file.ts';
import type { CaAdminStatus } from '../../control/ca-server/index.ts';
import type { ControlPlaneStatus } from '../../control/control-plane.ts';
import type { ProxyStatus } from '../../proxy/proxy.ts';
import { findLiveServer } from '../ca-server-file.ts';
import { caDirOf } from '../mesh-common.ts';

export interface WorkloadStatus {
  name: string;
  namespace: string;
  kind: 'workload' | 'gateway';
  spiffeId: string;
  /** Loopback IP its inbound ports listen on. */
  address: string;
  /** First app port (where the app listens on 127.0.0.1). */
  appPort: number | null;
  inbound: { port: number; protocol: string; appPort: number; mtlsMode: string | null }[];
  upstreams: { service: string; port: number; localPort: number }[];
  adminPort: number;
  ready: boolean;
  certificate: { serial: string; notAfter: string } | null;
  configVersion: number | null;
  /** The control plane's view of this proxy's config stream. */
  controlPlane: { connected: boolean; ackedVersion: number | null; nack: string | null };
}

export interface MeshStatus {
  meshFile: string;
  trustDomain: string;
  controlPlane: {
    running: boolean;
    grpcAddress: string | null;
    adminAddress: string | null;
    policyVersion: number | null;
    invalidPolicy: readonly string[] | null;
    connectedProxies: number;
  };
  workloads: WorkloadStatus[];
  gateway: {
    name: string;
    namespace: string;
    spiffeId: string;
    /** Where external clients connect (TLS). */
    address: string;
    /** The CA external clients trust the gateway's certificate with (`curl --cacert`). */
    caFile: string | null;
    adminPort: number;
    ready: boolean;
    certificate: { serial: string; notAfter: string } | null;
    route: { service: string; port: number };
  } | null;
}

const TIMEOUT_MS = 1500;

async function proxyStatus(adminPort: number): Promise<{ ready: boolean; status: ProxyStatus | null }> {
  try {
    const ready = await fetch(`http://127.0.0.1:${adminPort}/ready`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    await ready.text();
    const st = await fetch(`http://127.0.0.1:${adminPort}/status`, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    return { ready: ready.status === 200, status: st.status === 200 ? ((await st.json()) as ProxyStatus) : null };
  } catch {
    return { ready: false, status: null };
  }
}

export async function collectMeshStatus(mesh: MeshFile, stateDir: string): Promise<MeshStatus> {
  const live = await findLiveServer(caDirOf(stateDir));
  const cp = (live?.status as (CaAdminStatus & { controlPlane?: ControlPlaneStatus }) | undefined)?.controlPlane;
  const streams = new Map((cp?.proxies ?? []).map((p) => [p.workload, p]));
  const entries = [
    ...mesh.workloads.map((w) => ({ kind: 'workload' as const, w, ports: w.ports, upstreams: w.upstreams, address: w.address })),
    ...(mesh.gateway ? [{ kind: 'gateway' as const, w: mesh.gateway, ports: [], upstreams: [mesh.gateway.route], address: mesh.gateway.listen.split(':')[0]! }] : []),
  ];
  const workloads = await Promise.all(
    entries.map(async ({ kind, w, ports, upstreams, address }): Promise<WorkloadStatus> => {
      const p = await proxyStatus(w.adminPort);
      const modes = new Map((p.status?.inbound ?? []).map((i) => [i.port, i.mode]));
      const stream = streams.get(`${w.namespace}/${w.name}`);
      const inbound =
        kind === 'gateway'
          ? (p.status?.inbound ?? []).map((i) => ({ port: i.port, protocol: 'https', appPort: upstreams[0]!.localPort, mtlsMode: null }))
          : ports.map((port) => ({ port: port.port, protocol: port.protocol, appPort: port.appPort, mtlsMode: modes.get(port.port) ?? null }));
      return {
        name: w.name,
        namespace: w.namespace,
        kind,
        spiffeId: meshIdentity(mesh, w),
        address,
        appPort: ports[0]?.appPort ?? null,
        inbound,
        upstreams: upstreams.map((u) => ({ service: u.service, port: u.port, localPort: u.localPort })),
        adminPort: w.adminPort,
        ready: p.ready,
        certificate: p.status ? { serial: p.status.certificate.serial, notAfter: p.status.certificate.notAfter } : null,
        configVersion: p.status?.version ?? null,
        controlPlane: { connected: stream !== undefined, ackedVersion: stream?.ackedVersion ?? null, nack: stream?.nack?.error ?? null },
      };
    }),
  );
  const gw = workloads.find((w) => w.kind === 'gateway');
  return {
    meshFile: mesh.file,
    trustDomain: mesh.trustDomain,
    controlPlane: {
      running: live !== null,
      grpcAddress: live?.file.grpcAddress ?? null,
      adminAddress: live?.file.adminAddress ?? null,
      policyVersion: cp?.policy.version ?? null,
      invalidPolicy: cp?.policy.invalid?.errors ?? null,
      connectedProxies: cp?.proxies.length ?? 0,
    },
    workloads: workloads.filter((w) => w.kind === 'workload'),
    gateway:
      mesh.gateway && gw
        ? {
            name: gw.name,
            namespace: gw.namespace,
            spiffeId: gw.spiffeId,
            address: `https://${mesh.gateway.listen}`,
            caFile: cp?.gatewayCertificate?.caFile ?? null,
            adminPort: gw.adminPort,
            ready: gw.ready,
            certificate: gw.certificate,
            route: { service: mesh.gateway.route.service, port: mesh.gateway.route.port },
          }
        : null,
  };
}

function expiry(notAfter: string, now: number): string {
  const ms = Date.parse(notAfter) - now;
  if (ms <= 0) return 'EXPIRED';
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m`;
}

/** The status as a table for people. */
export function renderMeshStatus(s: MeshStatus, now = Date.now()): string {
  const rows = [['WORKLOAD', 'IDENTITY', 'PORTS (mTLS)', 'UPSTREAMS', 'CERT EXPIRES', 'READY']];
  for (const w of s.workloads) {
    rows.push([
      `${w.namespace}/${w.name}`,
      w.spiffeId,
      w.inbound.map((i) => `${w.address}:${i.port} ${i.mtlsMode ?? '?'}`).join(', '),
      w.upstreams.map((u) => `${u.service}→:${u.localPort}`).join(', ') || '-',
      w.certificate ? expiry(w.certificate.notAfter, now) : '-',
      w.ready ? 'yes' : 'NO',
    ]);
  }
  const g = s.gateway;
  if (g !== null) {
    rows.push([`${g.namespace}/${g.name}`, g.spiffeId, `${g.address} TLS`, `${g.route.service}:${g.route.port}`, g.certificate ? expiry(g.certificate.notAfter, now) : '-', g.ready ? 'yes' : 'NO']);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
  const cp = s.controlPlane;
  const head = cp.running
    ? `control plane ${cp.grpcAddress} (admin http://${cp.adminAddress}): ${cp.connectedProxies} proxies connected, policy version ${cp.policyVersion}`
    : 'control plane: NOT RUNNING (proxies keep their last config and certificates)';
  const invalid = cp.invalidPolicy ? [`policy REFUSED (the last good policy stays in force):`, ...cp.invalidPolicy.map((e) => `  ${e}`)] : [];
  return [head, ...invalid, '', ...lines, ''].join('\n');
}
