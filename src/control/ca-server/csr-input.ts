// Says, in words a caller can act on, what is wrong with the text it sent as
// a CSR. The CA makes the decision (and counts it); this only runs after the
// CA refused a request as malformed or too large, to turn "not a CSR" into
// "not PEM", "truncated", or "too large, the limit is N". It describes the
// shape of the input and never quotes it.

import { MAX_CSR_BYTES } from '../../api/identity-messages.ts';
import { decodePem, isSingleDerSequence } from '../../identity/ca/x509.ts';

const CSR_LABELS = new Set(['CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST']);

/** A message for the caller, or undefined when the shape is fine (the CA found something deeper). */
export function describeCsrProblem(csr: unknown): string | undefined {
  if (typeof csr !== 'string' || csr.trim() === '') return 'CSR rejected: the csr field is empty';
  const size = Buffer.byteLength(csr);
  if (csr.length > MAX_CSR_BYTES || size > MAX_CSR_BYTES) {
    return `CSR rejected: ${size} bytes is larger than the limit of ${MAX_CSR_BYTES} bytes`;
  }
  if (!csr.includes('-----BEGIN ')) {
    return 'CSR rejected: not PEM; expected one "-----BEGIN CERTIFICATE REQUEST-----" block';
  }
  let blocks;
  try {
    blocks = decodePem(csr);
  } catch (err) {
    return `CSR rejected: malformed PEM: ${(err as Error).message}`;
  }
  if (blocks.length !== 1) return `CSR rejected: expected one PEM block, found ${blocks.length}`;
  const block = blocks[0]!;
  if (!CSR_LABELS.has(block.type)) return `CSR rejected: PEM block is "${block.type}", expected "CERTIFICATE REQUEST"`;
  if (!isSingleDerSequence(block.der)) {
    return 'CSR rejected: truncated or corrupt; the PEM body does not decode to one complete DER structure';
  }
  return undefined;
}
