// Errors the CA raises on purpose. `reason` is a stable code callers branch
// on; `message` is safe to hand back to whoever sent the request (it says
// what kind of problem, never which byte or which key); `detail` is for the
// operator's log. Neither ever holds key material: nothing here is built
// from key bytes, and PEM text is never quoted.

export type CaReason =
  // sign(): the request
  | 'malformed-csr' // not one PEM CERTIFICATE REQUEST, bad DER, or its signature does not verify
  | 'csr-too-large' // larger than MAX_CSR_BYTES before any parsing
  | 'identity-mismatch' // the CSR asks for a name other than the caller's, or the caller is not in this trust domain
  | 'weak-key' // a key type or size the CA does not certify
  | 'ttl-too-long' // requested lifetime above maxWorkloadTtlSeconds
  | 'ca-unavailable' // the CA is closed, or signing failed inside the CA
  // open() and root rotation: the operator's configuration and state
  | 'invalid-config' // bad options (trust domain, TTLs, key type)
  | 'invalid-plugin' // the cacerts directory was refused; detail names the file and the check
  | 'invalid-state' // the state directory is unreadable, corrupt, or belongs to another trust domain
  | 'state-locked' // another live process holds the state directory
  | 'unknown-root' // no root with that fingerprint
  | 'root-in-use' // retiring the active root, or a transition that does not apply
  | 'not-supported'; // root rotation on a plug-in CA (rotate by replacing cacerts)

/** Istio's `error` label values on citadel_server_csr_sign_err_count (security/pkg/pki/error). */
export type IstioErrorType = 'CA_NOT_READY' | 'CSR_ERROR' | 'TTL_ERROR' | 'CERT_GEN_ERROR';

const CALLER_MESSAGES: Partial<Record<CaReason, string>> = {
  'malformed-csr': 'CSR rejected: not a valid PKCS#10 certificate request',
  'csr-too-large': 'CSR rejected: too large',
  'identity-mismatch': 'CSR rejected: it asks for an identity other than the caller\'s',
  'weak-key': 'CSR rejected: unsupported or weak public key',
  'ttl-too-long': 'CSR rejected: requested TTL is greater than the maximum allowed',
  'ca-unavailable': 'certificate authority unavailable',
};

export class CaError extends Error {
  readonly reason: CaReason;
  /** For the operator's log: what exactly was wrong. Never returned to a remote caller. */
  readonly detail: string;

  constructor(reason: CaReason, detail: string, message?: string) {
    super(message ?? CALLER_MESSAGES[reason] ?? detail);
    this.name = 'CaError';
    this.reason = reason;
    this.detail = detail;
  }
}

export function istioErrorType(reason: CaReason): IstioErrorType {
  switch (reason) {
    case 'ttl-too-long':
      return 'TTL_ERROR';
    case 'ca-unavailable':
      return 'CA_NOT_READY';
    case 'malformed-csr':
    case 'csr-too-large':
    case 'identity-mismatch':
    case 'weak-key':
      return 'CSR_ERROR';
    default:
      return 'CERT_GEN_ERROR';
  }
}
