// The agent's side of the wire: one CreateCertificate call, and the trust
// bundle Watch stream. Each call gets its own channel built from the
// credentials of the moment (the bundle the agent trusts now, the
// certificate it holds now), so a rotated key or bundle is never hidden
// behind a connection opened with the old one; calls are rare enough that
// the extra handshake does not matter.

import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { Client, credentials, Metadata, status, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import {
  AGENT_ID_METADATA,
  AUTHORIZATION_METADATA,
  BEARER_PREFIX,
  CREATE_CERTIFICATE_PATH,
  MAX_MESSAGE_BYTES,
  WATCH_TRUST_BUNDLE_PATH,
  identityServices,
  toProtoStruct,
  type IstioCertificateRequest,
  type IstioCertificateResponse,
  type TrustBundleAck,
  type TrustBundleMessage,
} from '../../api/identity-messages.ts';

/** How the agent proves who it is: the bootstrap token, or its current SVID. */
export type CallerCredential =
  | { kind: 'token'; token: string }
  | { kind: 'svid'; keyPem: string; certChainPem: string };

export interface CaConnection {
  /** `host:port` of the CA server. */
  address: string;
  /** PEM roots the CA server's certificate must chain to. */
  bundlePem: string;
  /** The SPIFFE ID the CA server's certificate must carry. */
  caIdentity: string;
  agentId: string;
  /** Deadline of one CreateCertificate call. */
  timeoutMs: number;
}

/**
 * SNI sent to the CA. Its certificate has a SPIFFE ID, not a DNS name, and
 * an IP address is not a valid SNI (RFC 6066), so the name is a fixed label;
 * the identity check below is what authenticates the server.
 */
const CA_SERVER_NAME = 'meshward-ca';

export class CaCallError extends Error {
  readonly code: status;
  constructor(code: status, message: string) {
    super(message);
    this.name = 'CaCallError';
    this.code = code;
  }
}

function channel(conn: CaConnection, cred: CallerCredential): Client {
  const creds = credentials.createSsl(
    Buffer.from(conn.bundlePem),
    cred.kind === 'svid' ? Buffer.from(cred.keyPem) : null,
    cred.kind === 'svid' ? Buffer.from(cred.certChainPem) : null,
    { checkServerIdentity: (_host, cert) => checkCaIdentity(cert, conn.caIdentity) },
  );
  return new Client(conn.address, creds, {
    'grpc.ssl_target_name_override': CA_SERVER_NAME,
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    // Never share a connection with another client in this process: it may
    // have been opened with another credential.
    'grpc.use_local_subchannel_pool': 1,
  });
}

/** The CA server must present exactly `expected` as its one URI SAN. */
export function checkCaIdentity(cert: PeerCertificate, expected: string): Error | undefined {
  let uris: string[];
  try {
    const sans = new X509Certificate(cert.raw).subjectAltName ?? '';
    uris = sans
      .split(', ')
      .filter((s) => s.startsWith('URI:'))
      .map((s) => s.slice(4));
  } catch {
    return new Error('CA server certificate cannot be parsed');
  }
  if (uris.length !== 1 || uris[0] !== expected) {
    return new Error(`CA server identity is ${uris.join(', ') || '(none)'}, expected ${expected}`);
  }
  return undefined;
}

function metadataFor(conn: CaConnection, cred: CallerCredential): Metadata {
  const md = new Metadata();
  md.set(AGENT_ID_METADATA, conn.agentId);
  if (cred.kind === 'token') md.set(AUTHORIZATION_METADATA, BEARER_PREFIX + cred.token);
  return md;
}

export interface CreateCertificateInput {
  csrPem: string;
  ttlSeconds: number;
  metadata: Readonly<Record<string, string>>;
}

/** One CreateCertificate call; resolves with the PEM chain, leaf first. */
export function createCertificate(conn: CaConnection, cred: CallerCredential, input: CreateCertificateInput): Promise<string[]> {
  const method = identityServices().certificate.CreateCertificate!;
  const client = channel(conn, cred);
  const request: IstioCertificateRequest = {
    csr: input.csrPem,
    validity_duration: input.ttlSeconds,
    metadata: toProtoStruct(input.metadata),
  };
  return new Promise<string[]>((resolve, reject) => {
    client.makeUnaryRequest<IstioCertificateRequest, IstioCertificateResponse>(
      CREATE_CERTIFICATE_PATH,
      method.requestSerialize,
      method.responseDeserialize,
      request,
      metadataFor(conn, cred),
      { deadline: Date.now() + conn.timeoutMs },
      (err: ServiceError | null, res?: IstioCertificateResponse) => {
        client.close();
        if (err) reject(new CaCallError(err.code, err.details || err.message));
        else if (!res || res.cert_chain.length === 0) reject(new CaCallError(status.INTERNAL, 'CA returned an empty certificate chain'));
        else resolve(res.cert_chain);
      },
    );
  });
}

export interface BundleWatch {
  /** Sends an ACK (or, with `error`, a NACK). */
  ack(ack: TrustBundleAck): void;
  /** Ends the stream cleanly (the server forgets this agent); resolves once the server has answered, or after a second. */
  close(): Promise<void>;
}

export interface BundleWatchHandlers {
  onBundle(bundle: TrustBundleMessage): void;
  /** The stream ended, cleanly or not; `err` is undefined after close(). */
  onEnd(err: CaCallError | undefined): void;
}

/** Opens the trust bundle Watch stream, authenticated with the agent's SVID. */
export function watchBundle(conn: CaConnection, cred: CallerCredential & { kind: 'svid' }, handlers: BundleWatchHandlers): BundleWatch {
  const method = identityServices().trustBundle.Watch!;
  const client = channel(conn, cred);
  const call: ClientDuplexStream<TrustBundleAck, TrustBundleMessage> = client.makeBidiStreamRequest(
    WATCH_TRUST_BUNDLE_PATH,
    method.requestSerialize,
    method.responseDeserialize,
    metadataFor(conn, cred),
  );
  let closed = false;
  let ended = false;
  let onFinished: (() => void) | undefined;
  const finish = (err: CaCallError | undefined): void => {
    if (ended) return;
    ended = true;
    client.close();
    onFinished?.();
    handlers.onEnd(err);
  };
  call.on('data', (bundle: TrustBundleMessage) => {
    if (!ended) handlers.onBundle(bundle);
  });
  call.on('error', (err: ServiceError) => {
    finish(closed ? undefined : new CaCallError(err.code, err.details || err.message));
  });
  call.on('end', () => finish(closed ? undefined : new CaCallError(status.UNAVAILABLE, 'CA closed the bundle stream')));
  return {
    ack(ack) {
      if (!ended && !closed) call.write(ack);
    },
    close() {
      if (closed || ended) return Promise.resolve();
      closed = true;
      return new Promise<void>((resolve) => {
        // The server answers the half-close by ending its side; if it never
        // does (it is gone), do not wait for it.
        const timer = setTimeout(() => {
          call.cancel();
          finish(undefined);
        }, 1000);
        onFinished = () => {
          clearTimeout(timer);
          resolve();
        };
        call.end();
      });
    },
  };
}
