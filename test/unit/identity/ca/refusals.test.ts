// Every way a request is refused: a stable reason, a message that says only
// what kind of problem, a metric per outcome, and a CA that keeps signing
// afterwards.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ALICE, BOB, TD, makeCsr, metricValue, openCa, refused, removeTempDirs, uriSan } from './support.ts';
import { decodePem, encodePem } from '../../../../src/identity/ca/x509.ts';
import { CaError, CertificateAuthority, MAX_CSR_BYTES, type CaReason } from '../../../../src/identity/ca/index.ts';
import type { Registry } from 'prom-client';

let ca: CertificateAuthority;
let registry: Registry;
let log: { event: string; message: string }[];
let goodCsr: string;
before(async () => {
  ({ ca, registry, log } = await openCa());
  goodCsr = await makeCsr();
});
after(async () => {
  await ca.close();
  await removeTempDirs();
});

const der = (pem: string) => decodePem(pem)[0]!.der;

async function refusedAndStillSigning(csrPem: unknown, reason: CaReason, identity = ALICE): Promise<CaError> {
  const errorLabel = reason === 'ttl-too-long' ? 'TTL_ERROR' : 'CSR_ERROR';
  const before = await metricValue(registry, 'citadel_server_csr_sign_err_count', { error: errorLabel, reason });
  const err = await refused(ca.sign({ csrPem: csrPem as string, identity }), reason);
  assert.equal(await metricValue(registry, 'citadel_server_csr_sign_err_count', { error: errorLabel, reason }), before + 1, 'counted');
  // The CA is unharmed: the next good request is signed.
  const ok = await ca.sign({ csrPem: goodCsr, identity: ALICE });
  assert.equal(ok.certChainPem.length, 2);
  return err;
}

describe('identity-mismatch', () => {
  it('a CSR asking for someone else\'s SPIFFE ID is refused and counted', async () => {
    const err = await refusedAndStillSigning(await makeCsr({ sans: [uriSan(BOB.uri)] }), 'identity-mismatch', ALICE);
    assert.equal(err.message, 'CSR rejected: it asks for an identity other than the caller\'s');
    assert.ok(!err.message.includes(BOB.uri), 'the caller learns nothing about other identities');
    assert.ok(err.detail.includes(BOB.uri) && err.detail.includes(ALICE.uri), 'the log has both');
    const entry = log.findLast((e) => e.event === 'csr-refused');
    assert.ok(entry?.message.includes(BOB.uri));
  });

  it('the caller\'s ID plus any other name is refused', async () => {
    await refusedAndStillSigning(await makeCsr({ sans: [uriSan(ALICE.uri), uriSan(BOB.uri)] }), 'identity-mismatch');
    await refusedAndStillSigning(await makeCsr({ sans: [uriSan(ALICE.uri), { type: 'dns', value: 'payments.svc' }] }), 'identity-mismatch');
    await refusedAndStillSigning(await makeCsr({ sans: [{ type: 'ip', value: '10.0.0.1' }] }), 'identity-mismatch');
  });

  it('a caller outside the trust domain, or not a workload ID, is refused', async () => {
    await refusedAndStillSigning(goodCsr, 'identity-mismatch', { uri: 'spiffe://other.domain/ns/a/sa/b', trustDomain: 'other.domain' });
    await refusedAndStillSigning(goodCsr, 'identity-mismatch', { uri: 'spiffe://other.domain/ns/a/sa/b', trustDomain: TD });
    await refusedAndStillSigning(goodCsr, 'identity-mismatch', { uri: `spiffe://${TD}`, trustDomain: TD });
    await refusedAndStillSigning(goodCsr, 'identity-mismatch', { uri: `spiffe://${TD}/ns/../sa/x`, trustDomain: TD });
    await refusedAndStillSigning(goodCsr, 'identity-mismatch', { uri: 'https://cluster.local/x', trustDomain: TD });
  });
});

describe('malformed-csr', () => {
  const cases: [string, () => string | unknown][] = [
    ['not PEM at all', () => 'hello'],
    ['empty', () => ''],
    ['not a string', () => 42],
    ['a CERTIFICATE block', () => encodePem('CERTIFICATE', der(goodCsr))],
    ['two CSR blocks', () => goodCsr + goodCsr],
    ['BEGIN without END', () => goodCsr.replace(/-----END[^\n]+\n$/, '')],
    ['mismatched END label', () => goodCsr.replace('END CERTIFICATE REQUEST', 'END CERTIFICATE')],
    ['base64 with junk', () => goodCsr.replace(/\n(.)/, '\n!$1')],
    ['truncated DER', () => encodePem('CERTIFICATE REQUEST', der(goodCsr).subarray(0, der(goodCsr).length - 10))],
    ['truncated PEM body', () => goodCsr.split('\n').slice(0, 3).join('\n') + '\n-----END CERTIFICATE REQUEST-----\n'],
    ['trailing bytes after the DER', () => encodePem('CERTIFICATE REQUEST', Buffer.concat([der(goodCsr), Buffer.from([0, 0])]))],
    ['DER that is a SEQUENCE but not a CSR', () => encodePem('CERTIFICATE REQUEST', Buffer.from([0x30, 0x03, 0x02, 0x01, 0x05]))],
    [
      'a signature that does not verify (no proof of possession)',
      () => {
        const bytes = Buffer.from(der(goodCsr));
        bytes[bytes.length - 5]! ^= 0xff;
        return encodePem('CERTIFICATE REQUEST', bytes);
      },
    ],
  ];
  for (const [name, make] of cases) {
    it(`${name}: refused, counted as a parse error, and the CA keeps signing`, async () => {
      const parseBefore = await metricValue(registry, 'citadel_server_csr_parsing_err_count');
      const err = await refusedAndStillSigning(make(), 'malformed-csr');
      assert.equal(err.message, 'CSR rejected: not a valid PKCS#10 certificate request');
      assert.equal(await metricValue(registry, 'citadel_server_csr_parsing_err_count'), parseBefore + 1);
    });
  }
});

describe('csr-too-large', () => {
  it(`a CSR over ${MAX_CSR_BYTES} characters is refused before parsing`, async () => {
    const padded = goodCsr + '#'.repeat(MAX_CSR_BYTES);
    const err = await refusedAndStillSigning(padded, 'csr-too-large');
    assert.equal(err.message, 'CSR rejected: too large');
  });

  it('counts bytes, not characters', async () => {
    await refusedAndStillSigning(goodCsr + 'é'.repeat(MAX_CSR_BYTES / 2), 'csr-too-large');
  });

  it('exactly at the limit is parsed (trailing whitespace is allowed)', async () => {
    const pad = ' '.repeat(MAX_CSR_BYTES - goodCsr.length);
    const r = await ca.sign({ csrPem: goodCsr + pad, identity: ALICE });
    assert.equal(r.certChainPem.length, 2);
  });
});

describe('weak-key', () => {
  it('RSA-1024 is refused', async () => {
    await refusedAndStillSigning(await makeCsr({ key: 'rsa-1024' }), 'weak-key');
  });
  it('P-521 is not certified for workloads', async () => {
    await refusedAndStillSigning(await makeCsr({ key: 'ec-p521' }), 'weak-key');
  });
});

describe('ca-unavailable', () => {
  it('a closed CA refuses with CA_NOT_READY', async () => {
    const { ca: closed, registry: reg } = await openCa();
    await closed.close();
    const err = await refused(closed.sign({ csrPem: goodCsr, identity: ALICE }), 'ca-unavailable');
    assert.equal(err.message, 'certificate authority unavailable');
    assert.equal(await metricValue(reg, 'citadel_server_csr_sign_err_count', { error: 'CA_NOT_READY' }), 1);
  });
});
