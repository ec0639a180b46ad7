// A plug-in CA from Istio's cacerts layout: good material is accepted and
// the full chain is handed out; a key that does not match, a chain that
// does not reach root-cert.pem, an intermediate without CA rights, and
// expired material are each refused with the file and the check named.

import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { KeyObject, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { rm, writeFile } from 'node:fs/promises';
import { ALICE, TD, makeCsr, metricValue, openCa, refused, removeTempDirs, tempDir } from './support.ts';
import { createIntermediateCa, createRootCa, generateKey, KeyUsage, ago, fromNow, DAY, HOUR, type TestCa } from '../../../support/pki.ts';
import { trustBundleFromPem } from '../../../../src/identity/trust-bundle.ts';
import { verifySvid } from '../../../../src/identity/verify-svid.ts';
import { CertificateAuthority } from '../../../../src/identity/ca/index.ts';

after(removeTempDirs);

type KeyFormat = 'pkcs8' | 'sec1' | 'pkcs1';

function keyPem(ca: TestCa, format: KeyFormat = 'pkcs8'): string {
  return KeyObject.from(ca.keys.privateKey).export({ type: format, format: 'pem' }) as string;
}

interface Cacerts {
  caCert?: string | null;
  caKey?: string | null;
  certChain?: string | null;
  rootCert?: string | null;
}

/** Writes a cacerts directory; null leaves a file out. */
async function cacerts(files: Cacerts): Promise<string> {
  const dir = await tempDir('meshward-cacerts-');
  const names: [keyof Cacerts, string][] = [
    ['caCert', 'ca-cert.pem'],
    ['caKey', 'ca-key.pem'],
    ['certChain', 'cert-chain.pem'],
    ['rootCert', 'root-cert.pem'],
  ];
  for (const [k, name] of names) {
    const text = files[k];
    if (text !== null && text !== undefined) await writeFile(join(dir, name), text);
  }
  return dir;
}

/** Istio's layout for an intermediate under a root: cert-chain.pem is the intermediate then the root. */
async function istioLayout(root: TestCa, intermediate: TestCa, format: KeyFormat = 'pkcs8'): Promise<string> {
  return cacerts({ caCert: intermediate.pem, caKey: keyPem(intermediate, format), certChain: intermediate.pem + root.pem, rootCert: root.pem });
}

const fp = (pem: string) => new X509Certificate(pem).fingerprint256;

function verifyChain(chain: string[], bundlePem: string) {
  const bundle = trustBundleFromPem(TD, bundlePem);
  assert.ok(!('error' in bundle));
  return verifySvid(
    chain.map((p) => new X509Certificate(p)),
    bundle,
  );
}

describe('plug-in CA: accepted', () => {
  it('signs with the intermediate and hands out leaf, intermediate, root (Istio cert_chain order)', async () => {
    const root = await createRootCa();
    const intermediate = await createIntermediateCa(root);
    const { ca, registry } = await openCa({ pluginDir: await istioLayout(root, intermediate) });
    try {
      const status = ca.status();
      assert.equal(status.mode, 'plugin');
      assert.deepEqual(
        status.roots.map((r) => [r.fingerprint, r.state]),
        [[fp(root.pem), 'active']],
      );
      assert.equal(ca.trustBundlePem(), root.pem.endsWith('\n') ? root.pem : `${root.pem}\n`);
      const r = await ca.sign({ csrPem: await makeCsr(), identity: ALICE });
      assert.deepEqual(r.certChainPem.slice(1).map(fp), [fp(intermediate.pem), fp(root.pem)]);
      const leaf = new X509Certificate(r.certChainPem[0]!);
      assert.ok(leaf.checkIssued(intermediate.cert) && leaf.verify(intermediate.cert.publicKey));
      const verdict = verifyChain(r.certChainPem, ca.trustBundlePem());
      assert.ok(verdict.ok, verdict.ok ? '' : `${verdict.check}: ${verdict.reason}`);
      assert.equal(
        await metricValue(registry, 'citadel_server_cert_chain_expiry_timestamp'),
        Math.floor(intermediate.cert.validToDate.getTime() / 1000),
      );
      assert.equal(await metricValue(registry, 'citadel_server_root_cert_expiry_timestamp'), Math.floor(root.cert.validToDate.getTime() / 1000));
    } finally {
      await ca.close();
    }
  });

  for (const [format, keyKind] of [
    ['sec1', 'ec-p256'],
    ['pkcs1', 'rsa-2048'],
  ] as const) {
    it(`reads a ${format} key as openssl writes it (${keyKind})`, async () => {
      const root = await createRootCa();
      const intermediate = await createIntermediateCa(root, { keyKind });
      const { ca } = await openCa({ pluginDir: await istioLayout(root, intermediate, format) });
      try {
        const r = await ca.sign({ csrPem: await makeCsr(), identity: ALICE });
        assert.ok(verifyChain(r.certChainPem, ca.trustBundlePem()).ok);
      } finally {
        await ca.close();
      }
    });
  }

  it('two intermediates: the chain is built from the certificates, whatever order cert-chain.pem lists them in', async () => {
    const root = await createRootCa();
    const mid = await createIntermediateCa(root);
    const issuing = await createIntermediateCa(mid);
    const dir = await cacerts({ caCert: issuing.pem, caKey: keyPem(issuing), certChain: root.pem + mid.pem + issuing.pem, rootCert: root.pem });
    const { ca } = await openCa({ pluginDir: dir });
    try {
      const r = await ca.sign({ csrPem: await makeCsr(), identity: ALICE });
      assert.deepEqual(r.certChainPem.slice(1).map(fp), [fp(issuing.pem), fp(mid.pem), fp(root.pem)]);
      assert.ok(verifyChain(r.certChainPem, ca.trustBundlePem()).ok);
    } finally {
      await ca.close();
    }
  });

  it('cert-chain.pem may be absent when ca-cert.pem is signed by the root directly', async () => {
    const root = await createRootCa();
    const intermediate = await createIntermediateCa(root);
    const { ca } = await openCa({ pluginDir: await cacerts({ caCert: intermediate.pem, caKey: keyPem(intermediate), rootCert: root.pem }) });
    await ca.close();
  });

  it('several roots in root-cert.pem: all in the bundle, the one the chain ends at is active', async () => {
    const root = await createRootCa();
    const other = await createRootCa({ name: 'next root' });
    const intermediate = await createIntermediateCa(root);
    const dir = await cacerts({ caCert: intermediate.pem, caKey: keyPem(intermediate), certChain: intermediate.pem, rootCert: other.pem + root.pem });
    const { ca } = await openCa({ pluginDir: dir });
    try {
      const states = new Map(ca.roots().map((r) => [r.fingerprint, r.state]));
      assert.equal(states.get(fp(root.pem)), 'active');
      assert.equal(states.get(fp(other.pem)), 'trusted');
      assert.equal(ca.trustBundlePem().match(/BEGIN CERTIFICATE/g)!.length, 2);
    } finally {
      await ca.close();
    }
  });

  it('no leaf outlives the intermediate', async () => {
    const root = await createRootCa();
    const intermediate = await createIntermediateCa(root, { notAfter: fromNow(2 * HOUR) });
    const { ca } = await openCa({ pluginDir: await istioLayout(root, intermediate) });
    try {
      const r = await ca.sign({ csrPem: await makeCsr(), identity: ALICE });
      assert.equal(r.notAfter.getTime(), intermediate.cert.validToDate.getTime());
    } finally {
      await ca.close();
    }
  });

  it('is remembered: reopening without pluginDir reads the same directory; rotation is refused', async () => {
    const root = await createRootCa();
    const intermediate = await createIntermediateCa(root);
    const pluginDir = await istioLayout(root, intermediate);
    const stateDir = join(await tempDir(), 'ca');
    await (await openCa({ stateDir, pluginDir })).ca.close();
    const { ca } = await openCa({ stateDir });
    try {
      assert.equal(ca.status().pluginDir, pluginDir);
      await refused(ca.addRoot(), 'not-supported');
      await refused(ca.activateRoot(fp(root.pem)), 'not-supported');
    } finally {
      await ca.close();
    }
    const status = await CertificateAuthority.readStatus(stateDir);
    assert.equal(status.mode, 'plugin');
  });

  it('a state directory of a self-signed CA does not silently turn into a plug-in CA', async () => {
    const stateDir = join(await tempDir(), 'ca');
    await (await openCa({ stateDir })).ca.close();
    const root = await createRootCa();
    const intermediate = await createIntermediateCa(root);
    await refused(openCa({ stateDir, pluginDir: await istioLayout(root, intermediate) }), 'invalid-config');
  });
});

describe('plug-in CA: refused, naming the file and the check', () => {
  async function refusal(dir: string): Promise<string> {
    const err = await refused(openCa({ pluginDir: dir }), 'invalid-plugin');
    assert.equal(err.message, `plug-in CA refused: ${err.detail}`);
    return err.detail;
  }

  it('a key that does not match ca-cert.pem (proved by a test signature)', async () => {
    const root = await createRootCa();
    const intermediate = await createIntermediateCa(root);
    const stranger = KeyObject.from((await generateKey('ec-p256')).privateKey).export({ type: 'pkcs8', format: 'pem' }) as string;
    const detail = await refusal(await cacerts({ caCert: intermediate.pem, caKey: stranger, certChain: intermediate.pem + root.pem, rootCert: root.pem }));
    assert.match(detail, /ca-key\.pem: does not match the public key of ca-cert\.pem/);
  });

  it('a chain that does not verify up to root-cert.pem', async () => {
    const root = await createRootCa();
    const otherRoot = await createRootCa({ name: 'unrelated root' });
    const intermediate = await createIntermediateCa(root);
    const detail = await refusal(
      await cacerts({ caCert: intermediate.pem, caKey: keyPem(intermediate), certChain: intermediate.pem + root.pem, rootCert: otherRoot.pem }),
    );
    assert.match(detail, /cert-chain\.pem: ca-cert\.pem does not verify up to root-cert\.pem: no certificate in the chain or roots signed/);
  });

  it('a chain with a missing middle certificate', async () => {
    const root = await createRootCa();
    const mid = await createIntermediateCa(root);
    const issuing = await createIntermediateCa(mid);
    const detail = await refusal(await cacerts({ caCert: issuing.pem, caKey: keyPem(issuing), certChain: issuing.pem + root.pem, rootCert: root.pem }));
    assert.match(detail, /does not verify up to root-cert\.pem/);
  });

  it('an intermediate that is not a CA (basicConstraints CA:false)', async () => {
    const root = await createRootCa();
    const intermediate = await createIntermediateCa(root, { ca: false });
    const detail = await refusal(await istioLayout(root, intermediate));
    assert.match(detail, /ca-cert\.pem: ".*intermediate.*" is not a CA certificate \(basicConstraints CA:true is missing\)/);
  });

  it('an intermediate whose key usage lacks keyCertSign', async () => {
    const root = await createRootCa();
    const intermediate = await createIntermediateCa(root, { keyUsage: KeyUsage.digitalSignature | KeyUsage.cRLSign });
    const detail = await refusal(await istioLayout(root, intermediate));
    assert.match(detail, /ca-cert\.pem: .* may not sign certificates \(keyUsage lacks keyCertSign\)/);
  });

  it('an expired intermediate', async () => {
    const root = await createRootCa();
    const intermediate = await createIntermediateCa(root, { notBefore: ago(3 * DAY), notAfter: ago(DAY) });
    const detail = await refusal(await istioLayout(root, intermediate));
    assert.match(detail, /ca-cert\.pem: .* expired on \d{4}-\d\d-\d\dT/);
  });

  it('an intermediate not valid yet', async () => {
    const root = await createRootCa();
    const intermediate = await createIntermediateCa(root, { notBefore: fromNow(DAY), notAfter: fromNow(3 * DAY) });
    assert.match(await refusal(await istioLayout(root, intermediate)), /ca-cert\.pem: .* is not valid until/);
  });

  it('an expired root', async () => {
    const root = await createRootCa({ notBefore: ago(10 * DAY), notAfter: ago(DAY) });
    const intermediate = await createIntermediateCa(root, { notBefore: ago(2 * DAY), notAfter: fromNow(DAY) });
    const detail = await refusal(await istioLayout(root, intermediate));
    assert.match(detail, /root-cert\.pem: .* expired on/);
  });

  it('material that expires later is refused when the CA starts after that (the clock is injectable)', async () => {
    const root = await createRootCa();
    const intermediate = await createIntermediateCa(root, { notAfter: fromNow(DAY) });
    const dir = await istioLayout(root, intermediate);
    const err = await refused(openCa({ pluginDir: dir, now: () => fromNow(2 * DAY) }), 'invalid-plugin');
    assert.match(err.detail, /ca-cert\.pem: .* expired on/);
  });

  it('a missing file', async () => {
    const root = await createRootCa();
    const intermediate = await createIntermediateCa(root);
    const dir = await istioLayout(root, intermediate);
    await rm(join(dir, 'ca-key.pem'));
    assert.match(await refusal(dir), /ca-key\.pem: missing/);
    await rm(join(dir, 'root-cert.pem'));
    await writeFile(join(dir, 'ca-key.pem'), keyPem(intermediate));
    assert.match(await refusal(dir), /root-cert\.pem: missing/);
  });

  it('files that are not what they should be, every problem at once', async () => {
    const root = await createRootCa();
    const intermediate = await createIntermediateCa(root);
    const detail = await refusal(await cacerts({ caCert: 'hello', caKey: intermediate.pem, certChain: '-----BEGIN CERTIFICATE-----\nAAAA', rootCert: root.pem }));
    assert.match(detail, /ca-cert\.pem: no certificate found/);
    assert.match(detail, /cert-chain\.pem: PEM text has an unterminated block/);
    assert.match(detail, /ca-key\.pem: not a PEM private key/);
  });
});
