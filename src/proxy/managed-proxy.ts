// A workload proxy run by the control plane: its identity from the CA
// (an agent holding the key in memory), its configuration from the config
// stream. The proxy itself starts with the first config pushed; every later
// push is an atomic update, ACKed when in force and NACKed when refused.
// When the control plane is away, the proxy keeps its config and its
// certificate and serves on; the agent and the stream reconnect on their own.

import { CA_SERVER_NAMESPACE, CA_SERVER_SERVICE_ACCOUNT } from '../api/identity-messages.ts';
import type { Diagnostic } from '../api/diagnostics.ts';
import { formatDiagnostic } from '../api/diagnostics.ts';
import { WorkloadAgent, type BootstrapTokenSource } from '../identity/agent/index.ts';
import type { AccessLogSink } from './access-log.ts';
import type { ProxyConfig } from '../api/proxy-config.ts';
import { ConfigClient, type ApplyResult } from './config-client.ts';
import { ProxyConfigError, WorkloadProxy, type ProxyStatus } from './proxy.ts';

export interface ManagedProxyOptions {
  /** `namespace/name`. */
  readonly workload: string;
  readonly spiffeId: string;
  readonly trustDomain: string;
  /** `host:port` of the control plane (CA and config stream). */
  readonly controlPlane: string;
  /** Roots the control plane's certificate chains to, until the agent receives the bundle. */
  readonly trustBundlePem: string;
  readonly bootstrapToken: BootstrapTokenSource;
  readonly accessLog?: AccessLogSink;
  readonly registration?: unknown;
  readonly log?: (level: 'info' | 'warn' | 'error', event: string, fields: Readonly<Record<string, unknown>>) => void;
}

export interface ManagedProxyStatus {
  readonly workload: string;
  readonly spiffeId: string;
  readonly configVersion: string;
  readonly controlPlaneConnected: boolean;
  readonly proxy: ProxyStatus | null;
}

function describe(diagnostics: readonly Diagnostic[]): string {
  return diagnostics.map(formatDiagnostic).join('; ');
}

export class ManagedProxy {
  readonly agent: WorkloadAgent;
  readonly #opts: ManagedProxyOptions;
  readonly #client: ConfigClient;
  #proxy: WorkloadProxy | undefined;
  #firstApplied: { promise: Promise<void>; resolve: () => void };

  private constructor(opts: ManagedProxyOptions) {
    this.#opts = opts;
    const log = opts.log ?? (() => {});
    this.agent = new WorkloadAgent({
      spiffeId: opts.spiffeId,
      caAddress: opts.controlPlane,
      trustBundlePem: opts.trustBundlePem,
      bootstrapToken: opts.bootstrapToken,
      metadata: { WorkloadName: opts.workload },
      log: (level, event, fields) => {
        if (level !== 'debug') log(level === 'info' ? 'info' : level === 'warn' ? 'warn' : 'error', event, { component: 'agent', workload: opts.workload, ...fields });
      },
    });
    // Failures are logged above and retried by the agent; the proxy keeps its certificate meanwhile.
    this.agent.on('error', () => {});
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.#firstApplied = { promise, resolve };
    this.#client = new ConfigClient({
      address: opts.controlPlane,
      controlPlaneIdentity: `spiffe://${opts.trustDomain}/ns/${CA_SERVER_NAMESPACE}/sa/${CA_SERVER_SERVICE_ACCOUNT}`,
      workload: opts.workload,
      credentials: () => {
        const s = this.agent.current();
        if (s === undefined) throw new Error('no certificate yet');
        return { keyPem: s.keyPem, certChainPem: s.certChainPem, bundlePem: s.bundlePem };
      },
      apply: (config) => this.#apply(config),
      ...(opts.registration !== undefined ? { registration: opts.registration } : {}),
      log: (level, event, fields) => log(level, event, fields),
    });
  }

  /** Gets a certificate, subscribes, and resolves once the first config is in force (listeners open). */
  static async start(opts: ManagedProxyOptions, timeoutMs = 30_000): Promise<ManagedProxy> {
    const m = new ManagedProxy(opts);
    try {
      await m.agent.start();
      m.#client.start();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no config for ${opts.workload} from ${opts.controlPlane} within ${timeoutMs} ms`)), timeoutMs);
      });
      await Promise.race([m.#firstApplied.promise, timeout]).finally(() => clearTimeout(timer));
    } catch (err) {
      await m.stop();
      throw err;
    }
    return m;
  }

  get proxy(): WorkloadProxy | undefined {
    return this.#proxy;
  }

  status(): ManagedProxyStatus {
    return {
      workload: this.#opts.workload,
      spiffeId: this.#opts.spiffeId,
      configVersion: this.#client.version,
      controlPlaneConnected: this.#client.connected,
      proxy: this.#proxy?.status() ?? null,
    };
  }

  async stop(): Promise<void> {
    await this.#client.stop();
    await this.#proxy?.stop();
    await this.agent.stop();
  }

  async #apply(config: unknown): Promise<ApplyResult> {
    if (this.#proxy === undefined) {
      try {
        this.#proxy = await WorkloadProxy.start(config as ProxyConfig /* validated by start */, { material: this.agent, ...(this.#opts.accessLog ? { accessLog: this.#opts.accessLog } : {}) });
      } catch (err) {
        return { ok: false, error: err instanceof ProxyConfigError ? describe(err.diagnostics) : (err as Error).message };
      }
      this.#firstApplied.resolve();
      return { ok: true };
    }
    const r = await this.#proxy.update(config);
    return r.ok ? { ok: true } : { ok: false, error: describe(r.diagnostics) };
  }
}
