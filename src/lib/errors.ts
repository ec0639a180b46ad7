// Errors meshward raises on purpose carry a stable code, documented in
// docs/reference/errors.md, so scripts can branch on them and people can
// search for them.

export type MeshwardErrorCode =
  | 'ERR_MW_USAGE' // bad command-line arguments
  | 'ERR_MW_READ' // a file or stdin could not be read
  | 'ERR_MW_INVALID_CONFIG' // Istio resources failed validation
  | 'ERR_MW_INVALID_REQUEST' // an authz check request failed validation
  | 'ERR_MW_PEER_REFUSED'; // a TLS peer failed X509-SVID verification

export class MeshwardError extends Error {
  readonly code: MeshwardErrorCode;
  /** Lines to print for the user, each already naming file/field/reason. */
  readonly details: readonly string[];

  constructor(code: MeshwardErrorCode, message: string, details: readonly string[] = []) {
    super(message);
    this.name = 'MeshwardError';
    this.code = code;
    this.details = details;
  }
}
