// What the engine is told about one request or connection. The proxy fills
// these from the wire; `meshward authz check` fills them from request JSON.

/** The workload receiving the traffic (the one whose sidecar decides). */
export interface DestinationWorkload {
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly serviceAccount: string;
  /** Workload (target) port the connection arrived on. */
  readonly port: number;
  readonly ip?: string;
  /** Service FQDN and service port the client dialled, when known. */
  readonly service?: { readonly host: string; readonly port: number };
}

/** The connection as the destination's sidecar saw it, after TLS. */
export interface PeerConnection {
  /** True when the connection is Istio mutual TLS with a mesh identity. */
  readonly mtls: boolean;
  /** True when the connection is TLS of any kind (Istio mTLS or not). */
  readonly tls: boolean;
  /** SPIFFE identity without the scheme, e.g. `cluster.local/ns/x/sa/y`; null without mTLS. */
  readonly principal: string | null;
  /** Direct peer address (source.ip, ipBlocks). */
  readonly ip: string;
  /** Original client address (remote.ip, remoteIpBlocks); equals ip when not known. */
  readonly remoteIp: string;
  readonly sni?: string;
}

export interface HttpRequest {
  readonly method: string;
  /** Raw request target as sent: path, query and fragment. */
  readonly path: string;
  /** :authority / Host, port included if sent. */
  readonly host: string;
  /** Lower-case header names, one value each; never `host` or pseudo-headers. */
  readonly headers: Readonly<Record<string, string>>;
}
