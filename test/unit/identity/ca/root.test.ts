// The self-signed root: Istio's naming (O=<trust domain>), CA rights and
// nothing more, key identifiers, the configured lifetime, per key type.

import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { openCa, removeTempDirs, TD } from './support.ts';
import { x509, parseCertificates } from '../../../../src/identity/ca/x509.ts';
import { DEFAULT_ROOT_VALIDITY_DAYS, type CaKeyType } from '../../../../src/identity/ca/index.ts';
import { randomSerial } from '../../../../src/identity/ca/certs.ts';

after(removeTempDirs);

const DAY = 86_400_000;

describe('self-signed root', () => {
  const cases: [CaKeyType, string, number | undefined][] = [
    ['ec-p256', 'ec', undefined],
    ['rsa-2048', 'rsa', 2048],
    ['rsa-3072', 'rsa', 3072],
  ];
  for (const [keyType, alg, bits] of cases) {
    it(`${keyType}: a CA root named O=<trust domain>, keyCertSign+cRLSign, SKI=AKI, 10 years`, async () => {
      const { ca } = await openCa({ keyType });
      try {
        const [root] = parseCertificates(ca.trustBundlePem());
        assert.ok(root);
        const node = new X509Certificate(Buffer.from(root.rawData));
        assert.equal(node.publicKey.asymmetricKeyType, alg);
        if (bits) assert.equal(node.publicKey.asymmetricKeyDetails?.modulusLength, bits);
        else assert.equal(node.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');

        assert.deepEqual(root.subjectName.getField('O'), [TD]);
        assert.equal(root.subject, root.issuer);
        assert.ok(node.verify(node.publicKey), 'self-signed');
        assert.ok(node.ca);

        const bc = root.getExtension(x509.BasicConstraintsExtension)!;
        assert.equal(bc.ca, true);
        assert.equal(bc.critical, true);
        assert.equal(bc.pathLength, 0, 'signs leaves only');
        const ku = root.getExtension(x509.KeyUsagesExtension)!;
        assert.equal(ku.critical, true);
        assert.equal(ku.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
        const ski = root.getExtension(x509.SubjectKeyIdentifierExtension)!;
        const aki = root.getExtension(x509.AuthorityKeyIdentifierExtension)!;
        assert.match(ski.keyId, /^[0-9a-f]{40}$/);
        assert.equal(aki.keyId, ski.keyId);
        assert.equal(root.getExtension(x509.SubjectAlternativeNameExtension), null);

        const lifetime = root.notAfter.getTime() - Date.now();
        assert.ok(Math.abs(lifetime - DEFAULT_ROOT_VALIDITY_DAYS * DAY) < 60_000, `about ten years (${lifetime} ms)`);
        assert.ok(root.notBefore.getTime() <= Date.now() - 60_000, 'backdated for clock skew');

        const info = ca.roots();
        assert.equal(info.length, 1);
        assert.equal(info[0]!.state, 'active');
        assert.equal(info[0]!.fingerprint, node.fingerprint256);
      } finally {
        await ca.close();
      }
    });
  }

  it('rootValidityDays sets the lifetime', async () => {
    const { ca } = await openCa({ rootValidityDays: 30 });
    try {
      const [root] = parseCertificates(ca.trustBundlePem());
      assert.ok(Math.abs(root!.notAfter.getTime() - Date.now() - 30 * DAY) < 60_000);
    } finally {
      await ca.close();
    }
  });

  it('two roots never share a subject, so status and path building tell them apart', async () => {
    const { ca } = await openCa();
    try {
      await ca.addRoot();
      const subjects = ca.roots().map((r) => r.subject);
      assert.equal(new Set(subjects).size, 2);
      for (const s of subjects) assert.match(s, /^O=cluster\.local, CN=meshward root [0-9a-f]{8}$/);
    } finally {
      await ca.close();
    }
  });
});

describe('serial numbers', () => {
  it('are 128-bit, random, non-zero hex', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const s = randomSerial();
      assert.match(s, /^[0-9a-f]{32}$/);
      assert.notEqual(BigInt(`0x${s}`), 0n);
      seen.add(s);
    }
    assert.equal(seen.size, 2000);
  });
});
