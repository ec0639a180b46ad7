// Certificates for the two-hop benchmark, made with the openssl CLI into a
// private temporary directory at run time (never committed): one ECDSA P-256
// root and P-256 leaves whose URI SAN is the workload's SPIFFE ID. nginx and
// HAProxy cannot match a URI SAN (nginx has no variable for it, HAProxy 2.6
// no fetch), so each leaf also carries CN=<service account>, which their
// authorization rule reads, and the server leaf a DNS SAN their name check
// reads. meshward checks the URI SAN only.

import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const TRUST_DOMAIN = 'cluster.local';
export const NAMESPACE = 'bench';
export const SERVER_DNS = 'server.bench.svc';

export const spiffeId = (sa: string): string => `spiffe://${TRUST_DOMAIN}/ns/${NAMESPACE}/sa/${sa}`;

export interface Leaf {
  readonly sa: string;
  readonly keyFile: string;
  /** Leaf then root, PEM. */
  readonly chainFile: string;
  /** Chain then key in one file (HAProxy's `crt`). */
  readonly comboFile: string;
}

export interface Pki {
  readonly dir: string;
  readonly rootFile: string;
  leaf(sa: string, dns?: string): Leaf;
}

function openssl(args: readonly string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function newKey(dir: string, file: string): void {
  openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file], dir);
  chmodSync(join(dir, file), 0o600);
}

/** A root CA in `dir`; `leaf(sa)` issues (once) a workload certificate. */
export function createPki(dir: string): Pki {
  newKey(dir, 'root.key');
  openssl(
    [
      'req', '-x509', '-new', '-key', 'root.key', '-sha256', '-days', '2', '-subj', '/O=meshward-bench/CN=bench root',
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      '-addext', `subjectAltName=URI:spiffe://${TRUST_DOMAIN}`,
      '-out', 'root.crt',
    ],
    dir,
  );
  const issued = new Map<string, Leaf>();
  return {
    dir,
    rootFile: join(dir, 'root.crt'),
    leaf(sa: string, dns?: string): Leaf {
      const have = issued.get(sa);
      if (have !== undefined) return have;
      newKey(dir, `${sa}.key`);
      openssl(['req', '-new', '-key', `${sa}.key`, '-subj', `/O=meshward-bench/CN=${sa}`, '-out', `${sa}.csr`], dir);
      const san = `URI:${spiffeId(sa)}${dns === undefined ? '' : `,DNS:${dns}`}`;
      writeFileSync(
        join(dir, `${sa}.ext`),
        [
          'basicConstraints=critical,CA:FALSE',
          'keyUsage=critical,digitalSignature,keyAgreement',
          'extendedKeyUsage=serverAuth,clientAuth',
          `subjectAltName=${san}`,
          'subjectKeyIdentifier=hash',
          'authorityKeyIdentifier=keyid',
          '',
        ].join('\n'),
      );
      openssl(
        ['x509', '-req', '-in', `${sa}.csr`, '-CA', 'root.crt', '-CAkey', 'root.key', '-CAcreateserial', '-sha256', '-days', '1', '-extfile', `${sa}.ext`, '-out', `${sa}.crt`],
        dir,
      );
      const root = readFileSync(join(dir, 'root.crt'), 'utf8');
      const chain = readFileSync(join(dir, `${sa}.crt`), 'utf8') + root;
      writeFileSync(join(dir, `${sa}-chain.pem`), chain);
      writeFileSync(join(dir, `${sa}-combo.pem`), chain + readFileSync(join(dir, `${sa}.key`), 'utf8'), { mode: 0o600 });
      const leaf: Leaf = { sa, keyFile: join(dir, `${sa}.key`), chainFile: join(dir, `${sa}-chain.pem`), comboFile: join(dir, `${sa}-combo.pem`) };
      issued.set(sa, leaf);
      return leaf;
    },
  };
}
