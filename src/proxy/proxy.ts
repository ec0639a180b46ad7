// A workload's proxy as an object: its identity, its inbound listeners, its
// outbound router (what the app dials to reach other services), its admin API
// and the policy in force. Several can live in one process, each
// with its own identity and ports. The policy is held as one snapshot and
// replaced whole by `update`; connections and requests keep the snapshot
// they began with.

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { http } from '../lib/node-http.ts';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import type { Server } from 'node:http';
import type { Diagnostic } from '../api/diagnostics.ts';
import { loadResourcesWith } from '../api/load.ts';
import { DEFAULT_MESH_CONFIG, type MeshConfig } from '../api/mesh-config.ts';
import type { PortProtocol, ProxyConfig } from '../api/proxy-config.ts';
import { parseProxyConfig } from '../api/proxy-config-schema.ts';
import { PolicyEngine } from '../policy/engine.ts';
import { defaultJwksResolver, type JwksResolver } from '../policy/authn/remote-jwks.ts';
import type { MtlsMaterial } from '../identity/tls-options.ts';
import { trustBundleFromPem } from '../identity/trust-bundle.ts';
import type { WorkloadAgent, AgentSnapshot } from '../identity/agent/index.ts';
import { stderrAccessLog, type AccessLogSink } from './access-log.ts';
import { createProxyMetrics, type ProxyMetrics } from './admin/metrics.ts';
import { portOf, startAdmin } from './admin/server.ts';
import type { InboundContext } from './inbound/context.ts';
import { InboundListener } from './inbound/listener.ts';
import { DownstreamConnections } from './inbound/limits.ts';
import { OutboundRouter } from './outbound/index.ts';
import type { ProxySnapshot } from './snapshot.ts';
import { tracerFor, tracingChanged, type Tracer } from './tracing/tracer.ts';
import { H1Pool } from './http1/pool.ts';

export interface WorkloadProxyOptions {
  /** The SVID to serve with, or an agent whose rotations are followed; default: `config.identity.files`. */
  readonly material?: MtlsMaterial | WorkloadAgent;
  /** Where access log entries go; default JSON lines on stderr. */
  readonly accessLog?: AccessLogSink;
  readonly jwksResolver?: JwksResolver;
  /**
   * The port to bind for a configured port (inbound, admin, or outbound: an
   * upstream's `localPort` or `httpProxyPort`); default the configured port.
   * Returning 0 binds any free port while policy still sees the configured
   * one (hermetic tests); `status()` says which port was bound.
   */
  readonly bindPort?: (configured: number, role: BindRole) => number;
  /** How long `stop` lets open connections finish; default 2000 ms. */
  readonly drainMs?: number;
}

export type BindRole = 'inbound' | 'admin' | 'outbound';

export type UpdateResult = { readonly ok: true; readonly version: number } | { readonly ok: false; readonly diagnostics: readonly Diagnostic[] };

export interface ProxyStatus {
  readonly version: number;
  readonly workload: string;
  readonly spiffeId: string;
  readonly adminPort: number;
  readonly inbound: readonly { readonly port: number; readonly boundPort: number; readonly protocol: PortProtocol; readonly mode: string }[];
  /** Upstreams with a `localPort`, and the port the app can dial for each (0 when not listening). */
  readonly outbound: readonly { readonly name: string; readonly localPort: number; readonly boundPort: number }[];
  readonly httpProxy: { readonly port: number; readonly boundPort: number } | undefined;
  readonly certificate: CertInfo;
}

export interface CertInfo {
  readonly spiffeId: string | null;
  readonly serial: string;
  readonly notAfter: string;
}

export class ProxyConfigError extends Error {
  readonly code = 'ERR_MW_PROXY_CONFIG';
  readonly diagnostics: readonly Diagnostic[];
  constructor(diagnostics: readonly Diagnostic[]) {
    super(`proxy config refused: ${diagnostics.length} problem(s)`);
    this.name = 'ProxyConfigError';
    this.diagnostics = diagnostics;
  }
}

function isAgent(m: MtlsMaterial | WorkloadAgent): m is WorkloadAgent {
  return typeof (m as WorkloadAgent).current === 'function';
}

function materialOfAgent(s: AgentSnapshot): MtlsMaterial {
  return { key: s.keyPem, chain: s.certChainPem, bundle: s.bundle };
}

function materialFromFiles(config: ProxyConfig): MtlsMaterial {
  const files = config.identity?.files;
  if (files === undefined) throw new Error('the proxy config names no identity files: pass a WorkloadAgent or material as `material`');
  const bundle = trustBundleFromPem(config.workload.trustDomain, readFileSync(files.bundleFile, 'utf8'));
  if ('error' in bundle) throw new Error(`${files.bundleFile}: ${bundle.error}`);
  return { key: readFileSync(files.keyFile, 'utf8'), chain: readFileSync(files.certChainFile, 'utf8'), bundle };
}

function leafOf(material: MtlsMaterial): X509Certificate {
  return typeof material.chain === 'string' ? new X509Certificate(material.chain) : material.chain[0]!;
}

function certInfo(material: MtlsMaterial): CertInfo {
  const leaf = leafOf(material);
  const uri = (leaf.subjectAltName ?? '').split(', ').find((s) => s.startsWith('URI:spiffe://'));
  return { spiffeId: uri === undefined ? null : uri.slice(4), serial: leaf.serialNumber.toLowerCase(), notAfter: new Date(leaf.validTo).toISOString() };
}

/** Compiles a config's policy: its resources, checked, and the mesh settings. */
function compile(config: ProxyConfig, jwksResolver: JwksResolver): ProxySnapshot | { diagnostics: readonly Diagnostic[] } {
  const loaded = loadResourcesWith(config.policyPaths, config.resources ?? []);
  const errors = loaded.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length > 0) return { diagnostics: errors };
  const mesh: MeshConfig = { ...DEFAULT_MESH_CONFIG, trustDomain: config.workload.trustDomain, ...config.meshConfig };
  return Object.freeze({ config, engine: new PolicyEngine(loaded.resources, mesh, { jwksResolver }) });
}

/** The longest an idle connection to the app is kept when the app announces no keep-alive timeout. */
const APP_IDLE_MS = 60_000;

export class WorkloadProxy {
  readonly metrics: ProxyMetrics;
  #snapshot: ProxySnapshot;
  #material: MtlsMaterial;
  readonly #options: WorkloadProxyOptions;
  readonly #listeners = new Map<number, InboundListener>();
  readonly #appAgent = new http.Agent({ keepAlive: true });
  // Node's http.Agent keeps idle sockets until the app closes them; so does this pool, bounded by the app's Keep-Alive hint.
  readonly #appPool = new H1Pool(APP_IDLE_MS);
  readonly #h2Sessions = new Map<number, ClientHttp2Session>();
  readonly #ctx: InboundContext;
  readonly #router: OutboundRouter;
  /** Null without `tracing` in the config; rebuilt when that changes. */
  #tracer: Tracer | null;
  #admin: Server | undefined;
  #stopped = false;
  #unfollow: (() => void) | undefined;
  #updating: Promise<unknown> = Promise.resolve();

  private constructor(snapshot: ProxySnapshot, material: MtlsMaterial, options: WorkloadProxyOptions) {
    this.#snapshot = snapshot;
    this.#material = material;
    this.#options = options;
    this.metrics = createProxyMetrics();
    const w = snapshot.config.workload;
    this.#tracer = tracerFor(snapshot.config, { registry: this.metrics.registry });
    this.#ctx = {
      snapshot: () => this.#snapshot,
      metrics: this.metrics,
      log: options.accessLog ?? stderrAccessLog,
      selfId: `spiffe://${w.trustDomain}/ns/${w.namespace}/sa/${w.serviceAccount}`,
      appAgent: this.#appAgent,
      appPool: this.#appPool,
      h2Session: (port) => this.#h2Session(port),
      connections: new DownstreamConnections(this.metrics.limits),
      tracer: () => this.#tracer,
    };
    // Second on the registry: the router reuses the Istio series the inbound
    // metrics registered, where registering them again would throw.
    this.#router = new OutboundRouter(this.#routerConfig(snapshot.config), snapshot.engine, material, { registry: this.metrics.registry, tracer: () => this.#tracer });
  }

  /** Validates the config, compiles its policy, opens every inbound port and the admin API. */
  static async start(config: ProxyConfig, options: WorkloadProxyOptions = {}): Promise<WorkloadProxy> {
    const parsed = parseProxyConfig('<proxy config>', config);
    if ('diagnostics' in parsed) throw new ProxyConfigError(parsed.diagnostics);
    const snap = compile(parsed.config, options.jwksResolver ?? defaultJwksResolver);
    if ('diagnostics' in snap) throw new ProxyConfigError(snap.diagnostics);
    let material: MtlsMaterial;
    let agent: WorkloadAgent | undefined;
    if (options.material !== undefined && isAgent(options.material)) {
      agent = options.material;
      const current = agent.current() ?? (await agent.start());
      material = materialOfAgent(current);
    } else {
      material = options.material ?? materialFromFiles(parsed.config);
    }
    const proxy = new WorkloadProxy(snap, material, options);
    try {
      await proxy.#reconcileListeners(parsed.config);
      proxy.#admin = await startAdmin(proxy.#bind(parsed.config.adminPort, 'admin'), {
        ready: () => !proxy.#stopped,
        config: () => proxy.#snapshot.config,
        certs: () => certInfo(proxy.#material),
        status: () => proxy.status(),
        registry: proxy.metrics.registry,
      });
      await proxy.#router.start();
    } catch (err) {
      await proxy.stop();
      throw err;
    }
    if (agent !== undefined) {
      const follow = (s: AgentSnapshot): void => proxy.setMaterial(materialOfAgent(s));
      agent.on('rotated', follow);
      agent.on('bundle', follow);
      proxy.#unfollow = () => {
        agent.off('rotated', follow);
        agent.off('bundle', follow);
      };
    }
    return proxy;
  }

  /** New handshakes use this SVID and bundle; open connections keep theirs. */
  setMaterial(material: MtlsMaterial): void {
    // The router first: it throws on unusable material, and then nothing has changed.
    this.#router.setMaterial(material);
    for (const l of this.#listeners.values()) l.setMaterial(material);
    this.#material = material;
  }

  /**
   * Replaces the config: validated and compiled first, refused whole if it is
   * invalid, its policy does not load, or its version is older than the one
   * in force. Inbound ports and outbound listeners added or removed are
   * opened or closed; the outbound routes follow the same compiled policy.
   */
  update(config: unknown): Promise<UpdateResult> {
    const run = this.#updating.then(() => this.#update(config));
    this.#updating = run.catch(() => undefined);
    return run;
  }

  async #update(config: unknown): Promise<UpdateResult> {
    const parsed = parseProxyConfig('<proxy config update>', config);
    if ('diagnostics' in parsed) return { ok: false, diagnostics: parsed.diagnostics };
    const current = this.#snapshot.config;
    if (parsed.config.version < current.version) {
      return { ok: false, diagnostics: [{ severity: 'error', file: '<proxy config update>', path: 'version', message: `version ${parsed.config.version} is older than the version in force (${current.version})` }] };
    }
    const w = parsed.config.workload;
    if (w.namespace !== current.workload.namespace || w.serviceAccount !== current.workload.serviceAccount || w.trustDomain !== current.workload.trustDomain) {
      return { ok: false, diagnostics: [{ severity: 'error', file: '<proxy config update>', path: 'workload', message: 'a proxy\'s identity cannot change; start a new proxy' }] };
    }
    if ((parsed.config.address ?? '127.0.0.1') !== this.#address) {
      return { ok: false, diagnostics: [{ severity: 'error', file: '<proxy config update>', path: 'address', message: 'a proxy\'s address cannot change; start a new proxy' }] };
    }
    const snap = compile(parsed.config, this.#options.jwksResolver ?? defaultJwksResolver);
    if ('diagnostics' in snap) return { ok: false, diagnostics: snap.diagnostics };
    // New ports are bound before the swap, so a port that cannot be bound
    // refuses the update instead of leaving half of it applied.
    const opened: InboundListener[] = [];
    try {
      for (const p of parsed.config.inbound) {
        if (this.#listeners.has(p.port) || this.#stopped) continue;
        opened.push(await InboundListener.open(p.port, this.#address, this.#bind(p.port, 'inbound'), this.#material, this.#ctx));
      }
    } catch (err) {
      await Promise.all(opened.map((l) => l.close(0)));
      return { ok: false, diagnostics: [{ severity: 'error', file: '<proxy config update>', path: 'inbound', message: `cannot listen: ${(err as Error).message}` }] };
    }
    // The router swaps its routes and binds its new listeners; one it cannot
    // bind refuses the update, and the router goes back to the config in force.
    if (!this.#stopped) {
      try {
        await this.#router.update(this.#routerConfig(parsed.config), snap.engine);
      } catch (err) {
        await Promise.all(opened.map((l) => l.close(0)));
        await this.#router.update(this.#routerConfig(current), this.#snapshot.engine).catch(() => undefined);
        return { ok: false, diagnostics: [{ severity: 'error', file: '<proxy config update>', path: 'outbound', message: `cannot listen: ${(err as Error).message}` }] };
      }
    }
    for (const l of opened) this.#listeners.set(l.port, l);
    this.#snapshot = snap;
    if (tracingChanged(this.#tracer, parsed.config)) {
      // Spans already queued are sent by the old exporter as it closes.
      const old = this.#tracer;
      this.#tracer = tracerFor(parsed.config, { registry: this.metrics.registry });
      void old?.shutdown();
    }
    await this.#reconcileListeners(parsed.config);
    return { ok: true, version: parsed.config.version };
  }

  status(): ProxyStatus {
    const snap = this.#snapshot;
    const w = snap.config.workload;
    const bound = this.#router.ports();
    const proxyPort = snap.config.httpProxyPort;
    return {
      version: snap.config.version,
      workload: `${w.namespace}/${w.name}`,
      spiffeId: this.#ctx.selfId,
      adminPort: this.#admin === undefined ? 0 : portOf(this.#admin),
      inbound: snap.config.inbound.map((p) => ({
        port: p.port,
        boundPort: this.#listeners.get(p.port)?.boundPort ?? 0,
        protocol: p.protocol,
        // An ingress port terminates external TLS; PeerAuthentication does not apply to it.
        mode: p.tls !== undefined ? 'INGRESS_TLS' : snap.engine.peerMode({ namespace: w.namespace, labels: w.labels, serviceAccount: w.serviceAccount, port: p.port }).mode,
      })),
      outbound: snap.config.outbound.flatMap((u) =>
        u.localPort === undefined ? [] : [{ name: u.name, localPort: u.localPort, boundPort: bound.upstreams.get(u.name) ?? 0 }],
      ),
      httpProxy: proxyPort === undefined ? undefined : { port: proxyPort, boundPort: bound.httpProxy ?? 0 },
      certificate: certInfo(this.#material),
    };
  }

  /** Sends the spans finished so far to the OTLP endpoint (they are otherwise batched for up to a second). */
  flushTraces(): Promise<void> {
    return this.#tracer?.flush() ?? Promise.resolve();
  }

  /** Closes listeners and the admin API; open connections get `drainMs` to finish. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#unfollow?.();
    const grace = this.#options.drainMs ?? 2000;
    const closing: Promise<void>[] = [...this.#listeners.values()].map((l) => l.close(grace));
    closing.push(this.#router.stop());
    this.#listeners.clear();
    if (this.#admin !== undefined) {
      const admin = this.#admin;
      closing.push(new Promise((resolve) => admin.close(() => resolve())));
      admin.closeAllConnections();
    }
    await Promise.all(closing);
    // After the drain, so spans of the requests that finished in it are sent.
    await this.#tracer?.shutdown();
    for (const s of this.#h2Sessions.values()) s.destroy();
    this.#h2Sessions.clear();
    this.#appAgent.destroy();
    this.#appPool.destroy();
  }

  /** Inbound listeners' address; fixed for the proxy's life. */
  get #address(): string {
    return this.#snapshot.config.address ?? '127.0.0.1';
  }

  #bind(port: number, role: BindRole): number {
    return this.#options.bindPort?.(port, role) ?? port;
  }

  /** The config as the router sees it: outbound listeners on the ports `bindPort` chose. */
  #routerConfig(config: ProxyConfig): ProxyConfig {
    if (this.#options.bindPort === undefined) return config;
    const proxyPort = config.httpProxyPort;
    return {
      ...config,
      outbound: config.outbound.map((u) => (u.localPort === undefined ? u : { ...u, localPort: this.#bind(u.localPort, 'outbound') })),
      ...(proxyPort !== undefined ? { httpProxyPort: this.#bind(proxyPort, 'outbound') } : {}),
    };
  }

  async #reconcileListeners(config: ProxyConfig): Promise<void> {
    const wanted = new Set(config.inbound.map((p) => p.port));
    for (const [port, l] of this.#listeners) {
      if (!wanted.has(port)) {
        this.#listeners.delete(port);
        void l.close(this.#options.drainMs ?? 2000);
      }
    }
    for (const p of config.inbound) {
      if (this.#listeners.has(p.port) || this.#stopped) continue;
      this.#listeners.set(p.port, await InboundListener.open(p.port, this.#address, this.#bind(p.port, 'inbound'), this.#material, this.#ctx));
    }
  }

  #h2Session(port: number): ClientHttp2Session {
    const existing = this.#h2Sessions.get(port);
    if (existing !== undefined && !existing.closed && !existing.destroyed) return existing;
    const session = h2connect(`http://127.0.0.1:${port}`);
    const forget = (): void => {
      if (this.#h2Sessions.get(port) === session) this.#h2Sessions.delete(port);
    };
    session.on('error', forget);
    session.on('close', forget);
    session.on('goaway', forget);
    this.#h2Sessions.set(port, session);
    return session;
  }
}
