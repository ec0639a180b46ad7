// The identity wire contract shared by the CA server (control) and the
// workload agent (identity, used by the proxy): message shapes as
// @grpc/proto-loader decodes them, metadata keys, and the service
// definitions loaded from ./proto. Neither side imports the other; both
// import this.

import { packageFile } from '../lib/installation.ts';
import { loadSync, type Options } from '@grpc/proto-loader';
import type { ServiceDefinition } from '@grpc/grpc-js';

// --- istio.v1.auth (istio/api security/v1alpha1/ca.proto) ------------------

export const CERTIFICATE_SERVICE = 'istio.v1.auth.IstioCertificateService';
export const CREATE_CERTIFICATE_PATH = `/${CERTIFICATE_SERVICE}/CreateCertificate`;

/** google.protobuf.Struct as proto-loader decodes it (objects: true). */
export interface ProtoStruct {
  fields: Record<string, ProtoValue>;
}
export interface ProtoValue {
  stringValue?: string;
  numberValue?: number;
  boolValue?: boolean;
  kind?: string;
}

export interface IstioCertificateRequest {
  csr: string;
  /** Seconds; 0 asks for the CA's default. */
  validity_duration: number;
  metadata?: ProtoStruct | null;
}

export interface IstioCertificateResponse {
  /** One PEM certificate per element, leaf first, root last. */
  cert_chain: string[];
}

// --- meshward.identity.v1 --------------------------------------------------

export const TRUST_BUNDLE_SERVICE = 'meshward.identity.v1.TrustBundleService';
export const WATCH_TRUST_BUNDLE_PATH = `/${TRUST_BUNDLE_SERVICE}/Watch`;

export interface TrustBundleMessage {
  trust_domain: string;
  version: number;
  /** One PEM certificate per element. */
  roots: string[];
  /** SHA-256, `AB:CD:…` (X509Certificate.fingerprint256), same order as roots. */
  root_fingerprints: string[];
  /** Fingerprint of the root that signs new certificates. */
  signing_root: string;
}

export interface TrustBundleAck {
  version: number;
  cert_root: string;
  cert_serial: string;
  /** Unix seconds. */
  cert_not_after: number;
  /** Non-empty: the bundle was not applied (NACK). */
  error: string;
}

// --- metadata --------------------------------------------------------------

/** `authorization: Bearer <token>`: the bootstrap credential. */
export const AUTHORIZATION_METADATA = 'authorization';
export const BEARER_PREFIX = 'Bearer ';
/**
 * A random id each agent picks at start, sent on every call, so the server
 * can tell replicas sharing one SPIFFE ID apart when it tracks who has
 * applied which bundle.
 */
export const AGENT_ID_METADATA = 'x-meshward-agent-id';

/** Largest CSR (PEM characters) the server parses; RSA-4096 needs under 2 KiB. */
export const MAX_CSR_BYTES = 16 * 1024;
/**
 * The server's gRPC receive limit sits above MAX_CSR_BYTES so an oversized CSR
 * reaches the handler and gets a precise INVALID_ARGUMENT, not a bare
 * RESOURCE_EXHAUSTED from the transport.
 */
export const MAX_MESSAGE_BYTES = 256 * 1024;

// --- service definitions ---------------------------------------------------

const LOADER_OPTIONS: Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  arrays: true,
  objects: true,
  oneofs: true,
};

export interface IdentityServices {
  certificate: ServiceDefinition;
  trustBundle: ServiceDefinition;
}

let services: IdentityServices | undefined;

/** Loads ./proto once per process. */
export function identityServices(): IdentityServices {
  if (services) return services;
  const files = ['istio-ca.proto', 'meshward-identity.proto'].map((f) => packageFile('src', 'api', 'proto', f));
  const pkg = loadSync(files, LOADER_OPTIONS);
  services = Object.freeze({
    certificate: pkg[CERTIFICATE_SERVICE] as ServiceDefinition,
    trustBundle: pkg[TRUST_BUNDLE_SERVICE] as ServiceDefinition,
  });
  return services;
}

/** Flat string map → google.protobuf.Struct. */
export function toProtoStruct(values: Readonly<Record<string, string>>): ProtoStruct {
  const fields: Record<string, ProtoValue> = {};
  for (const [k, v] of Object.entries(values)) fields[k] = { stringValue: v, kind: 'stringValue' };
  return { fields };
}

/** google.protobuf.Struct → flat string map (non-string values stringified). */
export function fromProtoStruct(struct: ProtoStruct | null | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(struct?.fields ?? {})) {
    out[k] = v.stringValue ?? (v.numberValue !== undefined ? String(v.numberValue) : v.boolValue !== undefined ? String(v.boolValue) : '');
  }
  return out;
}

// --- the CA server's own identity --------------------------------------------

/**
 * The CA server serves with an SVID for this workload identity (in the
 * mesh's trust domain); agents accept no other. Istio's istiod runs as
 * istio-system/istiod the same way.
 */
export const CA_SERVER_NAMESPACE = 'meshward-system';
export const CA_SERVER_SERVICE_ACCOUNT = 'meshward-control';
