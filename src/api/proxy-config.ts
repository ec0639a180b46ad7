// The configuration of one workload's proxy: who it is, which ports it
// serves and how, where its app listens, which upstreams it may call, and the
// Istio resources that apply to it. The same object is read from a file by
// `meshward proxy --config FILE` and will be streamed by the control plane;
// it is validated whole and replaced atomically, so a proxy never runs half
// of an update.

import type { MeshConfig } from './mesh-config.ts';
import type { ProxyLimits } from './proxy-limits.ts';

export type PortProtocol = 'http' | 'http2' | 'grpc' | 'tcp';

export interface InboundPort {
  /** Port the proxy listens on (the workload port peers dial). */
  readonly port: number;
  readonly protocol: PortProtocol;
  /** Where the application listens on loopback. */
  readonly appPort: number;
  /** Plaintext health paths answered for the app even under STRICT (Istio's probe rewrite). */
  readonly healthPaths?: readonly string[];
  /**
   * An ingress port: terminate TLS with this server certificate for clients
   * outside the mesh (no client certificate, PeerAuthentication does not
   * apply; plaintext is refused). RequestAuthentication and
   * AuthorizationPolicy still do.
   */
  readonly tls?: { readonly certFile: string; readonly keyFile: string };
}

/** An Istio resource delivered as an object (by the control plane), with where it came from. */
export interface InlineResource {
  readonly file: string;
  readonly documentIndex: number;
  readonly object: unknown;
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

/** Span per hop and trace header propagation (docs/tracing.md). */
export interface TracingConfig {
  /** OTLP/HTTP JSON traces endpoint, e.g. `http://127.0.0.1:4318/v1/traces`; absent: headers only, no spans kept. */
  readonly otlpEndpoint?: string;
  /** Percent (0–100) of new traces sampled; default 1, Istio's default. Incoming decisions are honoured. */
  readonly sampling?: number;
  /** `service.name` of the spans; default `<workload>.<namespace>`. */
  readonly serviceName?: string;
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
    /** The service this workload serves, as a host (`payment-service.production.svc.cluster.local`): `destination_service` in the inbound metrics. */
    readonly service?: string;
  };
  /** Where the identity comes from; absent when the host process hands the proxy an agent. */
  readonly identity?: ProxyIdentitySource;
  /** Loopback address the inbound ports listen on; default 127.0.0.1. */
  readonly address?: string;
  readonly inbound: readonly InboundPort[];
  readonly outbound: readonly Upstream[];
  /** HTTP proxy (`HTTP_PROXY`) listener for the app, routing by Host; optional. */
  readonly httpProxyPort?: number;
  /** Admin API on 127.0.0.1. */
  readonly adminPort: number;
  /** Directories or files of Istio YAML that apply (validated by src/api/load.ts). */
  readonly policyPaths: readonly string[];
  /** Istio resources carried in the config itself (what the control plane streams). */
  readonly resources?: readonly InlineResource[];
  readonly meshConfig?: Partial<MeshConfig>;
  /** Header size and count, timeouts and connection limits of the inbound side (src/api/proxy-limits.ts); all optional. */
  readonly limits?: ProxyLimits;
  /** Distributed tracing (docs/tracing.md); absent: trace headers pass through untouched. */
  readonly tracing?: TracingConfig;
}
