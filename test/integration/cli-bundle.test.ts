// The bundle as users run it: tools/build-bundle.ts builds a copy of this
// package, and its launcher runs the bundle while the sources are as they
// were built, the sources themselves once one is edited, and the bundle
// again once the edit is undone. Both answer the same.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { runMeshward, startProxyProcess } from '../support/cli.ts';
import { freePort } from '../support/http.ts';
import { writeIdentityFiles } from '../support/pki.ts';

const REPO = resolve(import.meta.dirname, '../..');
const PAYMENT = 'spiffe://cluster.local/ns/production/sa/payment-service';

/** This package's code and manifests, copied; its node_modules, linked. */
function packageCopy(): string {
  const root = mkdtempSync(join(tmpdir(), 'mw-package-'));
  for (const entry of ['package.json', 'package-lock.json', 'bin', 'src', 'tools', 'examples']) cpSync(join(REPO, entry), join(root, entry), { recursive: true });
  symlinkSync(join(REPO, 'node_modules'), join(root, 'node_modules'));
  return root;
}

async function proxyConfig(): Promise<{ file: string; admin: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'mw-bundle-proxy-'));
  await writeIdentityFiles(dir, PAYMENT);
  const admin = await freePort();
  const config = {
    version: 1,
    workload: { name: 'payment-service', namespace: 'production', serviceAccount: 'payment-service', labels: { app: 'payment-service' }, trustDomain: 'cluster.local' },
    identity: { files: { keyFile: 'key.pem', certChainFile: 'chain.pem', bundleFile: 'bundle.pem' } },
    inbound: [{ port: await freePort(), protocol: 'http', appPort: 1 }],
    outbound: [],
    adminPort: admin,
    policyPaths: [join(REPO, 'examples/authz/policies/payment.yaml')],
  };
  writeFileSync(join(dir, 'proxy.json'), JSON.stringify(config));
  return { file: join(dir, 'proxy.json'), admin };
}

/** Starts a proxy with the copy's launcher; what it logged it runs from, and its command line. */
async function runsFrom(bin: string, config: { file: string; admin: number }): Promise<{ runningFrom: string; argv: string[] }> {
  const proxy = startProxyProcess(config.file, bin);
  try {
    await proxy.started;
    const certs = (await (await fetch(`http://127.0.0.1:${config.admin}/certs`)).json()) as { spiffeId: string };
    assert.equal(certs.spiffeId, PAYMENT);
    const started = proxy
      .stderr()
      .split('\n')
      .map((l) => (l.startsWith('{') ? (JSON.parse(l) as { event?: string; runningFrom?: string }) : {}))
      .find((l) => l.event === 'proxy-started');
    return { runningFrom: String(started?.runningFrom), argv: readFileSync(`/proc/${proxy.child.pid}/cmdline`, 'utf8').split('\0') };
  } finally {
    if (proxy.child.exitCode === null && proxy.child.signalCode === null) {
      proxy.child.kill('SIGTERM');
      await once(proxy.child, 'exit');
    }
  }
}

describe('the bundle', () => {
  it('runs while its sources are unchanged, gives way to them when one is edited, and answers as they do', async () => {
    const root = packageCopy();
    const bin = join(root, 'bin', 'meshward.js');
    const built = await promisify(execFile)(process.execPath, [join(root, 'tools', 'build-bundle.ts')], { cwd: root });
    assert.match(built.stdout, /built build\/bundle\/[0-9a-f]{16}\/meshward\.js/);
    const manifest = JSON.parse(readFileSync(join(root, 'build', 'bundle', 'current.json'), 'utf8')) as { directory: string; inputs: Record<string, string> };
    assert.ok('src/proxy/proxy.ts' in manifest.inputs && 'tools/build-bundle.ts' in manifest.inputs, Object.keys(manifest.inputs).join(' '));
    const entry = join(root, 'build', 'bundle', manifest.directory, 'meshward.js');
    // Nothing past Latin-1, so V8 holds each chunk's text at one byte a character.
    const chunks = readdirSync(dirname(entry)).filter((f) => f.endsWith('.js'));
    assert.ok(chunks.length > 10, chunks.join(' '));
    for (const chunk of chunks) assert.doesNotMatch(readFileSync(join(dirname(entry), chunk), 'utf8'), /[\u0100-\uffff]/, chunk);
    const config = await proxyConfig();

    // Relaunched with the proxy's flags straight into the bundle.
    const bundled = await runsFrom(bin, config);
    assert.equal(bundled.runningFrom, 'bundle');
    assert.ok(bundled.argv.includes(entry) && bundled.argv.includes('--no-memory-reducer'), bundled.argv.join(' '));

    const check = ['authz', 'check', '-f', join(root, 'examples/authz/policies'), '--request', join(root, 'examples/authz/requests/reporting-to-payments.json'), '-o', 'json'];
    const fromBundle = await runMeshward(['validate', '-f', join(root, 'examples/authz/policies')], { bin });
    const checkFromBundle = await runMeshward(check, { bin });

    const edited = join(root, 'src', 'lib', 'cidr.ts');
    const original = readFileSync(edited, 'utf8');
    writeFileSync(edited, `${original}// edited\n`);
    const fromSource = await runsFrom(bin, config);
    assert.equal(fromSource.runningFrom, 'source');
    assert.ok(fromSource.argv.includes(bin), fromSource.argv.join(' '));
    assert.deepEqual(await runMeshward(['validate', '-f', join(root, 'examples/authz/policies')], { bin }), fromBundle);
    assert.deepEqual(await runMeshward(check, { bin }), checkFromBundle);
    assert.equal(fromBundle.code, 0, fromBundle.stderr);

    writeFileSync(edited, original);
    assert.equal((await runsFrom(bin, config)).runningFrom, 'bundle');
  });
});
