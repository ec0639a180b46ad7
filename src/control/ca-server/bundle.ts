// The trust bundle as the server serves it: read from the CA, versioned,
// pushed to every open Watch stream when it changes. The version starts at
// the server's start time in milliseconds, so it keeps increasing across
// restarts and an agent never mistakes a new bundle for an old one.

import { X509Certificate } from 'node:crypto';
import type { CertificateAuthority } from '../../identity/ca/index.ts';
import type { TrustBundleMessage } from '../../api/identity-messages.ts';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g;

export function splitPem(pem: string): string[] {
  return (pem.match(PEM_CERT) ?? []).map((c) => (c.endsWith('\n') ? c : `${c}\n`));
}

export class BundlePublisher {
  readonly #ca: CertificateAuthority;
  #current: TrustBundleMessage;
  readonly #listeners = new Set<(b: TrustBundleMessage) => void>();

  constructor(ca: CertificateAuthority, startVersion: number) {
    this.#ca = ca;
    this.#current = Object.freeze({ ...this.#read(), version: startVersion });
  }

  get current(): TrustBundleMessage {
    return this.#current;
  }

  /** PEM of every root in the bundle. */
  get rootsPem(): string {
    return this.#current.roots.join('');
  }

  subscribe(fn: (b: TrustBundleMessage) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Re-reads the CA; on any change, bumps the version and pushes. Returns the bundle now served. */
  refresh(): TrustBundleMessage {
    const next = this.#read();
    const cur = this.#current;
    const same =
      next.signing_root === cur.signing_root &&
      next.root_fingerprints.length === cur.root_fingerprints.length &&
      next.root_fingerprints.every((fp, i) => fp === cur.root_fingerprints[i]);
    if (same) return cur;
    this.#current = Object.freeze({ ...next, version: cur.version + 1 });
    for (const fn of this.#listeners) fn(this.#current);
    return this.#current;
  }

  #read(): Omit<TrustBundleMessage, 'version'> {
    const roots = splitPem(this.#ca.trustBundlePem());
    const fingerprints = roots.map((pem) => new X509Certificate(pem).fingerprint256);
    const active = this.#ca.roots().find((r) => r.state === 'active');
    return {
      trust_domain: this.#ca.trustDomain,
      roots,
      root_fingerprints: fingerprints,
      // A plug-in CA's active "root" is its anchor: the root its chain ends at.
      signing_root: active?.fingerprint ?? '',
    };
  }
}
