// The facts one authorization decision reads, gathered once per request (or
// per TCP connection) so that every policy reads the same prepared values:
// the host already lower-cased, addresses already parsed, the peer's SPIFFE
// URI already built.

import type { ParsedIp } from '../../lib/cidr.ts';

/** What a verified JWT contributes (RequestAuthentication ran before authorization). */
export interface JwtFacts {
  readonly issuer: string;
  readonly subject: string;
  readonly claims: Readonly<Record<string, unknown>>;
  readonly audiences: readonly string[];
  readonly presenter: string | null;
}

export interface RequestAttributes {
  /** False for a TCP connection with no HTTP request. */
  readonly http: boolean;
  /** Peer identity without scheme; null unless the connection is Istio mTLS. */
  readonly principal: string | null;
  /** `spiffe://` + principal, the form Envoy's matchers see; null with principal. */
  readonly principalUri: string | null;
  readonly sourceIp: ParsedIp | null;
  readonly remoteIp: ParsedIp | null;
  readonly destinationIp: ParsedIp | null;
  readonly destinationPort: number;
  /** TLS SNI, '' when none. */
  readonly sni: string;
  readonly method: string;
  /** Normalized path without query or fragment. */
  readonly path: string;
  /** :authority lower-cased, '' when absent. */
  readonly hostLower: string;
  /** Lower-case names. */
  readonly headers: Readonly<Record<string, string>>;
  readonly jwt: JwtFacts | null;
}
