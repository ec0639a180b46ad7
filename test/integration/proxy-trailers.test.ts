// HTTP/1.1 trailers across the mesh: an HTTP/1.1 app answers with a chunked
// body and trailers (res.addTrailers); an HTTP/1.1 caller reaches it through
// its own proxy's local port, the client proxy carries the request as HTTP/2
// over mTLS to the server proxy, which calls the app over HTTP/1.1. The
// trailers must come back as HTTP/1.1 trailers (node's `res.trailers`), and a
// chunked request's trailers must reach the app. Every listener binds port 0.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ProxyConfig } from '../../src/api/proxy-config.ts';
import { createMtlsServer, type MtlsMaterial } from '../../src/identity/tls-options.ts';
import type { TrustBundle } from '../../src/identity/trust-bundle.ts';
import { OutboundRouter } from '../../src/proxy/outbound/index.ts';
import { WorkloadProxy } from '../../src/proxy/proxy.ts';
import { engineFrom } from '../support/engine.ts';
import { request, type FullReply } from '../support/http.ts';
import { createLeaf, createRootCa, type TestCa } from '../support/pki.ts';
import { bundleOf, proxyConfig, upstreamTo } from '../support/proxy.ts';

const TD = 'cluster.local';
const NS = 'production';
const id = (sa: string): string => `spiffe://${TD}/ns/${NS}/sa/${sa}`;

/** GET, or POST when there is a body (sent chunked, then `trailers` if given). */
const call = (port: number, { path, ...o }: { path: string; headers?: http.OutgoingHttpHeaders; body?: string; trailers?: Record<string, string> }): Promise<FullReply> =>
  request(port, path, { ...o, method: o.body === undefined ? 'GET' : 'POST' });

/** The app: echoes the body with a checksum trailer, and reports the request trailers it got. */
function trailerApp(): http.RequestListener {
  return (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum, x-request-trailer' });
      res.write(`got:${body}`);
      // x-client-sum's value, then the names of any other request trailers.
      const others = Object.keys(req.trailers).filter((k) => k !== 'x-client-sum').sort();
      res.addTrailers({ 'x-checksum': `len=${body.length}`, 'x-request-trailer': [req.trailers['x-client-sum'] ?? 'none', ...others].join(' ') });
      res.end();
    });
  };
}

describe('HTTP/1.1 trailers through two proxies', { timeout: 10_000 }, () => {
  let root: TestCa;
  let bundle: TrustBundle;
  const closers: (() => Promise<void> | void)[] = [];
  let order: WorkloadProxy;

  const materialFor = async (sa: string): Promise<MtlsMaterial> => {
    const leaf = await createLeaf(root, { uris: [id(sa)] });
    return { key: leaf.key, chain: leaf.chain, bundle };
  };

  const config = (sa: string, inbound: ProxyConfig['inbound'], outbound: ProxyConfig['outbound']): ProxyConfig =>
    proxyConfig(sa, NS, inbound, outbound, { httpProxyPort: 15080 });

  const localPort = (): number => order.status().outbound[0]!.boundPort;

  before(async () => {
    root = await createRootCa({ trustDomain: TD });
    bundle = bundleOf(root);
    const app = http.createServer(trailerApp());
    app.listen(0, '127.0.0.1');
    await once(app, 'listening');
    closers.push(() => {
      app.closeAllConnections();
      app.close();
    });
    const opts = { bindPort: () => 0, accessLog: () => undefined, drainMs: 100 };
    const payment = await WorkloadProxy.start(config('payment-service', [{ port: 8080, protocol: 'http', appPort: (app.address() as AddressInfo).port }], []), {
      ...opts,
      material: await materialFor('payment-service'),
    });
    closers.push(() => payment.stop());
    order = await WorkloadProxy.start(
      config('order-service', [], [upstreamTo('payment-service', NS, payment.status().inbound[0]!.boundPort, [id('payment-service')])]),
      { ...opts, material: await materialFor('order-service') },
    );
    closers.push(() => order.stop());
  });

  after(async () => {
    for (const close of closers.reverse()) await close();
  });

  it('brings the app\'s response trailers back to an HTTP/1.1 caller that sent TE: trailers', async () => {
    const reply = await call(localPort(), { path: '/api/v1/payments/1', headers: { te: 'trailers' }, body: 'amount=10' });
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'got:amount=10');
    assert.equal(reply.headers['transfer-encoding'], 'chunked');
    assert.equal(reply.trailers['x-checksum'], 'len=9');
  });

  it('sends them to a caller that did not ask too: HTTP/1.1 allows trailers on any chunked response', async () => {
    const reply = await call(localPort(), { path: '/api/v1/payments/2' });
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.trailers, { 'x-checksum': 'len=0', 'x-request-trailer': 'none' });
  });

  it('passes a chunked request\'s trailers on to the app', async () => {
    const reply = await call(localPort(), { path: '/api/v1/payments/3', body: 'abc', trailers: { 'x-client-sum': 'c3' } });
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.trailers, { 'x-checksum': 'len=3', 'x-request-trailer': 'c3' });
  });

  it('never passes on a request trailer that would say who the peer is', async () => {
    const trailers = { 'x-client-sum': 'c5', 'x-forwarded-client-cert': 'By=spoofed;URI=spiffe://x/ns/y/sa/z', 'x-meshward-peer-workload': 'spoofed', 'x-other': '1' };
    const reply = await call(localPort(), { path: '/api/v1/payments/5', body: 'abcde', trailers });
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.trailers, { 'x-checksum': 'len=5', 'x-request-trailer': 'c5 x-other' });
  });

  it('does the same through the HTTP proxy listener', async () => {
    const reply = await call(order.status().httpProxy!.boundPort, { path: 'http://payment-service/api/v1/payments/4', body: 'xy', trailers: { 'x-client-sum': 'ok' } });
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.trailers, { 'x-checksum': 'len=2', 'x-request-trailer': 'ok' });
  });

  it('passes trailers both ways to an upstream that speaks only HTTP/1.1 over mTLS', async () => {
    const server = await materialFor('payment-service');
    const mtls = createMtlsServer(server, { alpn: ['http/1.1'] });
    const h1 = http.createServer(trailerApp());
    mtls.server.on('secureConnection', (s: TLSSocket) => {
      if (!s.destroyed) h1.emit('connection', s);
    });
    mtls.server.listen(0, '127.0.0.1');
    await once(mtls.server, 'listening');
    closers.push(() => {
      h1.closeAllConnections();
      mtls.server.close();
    });
    const upstream = upstreamTo('legacy', NS, (mtls.server.address() as AddressInfo).port, [id('payment-service')], { localPort: 0 });
    const router = new OutboundRouter(config('order-service', [], [upstream]), engineFrom(''), await materialFor('order-service'));
    await router.start();
    closers.push(() => router.stop());
    const port = router.ports().upstreams.get('legacy')!;
    // The first request probes ALPN and falls back; the second uses the HTTP/1.1 pool.
    for (const path of ['/a', '/b']) {
      const reply = await call(port, { path, body: 'hello', trailers: { 'x-client-sum': path } });
      assert.equal(reply.status, 200);
      assert.deepEqual(reply.trailers, { 'x-checksum': 'len=5', 'x-request-trailer': path });
    }
  });
});
