// The service registry: which workloads exist, who they are (namespace,
// service account, labels), where their proxies listen and what they call.
// In local mode it starts from the mesh file; a proxy the file does not
// name can register itself on the config stream (its identity still has to
// match its certificate, see config-service.ts).

import type { MeshFile, MeshGateway, MeshWorkload } from '../../api/mesh-file.ts';
import { meshIdentity } from '../../api/mesh-file.ts';

export interface RegisteredWorkload {
  readonly kind: 'workload' | 'gateway';
  /** `namespace/name`. */
  readonly key: string;
  readonly name: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly spiffeId: string;
  readonly address: string;
  readonly adminPort: number;
  readonly ports: MeshWorkload['ports'];
  readonly upstreams: MeshWorkload['upstreams'];
  /** The gateway's external listener port (kind 'gateway'). */
  readonly listenPort?: number;
  /** Registered over the stream rather than read from the mesh file. */
  readonly dynamic: boolean;
}

export function fromMeshWorkload(mesh: Pick<MeshFile, 'trustDomain'>, w: MeshWorkload, dynamic = false): RegisteredWorkload {
  return {
    kind: 'workload',
    key: `${w.namespace}/${w.name}`,
    name: w.name,
    namespace: w.namespace,
    serviceAccount: w.serviceAccount,
    labels: w.labels,
    spiffeId: meshIdentity(mesh, w),
    address: w.address,
    adminPort: w.adminPort,
    ports: w.ports,
    upstreams: w.upstreams,
    dynamic,
  };
}

function fromGateway(mesh: Pick<MeshFile, 'trustDomain'>, g: MeshGateway): RegisteredWorkload {
  const [host, port] = g.listen.split(':') as [string, string];
  return {
    kind: 'gateway',
    key: `${g.namespace}/${g.name}`,
    name: g.name,
    namespace: g.namespace,
    serviceAccount: g.serviceAccount,
    labels: g.labels,
    spiffeId: meshIdentity(mesh, g),
    address: host,
    adminPort: g.adminPort,
    ports: [],
    upstreams: [g.route],
    listenPort: Number(port),
    dynamic: false,
  };
}

export class ServiceRegistry {
  readonly #byKey = new Map<string, RegisteredWorkload>();
  /** Workloads (not gateways) by name, for endpoint lookups. */
  readonly #byName = new Map<string, RegisteredWorkload[]>();
  readonly #listeners = new Set<() => void>();

  constructor(mesh: MeshFile) {
    for (const w of mesh.workloads) this.#byKey.set(`${w.namespace}/${w.name}`, fromMeshWorkload(mesh, w));
    if (mesh.gateway !== undefined) this.#byKey.set(`${mesh.gateway.namespace}/${mesh.gateway.name}`, fromGateway(mesh, mesh.gateway));
    this.#reindex();
  }

  #reindex(): void {
    this.#byName.clear();
    for (const w of this.#byKey.values()) {
      if (w.kind !== 'workload') continue;
      const list = this.#byName.get(w.name);
      if (list) list.push(w);
      else this.#byName.set(w.name, [w]);
    }
  }

  get(key: string): RegisteredWorkload | undefined {
    return this.#byKey.get(key);
  }

  all(): RegisteredWorkload[] {
    return [...this.#byKey.values()];
  }

  /** Workloads that serve `service` (by name; the caller's namespace first, as Kubernetes' short names resolve). */
  endpointsOf(service: string, fromNamespace: string): RegisteredWorkload[] {
    const named = this.#byName.get(service) ?? [];
    const local = named.filter((w) => w.namespace === fromNamespace);
    return local.length > 0 ? local : named;
  }

  /** Adds or replaces a dynamic workload; a workload from the mesh file cannot be replaced. */
  register(w: RegisteredWorkload): { ok: true } | { ok: false; reason: string } {
    const existing = this.#byKey.get(w.key);
    if (existing !== undefined && !existing.dynamic) return { ok: false, reason: `${w.key} is defined by the mesh file` };
    this.#byKey.set(w.key, w);
    this.#reindex();
    for (const l of this.#listeners) l();
    return { ok: true };
  }

  onChange(listener: () => void): void {
    this.#listeners.add(listener);
  }
}
