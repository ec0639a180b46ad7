// Two workloads' proxies in one process, as a node proxy would run them: the
// order "app" (this test) calls payment-service in plain HTTP/1.1 on its
// proxy's loopback port; the order proxy carries it over mTLS (h2) to the
// payment proxy, whose policy (examples/authz/policies/payment.yaml, STRICT
// mesh-wide) admits order-service and not reporting-service, and whose app
// learns the caller from x-forwarded-client-cert. Every listener binds port 0.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import type { ProxyConfig } from '../../src/api/proxy-config.ts';
import type { MtlsMaterial } from '../../src/identity/tls-options.ts';
import type { TrustBundle } from '../../src/identity/trust-bundle.ts';
import type { AccessLogEntry } from '../../src/proxy/access-log.ts';
import { WorkloadProxy } from '../../src/proxy/proxy.ts';
import { get as httpGet, type Reply } from '../support/http.ts';
import { createLeaf, createRootCa, type TestCa } from '../support/pki.ts';
import { bundleOf, proxyConfig, upstreamTo } from '../support/proxy.ts';

const TD = 'cluster.local';
const NS = 'production';
const id = (sa: string): string => `spiffe://${TD}/ns/${NS}/sa/${sa}`;
const POLICIES = resolve(import.meta.dirname, '../../examples/authz/policies/payment.yaml');

/** GET as the order app sends it, addressed to payment-service; `path` may be an absolute URL (HTTP proxy form). */
const get = (port: number, path: string, host = 'payment-service'): Promise<Reply> => httpGet(port, path, { headers: { host } });

function workloadConfig(sa: string, inbound: ProxyConfig['inbound'], paymentPort: number): ProxyConfig {
  return proxyConfig(sa, NS, inbound, paymentPort === 0 ? [] : [upstreamTo('payment-service', NS, paymentPort, [id('payment-service')])], {
    identity: { files: { keyFile: '/unused/key.pem', certChainFile: '/unused/chain.pem', bundleFile: '/unused/bundle.pem' } },
    httpProxyPort: 15080,
    policyPaths: [POLICIES],
  });
}

describe('two proxies, mTLS between them', { timeout: 10_000 }, () => {
  let root: TestCa;
  let bundle: TrustBundle;
  let app: http.Server;
  const seen: http.IncomingHttpHeaders[] = [];
  const proxies: WorkloadProxy[] = [];
  const log: AccessLogEntry[] = [];
  let paymentInbound: number;
  let order: WorkloadProxy;
  let reporting: WorkloadProxy;

  async function startProxy(sa: string, inbound: ProxyConfig['inbound'], paymentPort: number): Promise<WorkloadProxy> {
    const leaf = await createLeaf(root, { uris: [id(sa)] });
    const material: MtlsMaterial = { key: leaf.key, chain: leaf.chain, bundle };
    const proxy = await WorkloadProxy.start(workloadConfig(sa, inbound, paymentPort), { material, bindPort: () => 0, accessLog: (e) => log.push(e), drainMs: 200 });
    proxies.push(proxy);
    return proxy;
  }

  async function logged(match: (e: AccessLogEntry) => boolean): Promise<AccessLogEntry> {
    for (let i = 0; i < 100; i++) {
      const found = log.find(match);
      if (found !== undefined) return found;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.fail('no matching access log entry');
  }

  const localPort = (p: WorkloadProxy): number => p.status().outbound.find((u) => u.name === 'payment-service')!.boundPort;

  before(async () => {
    root = await createRootCa({ trustDomain: TD });
    bundle = bundleOf(root);
    app = http.createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`paid:${req.url}`);
    });
    app.listen(0, '127.0.0.1');
    await once(app, 'listening');
    const payment = await startProxy('payment-service', [{ port: 8080, protocol: 'http', appPort: (app.address() as AddressInfo).port }], 0);
    paymentInbound = payment.status().inbound[0]!.boundPort;
    order = await startProxy('order-service', [], paymentInbound);
    reporting = await startProxy('reporting-service', [], paymentInbound);
  });

  after(async () => {
    await Promise.all(proxies.map((p) => p.stop()));
    app.closeAllConnections();
    app.close();
  });

  it('order-service reaches the payment app through both proxies', async () => {
    const port = localPort(order);
    assert.notEqual(port, 0);
    assert.notEqual(port, 19001);
    const reply = await get(port, '/api/v1/payments/42');
    assert.deepEqual(reply, { status: 200, body: 'paid:/api/v1/payments/42' });
    const xfcc = String(seen.at(-1)?.['x-forwarded-client-cert']);
    assert.match(xfcc, new RegExp(`URI=${id('order-service')}$`));
    assert.match(xfcc, new RegExp(`^By=${id('payment-service')};`));
    // The entry is written when the proxy's response ends, which may be just after the caller has it.
    const entry = await logged((e) => e.path === '/api/v1/payments/42' && e.decision === 'ALLOW');
    assert.equal(entry.mtls, true);
    assert.equal(entry.principal, id('order-service').slice('spiffe://'.length));
  });

  it('the HTTP proxy listener routes by the absolute target', async () => {
    const proxyPort = order.status().httpProxy!.boundPort;
    assert.notEqual(proxyPort, 0);
    const reply = await get(proxyPort, 'http://payment-service/api/v1/payments/7');
    assert.deepEqual(reply, { status: 200, body: 'paid:/api/v1/payments/7' });
  });

  it('reporting-service is denied by the payment policy', async () => {
    const before = seen.length;
    const reply = await get(localPort(reporting), '/api/v1/payments/42');
    assert.deepEqual(reply, { status: 403, body: 'RBAC: access denied' });
    assert.equal(seen.length, before);
  });

  it('plaintext straight to the payment proxy is refused', async () => {
    const before = seen.length;
    await assert.rejects(get(paymentInbound, '/api/v1/payments/42'));
    assert.equal(seen.length, before);
  });

  it('an update keeps the outbound listener and routes on the new snapshot', async () => {
    const port = localPort(order);
    const result = await order.update({ ...workloadConfig('order-service', [], paymentInbound), version: 2 });
    assert.deepEqual(result, { ok: true, version: 2 });
    assert.equal(localPort(order), port);
    assert.equal((await get(port, '/api/v1/payments/43')).status, 200);
  });

  it('the order proxy counts the call as its source', async () => {
    const text = await order.metrics.registry.metrics();
    assert.match(text, /istio_requests_total\{reporter="source"[^}]*response_code="200"[^}]*\} [1-9]/);
  });
});
