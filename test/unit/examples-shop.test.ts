// The shop demo's policies (examples/shop/policies) load without errors and
// decide what examples/shop/README.md says they decide. Real files, real
// signed tokens; the gateway's jwksUri resolves to an in-memory key set.

import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SignJWT, createLocalJWKSet, exportJWK, generateKeyPair, type CryptoKey } from 'jose';

import { parseAuthzCheckRequest } from '../../src/api/authz-request.ts';
import { loadResources } from '../../src/api/load.ts';
import { DEFAULT_MESH_CONFIG } from '../../src/api/mesh-config.ts';
import { PolicyEngine, type EngineInput } from '../../src/policy/engine.ts';
import type { JwksResolver } from '../../src/policy/authn/compile.ts';
import { failClosedJwksResolver } from '../../src/policy/authn/remote-jwks.ts';
import { toEngineInput } from '../../src/cli/authz-check.ts';
import { expectDecision } from '../support/engine.ts';

const POLICIES = fileURLToPath(new URL('../../examples/shop/policies', import.meta.url));
const REQUESTS = new URL('../../examples/shop/requests/', import.meta.url);
const ISSUER = 'https://auth.shop.example';
const JWKS_URI = 'http://127.0.0.1:18000/.well-known/jwks.json';

type Workload = 'order-service' | 'billing-service' | 'payment-service' | 'reporting-service';

/** The destination facts `meshward up` gives a shop workload's proxy (see examples/shop/mesh.yaml). */
function shop(name: Workload, port = 8080): EngineInput['destination'] {
  return { namespace: 'production', serviceAccount: name, labels: { app: name, version: 'v1', 'app.kubernetes.io/part-of': 'shop' }, port };
}

function mtlsFrom(name: Workload | 'istio-ingressgateway', namespace = 'production'): EngineInput['connection'] {
  return { mtls: true, principal: `cluster.local/ns/${namespace}/sa/${name}`, clientNamespace: namespace, ip: '127.0.0.1' };
}

const PLAINTEXT: EngineInput['connection'] = { mtls: false, principal: null, clientNamespace: null, ip: '127.0.0.1' };

function http(method: string, path: string, headers: Record<string, string> = {}): EngineInput['request'] {
  return { protocol: 'http', method, path, host: 'shop.example', headers };
}

function engine(jwksResolver: JwksResolver = failClosedJwksResolver): PolicyEngine {
  const { resources, diagnostics } = loadResources([POLICIES]);
  assert.deepEqual(diagnostics.filter((d) => d.severity === 'error'), []);
  return new PolicyEngine(resources, DEFAULT_MESH_CONFIG, { jwksResolver });
}

describe('examples/shop/policies', () => {
  it('loads with no errors and no warnings', () => {
    const { resources, diagnostics } = loadResources([POLICIES]);
    assert.deepEqual(diagnostics, []);
    assert.equal(resources.peerAuthentications.length, 2);
    assert.equal(resources.authorizationPolicies.length, 6);
    assert.equal(resources.requestAuthentications.length, 1);
  });

  it('decides the example requests as the README says', async () => {
    const e = engine();
    const expected = {
      'order-to-payment-charge.json': 'ALLOW',
      'reporting-to-payment-summary.json': 'DENY',
      'scrape-payment-metrics.json': 'ALLOW',
    } as const;
    for (const [file, decision] of Object.entries(expected)) {
      const { request, diagnostics } = parseAuthzCheckRequest(file, JSON.parse(readFileSync(new URL(file, REQUESTS), 'utf8')));
      assert.deepEqual(diagnostics, [], file);
      assert.ok(request);
      assert.equal((await e.check(toEngineInput(request))).decision, decision, file);
    }
  });

  describe('between services (mTLS)', () => {
    const e = engine();

    it('order-service may charge a payment', async () => {
      const d = await e.check({ destination: shop('payment-service'), connection: mtlsFrom('order-service'), request: http('POST', '/api/v1/payments/charge') });
      expectDecision(d, 'ALLOW', 200);
      assert.equal(d.policy, 'production/payment-service-policy');
    });

    it('billing-service may look a payment up', async () => {
      const d = await e.check({ destination: shop('payment-service'), connection: mtlsFrom('billing-service'), request: http('GET', '/api/v1/payments/pay-1') });
      expectDecision(d, 'ALLOW', 200);
    });

    it('reporting-service may not read the payment summary (default deny)', async () => {
      const d = await e.check({ destination: shop('payment-service'), connection: mtlsFrom('reporting-service'), request: http('GET', '/api/v1/payments/summary') });
      expectDecision(d, 'DENY', 403, 'authorization');
      assert.equal(d.policy, null);
    });

    it('nobody may DELETE a payment, not even order-service', async () => {
      for (const caller of ['order-service', 'billing-service'] as const) {
        const d = await e.check({ destination: shop('payment-service'), connection: mtlsFrom(caller), request: http('DELETE', '/api/v1/payments/pay-1') });
        expectDecision(d, 'DENY', 403, 'authorization');
      }
    });

    it('billing-service may not place orders: only the gateway may', async () => {
      const denied = await e.check({ destination: shop('order-service'), connection: mtlsFrom('billing-service'), request: http('POST', '/api/v1/orders') });
      expectDecision(denied, 'DENY', 403, 'authorization');
      const allowed = await e.check({
        destination: shop('order-service'),
        connection: mtlsFrom('istio-ingressgateway', 'istio-system'),
        request: http('POST', '/api/v1/orders'),
      });
      expectDecision(allowed, 'ALLOW', 200);
      assert.equal(allowed.policy, 'production/order-service-policy');
    });
  });

  describe('metrics scrape (plaintext)', () => {
    const e = engine();

    it('GET /metrics on port 9090 is allowed in plaintext (PERMISSIVE)', async () => {
      const d = await e.check({ destination: shop('payment-service', 9090), connection: PLAINTEXT, request: http('GET', '/metrics') });
      expectDecision(d, 'ALLOW', 200);
      assert.equal(d.policy, 'production/allow-metrics-scrape');
      assert.equal(d.trace.peerAuthentication?.mode, 'PERMISSIVE');
    });

    it('plaintext on port 8080 is refused by PeerAuthentication (STRICT)', async () => {
      const d = await e.check({ destination: shop('payment-service', 8080), connection: PLAINTEXT, request: http('GET', '/metrics') });
      expectDecision(d, 'DENY', 'reset', 'peer-authentication');
      assert.equal(d.trace.peerAuthentication?.policy, 'production/shop-mtls');
    });

    it('only GET /metrics is open on port 9090', async () => {
      const d = await e.check({ destination: shop('payment-service', 9090), connection: PLAINTEXT, request: http('GET', '/api/v1/payments/summary') });
      expectDecision(d, 'DENY', 403, 'authorization');
    });
  });

  describe('the ingress gateway (end-user JWTs)', () => {
    // The gateway terminates the external TLS itself; as in Istio,
    // PeerAuthentication (STRICT mesh-wide here) does not govern that
    // listener. A request reaches request authentication and authorization
    // with no peer identity.
    const gateway: EngineInput['destination'] = { namespace: 'istio-system', serviceAccount: 'istio-ingressgateway', labels: { istio: 'ingressgateway' }, port: 8443 };
    const external: EngineInput['connection'] = { mtls: false, ingress: true, principal: null, clientNamespace: null, ip: '127.0.0.1' };
    let e: PolicyEngine;
    let privateKey: CryptoKey;
    const kid = 'shop-test';

    before(async () => {
      const pair = await generateKeyPair('ES256', { extractable: true });
      privateKey = pair.privateKey;
      const keys = createLocalJWKSet({ keys: [{ ...(await exportJWK(pair.publicKey)), kid, alg: 'ES256', use: 'sig' }] });
      e = engine((uri) => {
        assert.equal(uri, JWKS_URI);
        return keys;
      });
    });

    const token = (role: string, aud = 'shop') =>
      new SignJWT({ role })
        .setProtectedHeader({ alg: 'ES256', kid })
        .setIssuer(ISSUER)
        .setAudience(aud)
        .setSubject('alice')
        .setIssuedAt()
        .setExpirationTime('1h')
        .sign(privateKey);

    const at = async (method: string, t: string | null) =>
      e.check({ destination: gateway, connection: external, request: http(method, '/api/v1/orders', t === null ? {} : { authorization: `Bearer ${t}` }) });

    it('role=user may list orders', async () => {
      const d = await at('GET', await token('user'));
      expectDecision(d, 'ALLOW', 200);
      assert.equal(d.principal, null);
      assert.equal(d.requestPrincipal, `${ISSUER}/alice`);
      assert.equal(d.policy, 'istio-system/gateway-require-jwt');
    });

    it('role=user may not create an order', async () => {
      expectDecision(await at('POST', await token('user')), 'DENY', 403, 'authorization');
    });

    it('role=admin may create an order', async () => {
      const d = await at('POST', await token('admin'));
      expectDecision(d, 'ALLOW', 200);
      assert.equal(d.rule, 1);
    });

    it('no token is refused', async () => {
      expectDecision(await at('GET', null), 'DENY', 403, 'authorization');
    });

    it('a token for another audience is refused at request authentication', async () => {
      expectDecision(await at('GET', await token('admin', 'elsewhere')), 'DENY', 403, 'request-authentication');
    });

    it('a forged token is refused with 401', async () => {
      const forged = await new SignJWT({ role: 'admin' })
        .setProtectedHeader({ alg: 'ES256', kid })
        .setIssuer(ISSUER)
        .setAudience('shop')
        .setSubject('mallory')
        .setExpirationTime('1h')
        .sign((await generateKeyPair('ES256')).privateKey);
      expectDecision(await at('POST', forged), 'DENY', 401, 'request-authentication');
    });
  });
});
