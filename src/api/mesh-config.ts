// The subset of Istio's MeshConfig that changes what the policy engine decides.

export type PathNormalization = 'NONE' | 'BASE' | 'MERGE_SLASHES' | 'DECODE_AND_MERGE_SLASHES';

export interface ExtensionProvider {
  readonly name: string;
}

export interface MeshConfig {
  readonly rootNamespace: string;
  readonly trustDomain: string;
  readonly trustDomainAliases: readonly string[];
  readonly pathNormalization: PathNormalization;
  readonly extensionProviders: readonly ExtensionProvider[];
}

export const DEFAULT_MESH_CONFIG: MeshConfig = Object.freeze({
  rootNamespace: 'istio-system',
  trustDomain: 'cluster.local',
  trustDomainAliases: Object.freeze([]) as readonly string[],
  pathNormalization: 'BASE',
  extensionProviders: Object.freeze([]) as readonly ExtensionProvider[],
});
