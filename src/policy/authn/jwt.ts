// Reading a JWT the way Envoy's jwt_authn filter does (google/jwt_verify_lib
// Jwt::parseFromString, verifyTimeConstraint, CheckAudience), so that the
// same tokens are rejected for the same reasons and the same statuses turn
// into 401 or 403. Signatures are never checked here: that is jose's job.

/**
 * Envoy's verification statuses with the exact text it puts in the 401/403
 * body. Only the ones this engine can produce are listed.
 */
export const JWT_STATUS = Object.freeze({
  Ok: 'OK',
  JwtMissed: 'Jwt is missing',
  JwtNotYetValid: 'Jwt not yet valid',
  JwtExpired: 'Jwt is expired',
  JwtBadFormat: 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections',
  JwtHeaderParseErrorBadBase64: 'Jwt header is an invalid Base64url encoded',
  JwtHeaderParseErrorBadJson: 'Jwt header is an invalid JSON',
  JwtHeaderBadAlg: 'Jwt header [alg] field is required and must be a string',
  JwtHeaderNotImplementedAlg: 'Jwt header [alg] is not supported',
  JwtHeaderBadKid: 'Jwt header [kid] field is not a string',
  JwtPayloadParseErrorBadBase64: 'Jwt payload is an invalid Base64url encoded',
  JwtPayloadParseErrorBadJson: 'Jwt payload is an invalid JSON',
  JwtPayloadParseErrorIssNotString: 'Jwt payload [iss] field is not a string',
  JwtPayloadParseErrorSubNotString: 'Jwt payload [sub] field is not a string',
  JwtPayloadParseErrorIatNotInteger: 'Jwt payload [iat] field is not an integer',
  JwtPayloadParseErrorIatOutOfRange: 'Jwt payload [iat] field is not a positive 64 bit integer',
  JwtPayloadParseErrorNbfNotInteger: 'Jwt payload [nbf] field is not an integer',
  JwtPayloadParseErrorNbfOutOfRange: 'Jwt payload [nbf] field is not a positive 64 bit integer',
  JwtPayloadParseErrorExpNotInteger: 'Jwt payload [exp] field is not an integer',
  JwtPayloadParseErrorExpOutOfRange: 'Jwt payload [exp] field is not a positive 64 bit integer',
  JwtPayloadParseErrorJtiNotString: 'Jwt payload [jti] field is not a string',
  JwtPayloadParseErrorAudNotString: 'Jwt payload [aud] field is not a string or string list',
  JwtSignatureParseErrorBadBase64: 'Jwt signature is an invalid Base64url encoded',
  JwtUnknownIssuer: 'Jwt issuer is not configured',
  JwtAudienceNotAllowed: 'Audiences in Jwt are not allowed',
  JwtVerificationFail: 'Jwt verification fails',
  JwksNoValidKeys: "Jwks doesn't have any valid public key",
  JwksKidAlgMismatch: "Jwks doesn't have key to match kid or alg from Jwt",
  JwksFetchFail: 'Jwks remote fetch is failed',
});

export type JwtStatus = keyof typeof JWT_STATUS;

/** Envoy answers 403 for a disallowed audience and 401 for every other failure. */
export function httpStatusFor(status: JwtStatus): 401 | 403 {
  return status === 'JwtAudienceNotAllowed' ? 403 : 401;
}

/** The algorithms jwt_verify_lib implements; anything else, `none` included, is refused before keys are looked at. */
export const SUPPORTED_ALGORITHMS: ReadonlySet<string> = new Set([
  'ES256', 'ES384', 'ES512',
  'HS256', 'HS384', 'HS512',
  'RS256', 'RS384', 'RS512',
  'PS256', 'PS384', 'PS512',
  'EdDSA',
]);

/** jwt_verify_lib's default clock skew, which Istio does not change. */
export const CLOCK_SKEW_SECONDS = 60;

export interface ParsedJwt {
  readonly token: string;
  readonly headerB64: string;
  readonly payloadB64: string;
  readonly signatureB64: string;
  readonly header: Readonly<Record<string, unknown>>;
  readonly payload: Readonly<Record<string, unknown>>;
  readonly alg: string;
  /** '' when absent, as in Envoy. */
  readonly kid: string;
  readonly iss: string;
  readonly sub: string;
  readonly audiences: readonly string[];
  /** 0 when absent. */
  readonly nbf: number;
  /** 0 when absent (no expiry). */
  readonly exp: number;
}

export type ParseResult =
  | { readonly status: 'Ok'; readonly jwt: ParsedJwt }
  | { readonly status: Exclude<JwtStatus, 'Ok'> };

const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const MAX_UINT64 = 2 ** 64;

function base64urlDecode(segment: string): Uint8Array | null {
  if (!BASE64URL.test(segment)) return null;
  let end = segment.length;
  while (end > 0 && segment.charCodeAt(end - 1) === 0x3d) end--;
  if (end % 4 === 1) return null;
  return Buffer.from(segment.slice(0, end), 'base64url');
}

function decodeJsonObject(segment: string): Record<string, unknown> | 'base64' | 'json' {
  const bytes = base64urlDecode(segment);
  if (bytes === null) return 'base64';
  try {
    const value: unknown = JSON.parse(UTF8.decode(bytes));
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'json';
    return value as Record<string, unknown>;
  } catch {
    return 'json';
  }
}

type TimeField = number | 'wrong-type' | 'out-of-range';

function readTime(payload: Record<string, unknown>, name: string): TimeField {
  if (!Object.hasOwn(payload, name)) return 0;
  const value = payload[name];
  if (typeof value !== 'number') return 'wrong-type';
  if (!(value >= 0 && value < MAX_UINT64)) return 'out-of-range';
  return Math.trunc(value);
}

function isWrongType(obj: Record<string, unknown>, name: string, type: 'string'): boolean {
  return Object.hasOwn(obj, name) && typeof obj[name] !== type;
}

/** Parses a compact JWT with jwt_verify_lib's checks and in its order. */
export function parseJwt(token: string): ParseResult {
  let dots = 0;
  for (let i = 0; i < token.length; i++) if (token.charCodeAt(i) === 0x2e) dots++;
  if (dots !== 2) return { status: 'JwtBadFormat' };
  const [headerB64 = '', payloadB64 = '', signatureB64 = ''] = token.split('.');
  if (headerB64 === '' || payloadB64 === '' || signatureB64 === '') return { status: 'JwtBadFormat' };

  const header = decodeJsonObject(headerB64);
  if (header === 'base64') return { status: 'JwtHeaderParseErrorBadBase64' };
  if (header === 'json') return { status: 'JwtHeaderParseErrorBadJson' };
  const alg = header['alg'];
  if (typeof alg !== 'string') return { status: 'JwtHeaderBadAlg' };
  if (!SUPPORTED_ALGORITHMS.has(alg)) return { status: 'JwtHeaderNotImplementedAlg' };
  if (isWrongType(header, 'kid', 'string')) return { status: 'JwtHeaderBadKid' };

  const payload = decodeJsonObject(payloadB64);
  if (payload === 'base64') return { status: 'JwtPayloadParseErrorBadBase64' };
  if (payload === 'json') return { status: 'JwtPayloadParseErrorBadJson' };
  if (isWrongType(payload, 'iss', 'string')) return { status: 'JwtPayloadParseErrorIssNotString' };
  if (isWrongType(payload, 'sub', 'string')) return { status: 'JwtPayloadParseErrorSubNotString' };
  const iat = readTime(payload, 'iat');
  if (iat === 'wrong-type') return { status: 'JwtPayloadParseErrorIatNotInteger' };
  if (iat === 'out-of-range') return { status: 'JwtPayloadParseErrorIatOutOfRange' };
  const nbf = readTime(payload, 'nbf');
  if (nbf === 'wrong-type') return { status: 'JwtPayloadParseErrorNbfNotInteger' };
  if (nbf === 'out-of-range') return { status: 'JwtPayloadParseErrorNbfOutOfRange' };
  const exp = readTime(payload, 'exp');
  if (exp === 'wrong-type') return { status: 'JwtPayloadParseErrorExpNotInteger' };
  if (exp === 'out-of-range') return { status: 'JwtPayloadParseErrorExpOutOfRange' };
  if (isWrongType(payload, 'jti', 'string')) return { status: 'JwtPayloadParseErrorJtiNotString' };

  let audiences: readonly string[] = [];
  if (Object.hasOwn(payload, 'aud')) {
    const aud = payload['aud'];
    if (typeof aud === 'string') audiences = [aud];
    else if (Array.isArray(aud) && aud.every((a) => typeof a === 'string')) audiences = aud as string[];
    else return { status: 'JwtPayloadParseErrorAudNotString' };
  }

  if (base64urlDecode(signatureB64) === null) return { status: 'JwtSignatureParseErrorBadBase64' };

  return {
    status: 'Ok',
    jwt: {
      token,
      headerB64,
      payloadB64,
      signatureB64,
      header,
      payload,
      alg,
      kid: typeof header['kid'] === 'string' ? header['kid'] : '',
      iss: typeof payload['iss'] === 'string' ? payload['iss'] : '',
      sub: typeof payload['sub'] === 'string' ? payload['sub'] : '',
      audiences,
      nbf,
      exp,
    },
  };
}

/** `nbf` and `exp` with the clock skew applied on both sides, as jwt_verify_lib does. */
export function checkTime(jwt: ParsedJwt, nowSeconds: number): 'Ok' | 'JwtNotYetValid' | 'JwtExpired' {
  if (nowSeconds + CLOCK_SKEW_SECONDS < jwt.nbf) return 'JwtNotYetValid';
  if (jwt.exp !== 0 && nowSeconds > jwt.exp + CLOCK_SKEW_SECONDS) return 'JwtExpired';
  return 'Ok';
}

/**
 * jwt_verify_lib compares audiences without an `http://` or `https://`
 * scheme and without one trailing slash, on both the configured and the
 * token side, because users get those wrong.
 */
export function sanitizeAudience(aud: string): string {
  let begin = 0;
  if (aud.startsWith('http://')) begin = 7;
  else if (aud.startsWith('https://')) begin = 8;
  const end = aud.length > 0 && aud.endsWith('/') ? aud.length - 1 : aud.length;
  return begin === 0 && end === aud.length ? aud : aud.slice(begin, Math.max(begin, end));
}

/** No configured audiences allows any token; otherwise one token audience must match. */
export function audiencesAllowed(configured: ReadonlySet<string>, jwt: ParsedJwt): boolean {
  if (configured.size === 0) return true;
  return jwt.audiences.some((aud) => configured.has(sanitizeAudience(aud)));
}
