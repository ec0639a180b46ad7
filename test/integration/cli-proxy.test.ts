// `meshward proxy` as a process: it refuses an invalid config with
// diagnostics naming the field, serves its admin API with the identity from
// the config's files, and stops cleanly on SIGTERM.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runMeshward, startProxyProcess } from '../support/cli.ts';
import { freePort } from '../support/http.ts';
import { writeIdentityFiles } from '../support/pki.ts';

const POLICIES = resolve(import.meta.dirname, '../../examples/authz/policies/payment.yaml');
const PAYMENT = 'spiffe://cluster.local/ns/production/sa/payment-service';

function baseConfig(adminPort: number, inboundPort: number): Record<string, unknown> {
  return {
    version: 1,
    workload: { name: 'payment-service', namespace: 'production', serviceAccount: 'payment-service', labels: { app: 'payment-service' }, trustDomain: 'cluster.local' },
    identity: { files: { keyFile: 'key.pem', certChainFile: 'chain.pem', bundleFile: 'bundle.pem' } },
    inbound: [{ port: inboundPort, protocol: 'http', appPort: 1 }],
    outbound: [],
    adminPort,
    policyPaths: [POLICIES],
  };
}

describe('meshward proxy', () => {
  it('refuses an invalid config, naming the file and field', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mw-cli-proxy-'));
    const file = join(dir, 'proxy.json');
    writeFileSync(file, JSON.stringify({ ...baseConfig(15000, 8080), adminPort: 70000 }));
    const run = await runMeshward(['proxy', '--config', file]);
    assert.equal(run.code, 2);
    assert.match(run.stderr, new RegExp(`${file.replace(/[.]/g, '\\.')}.*adminPort`));
  });

  it('serves its admin API, gives back what start-up left in the young generation, and stops with exit 0 on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mw-cli-proxy-'));
    await writeIdentityFiles(dir, PAYMENT);
    const admin = await freePort();
    writeFileSync(join(dir, 'proxy.yaml'), JSON.stringify(baseConfig(admin, await freePort())));

    const proxy = startProxyProcess(join(dir, 'proxy.yaml'));
    try {
      await proxy.started;
      const certs = (await (await fetch(`http://127.0.0.1:${admin}/certs`)).json()) as { spiffeId: string };
      assert.equal(certs.spiffeId, PAYMENT);
      assert.equal((await fetch(`http://127.0.0.1:${admin}/ready`)).status, 200);
      // The launcher holds the young generation's size (8 MiB a semi-space),
      // so the trim at the end of start-up released its pages (about 10 MiB)
      // and kept its size.
      const memory = (await (await fetch(`http://127.0.0.1:${admin}/memory`)).json()) as { youngGenerationMiB: number; youngGenerationResidentMiB: number };
      assert.ok(memory.youngGenerationMiB >= 8, JSON.stringify(memory));
      assert.ok(memory.youngGenerationResidentMiB <= 3, JSON.stringify(memory));
      // The launcher relaunched itself in the same process with the proxy flags, once each.
      const argv = readFileSync(`/proc/${proxy.child.pid}/cmdline`, 'utf8').split('\0');
      assert.equal(argv.filter((a) => a === '--min-semi-space-size=8').length, 1, argv.join(' '));
      assert.equal(argv.filter((a) => a === '--no-memory-reducer').length, 1, argv.join(' '));
      assert.equal(argv.filter((a) => a === '--v8-pool-size=2').length, 1, argv.join(' '));
    } finally {
      proxy.child.kill('SIGTERM');
    }
    const [code] = (await once(proxy.child, 'exit')) as [number | null];
    assert.equal(code, 0, proxy.stderr());
  });
});
