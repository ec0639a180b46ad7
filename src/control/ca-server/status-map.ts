// Every way a CA server call fails becomes a gRPC status here, and only
// here (linkerd's inbound `rescue` in one match). What the caller reads is
// deliberately thin: who failed authentication, and why, goes to the log and
// the metrics, never back over the wire. Only problems with the caller's own
// input (a CSR that is not a CSR) are spelled out, since that is something
// the caller can fix and it reveals nothing about the server.

import { status, type ServiceError } from '@grpc/grpc-js';
import { CaError, type CaReason } from '../../identity/ca/errors.ts';

export type CallFailure =
  | { kind: 'unauthenticated'; reason: string }
  | { kind: 'invalid-argument'; message: string }
  | { kind: 'ca'; error: CaError }
  | { kind: 'internal'; error: unknown };

const CA_CODES: Record<CaReason, status> = {
  'malformed-csr': status.INVALID_ARGUMENT,
  'csr-too-large': status.INVALID_ARGUMENT,
  'weak-key': status.INVALID_ARGUMENT,
  'ttl-too-long': status.INVALID_ARGUMENT,
  'identity-mismatch': status.PERMISSION_DENIED,
  'ca-unavailable': status.UNAVAILABLE,
  'invalid-config': status.INTERNAL,
  'invalid-plugin': status.INTERNAL,
  'invalid-state': status.INTERNAL,
  'state-locked': status.INTERNAL,
  'unknown-root': status.INTERNAL,
  'root-in-use': status.INTERNAL,
  'not-supported': status.INTERNAL,
};

/** Reasons whose CaError message is meant for the caller (see ca/errors.ts). */
const CALLER_FACING = new Set<CaReason>(['malformed-csr', 'csr-too-large', 'weak-key', 'ttl-too-long', 'identity-mismatch', 'ca-unavailable']);

export function toStatus(f: CallFailure): Partial<ServiceError> & { code: status; details: string } {
  switch (f.kind) {
    case 'unauthenticated':
      return { code: status.UNAUTHENTICATED, details: 'request authentication failure' };
    case 'invalid-argument':
      return { code: status.INVALID_ARGUMENT, details: f.message };
    case 'ca':
      return {
        code: CA_CODES[f.error.reason] ?? status.INTERNAL,
        details: CALLER_FACING.has(f.error.reason) ? f.error.message : 'certificate signing failed',
      };
    case 'internal':
      return { code: status.INTERNAL, details: 'internal error' };
  }
}

/** Normalizes anything thrown while signing. */
export function failureOf(err: unknown): CallFailure {
  return err instanceof CaError ? { kind: 'ca', error: err } : { kind: 'internal', error: err };
}
