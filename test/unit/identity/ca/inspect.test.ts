// inspectCertificate / describeChain: the facts `meshward cert inspect`
// prints, and "who signed it" decided by key identifier (or name) and a
// verified signature, never by name alone.

import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { ALICE, makeCsr, openCa, removeTempDirs } from './support.ts';
import { createIntermediateCa, createLeaf, createRootCa } from '../../../support/pki.ts';
import { describeChain, inspectCertificate } from '../../../../src/identity/inspect.ts';

after(removeTempDirs);

describe('inspectCertificate', () => {
  it('describes a leaf the CA issued', async () => {
    const { ca } = await openCa();
    try {
      const r = await ca.sign({ csrPem: await makeCsr({ key: 'rsa-2048' }), identity: ALICE, ttlSeconds: 3600 });
      const info = inspectCertificate(r.certChainPem[0]!);
      assert.equal(info.spiffeId, ALICE.uri);
      assert.deepEqual(info.uris, [ALICE.uri]);
      assert.equal(info.subject, '');
      assert.equal(info.serial, r.serial);
      assert.equal(info.keyType, 'rsa-2048');
      assert.equal(info.isCa, false);
      assert.equal(info.validity, 'valid');
      assert.deepEqual(info.keyUsage, ['digitalSignature', 'keyEncipherment']);
      assert.deepEqual(info.extKeyUsage, ['serverAuth', 'clientAuth']);
      assert.match(info.fingerprint, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
      assert.equal(info.notAfter.getTime(), r.notAfter.getTime());
      assert.equal(inspectCertificate(r.certChainPem[0]!, new Date(r.notAfter.getTime() + 1000)).validity, 'expired');

      const root = inspectCertificate(ca.trustBundlePem());
      assert.equal(root.isCa, true);
      assert.equal(root.pathLength, 0);
      assert.equal(root.keyType, 'ec-p256');
      assert.equal(root.spiffeId, null);
      assert.equal(root.subjectKeyId, root.authorityKeyId);
    } finally {
      await ca.close();
    }
  });

  it('throws a plain message for text that is not a certificate', () => {
    assert.throws(() => inspectCertificate('nothing here'), /no CERTIFICATE block found/);
    assert.throws(() => inspectCertificate('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'), /is "PRIVATE KEY", expected "CERTIFICATE"/);
  });
});

describe('describeChain', () => {
  it('names each certificate\'s signer: key identifier, signature checked, self-signed root', async () => {
    const root = await createRootCa();
    const intermediate = await createIntermediateCa(root);
    const leaf = await createLeaf(intermediate);
    const entries = describeChain([leaf.pem, intermediate.pem, root.pem]);
    assert.equal(entries.length, 3);
    assert.deepEqual(entries[0]!.signedBy, {
      in: 'chain',
      index: 1,
      subject: intermediate.subject,
      fingerprint: intermediate.cert.fingerprint256,
      matchedBy: 'key-id',
    });
    assert.equal((entries[1]!.signedBy as { index: number }).index, 2);
    assert.equal(entries[2]!.signedBy, 'self');
  });

  it('finds a signer in the extra issuers (a bundle) and reports null when none signed it', async () => {
    const root = await createRootCa();
    const intermediate = await createIntermediateCa(root);
    const leaf = await createLeaf(intermediate);
    const withBundle = describeChain(leaf.pem + intermediate.pem, root.pem);
    assert.deepEqual(
      withBundle.map((e) => (typeof e.signedBy === 'object' && e.signedBy ? `${e.signedBy.in}[${e.signedBy.index}]` : e.signedBy)),
      ['chain[1]', 'issuers[0]'],
    );
    assert.equal(describeChain(leaf.pem)[0]!.signedBy, null);
  });

  it('does not credit a certificate with the same name but another key', async () => {
    const root = await createRootCa({ name: 'same name' });
    const impostor = await createRootCa({ name: 'same name', keyKind: 'rsa-2048' });
    const intermediate = await createIntermediateCa(root);
    const [entry] = describeChain(intermediate.pem, impostor.pem);
    assert.equal(entry!.signedBy, null);
  });
});
