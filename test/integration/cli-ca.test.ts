// `meshward ca …` and `meshward cert …` as an operator runs them: a real
// process on a temporary state directory, its stdout, stderr and exit code.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { webcrypto } from 'node:crypto';
import { CertificateAuthority } from '../../src/identity/ca/index.ts';
import { encodePem, x509 } from '../../src/identity/ca/x509.ts';
import { createLeaf, createRootCa, ago, DAY } from '../support/pki.ts';
import { runMeshward } from '../support/cli.ts';


function meshward(args: string[], cwd: string) {
  return runMeshward(args, { cwd });
}

const TD = 'example.org';
const ID = `spiffe://${TD}/ns/shop/sa/checkout`;
let dir: string;
let stateDir: string;

async function csr(): Promise<string> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  return encodePem('CERTIFICATE REQUEST', (await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: alg })).rawData);
}

/** Issues a certificate through the CA API (no CLI command signs) and writes its chain. */
async function issue(file: string): Promise<string[]> {
  const ca = await CertificateAuthority.open({ stateDir, trustDomain: TD });
  try {
    const r = await ca.sign({ csrPem: await csr(), identity: { uri: ID, trustDomain: TD } });
    await writeFile(join(dir, file), r.certChainPem.join(''));
    return r.certChainPem;
  } finally {
    await ca.close();
  }
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'meshward-cli-ca-'));
  stateDir = join(dir, 'state');
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('meshward ca', () => {
  it('init creates a self-signed CA; the key file is 0600 in a 0700 directory', async () => {
    const r = await meshward(['ca', 'init', '--state-dir', stateDir, '--trust-domain', TD], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^created self-signed CA for trust domain ${TD.replace('.', '\\.')} in `));
    assert.match(r.stdout, /root {6}([0-9A-F]{2}:){31}[0-9A-F]{2} \(active\)/);
    assert.equal((await stat(stateDir)).mode & 0o777, 0o700);
    const fp = /root {6}(\S+)/.exec(r.stdout)![1]!.replace(/:/g, '').toLowerCase();
    assert.equal((await stat(join(stateDir, 'keys', `${fp}.key.pem`))).mode & 0o777, 0o600);
  });

  it('init again loads what is there', async () => {
    const r = await meshward(['ca', 'init', '--state-dir', stateDir, '--trust-domain', TD], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^loaded self-signed CA/);
  });

  it('init into a state directory of another trust domain is refused with exit 2', async () => {
    const r = await meshward(['ca', 'init', '--state-dir', stateDir, '--trust-domain', 'cluster.local'], dir);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /holds the CA of trust domain "example\.org", not "cluster\.local" \(invalid-state\)/);
  });

  it('status -o json prints one JSON object', async () => {
    await issue('first.pem');
    const r = await meshward(['ca', 'status', '--state-dir', stateDir, '-o', 'json'], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim().split('\n').length, 1);
    const s = JSON.parse(r.stdout);
    assert.equal(s.trustDomain, TD);
    assert.equal(s.mode, 'self-signed');
    assert.equal(s.issued, 1);
    assert.equal(s.rotationPhase, 'none');
    assert.equal(s.workloadTtlSeconds, 86400);
    assert.equal(s.maxWorkloadTtlSeconds, 7776000);
    assert.equal(s.roots.length, 1);
    assert.equal(s.roots[0].state, 'active');
    assert.ok(Date.parse(s.roots[0].notAfter) > Date.now() + 3000 * DAY);
  });

  it('status as text', async () => {
    const r = await meshward(['ca', 'status', '--state-dir', stateDir], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^trust domain {3}example\.org$/m);
    assert.match(r.stdout, /^issued {9}1 certificate\(s\)$/m);
    assert.match(r.stdout, /^workload TTL {3}1d \(max 90d\)$/m);
    assert.match(r.stdout, /^ {2}active {3}([0-9A-F]{2}:){31}[0-9A-F]{2}$/m);
  });

  it('status of a directory with no CA: exit 2', async () => {
    const r = await meshward(['ca', 'status', '--state-dir', join(dir, 'nothing')], dir);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no CA here/);
    assert.match(r.stderr, /meshward ca init/);
  });

  it('rotate-root adds a trusted root and says what happens next', async () => {
    const r = await meshward(['ca', 'rotate-root', '--state-dir', stateDir], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^added root ([0-9A-F]{2}:){31}[0-9A-F]{2}$/m);
    assert.match(r.stdout, /^rotation phase: trusting-new-root$/m);
    assert.match(r.stdout, /^next:$/m);
    const s = JSON.parse((await meshward(['ca', 'status', '--state-dir', stateDir, '-o', 'json'], dir)).stdout);
    assert.deepEqual(
      s.roots.map((x: { state: string }) => x.state),
      ['active', 'trusted'],
    );
    assert.equal(s.rotationPhase, 'trusting-new-root');
  });

  it('rotate-root again, mid-rotation, is refused with exit 2', async () => {
    const r = await meshward(['ca', 'rotate-root', '--state-dir', stateDir], dir);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /is not active yet; activate or retire it first \(root-in-use\)/);
  });

  it('rotate-root while another process holds the CA is refused with exit 2', async () => {
    const ca = await CertificateAuthority.open({ stateDir, trustDomain: TD });
    try {
      const r = await meshward(['ca', 'rotate-root', '--state-dir', stateDir], dir);
      assert.equal(r.code, 2);
      assert.match(r.stderr, new RegExp(`in use by process ${process.pid} \\(state-locked\\)`));
    } finally {
      await ca.close();
    }
  });

  it('init with a bad plug-in directory names the file: exit 2', async () => {
    const plugin = join(dir, 'cacerts');
    const r = await meshward(['ca', 'init', '--state-dir', join(dir, 'plugin-state'), '--plugin-dir', plugin], dir);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /cacerts\/ca-cert\.pem: missing \(invalid-plugin\)/);
  });

  it('bad usage: exit 2', async () => {
    const r = await meshward(['ca', 'init', '--key-type', 'dsa'], dir);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Allowed choices are ec-p256, rsa-2048, rsa-3072/);
  });
});

describe('meshward cert', () => {
  it('inspect prints the SPIFFE ID, validity and who signed each certificate', async () => {
    await issue('leaf.pem');
    const r = await meshward(['cert', 'inspect', 'leaf.pem'], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^\\[0\\] ${ID.replace(/[./]/g, '\\$&')}$`, 'm'));
    assert.match(r.stdout, /^ {4}CA {11}no$/m);
    assert.match(r.stdout, /^ {4}key usage {4}digitalSignature, keyEncipherment, serverAuth, clientAuth$/m);
    assert.match(r.stdout, /^ {4}signed by {4}\[1\] O=example\.org, CN=meshward root [0-9a-f]{8} \(matched by key identifier, signature verified\)$/m);
    assert.match(r.stdout, /^ {4}signed by {4}itself \(self-signed\)$/m);
  });

  it('inspect -o json', async () => {
    const r = await meshward(['cert', 'inspect', 'leaf.pem', '-o', 'json'], dir);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.certificates.length, 2);
    assert.equal(out.certificates[0].spiffeId, ID);
    assert.equal(out.certificates[0].validity, 'valid');
    assert.equal(out.certificates[0].signedBy.index, 1);
    assert.equal(out.certificates[1].signedBy, 'self');
  });

  it('inspect of a missing file: exit 2', async () => {
    const r = await meshward(['cert', 'inspect', 'missing.pem'], dir);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /missing\.pem: cannot read: no such file/);
  });

  it('verify: a good chain against the CA bundle exits 0', async () => {
    const r = await meshward(['cert', 'verify', '--bundle', join(stateDir, 'bundle.pem'), '--cert', 'leaf.pem', '--trust-domain', TD], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^OK ${ID.replace(/[./]/g, '\\$&')}$`, 'm'));
  });

  it('verify -o json', async () => {
    const r = await meshward(['cert', 'verify', '--bundle', join(stateDir, 'bundle.pem'), '--cert', 'leaf.pem', '-o', 'json'], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(Object.keys(JSON.parse(r.stdout)), ['ok', 'spiffeId', 'notAfter', 'trustDomain']);
  });

  it('verify against another CA\'s bundle exits 1 and names untrusted-chain', async () => {
    const other = await createRootCa({ trustDomain: TD });
    await writeFile(join(dir, 'other-bundle.pem'), other.pem);
    const r = await meshward(['cert', 'verify', '--bundle', 'other-bundle.pem', '--cert', 'leaf.pem'], dir);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^FAILED check untrusted-chain: /);
  });

  it('verify for another trust domain exits 1 and names wrong-trust-domain', async () => {
    const r = await meshward(['cert', 'verify', '--bundle', join(stateDir, 'bundle.pem'), '--cert', 'leaf.pem', '--trust-domain', 'cluster.local'], dir);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^FAILED check wrong-trust-domain: /);
  });

  it('verify of an expired certificate exits 1 and names expired', async () => {
    const root = await createRootCa({ trustDomain: TD });
    const leaf = await createLeaf(root, { uris: [ID], notBefore: ago(2 * DAY), notAfter: ago(DAY) });
    await writeFile(join(dir, 'expired.pem'), leaf.pem);
    await writeFile(join(dir, 'expired-bundle.pem'), root.pem);
    const r = await meshward(['cert', 'verify', '--bundle', 'expired-bundle.pem', '--cert', 'expired.pem', '-o', 'json'], dir);
    assert.equal(r.code, 1);
    const out = JSON.parse(r.stdout);
    assert.equal(out.ok, false);
    assert.equal(out.check, 'expired');
  });

  it('verify with an unreadable bundle: exit 2', async () => {
    await writeFile(join(dir, 'not-a-bundle.pem'), 'hello');
    const r = await meshward(['cert', 'verify', '--bundle', 'not-a-bundle.pem', '--cert', 'leaf.pem'], dir);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not-a-bundle\.pem: error: /);
  });
});
