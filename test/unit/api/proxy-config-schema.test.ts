import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadProxyConfig, parseProxyConfig } from '../../../src/api/proxy-config-schema.ts';

function valid(): Record<string, unknown> {
  return {
    version: 3,
    workload: { name: 'payment', namespace: 'production', serviceAccount: 'payment', labels: { app: 'payment' }, trustDomain: 'cluster.local' },
    identity: { files: { keyFile: 'k', certChainFile: 'c', bundleFile: 'b' } },
    inbound: [{ port: 8080, protocol: 'http', appPort: 8000, healthPaths: ['/healthz'] }],
    outbound: [{ name: 'orders', host: 'orders.production.svc.cluster.local', servicePort: 80, protocol: 'http', endpoints: [{ host: '127.0.0.1', port: 9000, identities: ['spiffe://cluster.local/ns/production/sa/orders'] }] }],
    adminPort: 15000,
    policyPaths: ['policies/'],
  };
}

function paths(input: unknown): (string | undefined)[] {
  const r = parseProxyConfig('p.yaml', input);
  assert.ok('diagnostics' in r, 'expected diagnostics');
  for (const d of r.diagnostics) assert.equal(d.file, 'p.yaml');
  return r.diagnostics.map((d) => d.path);
}

describe('proxy config schema', () => {
  it('accepts a valid config and freezes it', () => {
    const r = parseProxyConfig('p.yaml', valid());
    assert.ok('config' in r);
    assert.ok(Object.isFrozen(r.config) && Object.isFrozen(r.config.inbound[0]) && Object.isFrozen(r.config.workload.labels));
  });

  it('reports unknown fields with their path', () => {
    assert.deepEqual(paths({ ...valid(), inbund: [] }), ['inbund']);
    const v = valid();
    (v['workload'] as Record<string, unknown>)['serviceAcount'] = 'x';
    assert.deepEqual(paths(v), ['workload.serviceAcount']);
  });

  it('reports ports out of range and wrong types', () => {
    assert.deepEqual(paths({ ...valid(), adminPort: 0 }), ['adminPort']);
    assert.deepEqual(paths({ ...valid(), inbound: [{ port: 65536, protocol: 'http', appPort: 1 }] }), ['inbound[0].port']);
    assert.deepEqual(paths({ ...valid(), inbound: [{ port: 80, protocol: 'udp', appPort: '1' }] }), ['inbound[0].protocol', 'inbound[0].appPort']);
    assert.deepEqual(paths({ ...valid(), version: 1.5 }), ['version']);
  });

  it('refuses two inbound entries on one port, naming the second', () => {
    const inbound = [
      { port: 8080, protocol: 'http', appPort: 1 },
      { port: 9090, protocol: 'tcp', appPort: 2 },
      { port: 8080, protocol: 'tcp', appPort: 3 },
    ];
    const r = parseProxyConfig('p.yaml', { ...valid(), inbound });
    assert.ok('diagnostics' in r);
    assert.equal(r.diagnostics.length, 1);
    assert.equal(r.diagnostics[0]!.path, 'inbound[2].port');
    assert.match(r.diagnostics[0]!.message, /inbound\[0\]/);
  });

  it('needs exactly one identity source', () => {
    assert.equal(paths({ ...valid(), identity: {} }).length, 1);
    const both = { files: { keyFile: 'k', certChainFile: 'c', bundleFile: 'b' }, ca: { address: '127.0.0.1:15012', bundleFile: 'b', bootstrapToken: 't' } };
    assert.equal(paths({ ...valid(), identity: both }).length, 1);
  });

  it('loads YAML with lines, and reports syntax errors and unreadable files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mw-pc-'));
    const file = join(dir, 'p.yaml');
    writeFileSync(file, 'version: 1\nadminPort: 99999\n');
    const r = loadProxyConfig(file);
    assert.ok('diagnostics' in r);
    const admin = r.diagnostics.find((d) => d.path === 'adminPort');
    assert.equal(admin?.line, 2);
    writeFileSync(file, 'version: [1\n');
    const syntax = loadProxyConfig(file);
    assert.ok('diagnostics' in syntax && /syntax/.test(syntax.diagnostics[0]!.message));
    const missing = loadProxyConfig(join(dir, 'nope.yaml'));
    assert.ok('diagnostics' in missing && /cannot read/.test(missing.diagnostics[0]!.message));
  });
});
