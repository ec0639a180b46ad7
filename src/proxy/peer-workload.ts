// The caller's workload name, told by its proxy to the proxy it calls, so
// that the inbound side can label its request metrics with
// source_workload (Istio learns it through peer metadata exchange). The
// calling proxy sets the header on every HTTP request to an ISTIO_MUTUAL
// upstream, after dropping whatever value its app sent; the called proxy
// believes it only on an mTLS connection from a mesh peer, and never passes
// it on to its app. A caller's certificate proves its principal, not its
// workload name: the name is for telemetry, never for policy, and the
// policy engine does not see the header.

/** The request header, lower case as both HTTP/1.1 parsers and HTTP/2 give names. */
export const PEER_WORKLOAD = 'x-meshward-peer-workload';

const MAX_LENGTH = 253;

/**
 * Whether `value` can be a workload name on the wire: 1–253 characters of
 * `[a-z0-9.-]` (a Kubernetes object name). Nothing else is sent or believed,
 * so the value can never carry a delimiter into a header or a label.
 */
export function isPeerWorkload(value: string): boolean {
  if (value.length === 0 || value.length > MAX_LENGTH) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2e /* . */ || c === 0x2d /* - */) continue;
    return false;
  }
  return true;
}
