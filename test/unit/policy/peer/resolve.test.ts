import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { MtlsMode, PeerAuthentication } from '../../../../src/api/resources.ts';
import { compilePeerAuthn, namespaceMtlsMode, resolvePeerMode } from '../../../../src/policy/peer/index.ts';

const ROOT = 'istio-system';

function pa(
  namespace: string,
  name: string,
  spec: {
    selector?: Record<string, string>;
    mtls?: MtlsMode;
    noMtls?: boolean;
    ports?: Record<number, MtlsMode>;
  } = {},
): PeerAuthentication {
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'PeerAuthentication',
    metadata: { name, namespace, labels: {}, annotations: {} },
    spec: {
      ...(spec.selector !== undefined ? { selector: { matchLabels: spec.selector } } : {}),
      ...(spec.mtls !== undefined ? { mtls: { mode: spec.mtls } } : {}),
      ...(spec.ports !== undefined
        ? { portLevelMtls: Object.fromEntries(Object.entries(spec.ports).map(([p, mode]) => [p, { mode }])) }
        : {}),
    },
    source: { file: 'test', documentIndex: 0, line: 1 },
  };
}

function mode(all: PeerAuthentication[], namespace: string, labels: Record<string, string>, port: number, root = ROOT) {
  return resolvePeerMode(all, { namespace, labels }, port, root);
}

const meshStrict = pa(ROOT, 'default', { mtls: 'STRICT' });

describe('PeerAuthentication levels', () => {
  it('nothing set is PERMISSIVE, decided by no policy', () => {
    const d = mode([], 'foo', { app: 'a' }, 80);
    assert.equal(d.mode, 'PERMISSIVE');
    assert.equal(d.policy, null);
    assert.match(d.reason, /defaults to PERMISSIVE/);
  });

  it('a no-selector policy in the root namespace is mesh-wide; the same policy in another namespace is not', () => {
    assert.deepEqual(
      [mode([meshStrict], 'foo', {}, 80).mode, mode([meshStrict], 'foo', {}, 80).policy],
      ['STRICT', 'istio-system/default'],
    );
    const elsewhere = pa('other', 'default', { mtls: 'STRICT' });
    assert.equal(mode([elsewhere], 'foo', {}, 80).mode, 'PERMISSIVE');
    assert.equal(mode([elsewhere], 'other', {}, 80).mode, 'STRICT');
  });

  it('the root namespace follows the mesh config, not the name istio-system', () => {
    assert.equal(mode([meshStrict], 'foo', {}, 80, 'mesh-root').mode, 'PERMISSIVE');
    assert.equal(mode([pa('mesh-root', 'default', { mtls: 'STRICT' })], 'foo', {}, 80, 'mesh-root').mode, 'STRICT');
  });

  it('a workload in the root namespace gets the mesh-wide policy', () => {
    const d = mode([meshStrict], ROOT, { app: 'istiod' }, 15012);
    assert.equal(d.mode, 'STRICT');
    assert.equal(d.policy, 'istio-system/default');
  });

  it('namespace-wide beats mesh-wide, only in its own namespace', () => {
    const all = [meshStrict, pa('foo', 'default', { mtls: 'PERMISSIVE' })];
    assert.deepEqual(mode(all, 'foo', {}, 80).policy, 'foo/default');
    assert.equal(mode(all, 'foo', {}, 80).mode, 'PERMISSIVE');
    assert.equal(mode(all, 'bar', {}, 80).mode, 'STRICT');
  });

  it('a namespace-wide UNSET (or no mtls at all) inherits the mesh mode; DISABLE does not', () => {
    for (const ns of [pa('foo', 'ns', { mtls: 'UNSET' }), pa('foo', 'ns', { noMtls: true })]) {
      const d = mode([meshStrict, ns], 'foo', {}, 80);
      assert.equal(d.mode, 'STRICT');
      assert.equal(d.policy, 'istio-system/default');
      assert.match(d.reason, /foo\/ns leaves mtls unset/);
    }
    assert.equal(mode([meshStrict, pa('foo', 'ns', { mtls: 'DISABLE' })], 'foo', {}, 80).mode, 'DISABLE');
  });

  it('a mesh-wide UNSET is PERMISSIVE, and a namespace UNSET below it too', () => {
    const meshUnset = pa(ROOT, 'default', { mtls: 'UNSET' });
    assert.equal(mode([meshUnset], 'foo', {}, 80).mode, 'PERMISSIVE');
    assert.equal(mode([meshUnset], 'foo', {}, 80).policy, null);
    assert.equal(mode([meshUnset, pa('foo', 'ns', { mtls: 'UNSET' })], 'foo', {}, 80).mode, 'PERMISSIVE');
  });

  it('a workload policy beats the namespace policy, for the workloads it selects', () => {
    const all = [pa('foo', 'ns', { mtls: 'STRICT' }), pa('foo', 'a-only', { selector: { app: 'a' }, mtls: 'DISABLE' })];
    assert.equal(mode(all, 'foo', { app: 'a' }, 80).mode, 'DISABLE');
    assert.equal(mode(all, 'foo', { app: 'a' }, 80).policy, 'foo/a-only');
    assert.equal(mode(all, 'foo', { app: 'b' }, 80).mode, 'STRICT');
  });

  it('a selector needs every label, with the same value', () => {
    const all = [pa('foo', 'w', { selector: { app: 'a', version: 'v1' }, mtls: 'DISABLE' })];
    assert.equal(mode(all, 'foo', { app: 'a', version: 'v1', extra: 'x' }, 80).mode, 'DISABLE');
    assert.equal(mode(all, 'foo', { app: 'a' }, 80).mode, 'PERMISSIVE');
    assert.equal(mode(all, 'foo', { app: 'a', version: 'v2' }, 80).mode, 'PERMISSIVE');
  });

  it('a workload policy only selects workloads in its own namespace', () => {
    const all = [pa('bar', 'w', { selector: { app: 'a' }, mtls: 'DISABLE' })];
    assert.equal(mode(all, 'foo', { app: 'a' }, 80).mode, 'PERMISSIVE');
    assert.equal(mode(all, 'bar', { app: 'a' }, 80).mode, 'DISABLE');
  });

  it('a selector policy in the root namespace applies to nobody, not even root-namespace workloads', () => {
    const rootSelector = pa(ROOT, 'w', { selector: { app: 'a' }, mtls: 'DISABLE' });
    const all = [meshStrict, rootSelector];
    assert.equal(mode(all, 'foo', { app: 'a' }, 80).mode, 'STRICT');
    assert.equal(mode(all, ROOT, { app: 'a' }, 80).mode, 'STRICT');
    assert.deepEqual(
      compilePeerAuthn(all, ROOT).ignored.map((i) => i.policy),
      ['istio-system/w'],
    );
    // The same policy one namespace over is a workload policy.
    assert.equal(mode([meshStrict, pa('foo', 'w', { selector: { app: 'a' }, mtls: 'DISABLE' })], 'foo', { app: 'a' }, 80).mode, 'DISABLE');
  });

  it('an empty matchLabels is namespace-wide, not a workload policy', () => {
    const emptySelector = pa('foo', 'empty', { selector: {}, mtls: 'DISABLE' });
    const all = [meshStrict, emptySelector, pa('foo', 'later', { mtls: 'STRICT' })];
    assert.equal(mode(all, 'foo', { app: 'anything' }, 80).mode, 'DISABLE');
    assert.equal(mode(all, 'foo', { app: 'anything' }, 80).policy, 'foo/empty');
    assert.deepEqual(compilePeerAuthn(all, ROOT).ignored.map((i) => i.policy), ['foo/later']);
  });
});

describe('several policies at one level: the first in load order wins', () => {
  it('namespace-wide', () => {
    const a = pa('foo', 'a', { mtls: 'STRICT' });
    const b = pa('foo', 'b', { mtls: 'DISABLE' });
    assert.equal(mode([a, b], 'foo', {}, 80).policy, 'foo/a');
    assert.equal(mode([b, a], 'foo', {}, 80).policy, 'foo/b');
    assert.match(compilePeerAuthn([a, b], ROOT).ignored[0]!.reason, /foo\/a came first/);
  });

  it('mesh-wide', () => {
    const a = pa(ROOT, 'a', { mtls: 'STRICT' });
    const b = pa(ROOT, 'b', { mtls: 'DISABLE' });
    assert.equal(mode([a, b], 'foo', {}, 80).mode, 'STRICT');
    assert.equal(mode([b, a], 'foo', {}, 80).mode, 'DISABLE');
  });

  it('workload-level, among the policies that select the workload', () => {
    const first = pa('foo', 'first', { selector: { app: 'a' }, mtls: 'STRICT' });
    const second = pa('foo', 'second', { selector: { version: 'v1' }, mtls: 'DISABLE' });
    const d = mode([first, second], 'foo', { app: 'a', version: 'v1' }, 80);
    assert.equal(d.policy, 'foo/first');
    assert.match(d.reason, /first of 2 workload policies/);
    assert.equal(mode([first, second], 'foo', { app: 'b', version: 'v1' }, 80).policy, 'foo/second');
    assert.equal(mode([second, first], 'foo', { app: 'a', version: 'v1' }, 80).policy, 'foo/second');
  });
});

describe('portLevelMtls', () => {
  it('the entry for the port wins over the workload mode; other ports keep it', () => {
    const all = [pa('foo', 'w', { selector: { app: 'a' }, mtls: 'STRICT', ports: { 8080: 'DISABLE' } })];
    assert.equal(mode(all, 'foo', { app: 'a' }, 8080).mode, 'DISABLE');
    assert.match(mode(all, 'foo', { app: 'a' }, 8080).reason, /for port 8080/);
    assert.equal(mode(all, 'foo', { app: 'a' }, 8081).mode, 'STRICT');
  });

  it('an UNSET port takes the workload mode, even when that mode is itself inherited', () => {
    const own = [pa('foo', 'w', { selector: { app: 'a' }, mtls: 'STRICT', ports: { 9000: 'UNSET' } })];
    assert.equal(mode(own, 'foo', { app: 'a' }, 9000).mode, 'STRICT');
    assert.equal(mode(own, 'foo', { app: 'a' }, 9000).policy, 'foo/w');

    const inherited = [pa('foo', 'ns', { mtls: 'DISABLE' }), pa('foo', 'w', { selector: { app: 'a' }, ports: { 9000: 'UNSET' } })];
    const d = mode(inherited, 'foo', { app: 'a' }, 9000);
    assert.equal(d.mode, 'DISABLE');
    assert.equal(d.policy, 'foo/ns');
    assert.match(d.reason, /leaves port 9000 unset/);
  });

  it('is ignored on a namespace-wide policy', () => {
    const all = [pa('foo', 'ns', { mtls: 'STRICT', ports: { 8080: 'DISABLE' } })];
    assert.equal(mode(all, 'foo', { app: 'a' }, 8080).mode, 'STRICT');
    // …and honoured once the same settings carry a selector.
    assert.equal(mode([pa('foo', 'ns', { selector: { app: 'a' }, mtls: 'STRICT', ports: { 8080: 'DISABLE' } })], 'foo', { app: 'a' }, 8080).mode, 'DISABLE');
  });

  it('is ignored on a mesh-wide policy', () => {
    const all = [pa(ROOT, 'default', { mtls: 'STRICT', ports: { 8080: 'DISABLE' } })];
    assert.equal(mode(all, 'foo', {}, 8080).mode, 'STRICT');
  });

  it('is ignored for workloads the policy does not select', () => {
    const all = [meshStrict, pa('foo', 'w', { selector: { app: 'a' }, ports: { 8080: 'DISABLE' } })];
    assert.equal(mode(all, 'foo', { app: 'b' }, 8080).mode, 'STRICT');
  });
});

describe('mesh STRICT + production/payment-service with portLevelMtls 8080 STRICT, 9090 PERMISSIVE', () => {
  const all = [
    meshStrict,
    pa('production', 'payment-service', { selector: { app: 'payment-service' }, ports: { 8080: 'STRICT', 9090: 'PERMISSIVE' } }),
  ];
  const payment = { app: 'payment-service' };

  it('8080 is STRICT by the workload policy', () => {
    assert.deepEqual(
      { ...mode(all, 'production', payment, 8080), reason: undefined },
      { mode: 'STRICT', policy: 'production/payment-service', reason: undefined },
    );
  });

  it('9090 is PERMISSIVE by the workload policy, though the mesh is STRICT', () => {
    const d = mode(all, 'production', payment, 9090);
    assert.equal(d.mode, 'PERMISSIVE');
    assert.equal(d.policy, 'production/payment-service');
  });

  it('any other port inherits the mesh STRICT through the workload policy, which sets no mtls', () => {
    const d = mode(all, 'production', payment, 8000);
    assert.equal(d.mode, 'STRICT');
    assert.equal(d.policy, 'istio-system/default');
    assert.match(d.reason, /production\/payment-service leaves mtls unset/);
  });

  it('9090 of another workload in production is STRICT', () => {
    assert.equal(mode(all, 'production', { app: 'frontend' }, 9090).mode, 'STRICT');
  });

  it('9090 of payment-service in another namespace is STRICT', () => {
    assert.equal(mode(all, 'staging', payment, 9090).mode, 'STRICT');
  });

  it('a namespace policy in production leaves the port-level settings in force', () => {
    const withNs = [...all, pa('production', 'default', { mtls: 'DISABLE' })];
    assert.equal(mode(withNs, 'production', payment, 9090).mode, 'PERMISSIVE');
    assert.equal(mode(withNs, 'production', payment, 8080).mode, 'STRICT');
    assert.equal(mode(withNs, 'production', payment, 8000).mode, 'DISABLE');
  });
});

describe('compiled form', () => {
  const all = [
    meshStrict,
    pa('production', 'payment-service', { selector: { app: 'payment-service' }, ports: { 8080: 'STRICT', 9090: 'PERMISSIVE' } }),
  ];

  it('answers as the one-shot form', () => {
    const workload = compilePeerAuthn(all, ROOT).forWorkload('production', { app: 'payment-service' });
    for (const port of [8000, 8080, 9090]) {
      assert.deepEqual(workload.modeForPort(port), resolvePeerMode(all, { namespace: 'production', labels: { app: 'payment-service' } }, port, ROOT));
    }
    assert.equal(workload.workloadPolicy, 'production/payment-service');
    assert.equal(compilePeerAuthn(all, ROOT).forWorkload('production', { app: 'x' }).workloadPolicy, null);
  });

  it('returns the same precomputed decision on every call, so the hot path allocates nothing', () => {
    const workload = compilePeerAuthn(all, ROOT).forWorkload('production', { app: 'payment-service' });
    assert.equal(workload.modeForPort(9090), workload.modeForPort(9090));
    assert.equal(workload.modeForPort(1), workload.modeForPort(2));
    assert.ok(Object.isFrozen(workload.modeForPort(1)));
  });
});

describe('namespace mode (the auto mTLS hint) ignores workload and port policies', () => {
  const all = [
    meshStrict,
    pa('foo', 'ns', { mtls: 'DISABLE' }),
    pa('bar', 'w', { selector: { app: 'a' }, mtls: 'DISABLE', ports: { 80: 'DISABLE' } }),
  ];

  it('reads namespace then mesh', () => {
    assert.equal(namespaceMtlsMode(all, 'foo', ROOT), 'DISABLE');
    assert.equal(namespaceMtlsMode(all, 'bar', ROOT), 'STRICT');
    assert.equal(namespaceMtlsMode([], 'bar', ROOT), 'PERMISSIVE');
  });
});
