// The configuration of one workload's proxy: who it is, which ports it
// serves and how, where its app listens, which upstreams it may call, and the
// Istio resources that apply to it. The same object is read from a file by
// `meshward proxy --config FILE` and will be streamed by the control plane;
// it is validated whole and replaced atomically, so a proxy never runs half
// of an update.

import type { MeshConfig } from './mesh-config.ts';

export type PortProtocol = 'http' | 'http2' | 'grpc' | 'tcp';

export interface InboundPort {
  /** Port the proxy listens on (the workload port peers dial). */
  readonly port: number;
  readonly protocol: PortProtocol;
  /** Where the application listens on loopback. */
  readonly appPort: number;
  /** Plaintext health paths answered for the app even under STRICT (Istio's probe rewrite). */
  readonly healthPaths?: readonly string[];
}

export interface UpstreamEndpoint {
  readonly host: string;
  readonly port: number;
  /** SPIFFE IDs the server at this endpoint may present (secure naming). */
  readonly identities: readonly string[];
}

export interface Upstream {
  /** Service name the app uses (Host header in HTTP proxy mode), e.g. `payment-service`. */
  readonly name: string;
  /** Service FQDN, for DestinationRule lookup, e.g. `payment-service.production.svc.cluster.local`. */
  readonly host: string;
  /** Service port, for DestinationRule portLevelSettings. */
  readonly servicePort: number;
  readonly protocol: PortProtocol;
  /** Loopback port the app can dial instead of the service (`localhost:19001` → service). */
  readonly localPort?: number;
  readonly endpoints: readonly UpstreamEndpoint[];
  readonly loadBalancer?: 'ROUND_ROBIN' | 'LEAST_REQUEST';
}

export interface ProxyIdentitySource {
  /** Files written by an operator (tests, static mode): key (0600), chain, bundle. */
  readonly files?: { readonly keyFile: string; readonly certChainFile: string; readonly bundleFile: string };
  /** A CA server and a bootstrap token (the key then lives only in memory). */
  readonly ca?: { readonly address: string; readonly bundleFile: string; readonly bootstrapToken: string };
}

export interface ProxyConfig {
  /** Monotonic version; an update with an older version is refused. */
  readonly version: number;
  readonly workload: {
    readonly name: string;
    readonly namespace: string;
    readonly serviceAccount: string;
    readonly labels: Readonly<Record<string, string>>;
    readonly trustDomain: string;
  };
  readonly identity: ProxyIdentitySource;
  readonly inbound: readonly InboundPort[];
  readonly outbound: readonly Upstream[];
  /** HTTP proxy (`HTTP_PROXY`) listener for the app, routing by Host; optional. */
  readonly httpProxyPort?: number;
  /** Admin API on 127.0.0.1. */
  readonly adminPort: number;
  /** Directories or files of Istio YAML that apply (validated by src/api/load.ts). */
  readonly policyPaths: readonly string[];
  readonly meshConfig?: Partial<MeshConfig>;
}
