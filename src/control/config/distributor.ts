// The config stream's server side: one gRPC stream per proxy. The proxy
// proves who it is with its X509-SVID; the workload it names must be one
// whose SPIFFE ID is exactly that, so a proxy can only ever receive its own
// workload's configuration. Each push carries a version and a nonce; the
// proxy answers with an ACK (in force) or a NACK (refused, previous one
// stays), and both are visible in status() and the metrics.
//
// A change (policy generation or registry) rebuilds every connected proxy's
// config, which is cheap — filtering a list per proxy — and pushes only to
// the proxies whose config actually changed: one namespace's policy edit
// reaches that namespace's proxies and no others.

import { randomUUID } from 'node:crypto';
import { status, type ServerDuplexStream, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { configService, type ConfigRequest, type ConfigResponse } from '../../api/config-messages.ts';
import { meshWorkloadSchema } from '../../api/mesh-file.ts';
import type { CaServer } from '../ca-server/index.ts';
import { buildProxyConfig, type BuildContext } from './build-config.ts';
import type { ConfigMetrics } from './metrics.ts';
import type { PolicyGeneration } from './policy-store.ts';
import { fromMeshWorkload, type ServiceRegistry } from './registry.ts';

type Stream = ServerDuplexStream<ConfigRequest, ConfigResponse>;

interface Pending {
  readonly nonce: string;
  readonly version: number;
  /** When the change this push carries was first seen. */
  readonly seenAt: number;
}

interface Connection {
  readonly id: string;
  readonly workload: string;
  readonly nodeId: string;
  readonly spiffeId: string;
  readonly connectedAt: number;
  readonly stream: Stream;
  /** JSON of the last config pushed (without version), to skip pushes that change nothing. */
  lastBody: string;
  lastVersion: number;
  pending: Pending | undefined;
  acked: { version: number; at: number } | undefined;
  nack: { version: number; at: number; error: string } | undefined;
}

export interface ProxyStreamStatus {
  workload: string;
  nodeId: string;
  spiffeId: string;
  connectedAt: string;
  pushedVersion: number;
  ackedVersion: number | null;
  lastAckAt: string | null;
  /** The latest NACK, while no later push was ACKed. */
  nack: { version: number; at: string; error: string } | null;
}

export interface DistributorOptions {
  readonly build: BuildContext;
  readonly registry: ServiceRegistry;
  readonly generation: () => PolicyGeneration;
  readonly metrics: ConfigMetrics;
  readonly log: (level: 'info' | 'warn', event: string, fields: Readonly<Record<string, unknown>>) => void;
  readonly now?: () => number;
}

export class ConfigDistributor {
  readonly #opts: DistributorOptions;
  readonly #now: () => number;
  readonly #connections = new Map<string, Connection>();
  #version: number;

  constructor(opts: DistributorOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#version = opts.generation().version;
    opts.registry.onChange(() => this.changed(this.#now()));
  }

  get connected(): number {
    return this.#connections.size;
  }

  /** The gRPC service to add to the CA server's listener. */
  service(server: CaServer): { definition: ServiceDefinition; implementation: UntypedServiceImplementation } {
    return { definition: configService(), implementation: { Stream: (call: Stream) => this.#stream(server, call) } };
  }

  /** Something changed (seen at `seenAt`): push to every proxy whose config differs from what it has. */
  changed(seenAt: number): void {
    this.#version = Math.max(this.#version + 1, this.#opts.generation().version);
    for (const c of this.#connections.values()) this.#push(c, seenAt);
  }

  status(): ProxyStreamStatus[] {
    return [...this.#connections.values()].map((c) => ({
      workload: c.workload,
      nodeId: c.nodeId,
      spiffeId: c.spiffeId,
      connectedAt: new Date(c.connectedAt).toISOString(),
      pushedVersion: c.lastVersion,
      ackedVersion: c.acked?.version ?? null,
      lastAckAt: c.acked ? new Date(c.acked.at).toISOString() : null,
      nack: c.nack ? { version: c.nack.version, at: new Date(c.nack.at).toISOString(), error: c.nack.error } : null,
    }));
  }

  /** Ends every stream (the proxies reconnect to whatever listens next). */
  close(): void {
    for (const c of this.#connections.values()) c.stream.end();
    this.#connections.clear();
  }

  #stream(server: CaServer, stream: Stream): void {
    const caller = server.verifyCaller(stream);
    if (!caller.ok) {
      this.#opts.log('warn', 'config-stream-refused', { peer: stream.getPeer(), reason: caller.reason, detail: caller.detail });
      stream.emit('error', { code: status.UNAUTHENTICATED, details: 'a client certificate (X509-SVID) is required' });
      return;
    }
    let conn: Connection | undefined;
    stream.on('data', (req: ConfigRequest) => {
      if (conn === undefined) {
        conn = this.#subscribe(stream, caller.spiffeId, req);
        return;
      }
      this.#answer(conn, req);
    });
    const gone = (): void => {
      if (conn !== undefined && this.#connections.get(conn.id) === conn) {
        this.#connections.delete(conn.id);
        this.#opts.log('info', 'proxy-disconnected', { workload: conn.workload, nodeId: conn.nodeId });
      }
    };
    stream.on('end', () => {
      gone();
      stream.end();
    });
    stream.on('error', gone);
    stream.on('cancelled', gone);
  }

  #subscribe(stream: Stream, spiffeId: string, req: ConfigRequest): Connection | undefined {
    const refuse = (code: status, details: string): undefined => {
      this.#opts.log('warn', 'config-stream-refused', { peer: stream.getPeer(), spiffeId, workload: req.workload, detail: details });
      stream.emit('error', { code, details });
      return undefined;
    };
    let w = this.#opts.registry.get(req.workload);
    if (w === undefined && req.registration_json !== '') {
      let parsed;
      try {
        parsed = meshWorkloadSchema.safeParse(JSON.parse(req.registration_json));
      } catch {
        return refuse(status.INVALID_ARGUMENT, 'registration_json is not JSON');
      }
      if (!parsed.success) return refuse(status.INVALID_ARGUMENT, `registration: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
      const candidate = fromMeshWorkload({ trustDomain: this.#opts.build.trustDomain }, parsed.data, true);
      if (candidate.key !== req.workload) return refuse(status.INVALID_ARGUMENT, `registration describes ${candidate.key}, not ${req.workload}`);
      if (candidate.spiffeId !== spiffeId) return refuse(status.PERMISSION_DENIED, `${spiffeId} may not register ${candidate.key} (its identity is ${candidate.spiffeId})`);
      const added = this.#opts.registry.register(candidate);
      if (!added.ok) return refuse(status.PERMISSION_DENIED, added.reason);
      w = candidate;
    }
    if (w === undefined) return refuse(status.NOT_FOUND, `no workload ${req.workload} in the registry`);
    if (w.spiffeId !== spiffeId) return refuse(status.PERMISSION_DENIED, `${spiffeId} is not ${req.workload} (${w.spiffeId})`);
    const conn: Connection = {
      id: randomUUID(),
      workload: w.key,
      nodeId: req.node_id,
      spiffeId,
      connectedAt: this.#now(),
      stream,
      lastBody: '',
      lastVersion: 0,
      pending: undefined,
      acked: undefined,
      nack: undefined,
    };
    this.#connections.set(conn.id, conn);
    this.#opts.log('info', 'proxy-connected', { workload: conn.workload, nodeId: conn.nodeId, spiffeId });
    this.#push(conn, this.#now());
    return conn;
  }

  #answer(conn: Connection, req: ConfigRequest): void {
    const p = conn.pending;
    // An answer to an older push (or a stray message) changes nothing.
    if (p === undefined || req.response_nonce !== p.nonce) return;
    conn.pending = undefined;
    const now = this.#now();
    if (req.error_detail !== '') {
      conn.nack = { version: p.version, at: now, error: req.error_detail };
      this.#opts.metrics.rejectedByProxy();
      this.#opts.log('warn', 'config-nack', { workload: conn.workload, nodeId: conn.nodeId, version: p.version, error: req.error_detail });
      return;
    }
    conn.acked = { version: p.version, at: now };
    conn.nack = undefined;
    this.#opts.metrics.converged(Math.max(0, now - p.seenAt) / 1000);
  }

  #push(conn: Connection, seenAt: number): void {
    const w = this.#opts.registry.get(conn.workload);
    if (w === undefined) return;
    const body = buildProxyConfig(this.#opts.build, w, this.#opts.generation());
    const json = JSON.stringify(body);
    if (json === conn.lastBody) return;
    conn.lastBody = json;
    conn.lastVersion = this.#version;
    const nonce = randomUUID();
    // A newer push supersedes an unanswered one: convergence counts from the older change.
    conn.pending = { nonce, version: this.#version, seenAt: Math.min(seenAt, conn.pending?.seenAt ?? seenAt) };
    // The body is already JSON: put the version in front rather than encode it all again.
    const config_json = `{"version":${this.#version},${json.slice(1)}`;
    conn.stream.write({ version_info: String(this.#version), nonce, config_json });
    this.#opts.metrics.pushed();
  }
}
