// The CA server's TLS credentials, replaceable in place. grpc-js watches
// ServerCredentials and calls setSecureContext() on its listener when they
// change, so a new serving certificate or a new set of client roots applies
// to the next handshake and leaves open streams alone.
//
// Client certificates are requested, not required: a workload's first call
// has no certificate yet and authenticates with its bootstrap token. Node
// verifies a presented certificate against `ca` (the trust bundle) and
// grpc-js exposes it to handlers only when that verification passed.

import { ServerCredentials } from '@grpc/grpc-js';
import type { SecureContextOptions } from 'node:tls';
import { avoidNodePeerChainLeak } from '../../identity/peer-certificates.ts';

export interface ServingMaterial {
  /** PKCS#8 PEM of the serving key; in memory only. */
  keyPem: string;
  /** Serving certificate chain, leaf first. */
  certChainPem: string;
  /** Roots client certificates must chain to: the whole trust bundle. */
  clientRootsPem: string;
}

function contextOptions(m: ServingMaterial): SecureContextOptions {
  return { key: m.keyPem, cert: m.certChainPem, ca: m.clientRootsPem, minVersion: 'TLSv1.2' };
}

export class RotatingServerCredentials extends ServerCredentials {
  constructor(material: ServingMaterial) {
    avoidNodePeerChainLeak();
    super({ requestCert: true, rejectUnauthorized: false }, contextOptions(material));
  }

  /** Applies to handshakes from now on. */
  update(material: ServingMaterial): void {
    this.updateSecureContextOptions(contextOptions(material));
  }

  _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}
