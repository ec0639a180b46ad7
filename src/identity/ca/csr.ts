// Reading a certificate signing request the way a CA must: bounded before
// parsing, strict about encoding, key checked before any expensive
// signature check, proof of possession verified. From a CSR the CA takes
// only the public key; the names it asks for are read only to refuse a
// request for someone else's identity.

import { MAX_CSR_BYTES } from '../../api/identity-messages.ts';
import { CaError } from './errors.ts';
import { describePublicKey, type PublicKeyInfo } from './keys.ts';
import { decodePem, isSingleDerSequence, x509 } from './x509.ts';

export { MAX_CSR_BYTES };

export interface ParsedCsr {
  publicKey: x509.PublicKey;
  key: PublicKeyInfo;
  /** Every subjectAltName the CSR asks for, as `uri:…`, `dns:…`, `ip:…`, `email:…`. */
  requestedNames: string[];
}

const CSR_LABELS = new Set(['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST']);
const SAN_OID = '2.5.29.17';

export async function parseCsr(csrPem: unknown): Promise<ParsedCsr> {
  if (typeof csrPem !== 'string') throw new CaError('malformed-csr', 'CSR is not a string');
  // Characters first: a huge string is refused without walking it.
  if (csrPem.length > MAX_CSR_BYTES || Buffer.byteLength(csrPem) > MAX_CSR_BYTES) {
    throw new CaError('csr-too-large', `CSR is over ${MAX_CSR_BYTES} bytes`);
  }
  let blocks;
  try {
    blocks = decodePem(csrPem);
  } catch (err) {
    throw new CaError('malformed-csr', `CSR PEM: ${(err as Error).message}`);
  }
  if (blocks.length !== 1) throw new CaError('malformed-csr', `CSR PEM has ${blocks.length} blocks; expected one`);
  const block = blocks[0]!;
  if (!CSR_LABELS.has(block.type)) throw new CaError('malformed-csr', `CSR PEM block is "${block.type}"`);
  if (!isSingleDerSequence(block.der)) throw new CaError('malformed-csr', 'CSR DER is truncated or has trailing data');

  let csr: x509.Pkcs10CertificateRequest;
  let publicKey: x509.PublicKey;
  try {
    csr = new x509.Pkcs10CertificateRequest(block.der);
    publicKey = csr.publicKey;
  } catch {
    throw new CaError('malformed-csr', 'CSR DER is not a PKCS#10 certification request');
  }

  const key = describePublicKey(publicKey.rawData);
  if (!key.supported) throw new CaError('weak-key', `CSR public key ${key.label} is not certified (EC P-256/P-384, RSA 2048-8192)`);

  const valid = await csr.verify().catch(() => false);
  if (!valid) throw new CaError('malformed-csr', 'CSR signature does not verify with its own public key (no proof of possession)');

  return { publicKey, key, requestedNames: requestedNames(csr) };
}

function requestedNames(csr: x509.Pkcs10CertificateRequest): string[] {
  const names: string[] = [];
  let extensions: x509.Extension[];
  try {
    extensions = csr.extensions;
  } catch {
    throw new CaError('malformed-csr', 'CSR extension request cannot be parsed');
  }
  for (const ext of extensions) {
    if (ext.type !== SAN_OID) continue;
    try {
      const san = new x509.SubjectAlternativeNameExtension(ext.rawData);
      for (const n of san.names.items) names.push(`${n.type === 'url' ? 'uri' : n.type}:${n.value}`);
    } catch {
      // otherName, X.400 and EDI names: nothing the CA would ever grant.
      throw new CaError('malformed-csr', 'CSR subjectAltName has a name form the CA does not read');
    }
  }
  return names;
}
