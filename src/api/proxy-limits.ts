// The limits that protect a proxy's inbound side from peers that send too
// much, too slowly, or too often (`ProxyConfig.limits`). Every field is
// optional; the defaults follow Envoy's where Envoy has a safe one, and are
// tighter where Envoy's default is "off" (request headers timeout) or very
// long (idle timeout, one hour). docs/inbound.md, "Limits", lists them with
// the status codes and metrics each one produces.

export interface ProxyLimits {
  /**
   * Request line and headers of one HTTP/1.1 request, or the header list of
   * one HTTP/2 request (names and values), in bytes. Over it: 431. Default
   * 61440 (60 KiB, Envoy's `max_request_headers_kb`).
   */
  readonly maxRequestHeadersBytes?: number;
  /** Request headers (pseudo-headers not counted). Over it: 431. Default 100 (Envoy's `max_headers_count`). */
  readonly maxRequestHeadersCount?: number;
  /**
   * From the first byte of a request to the end of its headers. Over it:
   * 408 and the connection is closed. Default 10 000 ms (Envoy's
   * `request_headers_timeout`, off there by default).
   */
  readonly headerTimeoutMs?: number;
  /**
   * From the first byte of a request until the whole request, body
   * included, has been received. Over it: 408 (or a reset when the response
   * has begun). 0 turns it off. Default 300 000 ms (Envoy's `request_timeout`,
   * off there by default). Not shorter than `headerTimeoutMs` unless 0.
   */
  readonly requestTimeoutMs?: number;
  /**
   * A connection with no request in flight (HTTP/1.1 keep-alive between
   * requests, an HTTP/2 session without open streams) is closed quietly
   * (HTTP/2: GOAWAY) after this long. Default 300 000 ms (Envoy: `idle_timeout`, 1 h).
   */
  readonly idleTimeoutMs?: number;
  /**
   * From accept until the protocol is known and, for TLS, the handshake has
   * completed: a peer that connects and sends nothing, or starts a TLS
   * handshake and stalls, is closed without a response. Default 10 000 ms
   * (Envoy: `listener_filters_timeout` 15 s, `transport_socket_connect_timeout`).
   */
  readonly handshakeTimeoutMs?: number;
  /**
   * Downstream connections open at once across all inbound ports of the
   * proxy. A connection over it is closed as soon as it is accepted; those
   * already open are not touched. Default 10 000 (Envoy: overload manager
   * `global_downstream_max_connections`).
   */
  readonly maxDownstreamConnections?: number;
}

export type ResolvedProxyLimits = Readonly<Required<ProxyLimits>>;

export const DEFAULT_PROXY_LIMITS: ResolvedProxyLimits = Object.freeze({
  maxRequestHeadersBytes: 60 * 1024,
  maxRequestHeadersCount: 100,
  headerTimeoutMs: 10_000,
  requestTimeoutMs: 300_000,
  idleTimeoutMs: 300_000,
  handshakeTimeoutMs: 10_000,
  maxDownstreamConnections: 10_000,
});

/** Bounds the schema accepts, so a typo cannot switch a protection off. */
export const PROXY_LIMIT_BOUNDS = Object.freeze({
  maxRequestHeadersBytes: { min: 1024, max: 8 * 1024 * 1024 },
  maxRequestHeadersCount: { min: 1, max: 10_000 },
  headerTimeoutMs: { min: 1, max: 600_000 },
  requestTimeoutMs: { min: 0, max: 86_400_000 },
  idleTimeoutMs: { min: 1, max: 86_400_000 },
  handshakeTimeoutMs: { min: 1, max: 600_000 },
  maxDownstreamConnections: { min: 1, max: 1_000_000 },
} satisfies Record<keyof ProxyLimits, { min: number; max: number }>);

const resolved = new WeakMap<ProxyLimits, ResolvedProxyLimits>();

/** The configured limits with every default filled in; the same object for the same input. */
export function resolveProxyLimits(limits: ProxyLimits | undefined): ResolvedProxyLimits {
  if (limits === undefined) return DEFAULT_PROXY_LIMITS;
  let r = resolved.get(limits);
  if (r === undefined) {
    r = Object.freeze({ ...DEFAULT_PROXY_LIMITS, ...Object.fromEntries(Object.entries(limits).filter(([, v]) => v !== undefined)) });
    resolved.set(limits, r);
  }
  return r;
}
