// The mesh file: the shop demo's loads; each kind of mistake is refused
// with the field that holds it, and the whole file never half-loads.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadMeshFile, upstreamEnvName } from '../../../src/api/mesh-file.ts';

const SHOP = resolve(import.meta.dirname, '../../../examples/shop/mesh.yaml');

function load(text: string) {
  const dir = mkdtempSync(join(tmpdir(), 'meshward-meshfile-'));
  try {
    writeFileSync(join(dir, 'mesh.yaml'), text);
    return loadMeshFile(join(dir, 'mesh.yaml'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const workload = (name: string, address: string, admin: number, app: number, extra = ''): string =>
  `  - { name: ${name}, namespace: demo, serviceAccount: ${name}, address: ${address}, adminPort: ${admin}, ports: [{ port: 8080, protocol: http, appPort: ${app} }]${extra} }\n`;

function problems(text: string): string[] {
  const r = load(text);
  assert.ok('diagnostics' in r, 'expected the file to be refused');
  return r.diagnostics.map((d) => `${d.path ?? ''}: ${d.message}`);
}

describe('mesh file', () => {
  it('loads the shop demo with defaults filled in', () => {
    const r = loadMeshFile(SHOP);
    assert.ok('mesh' in r, JSON.stringify(r));
    assert.equal(r.mesh.trustDomain, 'cluster.local');
    assert.equal(r.mesh.workloads.length, 4);
    assert.equal(r.mesh.gateway?.route.service, 'order-service');
    assert.ok(r.mesh.policyDir.endsWith('examples/shop/policies'));
    assert.ok(Object.isFrozen(r.mesh.workloads[0]));
  });

  it('names the env var an app finds an upstream by', () => {
    assert.equal(upstreamEnvName('payment-service'), 'PAYMENT_SERVICE_URL');
  });

  it('refuses two workloads on the same address and port, and a repeated app port', () => {
    const p = problems(`policies: p\nworkloads:\n${workload('a', '127.0.30.1', 15001, 18001)}${workload('b', '127.0.30.1', 15002, 18001)}`);
    assert.ok(p.some((m) => /workloads\[1\]\.ports\[0\]\.port: 127\.0\.30\.1:8080 is already used by workloads\.0\.ports\.0\.port/.test(m)), p.join('\n'));
    assert.ok(p.some((m) => /appPort: 127\.0\.0\.1:18001 is already used/.test(m)), p.join('\n'));
  });

  it('refuses an address off loopback', () => {
    const p = problems(`policies: p\nworkloads:\n${workload('a', '10.0.0.1', 15001, 18001)}`);
    assert.ok(p.some((m) => /address: expected a loopback IPv4 address/.test(m)), p.join('\n'));
  });

  it('refuses an upstream nobody serves', () => {
    const p = problems(`policies: p\nworkloads:\n${workload('a', '127.0.30.1', 15001, 18001, ', upstreams: [{ service: ghost, port: 8080, localPort: 19001 }]')}`);
    assert.ok(p.some((m) => /no workload named ghost serves port 8080/.test(m)), p.join('\n'));
  });

  it('refuses unknown fields and names that are not DNS labels', () => {
    const p = problems(`policies: p\nworkloads:\n${workload('Bad_Name', '127.0.30.1', 15001, 18001)}sidecarImage: x\n`);
    assert.ok(p.some((m) => /name: expected a DNS-1123 label/.test(m)), p.join('\n'));
    assert.ok(p.some((m) => /sidecarImage/.test(m)), p.join('\n'));
  });
});
