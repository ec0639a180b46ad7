// The TLS a client sends once its DestinationRule is known: port-level
// settings, explicit modes, and auto mTLS.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { DestinationRule, TrafficPolicy } from '../../../../src/api/resources.ts';
import { resolveClientTls, type ClientTlsQuery } from '../../../../src/policy/destination/index.ts';

const MESH = { rootNamespace: 'istio-system' };
const HTTPBIN = 'httpbin.foo.svc.cluster.local';

function dr(name: string, trafficPolicy: TrafficPolicy | undefined, namespace = 'foo'): DestinationRule {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: { name, namespace, labels: {}, annotations: {} },
    spec: { host: HTTPBIN, ...(trafficPolicy !== undefined ? { trafficPolicy } : {}) },
    source: { file: 'test', documentIndex: 0, line: 1 },
  };
}

function decide(rule: DestinationRule | null, q: Partial<ClientTlsQuery> = {}, mesh: Parameters<typeof resolveClientTls>[2] = MESH) {
  return resolveClientTls(rule === null ? [] : [rule], { clientNamespace: 'bar', host: HTTPBIN, port: 8000, ...q }, mesh);
}

describe('explicit tls modes', () => {
  for (const mode of ['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL'] as const) {
    it(`${mode} is sent as written, and auto mTLS plays no part`, () => {
      const d = decide(dr('x', { tls: { mode } }));
      assert.deepEqual([d.mode, d.auto, d.destinationRule], [mode, false, 'foo/x']);
      assert.match(d.reason, new RegExp(`tls.mode ${mode}`));
    });
  }

  it('a tls block without mode is DISABLE; no tls block at all is auto', () => {
    const noMode = decide(dr('x', { tls: { sni: 'httpbin.example' } }));
    assert.deepEqual([noMode.mode, noMode.auto], ['DISABLE', false]);
    assert.match(noMode.reason, /without mode is DISABLE/);
    const noTls = decide(dr('x', { loadBalancer: { simple: 'ROUND_ROBIN' } }));
    assert.deepEqual([noTls.mode, noTls.auto, noTls.destinationRule], ['ISTIO_MUTUAL', true, 'foo/x']);
  });

  it('a rule without a trafficPolicy is auto, but still named', () => {
    const d = decide(dr('x', undefined));
    assert.deepEqual([d.mode, d.auto, d.destinationRule], ['ISTIO_MUTUAL', true, 'foo/x']);
    assert.match(d.reason, /no trafficPolicy/);
  });
});

describe('portLevelSettings replace the top-level trafficPolicy for their port', () => {
  const rule = dr('x', {
    tls: { mode: 'SIMPLE' },
    portLevelSettings: [
      { port: { number: 8000 }, tls: { mode: 'DISABLE' } },
      { port: { number: 9000 }, loadBalancer: { simple: 'LEAST_REQUEST' } },
      { port: { number: 9100 }, tls: { mode: 'MUTUAL' } },
      { port: { number: 9100 }, tls: { mode: 'DISABLE' } },
      { tls: { mode: 'DISABLE' } },
    ],
  });

  it("the port's tls wins; other ports keep the top level", () => {
    assert.equal(decide(rule, { port: 8000 }).mode, 'DISABLE');
    assert.match(decide(rule, { port: 8000 }).reason, /portLevelSettings entry for port 8000/);
    assert.equal(decide(rule, { port: 8001 }).mode, 'SIMPLE');
  });

  it('a port entry without tls drops the top-level tls: auto mTLS, not SIMPLE', () => {
    const d = decide(rule, { port: 9000 });
    assert.deepEqual([d.mode, d.auto, d.destinationRule], ['ISTIO_MUTUAL', true, 'foo/x']);
    assert.match(d.reason, /replaces the top-level trafficPolicy/);
  });

  it('the first entry for a port wins', () => {
    assert.equal(decide(rule, { port: 9100 }).mode, 'MUTUAL');
  });

  it('an entry without a port applies to no port', () => {
    assert.equal(decide(rule, { port: 0 }).mode, 'SIMPLE');
  });

  it('matches the service port, as given', () => {
    assert.equal(decide(rule, { port: 80 }).mode, 'SIMPLE');
  });

  it('port entries apply without any top-level tls', () => {
    const onlyPort = dr('x', { portLevelSettings: [{ port: { number: 8000 }, tls: { mode: 'DISABLE' } }] });
    assert.deepEqual([decide(onlyPort, { port: 8000 }).mode, decide(onlyPort, { port: 8000 }).auto], ['DISABLE', false]);
    assert.deepEqual([decide(onlyPort, { port: 8001 }).mode, decide(onlyPort, { port: 8001 }).auto], ['ISTIO_MUTUAL', true]);
  });
});

describe('auto mTLS', () => {
  it('sends Istio mTLS to a destination with a sidecar', () => {
    const d = decide(null);
    assert.deepEqual(d, { ...d, mode: 'ISTIO_MUTUAL', auto: true, destinationRule: null });
    assert.match(d.reason, /no DestinationRule applies/);
  });

  it("sends plaintext when the service namespace's PeerAuthentication is DISABLE, not when STRICT or PERMISSIVE", () => {
    const disabled = decide(null, { serviceMtlsMode: 'DISABLE' });
    assert.deepEqual([disabled.mode, disabled.auto], ['DISABLE', true]);
    assert.equal(decide(null, { serviceMtlsMode: 'STRICT' }).mode, 'ISTIO_MUTUAL');
    assert.equal(decide(null, { serviceMtlsMode: 'PERMISSIVE' }).mode, 'ISTIO_MUTUAL');
  });

  it('does not second-guess an explicit mode: ISTIO_MUTUAL stays even when the namespace disables mTLS', () => {
    const d = decide(dr('x', { tls: { mode: 'ISTIO_MUTUAL' } }), { serviceMtlsMode: 'DISABLE' });
    assert.deepEqual([d.mode, d.auto], ['ISTIO_MUTUAL', false]);
  });

  it('is off when the mesh turns it off: plaintext, and not marked auto', () => {
    const d = decide(null, {}, { ...MESH, enableAutoMtls: false });
    assert.deepEqual([d.mode, d.auto], ['DISABLE', false]);
    assert.equal(decide(dr('x', { tls: { mode: 'SIMPLE' } }), {}, { ...MESH, enableAutoMtls: false }).mode, 'SIMPLE');
  });
});
