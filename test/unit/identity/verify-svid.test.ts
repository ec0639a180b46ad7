import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { verifySvid, checkForTlsError, type SvidCheck, type SvidVerdict } from '../../../src/identity/verify-svid.ts';
import { mergeBundles, trustBundleFromPem, withoutRoot, type TrustBundle } from '../../../src/identity/trust-bundle.ts';
import {
  DAY,
  Eku,
  HOUR,
  KeyUsage,
  ago,
  createIntermediateCa,
  createLeaf,
  createRootCa,
  fromNow,
  rawExtension,
  type TestCa,
  type TestLeaf,
} from '../../support/pki.ts';

const TD = 'cluster.local';
const SLEEP = `spiffe://${TD}/ns/default/sa/sleep`;

function bundleOf(...cas: TestCa[]): TrustBundle {
  const b = trustBundleFromPem(TD, cas.map((c) => c.pem).join('\n'));
  if ('error' in b) throw new Error(b.error);
  return b;
}

function refused(v: SvidVerdict, check: SvidCheck, reason?: RegExp): void {
  assert.equal(v.ok, false, `expected refusal by ${check}`);
  if (v.ok) return;
  assert.equal(v.check, check, `refused by ${v.check} (${v.reason}), expected ${check}`);
  if (reason !== undefined) assert.match(v.reason, reason);
}

function accepted(v: SvidVerdict, uri = SLEEP): void {
  assert.ok(v.ok, v.ok ? '' : `refused by ${v.check}: ${v.reason}`);
  assert.equal(v.id.uri, uri);
  assert.ok(Object.isFrozen(v));
}

let root: TestCa;
let inter: TestCa;
let bundle: TrustBundle;
let good: TestLeaf;

before(async () => {
  root = await createRootCa({ trustDomain: TD });
  inter = await createIntermediateCa(root);
  bundle = bundleOf(root);
  good = await createLeaf(inter, { uris: [SLEEP] });
});

describe('verifySvid: accepted', () => {
  it('an EC P-256 leaf through an intermediate', () => {
    const v = verifySvid(good.chain, bundle);
    accepted(v);
    assert.ok(v.ok);
    assert.equal(v.leaf, good.cert);
    assert.equal(v.notAfter.getTime(), good.cert.validToDate.getTime());
    assert.equal(v.id.trustDomain, TD);
  });

  it('an RSA-2048 leaf issued directly by an RSA-2048 root', async () => {
    const rsaRoot = await createRootCa({ trustDomain: TD, keyKind: 'rsa-2048' });
    const leaf = await createLeaf(rsaRoot, { uris: [SLEEP], keyKind: 'rsa-2048' });
    accepted(verifySvid(leaf.chain, bundleOf(rsaRoot)));
  });

  it('a leaf with no extended key usage (X509-SVID §4.4: SHOULD, not MUST)', async () => {
    const leaf = await createLeaf(inter, { uris: [SLEEP], extKeyUsage: null });
    accepted(verifySvid(leaf.chain, bundle));
  });

  it('a leaf with keyEncipherment and keyAgreement besides digitalSignature (§4.3 MAY)', async () => {
    const leaf = await createLeaf(inter, {
      uris: [SLEEP],
      keyUsage: KeyUsage.digitalSignature | KeyUsage.keyEncipherment | KeyUsage.keyAgreement,
    });
    accepted(verifySvid(leaf.chain, bundle));
  });

  it('a leaf with DNS SANs besides its one URI SAN (§2: any number of other SANs)', async () => {
    const leaf = await createLeaf(inter, { uris: [SLEEP], dnsNames: ['sleep.default.svc', 'sleep'] });
    accepted(verifySvid(leaf.chain, bundle));
  });

  it('a chain that also carries the root', () => {
    accepted(verifySvid([...good.chain, root.cert], bundle));
  });

  it('leaves of the old and the new root while both are in the bundle (rotation)', async () => {
    const newRoot = await createRootCa({ trustDomain: TD });
    const fromNew = await createLeaf(newRoot, { uris: [SLEEP] });
    const both = mergeBundles(bundle, bundleOf(newRoot));
    accepted(verifySvid(good.chain, both));
    accepted(verifySvid(fromNew.chain, both));
    refused(verifySvid(fromNew.chain, bundle), 'untrusted-chain');
  });

  it('two intermediates deep', async () => {
    const inter2 = await createIntermediateCa(inter);
    const leaf = await createLeaf(inter2, { uris: [SLEEP] });
    assert.equal(leaf.chain.length, 3);
    accepted(verifySvid(leaf.chain, bundle));
  });

  it('an ID in allowedIds', () => {
    accepted(verifySvid(good.chain, bundle, { allowedIds: new Set(['spiffe://cluster.local/ns/x/sa/y', SLEEP]) }));
  });

  it('an expectedTrustDomain that matches', () => {
    accepted(verifySvid(good.chain, bundle, { expectedTrustDomain: TD }));
  });
});

describe('verifySvid: each check refuses', () => {
  it('no-certificate: an empty chain', () => {
    refused(verifySvid([], bundle), 'no-certificate');
  });

  it('malformed: something that is not a certificate', () => {
    refused(verifySvid([{} as X509Certificate], bundle), 'malformed', /leaf is malformed/);
    refused(verifySvid([good.cert, 'pem' as unknown as X509Certificate], bundle), 'malformed', /certificate 2/);
  });

  it('malformed: more than 8 certificates', () => {
    refused(verifySvid([good.cert, ...Array(8).fill(inter.cert)], bundle), 'malformed', /9 certificates/);
  });

  it('malformed: a critical extension the verifier does not process (RFC 5280 §4.2)', async () => {
    const leaf = await createLeaf(inter, { uris: [SLEEP], extraExtensions: [rawExtension('1.2.3.4.5', true, new Uint8Array([5, 0]))] });
    refused(verifySvid(leaf.chain, bundle), 'malformed', /1\.2\.3\.4\.5/);
    // The same extension, not critical, is ignored.
    const lax = await createLeaf(inter, { uris: [SLEEP], extraExtensions: [rawExtension('1.2.3.4.5', false, new Uint8Array([5, 0]))] });
    accepted(verifySvid(lax.chain, bundle));
  });

  it('malformed: the same extension twice', async () => {
    const leaf = await createLeaf(inter, {
      uris: [SLEEP],
      extraExtensions: [rawExtension('2.5.29.15', true, new Uint8Array([3, 2, 7, 0x80]))],
    });
    refused(verifySvid(leaf.chain, bundle), 'malformed', /appears twice/);
  });

  it('uri-san-count: no SAN at all', async () => {
    const leaf = await createLeaf(inter, { uris: [] });
    refused(verifySvid(leaf.chain, bundle), 'uri-san-count', /0 URI SANs/);
  });

  it('uri-san-count: DNS SANs but no URI SAN', async () => {
    const leaf = await createLeaf(inter, { uris: [], dnsNames: ['sleep.default.svc'] });
    refused(verifySvid(leaf.chain, bundle), 'uri-san-count', /0 URI SANs/);
  });

  it('uri-san-count: two URI SANs (X509-SVID §2 MUST reject)', async () => {
    const leaf = await createLeaf(inter, { uris: [SLEEP, `spiffe://${TD}/ns/default/sa/admin`] });
    refused(verifySvid(leaf.chain, bundle), 'uri-san-count', /2 URI SANs/);
  });

  it('invalid-spiffe-id: a URI that is not a SPIFFE ID', async () => {
    const leaf = await createLeaf(inter, { uris: ['https://cluster.local/ns/default/sa/sleep'] });
    refused(verifySvid(leaf.chain, bundle), 'invalid-spiffe-id', /spiffe:\/\//);
  });

  it('invalid-spiffe-id: a SPIFFE ID with no path (§3.1: leaves have a non-root path)', async () => {
    const leaf = await createLeaf(inter, { uris: [`spiffe://${TD}`] });
    refused(verifySvid(leaf.chain, bundle), 'invalid-spiffe-id', /no path/);
  });

  it('invalid-spiffe-id: upper-case trust domain', async () => {
    const leaf = await createLeaf(inter, { uris: ['spiffe://Cluster.local/ns/default/sa/sleep'] });
    refused(verifySvid(leaf.chain, bundle), 'invalid-spiffe-id', /lower case/);
  });

  it('leaf-is-ca: basicConstraints CA:TRUE (§4.1, §5.2)', async () => {
    const leaf = await createLeaf(inter, { uris: [SLEEP], ca: true });
    refused(verifySvid(leaf.chain, bundle), 'leaf-is-ca', /CA:TRUE/);
  });

  it('leaf-is-ca: keyCertSign or cRLSign in key usage (§4.3, §5.2)', async () => {
    for (const bit of [KeyUsage.keyCertSign, KeyUsage.cRLSign]) {
      const leaf = await createLeaf(inter, { uris: [SLEEP], keyUsage: KeyUsage.digitalSignature | bit });
      refused(verifySvid(leaf.chain, bundle), 'leaf-is-ca', /keyCertSign\/cRLSign/);
    }
  });

  it('key-usage: no key usage extension (§4.3 MUST be set)', async () => {
    const leaf = await createLeaf(inter, { uris: [SLEEP], keyUsage: null });
    refused(verifySvid(leaf.chain, bundle), 'key-usage', /no key usage/);
  });

  it('key-usage: key usage not critical (§4.3 MUST be critical)', async () => {
    const leaf = await createLeaf(inter, { uris: [SLEEP], keyUsageCritical: false });
    refused(verifySvid(leaf.chain, bundle), 'key-usage', /not critical/);
  });

  it('key-usage: no digitalSignature (§4.3)', async () => {
    const leaf = await createLeaf(inter, { uris: [SLEEP], keyUsage: KeyUsage.keyEncipherment });
    refused(verifySvid(leaf.chain, bundle), 'key-usage', /digitalSignature/);
  });

  it('key-usage: EKU present without both serverAuth and clientAuth (§4.4)', async () => {
    for (const eku of [[Eku.serverAuth], [Eku.clientAuth], [Eku.codeSigning], ['2.5.29.37.0']]) {
      const leaf = await createLeaf(inter, { uris: [SLEEP], extKeyUsage: eku });
      refused(verifySvid(leaf.chain, bundle), 'key-usage', /serverAuth and clientAuth/);
    }
  });

  it('wrong-trust-domain: an ID of another domain, signed by this one’s CA', async () => {
    const leaf = await createLeaf(inter, { uris: ['spiffe://evil.example/ns/default/sa/sleep'] });
    refused(verifySvid(leaf.chain, bundle), 'wrong-trust-domain', /evil\.example.*"cluster\.local"/);
  });

  it('wrong-trust-domain: expectedTrustDomain differs', () => {
    refused(verifySvid(good.chain, bundle, { expectedTrustDomain: 'other.local' }), 'wrong-trust-domain', /other\.local/);
  });

  it('untrusted-chain: a self-signed leaf', async () => {
    const leaf = await createLeaf(inter, { uris: [SLEEP], selfSigned: true });
    assert.equal(leaf.chain.length, 1);
    refused(verifySvid(leaf.chain, bundle), 'untrusted-chain', /no root/);
  });

  it('untrusted-chain: the right SPIFFE ID from another CA', async () => {
    const otherRoot = await createRootCa({ trustDomain: TD });
    const otherInter = await createIntermediateCa(otherRoot);
    const leaf = await createLeaf(otherInter, { uris: [SLEEP] });
    refused(verifySvid(leaf.chain, bundle), 'untrusted-chain');
  });

  it('untrusted-chain: another CA using the same name as ours', async () => {
    const impostor = await createRootCa({ trustDomain: TD, name: root.subject.replace(/^CN=|, O=.*$/g, ''), keyKind: 'rsa-2048' });
    assert.equal(impostor.cert.subject, root.cert.subject);
    const leaf = await createLeaf(impostor, { uris: [SLEEP] });
    refused(verifySvid(leaf.chain, bundle), 'untrusted-chain');
  });

  it('untrusted-chain: the intermediate left out', () => {
    refused(verifySvid([good.cert], bundle), 'untrusted-chain', /no root/);
  });

  it('untrusted-chain: certificates out of order', async () => {
    const inter2 = await createIntermediateCa(inter);
    const leaf = await createLeaf(inter2, { uris: [SLEEP] });
    refused(verifySvid([leaf.cert, inter.cert, inter2.cert], bundle), 'untrusted-chain', /not issued by/);
  });

  it('untrusted-chain: an "intermediate" that is not a CA', async () => {
    const notCa = await createIntermediateCa(root, { ca: false });
    const leaf = await createLeaf(notCa, { uris: [SLEEP] });
    refused(verifySvid(leaf.chain, bundle), 'untrusted-chain', /not a CA/);
  });

  it('untrusted-chain: an intermediate without keyCertSign', async () => {
    const noSign = await createIntermediateCa(root, { keyUsage: KeyUsage.cRLSign | KeyUsage.digitalSignature });
    const leaf = await createLeaf(noSign, { uris: [SLEEP] });
    refused(verifySvid(leaf.chain, bundle), 'untrusted-chain', /keyCertSign/);
  });

  it('untrusted-chain: pathLenConstraint of an intermediate and of the root', async () => {
    const capped = await createIntermediateCa(root, { pathLength: 0 });
    const below = await createIntermediateCa(capped);
    const leaf = await createLeaf(below, { uris: [SLEEP] });
    refused(verifySvid(leaf.chain, bundle), 'untrusted-chain', /allows 0 intermediates/);

    const cappedRoot = await createRootCa({ trustDomain: TD, pathLength: 0 });
    const i1 = await createIntermediateCa(cappedRoot);
    const viaOne = await createLeaf(i1, { uris: [SLEEP] });
    refused(verifySvid(viaOne.chain, bundleOf(cappedRoot)), 'untrusted-chain', /allows 0 intermediates/);
    accepted(verifySvid((await createLeaf(cappedRoot, { uris: [SLEEP] })).chain, bundleOf(cappedRoot)));
  });

  it('untrusted-chain: an empty bundle object', () => {
    refused(verifySvid(good.chain, { ...bundle, roots: [] }), 'untrusted-chain');
  });

  it('expired: the leaf', async () => {
    const leaf = await createLeaf(inter, { uris: [SLEEP], notBefore: ago(2 * DAY), notAfter: ago(HOUR) });
    refused(verifySvid(leaf.chain, bundle), 'expired', /the leaf .* expired at/);
  });

  it('expired: the intermediate, with a leaf still in its window', async () => {
    const old = await createIntermediateCa(root, { notBefore: ago(3 * DAY), notAfter: ago(HOUR) });
    const leaf = await createLeaf(old, { uris: [SLEEP] });
    refused(verifySvid(leaf.chain, bundle), 'expired', /certificate 2/);
  });

  it('expired: the root', async () => {
    const oldRoot = await createRootCa({ trustDomain: TD, notBefore: ago(3 * DAY), notAfter: ago(HOUR) });
    const leaf = await createLeaf(oldRoot, { uris: [SLEEP] });
    refused(verifySvid(leaf.chain, bundleOf(oldRoot)), 'expired', /root/);
  });

  it('not-yet-valid: the leaf', async () => {
    const leaf = await createLeaf(inter, { uris: [SLEEP], notBefore: fromNow(HOUR), notAfter: fromNow(DAY) });
    refused(verifySvid(leaf.chain, bundle), 'not-yet-valid', /not valid until/);
  });

  it('validity is checked at `now`, inclusive at both ends', () => {
    refused(verifySvid(good.chain, bundle, { now: ago(2 * HOUR) }), 'not-yet-valid');
    refused(verifySvid(good.chain, bundle, { now: fromNow(2 * DAY) }), 'expired');
    accepted(verifySvid(good.chain, bundle, { now: good.cert.validToDate }));
    accepted(verifySvid(good.chain, bundle, { now: good.cert.validFromDate }));
  });

  it('not-allowed: an ID outside allowedIds (secure naming)', () => {
    refused(verifySvid(good.chain, bundle, { allowedIds: new Set([`spiffe://${TD}/ns/default/sa/other`]) }), 'not-allowed', /not among/);
    refused(verifySvid(good.chain, bundle, { allowedIds: new Set() }), 'not-allowed');
  });
});

describe('verifySvid: the order of checks', () => {
  it('uri-san-count before expiry', async () => {
    const leaf = await createLeaf(inter, { uris: [SLEEP, SLEEP], notBefore: ago(2 * DAY), notAfter: ago(HOUR) });
    refused(verifySvid(leaf.chain, bundle), 'uri-san-count');
  });

  it('leaf-is-ca before the chain', async () => {
    const other = await createRootCa({ trustDomain: TD });
    const leaf = await createLeaf(other, { uris: [SLEEP], ca: true });
    refused(verifySvid(leaf.chain, bundle), 'leaf-is-ca');
  });

  it('wrong-trust-domain before the chain (the domain picks the bundle)', async () => {
    const other = await createRootCa({ trustDomain: 'other.local' });
    const leaf = await createLeaf(other, { uris: ['spiffe://other.local/ns/a/sa/b'] });
    refused(verifySvid(leaf.chain, bundle), 'wrong-trust-domain');
  });

  it('the chain before expiry: an expired leaf from another CA is untrusted, not expired', async () => {
    const other = await createRootCa({ trustDomain: TD });
    const leaf = await createLeaf(other, { uris: [SLEEP], notBefore: ago(2 * DAY), notAfter: ago(HOUR) });
    refused(verifySvid(leaf.chain, bundle), 'untrusted-chain');
  });

  it('expiry before secure naming', async () => {
    const leaf = await createLeaf(inter, { uris: [SLEEP], notBefore: ago(2 * DAY), notAfter: ago(HOUR) });
    refused(verifySvid(leaf.chain, bundle, { allowedIds: new Set() }), 'expired');
  });
});

describe('verifySvid: never throws', () => {
  const junk: unknown[] = [null, undefined, 42, 'x', {}, [null], [undefined], [42], [{ raw: Buffer.alloc(3) }]];
  for (const j of junk) {
    it(`chain ${JSON.stringify(j) ?? 'undefined'}`, () => {
      const v = verifySvid(j as X509Certificate[], bundle);
      assert.equal(v.ok, false);
    });
  }
  it('a junk bundle', () => {
    for (const b of [null, undefined, {}, { roots: 'x' }]) {
      const v = verifySvid(good.chain, b as unknown as TrustBundle);
      assert.equal(v.ok, false);
    }
  });
  it('junk options', () => {
    const v = verifySvid(good.chain, bundle, null as unknown as undefined);
    accepted(v);
  });
});

describe('checkForTlsError', () => {
  it('maps OpenSSL verify codes to checks, and nothing else', () => {
    assert.equal(checkForTlsError('CERT_HAS_EXPIRED'), 'expired');
    assert.equal(checkForTlsError('CERT_NOT_YET_VALID'), 'not-yet-valid');
    assert.equal(checkForTlsError('INVALID_PURPOSE'), 'key-usage');
    assert.equal(checkForTlsError('DEPTH_ZERO_SELF_SIGNED_CERT'), 'untrusted-chain');
    assert.equal(checkForTlsError('UNABLE_TO_GET_ISSUER_CERT_LOCALLY'), 'untrusted-chain');
    assert.equal(checkForTlsError('ECONNRESET'), null);
    assert.equal(checkForTlsError('toString'), null);
  });
});

describe('trust bundles', () => {
  it('parses several roots, keeps their order, drops repeats, and round-trips through pem', async () => {
    const second = await createRootCa({ trustDomain: TD });
    const b = trustBundleFromPem(TD, `comment line\n${root.pem}\n${second.pem}\n${root.pem}`);
    assert.ok(!('error' in b), 'error' in b ? b.error : '');
    assert.equal(b.roots.length, 2);
    assert.deepEqual(b.fingerprints, [root.cert.fingerprint256, second.cert.fingerprint256]);
    assert.ok(Object.isFrozen(b) && Object.isFrozen(b.roots) && Object.isFrozen(b.fingerprints));
    const again = trustBundleFromPem(TD, b.pem);
    assert.ok(!('error' in again));
    assert.deepEqual(again.fingerprints, b.fingerprints);
  });

  it('accepts CRLF line endings', () => {
    const b = trustBundleFromPem(TD, root.pem.replace(/\n/g, '\r\n'));
    assert.ok(!('error' in b), 'error' in b ? b.error : '');
  });

  const keyPem = '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSECRETSECRETSECRET\n-----END PRIVATE KEY-----\n';

  it('names a private key block by type and never echoes it', () => {
    const b = trustBundleFromPem(TD, `${root.pem}\n${keyPem}`);
    assert.ok('error' in b);
    assert.match(b.error, /block 2 \(line \d+\): a PRIVATE KEY block, not a CERTIFICATE/);
    assert.doesNotMatch(b.error, /SECRET|MIG/);
  });

  it('reports every bad block, by number and line', () => {
    const lines = root.pem.trim().split('\n');
    const broken = [...lines.slice(0, 2), 'not*base64!', ...lines.slice(2)].join('\n');
    const noEnd = lines.slice(0, -1).join('\n');
    const text = [root.pem, broken, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', noEnd].join('\n');
    const b = trustBundleFromPem(TD, text);
    assert.ok('error' in b);
    assert.match(b.error, /block 2 \(line \d+\): line 2 of the body is not base64/);
    assert.match(b.error, /block 3 \(line \d+\): not a valid X\.509 certificate/);
    assert.match(b.error, /block 4 \(line \d+\): "BEGIN CERTIFICATE" has no END line/);
  });

  it('refuses mismatched labels, a stray END, truncated base64, empty input, a leaf', async () => {
    const cases: [string, RegExp][] = [
      ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----', /closed by "END PRIVATE KEY"/],
      ['-----END CERTIFICATE-----', /END line without a BEGIN/],
      ['-----BEGIN CERTIFICATE-----\nAAAAA\n-----END CERTIFICATE-----', /truncated/],
      ['-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----', /empty/],
      ['', /no CERTIFICATE block/],
      ['just text', /no CERTIFICATE block/],
      [good.pem, /not a CA certificate/],
    ];
    for (const [text, why] of cases) {
      const b = trustBundleFromPem(TD, text);
      assert.ok('error' in b, text);
      assert.match(b.error, why);
    }
  });

  it('refuses an invalid trust domain', () => {
    const b = trustBundleFromPem('Cluster.local', root.pem);
    assert.ok('error' in b);
    assert.match(b.error, /lower case/);
  });

  it('mergeBundles unions roots and refuses to mix trust domains', async () => {
    const other = await createRootCa({ trustDomain: TD });
    const merged = mergeBundles(bundle, bundleOf(other), bundle);
    assert.deepEqual(merged.fingerprints, [root.cert.fingerprint256, other.cert.fingerprint256]);
    const foreign = trustBundleFromPem('other.local', other.pem);
    assert.ok(!('error' in foreign));
    assert.throws(() => mergeBundles(bundle, foreign), /different trust domains/);
  });

  it('withoutRoot removes by fingerprint in any spelling, but not the last root or an absent one', async () => {
    const other = await createRootCa({ trustDomain: TD });
    const both = mergeBundles(bundle, bundleOf(other));
    const fp = root.cert.fingerprint256;
    for (const spelling of [fp, fp.toLowerCase(), fp.replace(/:/g, '')]) {
      const after = withoutRoot(both, spelling);
      assert.ok(!('error' in after));
      assert.deepEqual(after.fingerprints, [other.cert.fingerprint256]);
      refused(verifySvid(good.chain, after), 'untrusted-chain');
    }
    const last = withoutRoot(bundle, fp);
    assert.ok('error' in last);
    assert.match(last.error, /no roots/);
    const absent = withoutRoot(both, 'AB:CD');
    assert.ok('error' in absent);
    assert.match(absent.error, /no root with fingerprint/);
  });
});
