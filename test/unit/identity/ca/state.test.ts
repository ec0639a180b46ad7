// The state directory: created once and loaded after, written atomically,
// keys 0600 in a 0700 directory, one process at a time, and no private key
// anywhere but the key files: not in other files, errors or the log.

import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { chmod, readdir, readFile, writeFile, mkdir } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import {
  ALICE,
  BOB,
  TD,
  assertNoSecret,
  makeCsr,
  metricValue,
  modeOf,
  openCa,
  readText,
  refused,
  removeTempDirs,
  secretFragments,
  tempDir,
  uriSan,
  walk,
} from './support.ts';
import { Registry } from 'prom-client';
import { CaError, CertificateAuthority } from '../../../../src/identity/ca/index.ts';

after(removeTempDirs);

describe('state directory', () => {
  it('is created on first open and loaded on the next: same root, same issued count, same settings', async () => {
    const stateDir = join(await tempDir(), 'ca');
    const first = await openCa({ stateDir, workloadTtlSeconds: 1200 });
    const bundle = first.ca.trustBundlePem();
    for (let i = 0; i < 5; i++) await first.ca.sign({ csrPem: await makeCsr(), identity: ALICE });
    await first.ca.close();
    assert.ok(first.log.some((e) => e.event === 'ca-created'));

    const second = await openCa({ stateDir });
    try {
      assert.equal(second.ca.trustBundlePem(), bundle);
      assert.equal(second.ca.status().issued, 5);
      assert.equal(second.ca.status().workloadTtlSeconds, 1200, 'settings persist');
      assert.ok(second.log.some((e) => e.event === 'ca-loaded'));
      const r = await second.ca.sign({ csrPem: await makeCsr(), identity: ALICE });
      assert.equal(r.certChainPem[1], bundle, 'signs with the same root');
    } finally {
      await second.ca.close();
    }
    const status = await CertificateAuthority.readStatus(stateDir);
    assert.equal(status.issued, 6);
  });

  it('reopens on the same metrics registry: counters continue, gauges follow the open CA', async () => {
    const registry = new Registry();
    const first = await openCa({ registry });
    await first.ca.sign({ csrPem: await makeCsr(), identity: ALICE });
    await first.ca.close();
    const second = await openCa({ registry, rootValidityDays: 5 });
    try {
      await second.ca.sign({ csrPem: await makeCsr(), identity: ALICE });
      assert.equal(await metricValue(registry, 'citadel_server_success_cert_issuance_count'), 2);
      const root = second.ca.roots()[0]!;
      assert.equal(await metricValue(registry, 'citadel_server_root_cert_expiry_timestamp'), Math.floor(root.notAfter.getTime() / 1000));
    } finally {
      await second.ca.close();
    }
  });

  it('lays out state.json, bundle.pem, roots/ and keys/ with the documented modes', async () => {
    const stateDir = join(await tempDir(), 'ca');
    const { ca } = await openCa({ stateDir });
    const fp = ca.roots()[0]!.fingerprint.replace(/:/g, '').toLowerCase();
    await ca.close();
    assert.equal(await modeOf(stateDir), 0o700);
    assert.equal(await modeOf(join(stateDir, 'keys')), 0o700);
    assert.equal(await modeOf(join(stateDir, 'roots')), 0o700);
    assert.equal(await modeOf(join(stateDir, 'keys', `${fp}.key.pem`)), 0o600);
    assert.equal(await modeOf(join(stateDir, 'roots', `${fp}.pem`)), 0o644);
    assert.equal(await modeOf(join(stateDir, 'state.json')), 0o644);
    const files = (await walk(stateDir)).map((f) => f.slice(stateDir.length + 1)).sort();
    assert.deepEqual(files, ['bundle.pem', `keys/${fp}.key.pem`, `roots/${fp}.pem`, 'state.json'], 'no temp files left, lock released');
    const state = JSON.parse(await readText(join(stateDir, 'state.json')));
    assert.equal(state.version, 1);
    assert.equal(state.trustDomain, TD);
    assert.equal(state.mode, 'self-signed');
  });

  it('tightens a pre-existing directory to 0700', async () => {
    const stateDir = join(await tempDir(), 'ca');
    await mkdir(stateDir, { mode: 0o755 });
    await chmod(stateDir, 0o755);
    const { ca } = await openCa({ stateDir });
    await ca.close();
    assert.equal(await modeOf(stateDir), 0o700);
  });

  it('no private key outside the key files: not in other files, errors, or the log', async () => {
    const stateDir = join(await tempDir(), 'ca');
    const { ca, log } = await openCa({ stateDir });
    const errors: CaError[] = [];
    const bobCsr = await makeCsr({ sans: [uriSan(BOB.uri)] });
    const weakCsr = await makeCsr({ key: 'rsa-1024' });
    const goodCsr = await makeCsr();
    const attempts: (() => Promise<unknown>)[] = [
      () => ca.sign({ csrPem: 'garbage', identity: ALICE }),
      () => ca.sign({ csrPem: bobCsr, identity: ALICE }),
      () => ca.sign({ csrPem: weakCsr, identity: ALICE }),
      () => ca.sign({ csrPem: goodCsr, identity: ALICE, ttlSeconds: 1e12 }),
      () => ca.retireRoot(ca.roots()[0]!.fingerprint),
      () => ca.activateRoot('00:11:22:33:44:55:66:77'),
    ];
    for (const attempt of attempts) await attempt().catch((e: CaError) => errors.push(e));
    await ca.addRoot();
    await ca.activateRoot(ca.roots()[1]!.fingerprint);
    await ca.sign({ csrPem: goodCsr, identity: ALICE });
    await ca.close();
    // Keys passed where certificates belong produce errors too.
    const keyFiles = (await walk(stateDir)).filter((f) => f.endsWith('.key.pem'));
    assert.equal(keyFiles.length, 2);
    const keyText = await readFile(keyFiles[0]!, 'utf8');
    const pluginDir = await tempDir();
    for (const f of ['ca-cert.pem', 'ca-key.pem', 'cert-chain.pem', 'root-cert.pem']) await writeFile(join(pluginDir, f), keyText);
    await openCa({ pluginDir }).catch((e: CaError) => errors.push(e));
    await CertificateAuthority.open({ stateDir: await tempDir(), trustDomain: 'Bad Domain' }).catch((e: CaError) => errors.push(e));
    assert.equal(errors.length, 8);

    const fragments = (await Promise.all(keyFiles.map(readText))).flatMap(secretFragments);
    // The check itself finds a key where there is one.
    assert.throws(() => assertNoSecret(keyText.replace(/-----[^-]+-----/g, ''), fragments, 'control'), /contains private key material/);
    for (const file of await walk(stateDir)) {
      if (keyFiles.includes(file)) continue;
      assertNoSecret(await readText(file), fragments, file);
    }
    for (const e of errors) {
      assert.ok(e instanceof CaError);
      assertNoSecret(`${e.message}\n${e.detail}\n${e.stack}`, fragments, `error ${e.reason}`);
    }
    assertNoSecret(JSON.stringify(log), fragments, 'the log');
  });

  it('refuses a second open of the same directory in this process', async () => {
    const stateDir = join(await tempDir(), 'ca');
    const { ca } = await openCa({ stateDir });
    try {
      const err = await refused(openCa({ stateDir }), 'state-locked');
      assert.match(err.detail, /already open in this process/);
    } finally {
      await ca.close();
    }
    const again = await openCa({ stateDir });
    await again.ca.close();
  });

  it('refuses a directory held by another live process, and takes over from a dead one', async () => {
    const stateDir = join(await tempDir(), 'ca');
    const { ca } = await openCa({ stateDir });
    await ca.close();
    const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], { stdio: 'ignore' });
    try {
      await writeFile(join(stateDir, 'lock'), `${sleeper.pid}\n`);
      const err = await refused(openCa({ stateDir }), 'state-locked');
      assert.match(err.detail, new RegExp(`process ${sleeper.pid}`));
    } finally {
      sleeper.kill();
      await new Promise((r) => sleeper.once('exit', r));
    }
    const taken = await openCa({ stateDir });
    await taken.ca.close();
  });

  it('refuses a state directory of another trust domain', async () => {
    const stateDir = join(await tempDir(), 'ca');
    const { ca } = await openCa({ stateDir });
    await ca.close();
    const err = await refused(openCa({ stateDir, trustDomain: 'example.org' }), 'invalid-state');
    assert.match(err.detail, /trust domain "cluster\.local", not "example\.org"/);
  });

  it('names the problem in a corrupt state.json', async () => {
    const stateDir = join(await tempDir(), 'ca');
    const { ca } = await openCa({ stateDir });
    await ca.close();
    const path = join(stateDir, 'state.json');
    const good = await readText(path);
    await writeFile(path, '{ not json');
    assert.match((await refused(openCa({ stateDir }), 'invalid-state')).detail, /state\.json: is not valid JSON/);
    await writeFile(path, good.replace('"version": 1', '"version": 7'));
    assert.match((await refused(openCa({ stateDir }), 'invalid-state')).detail, /unsupported version 7/);
    const state = JSON.parse(good);
    state.roots[0].state = 'trusted';
    await writeFile(path, JSON.stringify(state));
    assert.match((await refused(openCa({ stateDir }), 'invalid-state')).detail, /exactly one active root, found 0/);
  });

  it('refuses a root key that does not match its certificate', async () => {
    const a = join(await tempDir(), 'a');
    const b = join(await tempDir(), 'b');
    const ca1 = await openCa({ stateDir: a });
    const ca2 = await openCa({ stateDir: b });
    await ca1.ca.close();
    await ca2.ca.close();
    const [keyA] = await readdir(join(a, 'keys'));
    const [keyB] = await readdir(join(b, 'keys'));
    await writeFile(join(a, 'keys', keyA!), await readText(join(b, 'keys', keyB!)));
    const err = await refused(openCa({ stateDir: a }), 'invalid-state');
    assert.match(err.detail, /does not match the public key/);
  });

  it('refuses bad options', async () => {
    await refused(openCa({ trustDomain: 'Upper.Case' }), 'invalid-config');
    await refused(openCa({ workloadTtlSeconds: 0 }), 'invalid-config');
    await refused(openCa({ keyType: 'dsa-1024' as never }), 'invalid-config');
  });
});
