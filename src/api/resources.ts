// The Istio security and networking resources meshward reads, as they look
// after validation. Field names follow Istio's API reference exactly
// (security.istio.io/v1, networking.istio.io/v1); loaders return these
// objects frozen, so every later layer can trust their shape.

export type ResourceKind =
  | 'PeerAuthentication'
  | 'AuthorizationPolicy'
  | 'RequestAuthentication'
  | 'DestinationRule';

/** Where a resource came from, so every later message can point back at it. */
export interface SourceRef {
  readonly file: string;
  /** 0-based index of the YAML document in its file. */
  readonly documentIndex: number;
  /** 1-based line of the document's first line. */
  readonly line: number;
}

export interface ObjectMeta {
  readonly name: string;
  readonly namespace: string; // 'default' when absent in the file
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
}

export interface WorkloadSelector {
  readonly matchLabels: Readonly<Record<string, string>>;
}

export interface PolicyTargetReference {
  readonly group: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace?: string;
}

// ---------------------------------------------------------------- PeerAuthentication

export type MtlsMode = 'UNSET' | 'DISABLE' | 'PERMISSIVE' | 'STRICT';

export interface PeerAuthenticationSpec {
  readonly selector?: WorkloadSelector;
  readonly mtls?: { readonly mode: MtlsMode };
  /** Keys are workload (target) port numbers. */
  readonly portLevelMtls?: Readonly<Record<number, { readonly mode: MtlsMode }>>;
}

// ---------------------------------------------------------------- RequestAuthentication

export interface JwtHeader {
  readonly name: string;
  readonly prefix?: string;
}

export interface ClaimToHeader {
  readonly header: string;
  readonly claim: string;
}

export interface JwtRule {
  readonly issuer: string;
  readonly audiences?: readonly string[];
  readonly jwksUri?: string;
  readonly jwks?: string;
  readonly fromHeaders?: readonly JwtHeader[];
  readonly fromParams?: readonly string[];
  readonly fromCookies?: readonly string[];
  readonly outputPayloadToHeader?: string;
  readonly forwardOriginalToken?: boolean;
  readonly outputClaimToHeaders?: readonly ClaimToHeader[];
  readonly timeout?: string;
}

export interface RequestAuthenticationSpec {
  readonly selector?: WorkloadSelector;
  readonly targetRef?: PolicyTargetReference;
  readonly targetRefs?: readonly PolicyTargetReference[];
  readonly jwtRules?: readonly JwtRule[];
}

// ---------------------------------------------------------------- AuthorizationPolicy

export type AuthorizationAction = 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';

export interface Source {
  readonly principals?: readonly string[];
  readonly notPrincipals?: readonly string[];
  readonly requestPrincipals?: readonly string[];
  readonly notRequestPrincipals?: readonly string[];
  readonly namespaces?: readonly string[];
  readonly notNamespaces?: readonly string[];
  readonly serviceAccounts?: readonly string[];
  readonly notServiceAccounts?: readonly string[];
  readonly ipBlocks?: readonly string[];
  readonly notIpBlocks?: readonly string[];
  readonly remoteIpBlocks?: readonly string[];
  readonly notRemoteIpBlocks?: readonly string[];
}

export interface Operation {
  readonly hosts?: readonly string[];
  readonly notHosts?: readonly string[];
  /** Ports are strings in Istio's API. */
  readonly ports?: readonly string[];
  readonly notPorts?: readonly string[];
  readonly methods?: readonly string[];
  readonly notMethods?: readonly string[];
  readonly paths?: readonly string[];
  readonly notPaths?: readonly string[];
}

export interface Condition {
  readonly key: string;
  readonly values?: readonly string[];
  readonly notValues?: readonly string[];
}

export interface Rule {
  readonly from?: readonly { readonly source?: Source }[];
  readonly to?: readonly { readonly operation?: Operation }[];
  readonly when?: readonly Condition[];
}

export interface AuthorizationPolicySpec {
  readonly selector?: WorkloadSelector;
  readonly targetRef?: PolicyTargetReference;
  readonly targetRefs?: readonly PolicyTargetReference[];
  /** Absent means ALLOW. */
  readonly action?: AuthorizationAction;
  readonly provider?: { readonly name: string };
  /** Absent and empty differ only in that both match nothing. */
  readonly rules?: readonly Rule[];
}

// ---------------------------------------------------------------- DestinationRule

export type ClientTlsMode = 'DISABLE' | 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL' | 'OPTIONAL_MUTUAL';

export interface ClientTlsSettings {
  readonly mode?: ClientTlsMode;
  readonly clientCertificate?: string;
  readonly privateKey?: string;
  readonly caCertificates?: string;
  readonly credentialName?: string;
  readonly subjectAltNames?: readonly string[];
  readonly sni?: string;
  readonly insecureSkipVerify?: boolean;
  readonly caCrl?: string;
}

export interface PortSelector {
  readonly number: number;
}

/**
 * Traffic policy fields other than TLS (load balancer, connection pool,
 * outlier detection, proxy protocol, tunnel) are validated for shape but
 * kept opaque here: the policy engine only reads `tls`.
 */
export interface PortTrafficPolicy {
  readonly port?: PortSelector;
  readonly tls?: ClientTlsSettings;
  readonly loadBalancer?: Readonly<Record<string, unknown>>;
  readonly connectionPool?: Readonly<Record<string, unknown>>;
  readonly outlierDetection?: Readonly<Record<string, unknown>>;
}

export interface TrafficPolicy {
  readonly tls?: ClientTlsSettings;
  readonly portLevelSettings?: readonly PortTrafficPolicy[];
  readonly loadBalancer?: Readonly<Record<string, unknown>>;
  readonly connectionPool?: Readonly<Record<string, unknown>>;
  readonly outlierDetection?: Readonly<Record<string, unknown>>;
  readonly tunnel?: Readonly<Record<string, unknown>>;
  readonly proxyProtocol?: Readonly<Record<string, unknown>>;
}

export interface Subset {
  readonly name: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly trafficPolicy?: TrafficPolicy;
}

export interface DestinationRuleSpec {
  readonly host: string;
  readonly trafficPolicy?: TrafficPolicy;
  readonly subsets?: readonly Subset[];
  /** Absent means ['*'] (visible to every namespace). */
  readonly exportTo?: readonly string[];
  readonly workloadSelector?: WorkloadSelector;
}

// ---------------------------------------------------------------- The union

interface ResourceBase<K extends ResourceKind, S> {
  readonly apiVersion: string;
  readonly kind: K;
  readonly metadata: ObjectMeta;
  readonly spec: S;
  readonly source: SourceRef;
}

export type PeerAuthentication = ResourceBase<'PeerAuthentication', PeerAuthenticationSpec>;
export type AuthorizationPolicy = ResourceBase<'AuthorizationPolicy', AuthorizationPolicySpec>;
export type RequestAuthentication = ResourceBase<'RequestAuthentication', RequestAuthenticationSpec>;
export type DestinationRule = ResourceBase<'DestinationRule', DestinationRuleSpec>;

export type IstioResource = PeerAuthentication | AuthorizationPolicy | RequestAuthentication | DestinationRule;

/** Every resource of one configuration, grouped by kind, in load order. */
export interface ResourceSet {
  readonly peerAuthentications: readonly PeerAuthentication[];
  readonly authorizationPolicies: readonly AuthorizationPolicy[];
  readonly requestAuthentications: readonly RequestAuthentication[];
  readonly destinationRules: readonly DestinationRule[];
}

/** "<namespace>/<name>", the way policies are named in decisions. */
export function resourceKey(r: { readonly metadata: ObjectMeta }): string {
  return `${r.metadata.namespace}/${r.metadata.name}`;
}
