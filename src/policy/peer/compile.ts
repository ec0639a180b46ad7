// Which mTLS mode a workload's sidecar requires on an inbound port, from
// PeerAuthentication, as Istio composes it (pilot/pkg/security/authn
// ComposePeerAuthentication, over the policies pilot/pkg/model/authentication.go
// selects for the workload).
//
// Levels, narrowest first:
//   workload   a policy in the workload's namespace whose selector has at least
//              one label, all present on the workload. A selector policy in the
//              root namespace is not a workload policy and is never applied, not
//              even to workloads in the root namespace.
//   namespace  a policy in the workload's namespace with no selector (or an
//              empty matchLabels).
//   mesh       a policy in the root namespace with no selector.
// The narrowest level that sets a mode wins. UNSET (or no `mtls`) inherits from
// the next level up; with nothing set at all the mode is PERMISSIVE, and a mesh
// policy left UNSET also means PERMISSIVE. `portLevelMtls` is read only from
// the workload policy: its entry for the port wins over the workload's mode,
// and an UNSET entry takes the workload's resolved mode. Namespace and mesh
// policies' `portLevelMtls` is ignored.
//
// Several policies at one level: Istio keeps the oldest by creationTimestamp,
// then by name when timestamps tie. Loaded files carry no timestamps, so the
// first in load order wins (applying a file creates its documents in order).
// When one `kubectl apply` creates several in the same second, Istio would
// pick by name instead; the analysis layer should flag any such pair.
//
// Compile once per configuration; `forWorkload` once per workload; then
// `modeForPort` on each connection reads a map and allocates nothing.

import type { MtlsMode, PeerAuthentication } from '../../api/resources.ts';
import { resourceKey } from '../../api/resources.ts';
import { hasWorkloadSelector, selectorMatches } from '../selector.ts';

export type PeerMtlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

export interface PeerModeDecision {
  readonly mode: PeerMtlsMode;
  /** "<namespace>/<name>" of the policy whose setting decided, or null for Istio's default. */
  readonly policy: string | null;
  readonly reason: string;
}

/** The resolved policy for one workload; ask it per port. */
export interface WorkloadPeerAuthn {
  /** "<namespace>/<name>" of the workload-level policy that selected the workload, if any. */
  readonly workloadPolicy: string | null;
  /** The decision for a workload (target) port; precomputed, so no allocation. */
  modeForPort(port: number): PeerModeDecision;
}

export interface IgnoredPeerAuthn {
  readonly policy: string;
  readonly reason: string;
}

export interface CompiledPeerAuthn {
  forWorkload(namespace: string, labels: Readonly<Record<string, string>>): WorkloadPeerAuthn;
  /**
   * The mode from mesh and namespace policies only, ignoring workload and port
   * policies. Istio's clients use exactly this as the hint for auto mTLS
   * (PushContext.BestEffortInferServiceMTLSMode): a service whose namespace
   * resolves to DISABLE is sent plaintext.
   */
  namespaceMode(namespace: string): PeerModeDecision;
  /** Policies that can never apply, and why. Same-level workload policies are not listed: they depend on labels. */
  readonly ignored: readonly IgnoredPeerAuthn[];
}

const DEFAULT_DECISION: PeerModeDecision = Object.freeze({
  mode: 'PERMISSIVE',
  policy: null,
  reason: 'no PeerAuthentication sets a mode; Istio defaults to PERMISSIVE',
});

export function compilePeerAuthn(all: readonly PeerAuthentication[], rootNamespace: string): CompiledPeerAuthn {
  // `all` is in load order, which stands in for creation order (see the file comment).
  let mesh: PeerAuthentication | undefined;
  const namespaceWide = new Map<string, PeerAuthentication>();
  const workloadLevel = new Map<string, PeerAuthentication[]>();
  const ignored: IgnoredPeerAuthn[] = [];

  for (const pa of all) {
    const ns = pa.metadata.namespace;
    if (!hasWorkloadSelector(pa.spec.selector)) {
      const first = ns === rootNamespace ? mesh : namespaceWide.get(ns);
      if (first !== undefined) {
        ignored.push({
          policy: resourceKey(pa),
          reason: `${ns === rootNamespace ? 'mesh-wide' : 'namespace-wide'} policy ${resourceKey(first)} came first; only one applies`,
        });
      } else if (ns === rootNamespace) {
        mesh = pa;
      } else {
        namespaceWide.set(ns, pa);
      }
    } else if (ns === rootNamespace) {
      ignored.push({
        policy: resourceKey(pa),
        reason: `a policy with a selector in the root namespace ${rootNamespace} applies to no workload`,
      });
    } else {
      const list = workloadLevel.get(ns);
      if (list === undefined) workloadLevel.set(ns, [pa]);
      else list.push(pa);
    }
  }

  const meshDecision = meshLevel(mesh);
  const namespaceDecisions = new Map<string, PeerModeDecision>();
  const namespaceMode = (namespace: string): PeerModeDecision => {
    if (namespace === rootNamespace) return meshDecision;
    let d = namespaceDecisions.get(namespace);
    if (d === undefined) {
      d = inherit(namespaceWide.get(namespace), 'namespace-wide policy', meshDecision);
      namespaceDecisions.set(namespace, d);
    }
    return d;
  };

  return Object.freeze({
    ignored: Object.freeze(ignored),
    namespaceMode,
    forWorkload(namespace: string, labels: Readonly<Record<string, string>>): WorkloadPeerAuthn {
      const parent = namespaceMode(namespace);
      const candidates = workloadLevel.get(namespace) ?? [];
      const matching = candidates.filter((pa) => selectorMatches(pa.spec.selector, labels));
      const policy = matching[0];
      if (policy === undefined) return new Resolved(null, parent, null);
      const shadow = matching.length > 1 ? ` (first of ${matching.length} workload policies selecting it)` : '';
      const base = inherit(policy, `workload policy`, parent, shadow);
      return new Resolved(resourceKey(policy), base, portLevel(policy, base));
    },
  });
}

class Resolved implements WorkloadPeerAuthn {
  readonly workloadPolicy: string | null;
  readonly #base: PeerModeDecision;
  readonly #ports: ReadonlyMap<number, PeerModeDecision> | null;

  constructor(workloadPolicy: string | null, base: PeerModeDecision, ports: ReadonlyMap<number, PeerModeDecision> | null) {
    this.workloadPolicy = workloadPolicy;
    this.#base = base;
    this.#ports = ports;
  }

  modeForPort(port: number): PeerModeDecision {
    if (this.#ports === null) return this.#base;
    return this.#ports.get(port) ?? this.#base;
  }
}

function isSet(mode: MtlsMode | undefined): mode is PeerMtlsMode {
  return mode !== undefined && mode !== 'UNSET';
}

function meshLevel(mesh: PeerAuthentication | undefined): PeerModeDecision {
  if (mesh === undefined) return DEFAULT_DECISION;
  const key = resourceKey(mesh);
  const mode = mesh.spec.mtls?.mode;
  if (isSet(mode)) return Object.freeze({ mode, policy: key, reason: `mesh-wide policy ${key} sets ${mode}` });
  return Object.freeze({
    mode: 'PERMISSIVE',
    policy: null,
    reason: `mesh-wide policy ${key} leaves mtls unset, which Istio treats as PERMISSIVE`,
  });
}

/** The policy's own mode if it sets one, else the parent's decision, saying why. */
function inherit(
  pa: PeerAuthentication | undefined,
  level: string,
  parent: PeerModeDecision,
  note = '',
): PeerModeDecision {
  if (pa === undefined) return parent;
  const key = resourceKey(pa);
  const mode = pa.spec.mtls?.mode;
  if (isSet(mode)) return Object.freeze({ mode, policy: key, reason: `${level} ${key}${note} sets ${mode}` });
  return Object.freeze({
    mode: parent.mode,
    policy: parent.policy,
    reason: `${level} ${key}${note} leaves mtls unset, so it inherits: ${parent.reason}`,
  });
}

function portLevel(policy: PeerAuthentication, base: PeerModeDecision): ReadonlyMap<number, PeerModeDecision> | null {
  const entries = policy.spec.portLevelMtls;
  if (entries === undefined) return null;
  const key = resourceKey(policy);
  const out = new Map<number, PeerModeDecision>();
  for (const [portText, setting] of Object.entries(entries)) {
    const port = Number(portText);
    const mode = setting.mode;
    out.set(
      port,
      isSet(mode)
        ? Object.freeze({ mode, policy: key, reason: `workload policy ${key} sets ${mode} for port ${port}` })
        : Object.freeze({
            mode: base.mode,
            policy: base.policy,
            reason: `workload policy ${key} leaves port ${port} unset, so it takes the workload's mode: ${base.reason}`,
          }),
    );
  }
  return out.size === 0 ? null : out;
}
