// The engine's answer, in the shape `meshward authz check -o json` prints
// (decision, status, stage, policy, principal, requestPrincipal) plus what a
// person needs to understand it.

import type { NearMiss } from './authz/explain.ts';

export type Stage = 'peer-authentication' | 'normalization' | 'request-authentication' | 'authorization';

export type Status = 200 | 400 | 401 | 403 | 'reset';

export type HeaderMutation = { readonly op: 'remove'; readonly name: string } | { readonly op: 'set'; readonly name: string; readonly value: string };

export interface Decision {
  readonly decision: 'ALLOW' | 'DENY';
  readonly status: Status;
  /** Null when allowed. */
  readonly stage: Stage | null;
  /** `<ns>/<name>` of the policy that decided, null when no single policy did. */
  readonly policy: string | null;
  /** Authenticated peer identity without `spiffe://`; null for plaintext. */
  readonly principal: string | null;
  /** `<iss>/<sub>` of the verified JWT. */
  readonly requestPrincipal: string | null;
  /** Rule index within the deciding policy. */
  readonly rule: number | null;
  /** One sentence a person can act on. */
  readonly reason: string;
  readonly trace: DecisionTrace;
}

/** What each stage saw, in order; a stage that did not run is absent. */
export interface DecisionTrace {
  readonly peerAuthentication?: {
    readonly mode: 'STRICT' | 'PERMISSIVE' | 'DISABLE';
    readonly policy: string | null;
    readonly connection: 'istio-mtls' | 'tls' | 'plaintext';
    readonly clientTls?: { readonly mode: string; readonly auto: boolean; readonly destinationRule: string | null; readonly reason: string };
  };
  readonly normalizedPath?: string;
  readonly requestAuthentication?: { readonly status: 'ok' | 401 | 403; readonly reason: string; readonly policy: string | null };
  readonly authorization?: {
    readonly action: 'CUSTOM' | 'DENY' | 'ALLOW' | null;
    readonly reason: string;
    readonly observed: readonly { readonly policy: string; readonly action: string; readonly rule: number; readonly dryRun: boolean }[];
    /** For a default deny, the ALLOW rule that came closest (only when an explanation was asked for). */
    readonly nearest?: NearMiss | null;
  };
  /** Headers the proxy must change before forwarding (JWT outputs, token removal). */
  readonly headerMutations?: readonly HeaderMutation[];
}
