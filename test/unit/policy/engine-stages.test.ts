// The engine's stages in order — peer authentication, path normalization,
// request authentication, authorization — and how the first refusal wins.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { engineFrom, decide, expectDecision } from '../../support/engine.ts';

const MESH_STRICT = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: istio-system
spec:
  mtls:
    mode: STRICT
`;

const PAYMENT_PORTS = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: payment
  namespace: production
spec:
  selector:
    matchLabels:
      app: payment-service
  portLevelMtls:
    8080:
      mode: STRICT
    9090:
      mode: PERMISSIVE
`;

const DENY_ALL = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-all
  namespace: foo
spec: {}
`;

describe('peer authentication', () => {
  it('no PeerAuthentication means PERMISSIVE: plaintext accepted', async () => {
    const d = await decide(engineFrom(''), { mtls: false });
    expectDecision(d, 'ALLOW', 200);
    assert.equal(d.principal, null);
    assert.equal(d.trace.peerAuthentication?.mode, 'PERMISSIVE');
  });

  it('STRICT refuses plaintext before anything else runs', async () => {
    const d = await decide(engineFrom(`${MESH_STRICT}---\n${DENY_ALL}`), { mtls: false });
    expectDecision(d, 'DENY', 'reset', 'peer-authentication');
    assert.equal(d.policy, null);
    expectDecision(await decide(engineFrom(`${MESH_STRICT}---\n${DENY_ALL}`)), 'DENY', 403, 'authorization');
  });

  it('STRICT accepts Istio mTLS and keeps the principal', async () => {
    const d = await decide(engineFrom(MESH_STRICT));
    expectDecision(d, 'ALLOW', 200);
    assert.equal(d.principal, 'cluster.local/ns/bar/sa/sleep');
  });

  it('port-level PERMISSIVE opens only that port', async () => {
    const engine = engineFrom(`${MESH_STRICT}---\n${PAYMENT_PORTS}`);
    const dest = { namespace: 'production', labels: { app: 'payment-service' } };
    expectDecision(await decide(engine, { ...dest, port: 9090, mtls: false }), 'ALLOW', 200);
    expectDecision(await decide(engine, { ...dest, port: 8080, mtls: false }), 'DENY', 'reset', 'peer-authentication');
    // a port without a port-level entry inherits the workload policy, which inherits mesh STRICT
    expectDecision(await decide(engine, { ...dest, port: 7070, mtls: false }), 'DENY', 'reset', 'peer-authentication');
  });

  it('namespace policy overrides the mesh; workload policy overrides the namespace', async () => {
    const yaml = `${MESH_STRICT}---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: default
  namespace: foo
spec:
  mtls:
    mode: PERMISSIVE
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: strict-httpbin
  namespace: foo
spec:
  selector:
    matchLabels:
      app: httpbin
  mtls:
    mode: STRICT
`;
    const engine = engineFrom(yaml);
    expectDecision(await decide(engine, { labels: { app: 'other' }, mtls: false }), 'ALLOW', 200);
    expectDecision(await decide(engine, { labels: { app: 'httpbin' }, mtls: false }), 'DENY', 'reset', 'peer-authentication');
  });

  it('plaintext principal claims are ignored under PERMISSIVE', async () => {
    const d = await decide(engineFrom(''), { mtls: false, principal: 'cluster.local/ns/admin/sa/root' });
    assert.equal(d.principal, null);
  });
});

describe('source.mtls "auto"', () => {
  const service = { host: 'httpbin.foo.svc.cluster.local', port: 8000 };
  const disableDr = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: httpbin
  namespace: bar
spec:
  host: httpbin.foo.svc.cluster.local
  trafficPolicy:
    tls:
      mode: DISABLE
`;

  it('auto mTLS sends Istio mTLS, so STRICT accepts it', async () => {
    const d = await decide(engineFrom(MESH_STRICT), { mtls: 'auto', service });
    expectDecision(d, 'ALLOW', 200);
    assert.equal(d.principal, 'cluster.local/ns/bar/sa/sleep');
  });

  it('a DestinationRule in the client namespace with DISABLE sends plaintext, which STRICT refuses', async () => {
    const engine = engineFrom(`${MESH_STRICT}---\n${disableDr}`);
    expectDecision(await decide(engine, { mtls: 'auto', service }), 'DENY', 'reset', 'peer-authentication');
    // the same rule does not apply to a client in another namespace
    expectDecision(await decide(engine, { mtls: 'auto', service, clientNamespace: 'baz', principal: 'cluster.local/ns/baz/sa/x' }), 'ALLOW', 200);
  });

  it('SIMPLE TLS is not Istio mTLS: STRICT refuses it', async () => {
    const engine = engineFrom(`${MESH_STRICT}---\n${disableDr.replace('DISABLE', 'SIMPLE')}`);
    expectDecision(await decide(engine, { mtls: 'auto', service }), 'DENY', 'reset', 'peer-authentication');
  });
});

describe('path normalization attacks against a path-based DENY policy', () => {
  const denyAdmin = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: deny-admin
  namespace: foo
spec:
  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/admin", "/admin/*"]
`;
  const attacks = ['/admin', '/admin/', '/./admin', '/public/../admin', '/%61dmin', '/%2e%2e/admin', '/public/%2E%2E/admin/x', '\\admin', '/admin?x=1', '/admin#frag'];
  for (const mode of ['BASE', 'MERGE_SLASHES', 'DECODE_AND_MERGE_SLASHES'] as const) {
    for (const path of attacks) {
      it(`${mode}: ${path} never reaches the app`, async () => {
        const d = await decide(engineFrom(denyAdmin, { pathNormalization: mode }), { path });
        assert.equal(d.decision, 'DENY', `${path} was allowed as ${d.trace.normalizedPath}`);
      });
    }
  }
  it('MERGE_SLASHES catches //admin; BASE does not merge', async () => {
    const merged = await decide(engineFrom(denyAdmin, { pathNormalization: 'MERGE_SLASHES' }), { path: '//admin' });
    expectDecision(merged, 'DENY', 403, 'authorization');
    const base = await decide(engineFrom(denyAdmin, { pathNormalization: 'BASE' }), { path: '//admin' });
    assert.equal(base.trace.normalizedPath, '//admin');
  });
  it('DECODE_AND_MERGE_SLASHES catches /admin%2Fx; BASE keeps the escaped slash', async () => {
    const decoding = engineFrom(denyAdmin, { pathNormalization: 'DECODE_AND_MERGE_SLASHES' });
    expectDecision(await decide(decoding, { path: '/admin%2Fx' }), 'DENY', 403, 'authorization');
    expectDecision(await decide(decoding, { path: '/public/..%2fadmin' }), 'DENY', 403, 'authorization');
    expectDecision(await decide(decoding, { path: '/admin%5cx' }), 'DENY', 403, 'authorization');
    const base = await decide(engineFrom(denyAdmin), { path: '/admin%2Fx' });
    assert.equal(base.trace.normalizedPath, '/admin%2Fx');
  });
  it('a path without a leading slash is refused at normalization', async () => {
    expectDecision(await decide(engineFrom(''), { path: 'admin' }), 'DENY', 400, 'normalization');
  });
  it('paths are case-sensitive: /ADMIN is a different path', async () => {
    const d = await decide(engineFrom(denyAdmin), { path: '/ADMIN' });
    expectDecision(d, 'ALLOW', 200);
  });
});
