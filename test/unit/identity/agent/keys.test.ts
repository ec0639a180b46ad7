// Workload keys and CSRs: a fresh key per call, PKCS#8 in memory, and a CSR
// that proves possession and asks for exactly the workload's SPIFFE ID.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { certifiesKey, generateKeyAndCsr } from '../../../../src/identity/agent/keys.ts';
import { x509 } from '../../../../src/identity/ca/x509.ts';
import { createLeaf, createRootCa } from '../../../support/pki.ts';

const ID = 'spiffe://cluster.local/ns/shop/sa/web';

async function parse(csrPem: string) {
  const csr = new x509.Pkcs10CertificateRequest(csrPem);
  const names = [...csr.extensions]
    .filter((e) => e.type === '2.5.29.17')
    .flatMap((e) => new x509.SubjectAlternativeNameExtension(e.rawData).names.items.map((n) => `${n.type}:${n.value}`));
  return { csr, names };
}

describe('generateKeyAndCsr', () => {
  it('makes an EC P-256 key and a self-signed CSR naming only the SPIFFE ID', async () => {
    const { keyPem, csrPem, publicKeyDer } = await generateKeyAndCsr(ID);
    const key = createPrivateKey(keyPem);
    assert.equal(key.asymmetricKeyType, 'ec');
    assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.match(keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    const { csr, names } = await parse(csrPem);
    assert.deepEqual(names, [`url:${ID}`]);
    assert.equal(csr.subject, '', 'the identity is the SAN; the subject stays empty');
    assert.ok(await csr.verify(), 'the CSR proves possession of the key');
    assert.deepEqual(
      createPublicKey(key).export({ type: 'spki', format: 'der' }),
      createPublicKey({ key: publicKeyDer, format: 'der', type: 'spki' }).export({ type: 'spki', format: 'der' }),
    );
  });

  it('makes RSA-2048 keys on request', async () => {
    const { keyPem, csrPem } = await generateKeyAndCsr(ID, 'rsa-2048');
    const key = createPrivateKey(keyPem);
    assert.equal(key.asymmetricKeyType, 'rsa');
    assert.equal(key.asymmetricKeyDetails?.modulusLength, 2048);
    assert.ok(await (await parse(csrPem)).csr.verify());
  });

  it('never returns the same key twice', async () => {
    const [a, b] = await Promise.all([generateKeyAndCsr(ID), generateKeyAndCsr(ID)]);
    assert.notEqual(a.keyPem, b.keyPem);
  });
});

describe('certifiesKey', () => {
  it('tells whether a certificate carries a given public key', async () => {
    const root = await createRootCa();
    const leaf = await createLeaf(root, { uris: [ID] });
    const own = createPublicKey(leaf.key).export({ type: 'spki', format: 'der' });
    const { publicKeyDer: other } = await generateKeyAndCsr(ID);
    assert.equal(certifiesKey(leaf.cert, own), true);
    assert.equal(certifiesKey(leaf.cert, other), false);
  });
});
