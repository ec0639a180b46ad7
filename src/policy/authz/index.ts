// Which AuthorizationPolicies apply to which workload. Policies are compiled
// once and grouped by namespace; a workload's view (CUSTOM/DENY/ALLOW lists)
// is built the first time it is asked for and then reused, so a decision
// never scans the policies of other workloads.

import type { AuthorizationPolicy } from '../../api/resources.ts';
import type { MeshConfig } from '../../api/mesh-config.ts';
import { selectorMatches } from '../selector.ts';
import { compilePolicy, type CompiledPolicy } from './compile.ts';
import type { WorkloadAuthz } from './evaluate.ts';

import { WorkloadMemo } from '../workload-memo.ts';

type Labels = Readonly<Record<string, string>>;

export class AuthorizationIndex {
  readonly #byNamespace = new Map<string, CompiledPolicy[]>();
  readonly #rootNamespace: string;
  readonly #providers: ReadonlySet<string>;
  readonly #views = new WorkloadMemo<WorkloadAuthz>((ns, labels) => this.#build(ns, labels));

  constructor(policies: readonly AuthorizationPolicy[], mesh: MeshConfig) {
    this.#rootNamespace = mesh.rootNamespace;
    this.#providers = new Set(mesh.extensionProviders.map((p) => p.name));
    const bundle = { trustDomains: [mesh.trustDomain, ...mesh.trustDomainAliases] };
    const sorted = [...policies].sort((a, b) =>
      a.metadata.namespace === b.metadata.namespace
        ? a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0
        : a.metadata.namespace < b.metadata.namespace ? -1 : 1,
    );
    for (const p of sorted) {
      // targetRef(s) attach a policy to a gateway or waypoint, never to a sidecar workload.
      if (p.spec.targetRef !== undefined || (p.spec.targetRefs?.length ?? 0) > 0) continue;
      const list = this.#byNamespace.get(p.metadata.namespace) ?? [];
      list.push(compilePolicy(p, bundle));
      this.#byNamespace.set(p.metadata.namespace, list);
    }
  }

  /** All compiled policies of a namespace (for explanations and analysis). */
  policiesIn(namespace: string): readonly CompiledPolicy[] {
    return this.#byNamespace.get(namespace) ?? [];
  }

  forWorkload(namespace: string, labels: Labels): WorkloadAuthz {
    return this.#views.get(namespace, labels);
  }

  #build(namespace: string, labels: Labels): WorkloadAuthz {
    const applicable: CompiledPolicy[] = [];
    const consider = (ns: string) => {
      for (const p of this.#byNamespace.get(ns) ?? []) {
        if (selectorMatches(p.resource.spec.selector, labels)) applicable.push(p);
      }
    };
    consider(this.#rootNamespace);
    if (namespace !== this.#rootNamespace) consider(namespace);

    const custom: CompiledPolicy[] = [];
    const deny: CompiledPolicy[] = [];
    const allow: CompiledPolicy[] = [];
    const observe: CompiledPolicy[] = [];
    for (const p of applicable) {
      if (p.dryRun || p.action === 'AUDIT') observe.push(p);
      else if (p.action === 'CUSTOM') custom.push(p);
      else if (p.action === 'DENY') deny.push(p);
      else allow.push(p);
    }
    const providers = new Set(custom.map((p) => p.provider));
    return Object.freeze({
      custom,
      deny,
      allow,
      observe,
      providers: this.#providers,
      conflictingProviders: providers.size > 1,
    });
  }
}
