// The control plane in one object (istiod's job in local mode): the CA and
// its server, the service registry, the watched policy directory, and the
// config stream to every proxy — CA and config on one gRPC listener, status
// and metrics on one admin listener.
//
//   const cp = await ControlPlane.start({ mesh, stateDir: '.meshward' });
//   cp.status();            // policy generation, invalid files, proxies and their ACKs
//   await cp.stop();

import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Registry } from '../lib/prometheus.ts';
import type { Diagnostic } from '../api/diagnostics.ts';
import { formatDiagnostic } from '../api/diagnostics.ts';
import type { MeshFile } from '../api/mesh-file.ts';
import { CertificateAuthority, type CaLogEntry } from '../identity/ca/index.ts';
import { ensureGatewayCertificate, type GatewayCertificate } from '../identity/gateway-cert.ts';
import { CaAdmin, CaServer, type CaServerLogEntry } from './ca-server/index.ts';
import { ConfigDistributor, type ProxyStreamStatus } from './config/distributor.ts';
import { createConfigMetrics } from './config/metrics.ts';
import { PolicyStore, type PolicyRejection } from './config/policy-store.ts';
import { ServiceRegistry } from './config/registry.ts';

export type ControlPlaneLog = (level: 'debug' | 'info' | 'warn' | 'error', event: string, fields: Readonly<Record<string, unknown>>) => void;

export interface ControlPlaneOptions {
  readonly mesh: MeshFile;
  /** Holds ca/ (the CA's state) and gateway/ (the gateway's server certificate). */
  readonly stateDir: string;
  readonly log?: ControlPlaneLog;
  /** Override the mesh file's listeners (tests, benchmarks): `host:port`, port 0 for any. */
  readonly listen?: string;
  readonly admin?: string;
  /** Debounce of policy file events; default 50 ms. */
  readonly debounceMs?: number;
}

export interface ControlPlaneStatus {
  trustDomain: string;
  policy: {
    dir: string;
    version: number;
    files: readonly string[];
    /** The latest load failed: these problems, and the version above is still in force. */
    invalid: { at: string; errors: readonly string[] } | null;
    reloads: { applied: number; rejected: number };
  };
  proxies: ProxyStreamStatus[];
  registry: { workload: string; spiffeId: string; kind: string; dynamic: boolean }[];
  gatewayCertificate: { caFile: string; notAfter: string } | null;
}

export class ControlPlaneStartError extends Error {
  readonly diagnostics: readonly Diagnostic[];
  constructor(message: string, diagnostics: readonly Diagnostic[] = []) {
    super(message);
    this.name = 'ControlPlaneStartError';
    this.diagnostics = diagnostics;
  }
}

function split(hostPort: string): { host: string; port: number } {
  const i = hostPort.lastIndexOf(':');
  return { host: hostPort.slice(0, i), port: Number(hostPort.slice(i + 1)) };
}

export class ControlPlane {
  readonly registry: Registry;
  readonly ca: CertificateAuthority;
  readonly caServer: CaServer;
  readonly admin: CaAdmin;
  /** Bearer token of the admin listener's POST routes (bootstrap tokens, root rotation). */
  readonly adminToken: string;
  readonly #store: PolicyStore;
  readonly #distributor: ConfigDistributor;
  readonly #services: ServiceRegistry;
  readonly #gateway: GatewayCertificate | undefined;
  readonly #mesh: MeshFile;

  private constructor(parts: {
    registry: Registry;
    ca: CertificateAuthority;
    caServer: CaServer;
    admin: CaAdmin;
    adminToken: string;
    store: PolicyStore;
    distributor: ConfigDistributor;
    services: ServiceRegistry;
    gateway: GatewayCertificate | undefined;
    mesh: MeshFile;
  }) {
    this.registry = parts.registry;
    this.ca = parts.ca;
    this.caServer = parts.caServer;
    this.admin = parts.admin;
    this.adminToken = parts.adminToken;
    this.#store = parts.store;
    this.#distributor = parts.distributor;
    this.#services = parts.services;
    this.#gateway = parts.gateway;
    this.#mesh = parts.mesh;
  }

  static async start(opts: ControlPlaneOptions): Promise<ControlPlane> {
    const { mesh } = opts;
    const log: ControlPlaneLog = opts.log ?? (() => {});
    const registry = new Registry();
    // Made below, after the store it reads from; the callbacks run only later.
    const late: { distributor?: ConfigDistributor; cp?: ControlPlane } = {};
    const metrics = createConfigMetrics(registry, () => late.distributor?.connected ?? 0);

    const opened = PolicyStore.open({
      dir: mesh.policyDir,
      ...(opts.debounceMs !== undefined ? { debounceMs: opts.debounceMs } : {}),
      onGeneration: (g) => {
        metrics.reload('applied');
        metrics.setInvalid(false);
        log('info', 'policy-applied', { version: g.version, files: g.files.length });
        late.distributor?.changed(g.seenAt);
      },
      onRejected: (r: PolicyRejection) => {
        metrics.reload('rejected');
        metrics.setInvalid(true);
        log('error', 'policy-rejected', { errors: r.diagnostics.map(formatDiagnostic), kept: 'the last good config stays in force' });
      },
    });
    if ('diagnostics' in opened) throw new ControlPlaneStartError(`the policy in ${mesh.policyDir} is invalid`, opened.diagnostics);
    const store = opened;

    const caLog = (e: CaLogEntry): void => {
      if (e.level !== 'info') log(e.level, e.event, { message: e.message, ...e.fields });
    };
    const ca = await CertificateAuthority.open({ stateDir: join(opts.stateDir, 'ca'), trustDomain: mesh.trustDomain, registry, log: caLog });
    if (ca.trustDomain !== mesh.trustDomain) {
      await ca.close();
      throw new ControlPlaneStartError(`the CA in ${join(opts.stateDir, 'ca')} is for trust domain ${ca.trustDomain}, the mesh file says ${mesh.trustDomain}`);
    }
    let gateway: GatewayCertificate | undefined;
    if (mesh.gateway !== undefined) {
      gateway = await ensureGatewayCertificate(join(opts.stateDir, 'gateway'), { dns: ['localhost'], ips: [split(mesh.gateway.listen).host] });
    }
    const services = new ServiceRegistry(mesh);
    const distributor = new ConfigDistributor({
      build: {
        trustDomain: mesh.trustDomain,
        rootNamespace: mesh.rootNamespace,
        registry: services,
        ...(gateway !== undefined ? { gatewayTls: { certFile: gateway.certFile, keyFile: gateway.keyFile } } : {}),
      },
      registry: services,
      generation: () => store.current,
      metrics,
      log,
    });
    late.distributor = distributor;
    const serverLog = (e: CaServerLogEntry): void => {
      if (e.level !== 'debug') log(e.level, e.event, e.fields);
    };
    const grpcAt = split(opts.listen ?? mesh.controlPlane.listen);
    const adminAt = split(opts.admin ?? mesh.controlPlane.admin);
    const adminToken = randomBytes(32).toString('base64url');
    let caServer: CaServer | undefined;
    try {
      caServer = await CaServer.start({ ca, host: grpcAt.host, port: grpcAt.port, registry, log: serverLog, services: (s) => [distributor.service(s)] });
      const admin = await CaAdmin.start({
        server: caServer,
        ca,
        registry,
        host: adminAt.host,
        port: adminAt.port,
        token: adminToken,
        log: serverLog,
        extraStatus: () => late.cp?.status(),
      });
      const cp = new ControlPlane({ registry, ca, caServer, admin, adminToken, store, distributor, services, gateway, mesh });
      late.cp = cp;
      store.watch();
      return cp;
    } catch (err) {
      await caServer?.stop();
      await ca.close();
      throw err;
    }
  }

  status(): ControlPlaneStatus {
    const g = this.#store.current;
    const bad = this.#store.rejected;
    return {
      trustDomain: this.#mesh.trustDomain,
      policy: {
        dir: this.#store.dir,
        version: g.version,
        files: g.files,
        invalid: bad === undefined ? null : { at: new Date(bad.at).toISOString(), errors: bad.diagnostics.map(formatDiagnostic) },
        reloads: { ...this.#store.reloads },
      },
      proxies: this.#distributor.status(),
      registry: this.#services.all().map((w) => ({ workload: w.key, spiffeId: w.spiffeId, kind: w.kind, dynamic: w.dynamic })),
      gatewayCertificate: this.#gateway === undefined ? null : { caFile: this.#gateway.caFile, notAfter: this.#gateway.notAfter.toISOString() },
    };
  }

  /** Loads the policy directory now (what a file change leads to). */
  reloadPolicy(): void {
    this.#store.reload();
  }

  async stop(): Promise<void> {
    this.#store.close();
    this.#distributor.close();
    await this.admin.stop();
    await this.caServer.stop();
    await this.ca.close();
  }
}
