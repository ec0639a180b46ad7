// Root rotation as a state machine: add (trusted, not signing) → activate
// (signs; the old root stays trusted) → retire the old root (out of the
// bundle, key deleted). Every step persists; the refusals keep the mesh
// from ever trusting nothing or signing with a root nobody trusts yet.

import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { access } from 'node:fs/promises';
import { ALICE, TD, makeCsr, metricValue, openCa, readText, refused, removeTempDirs, tempDir } from './support.ts';
import { parseCertificates } from '../../../../src/identity/ca/x509.ts';
import { trustBundleFromPem } from '../../../../src/identity/trust-bundle.ts';
import { verifySvid } from '../../../../src/identity/verify-svid.ts';
import { CertificateAuthority } from '../../../../src/identity/ca/index.ts';

after(removeTempDirs);

const fingerprints = (pem: string) => parseCertificates(pem).map((c) => new X509Certificate(Buffer.from(c.rawData)).fingerprint256);

function verifies(chain: string[], bundlePem: string): boolean {
  const bundle = trustBundleFromPem(TD, bundlePem);
  assert.ok(!('error' in bundle));
  return verifySvid(
    chain.map((p) => new X509Certificate(p)),
    bundle,
  ).ok;
}

const exists = (p: string) => access(p).then(
  () => true,
  () => false,
);

describe('root rotation', () => {
  it('add → activate → retire, with overlap at every step, persisted across reopen', async () => {
    const stateDir = join(await tempDir(), 'ca');
    let { ca } = await openCa({ stateDir });
    const oldFp = ca.roots()[0]!.fingerprint;
    assert.equal(ca.rotationPhase, 'none');
    const oldLeaf = (await ca.sign({ csrPem: await makeCsr(), identity: ALICE })).certChainPem;

    // Phase 1: the new root is trusted but does not sign.
    const added = await ca.addRoot();
    assert.equal(added.state, 'trusted');
    assert.equal(added.activatedAt, null);
    assert.equal(ca.rotationPhase, 'trusting-new-root');
    assert.deepEqual(fingerprints(ca.trustBundlePem()), [oldFp, added.fingerprint], 'signer first, then the new root');
    assert.equal(await readText(join(stateDir, 'bundle.pem')), ca.trustBundlePem(), 'bundle.pem follows');
    const stillOld = (await ca.sign({ csrPem: await makeCsr(), identity: ALICE })).certChainPem;
    assert.equal(fingerprints(stillOld[1]!)[0], oldFp);
    await refused(ca.addRoot(), 'root-in-use');

    // Reopen mid-rotation: the phase survives.
    await ca.close();
    const reopened1 = await openCa({ stateDir });
    ca = reopened1.ca;
    const registry = reopened1.registry;
    assert.equal(ca.rotationPhase, 'trusting-new-root');

    // Phase 2: the new root signs; the old one stays in the bundle.
    const activated = await ca.activateRoot(added.fingerprint.slice(0, 23)); // a unique prefix will do
    assert.equal(activated.state, 'active');
    assert.equal(ca.rotationPhase, 'draining-old-root');
    const old = ca.roots().find((r) => r.fingerprint === oldFp)!;
    assert.equal(old.state, 'trusted');
    assert.ok(old.deactivatedAt);
    assert.equal(old.drainedAt!.getTime(), old.deactivatedAt.getTime() + ca.status().maxWorkloadTtlSeconds * 1000);
    const newLeaf = (await ca.sign({ csrPem: await makeCsr(), identity: ALICE })).certChainPem;
    assert.equal(fingerprints(newLeaf[1]!)[0], added.fingerprint);
    assert.deepEqual(fingerprints(ca.trustBundlePem()), [added.fingerprint, oldFp]);
    assert.ok(verifies(oldLeaf, ca.trustBundlePem()), 'old leaves still verify');
    assert.ok(verifies(newLeaf, ca.trustBundlePem()), 'new leaves verify');
    const newRoot = parseCertificates(ca.trustBundlePem())[0]!;
    assert.equal(await metricValue(registry, 'citadel_server_root_cert_expiry_timestamp'), Math.floor(newRoot.notAfter.getTime() / 1000));

    // The active root cannot be retired.
    const err = await refused(ca.retireRoot(added.fingerprint), 'root-in-use');
    assert.match(err.detail, /active root/);

    // Phase 3: retire the old root.
    const oldKey = join(stateDir, 'keys', `${oldFp.replace(/:/g, '').toLowerCase()}.key.pem`);
    assert.ok(await exists(oldKey));
    const retired = await ca.retireRoot(oldFp);
    assert.equal(retired.state, 'retired');
    assert.equal(ca.rotationPhase, 'none');
    assert.deepEqual(fingerprints(ca.trustBundlePem()), [added.fingerprint]);
    assert.ok(!(await exists(oldKey)), 'the retired root\'s key is deleted');
    assert.ok(!verifies(oldLeaf, ca.trustBundlePem()), 'old leaves no longer verify');
    assert.equal(ca.roots().length, 2, 'the retired root stays in the history');
    await ca.close();

    const status = await CertificateAuthority.readStatus(stateDir);
    assert.deepEqual(
      status.roots.map((r) => r.state),
      ['retired', 'active'],
    );
    assert.equal(status.rotationPhase, 'none');
    const reopened = await openCa({ stateDir });
    try {
      assert.deepEqual(fingerprints(reopened.ca.trustBundlePem()), [added.fingerprint]);
      const r = await reopened.ca.sign({ csrPem: await makeCsr(), identity: ALICE });
      assert.equal(fingerprints(r.certChainPem[1]!)[0], added.fingerprint);
    } finally {
      await reopened.ca.close();
    }
  });

  it('activating the active root is a no-op; a retired root cannot come back', async () => {
    const { ca } = await openCa();
    try {
      const first = ca.roots()[0]!;
      assert.equal((await ca.activateRoot(first.fingerprint)).state, 'active');
      const added = await ca.addRoot();
      await ca.retireRoot(added.fingerprint);
      assert.equal(ca.rotationPhase, 'none');
      await refused(ca.activateRoot(added.fingerprint), 'root-in-use');
      assert.equal((await ca.retireRoot(added.fingerprint)).state, 'retired', 'retiring twice is a no-op');
    } finally {
      await ca.close();
    }
  });

  it('can roll back: the previous root is activated again while still trusted', async () => {
    const { ca } = await openCa();
    try {
      const first = ca.roots()[0]!.fingerprint;
      const added = await ca.addRoot();
      await ca.activateRoot(added.fingerprint);
      await ca.activateRoot(first);
      assert.equal(ca.roots().find((r) => r.fingerprint === first)!.state, 'active');
      assert.equal(ca.roots().find((r) => r.fingerprint === added.fingerprint)!.state, 'trusted');
      assert.equal(ca.rotationPhase, 'draining-old-root');
    } finally {
      await ca.close();
    }
  });

  it('a CA whose root expired still opens, refuses to sign, and recovers by rotating', async () => {
    const stateDir = join(await tempDir(), 'ca');
    await (await openCa({ stateDir, rootValidityDays: 1 })).ca.close();
    const later = new Date(Date.now() + 2 * 86_400_000);
    const { ca, log } = await openCa({ stateDir, now: () => later });
    try {
      assert.ok(log.some((e) => e.event === 'signing-chain-expired'));
      const err = await refused(ca.sign({ csrPem: await makeCsr(), identity: ALICE }), 'ca-unavailable');
      assert.match(err.detail, /signing chain expired/);
      const added = await ca.addRoot();
      await ca.activateRoot(added.fingerprint);
      const r = await ca.sign({ csrPem: await makeCsr(), identity: ALICE });
      assert.equal(fingerprints(r.certChainPem[1]!)[0], added.fingerprint);
    } finally {
      await ca.close();
    }
  });

  it('refuses unknown and ambiguous fingerprints', async () => {
    const { ca } = await openCa();
    try {
      await refused(ca.activateRoot('AA:BB:CC:DD:EE:FF:00:11'), 'unknown-root');
      await refused(ca.retireRoot(''), 'unknown-root');
      await refused(ca.activateRoot('AB'), 'unknown-root');
    } finally {
      await ca.close();
    }
  });

  it('concurrent rotation calls and signing are serialized', async () => {
    const { ca } = await openCa();
    try {
      const csrPem = await makeCsr();
      const results = await Promise.allSettled([
        ca.addRoot(),
        ca.addRoot(),
        ...Array.from({ length: 20 }, () => ca.sign({ csrPem, identity: ALICE })),
      ]);
      const adds = results.slice(0, 2);
      assert.equal(adds.filter((r) => r.status === 'fulfilled').length, 1, 'one add wins, the other is refused');
      assert.ok(results.slice(2).every((r) => r.status === 'fulfilled'));
      assert.equal(ca.roots().length, 2);
      assert.equal(ca.status().issued, 20);
    } finally {
      await ca.close();
    }
  });
});
