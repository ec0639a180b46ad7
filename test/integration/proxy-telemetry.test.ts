// What the proxies report on /stats/prometheus after real traffic, in the
// names and labels Istio's dashboards query: the order-service proxy
// (reporter="source") calls the payment-service proxy (reporter="destination")
// over mTLS, for HTTP, gRPC and opaque TCP; the payment proxy names the
// caller's workload as the order proxy told it, never as an app wrote it;
// upstreams that fail their handshake in different ways are counted by
// reason, and every handshake in either direction is counted once. Every
// listener binds port 0.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { ProxyConfig, Upstream } from '../../src/api/proxy-config.ts';
import { createMtlsServer, type MtlsMaterial } from '../../src/identity/tls-options.ts';
import type { TrustBundle } from '../../src/identity/trust-bundle.ts';
import { OutboundRouter } from '../../src/proxy/outbound/index.ts';
import { WorkloadProxy } from '../../src/proxy/proxy.ts';
import { engineFrom } from '../support/engine.ts';
import { get, request } from '../support/http.ts';
import { createLeaf, createRootCa, type TestCa, type TestLeaf } from '../support/pki.ts';
import { bundleOf, proxyConfig, upstreamTo } from '../support/proxy.ts';

const TD = 'cluster.local';
const NS = 'production';
const id = (sa: string): string => `spiffe://${TD}/ns/${NS}/sa/${sa}`;
const host = (name: string): string => `${name}.${NS}.svc.cluster.local`;

// --- the exposition format, read back ---------------------------------------

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The sum of a series over the samples whose labels include `labels`. */
function sum(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((total, s) => total + s.value, 0);
}

async function stats(proxy: WorkloadProxy): Promise<Sample[]> {
  return parse((await get(proxy.status().adminPort, '/stats/prometheus')).body);
}

/** Polls the admin API until `check` holds: the proxies count as connections close, a moment after the caller has its reply. */
async function eventually(proxy: WorkloadProxy, check: (s: Sample[]) => boolean, what: string): Promise<Sample[]> {
  let last: Sample[] = [];
  for (let i = 0; i < 100; i++) {
    last = await stats(proxy);
    if (check(last)) return last;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`${what}; last scrape:\n${last.filter((s) => !s.name.startsWith('process_') && !s.name.startsWith('nodejs_')).map((s) => `${s.name}${JSON.stringify(s.labels)} ${s.value}`).join('\n')}`);
}

// --- traffic ----------------------------------------------------------------

/** Sends `text` on a TCP connection, half-closes, and returns everything that came back. */
async function tcpRoundTrip(port: number, text: string): Promise<string> {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  await once(socket, 'connect');
  let reply = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (reply += d));
  socket.end(text);
  await once(socket, 'end');
  socket.destroy();
  await once(socket, 'close');
  return reply;
}

describe('proxy telemetry on /stats/prometheus', { timeout: 15_000 }, () => {
  let root: TestCa;
  let bundle: TrustBundle;
  const closers: (() => Promise<void> | void)[] = [];
  let order: WorkloadProxy;
  let payment: WorkloadProxy;
  /** The request headers each payment app received, HTTP and gRPC. */
  const received: http.IncomingHttpHeaders[] = [];

  const material = (leaf: TestLeaf, b: TrustBundle = bundle): MtlsMaterial => ({ key: leaf.key, chain: leaf.chain, bundle: b });

  async function listen(server: net.Server): Promise<number> {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    closers.push(() => {
      (server as http.Server).closeAllConnections?.();
      server.close();
    });
    return (server.address() as AddressInfo).port;
  }

  /** A mesh server presenting `leaf` that finishes handshakes and says nothing. */
  async function meshServer(leaf: TestLeaf, b: TrustBundle = bundle): Promise<number> {
    const mtls = createMtlsServer(material(leaf, b));
    mtls.server.on('secureConnection', (s: tls.TLSSocket) => s.on('error', () => undefined));
    return listen(mtls.server);
  }

  const config = (sa: string, inbound: ProxyConfig['inbound'], outbound: Upstream[]): ProxyConfig => proxyConfig(sa, NS, inbound, outbound);

  let nextLocal = 0;
  const upstream = (name: string, protocol: Upstream['protocol'], port: number, identities = [id('payment-service')]): Upstream =>
    upstreamTo(name, NS, port, identities, { protocol, localPort: 19000 + nextLocal++ });

  const localPort = (name: string): number => order.status().outbound.find((u) => u.name === name)!.boundPort;

  before(async () => {
    root = await createRootCa({ trustDomain: TD });
    bundle = bundleOf(root);

    const app = http.createServer((req, res) => {
      received.push(req.headers);
      req.resume();
      req.on('end', () => res.end(`paid:${req.url}`));
    });
    // An h2c app answering as a gRPC server does: a message, then grpc-status in trailers.
    const grpcApp = http2.createServer();
    grpcApp.on('stream', (stream, headers) => {
      received.push(headers);
      stream.resume();
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(Buffer.from([0, 0, 0, 0, 0]));
      });
    });
    const echo = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on('error', () => undefined);
      s.pipe(s);
    });
    const appPort = await listen(app);
    const echoPort = await listen(echo);
    const grpcPort = await listen(grpcApp);

    const paymentLeaf = await createLeaf(root, { uris: [id('payment-service')] });
    payment = await WorkloadProxy.start(
      config(
        'payment-service',
        [
          { port: 8080, protocol: 'http', appPort },
          { port: 9000, protocol: 'tcp', appPort: echoPort },
          { port: 9443, protocol: 'grpc', appPort: grpcPort },
        ],
        [],
      ),
      { material: material(paymentLeaf), bindPort: () => 0, accessLog: () => undefined, drainMs: 100 },
    );
    closers.push(() => payment.stop());
    const [httpIn, tcpIn, grpcIn] = payment.status().inbound.map((p) => p.boundPort) as [number, number, number];

    // Servers that fail the order proxy's checks, each in its own way.
    const expired = await createLeaf(root, {
      uris: [id('payment-service')],
      notBefore: new Date(Date.now() - 7_200_000),
      notAfter: new Date(Date.now() - 3_600_000),
    });
    const otherRoot = await createRootCa({ trustDomain: TD });
    const stranger = await createLeaf(otherRoot, { uris: [id('payment-service')] });
    const strangerBundle = bundleOf(otherRoot);
    const refused = net.createServer();
    const deadPort = await listen(refused);
    refused.close();

    const orderLeaf = await createLeaf(root, { uris: [id('order-service')] });
    order = await WorkloadProxy.start(
      config('order-service', [], [
        upstream('payment-service', 'http', httpIn),
        upstream('ledger', 'tcp', tcpIn),
        upstream('payments-grpc', 'grpc', grpcIn),
        upstream('impostor', 'http', httpIn, [id('billing-service')]),
        upstream('stale', 'http', await meshServer(expired)),
        upstream('stranger', 'http', await meshServer(stranger, strangerBundle)),
        upstream('gone', 'http', deadPort),
      ]),
      { material: material(orderLeaf), bindPort: () => 0, accessLog: () => undefined, drainMs: 100 },
    );
    closers.push(() => order.stop());
  });

  after(async () => {
    for (const close of closers.reverse()) await close();
  });

  it('reports outbound HTTP requests with a duration histogram, in the inbound side\'s labels with reporter="source"', async () => {
    for (let i = 0; i < 3; i++) assert.deepEqual(await get(localPort('payment-service'), `/api/v1/payments/${i}`), { status: 200, body: `paid:/api/v1/payments/${i}` });
    const want = {
      reporter: 'source',
      source_workload: 'order-service',
      source_workload_namespace: NS,
      source_principal: id('order-service'),
      destination_service: host('payment-service'),
      destination_service_name: 'payment-service',
      destination_workload_namespace: NS,
      destination_principal: id('payment-service'),
      request_protocol: 'http',
      response_code: '200',
      response_flags: '-',
      connection_security_policy: 'mutual_tls',
    };
    const s = await eventually(order, (x) => sum(x, 'istio_request_duration_milliseconds_count', want) === 3, 'three timed outbound requests');
    assert.equal(sum(s, 'istio_requests_total', want), 3);
    assert.equal(sum(s, 'istio_request_duration_milliseconds_bucket', { ...want, le: '+Inf' }), 3);
    assert.ok(sum(s, 'istio_request_duration_milliseconds_sum', want) > 0);

    // The same requests from the other end: one series, both reporters, one
    // label set; the caller's workload as the order proxy named it.
    const inbound = await eventually(
      payment,
      (x) => sum(x, 'istio_request_duration_milliseconds_count', { reporter: 'destination', source_principal: id('order-service'), response_code: '200' }) === 3,
      'three timed inbound requests',
    );
    const labelsOf = (x: Sample[], reporter: string): string[] =>
      Object.keys(x.find((v) => v.name === 'istio_requests_total' && v.labels['reporter'] === reporter)!.labels).sort();
    assert.deepEqual(labelsOf(inbound, 'destination'), labelsOf(s, 'source'));
    const destination = { reporter: 'destination', destination_principal: id('payment-service'), source_principal: id('order-service'), request_protocol: 'http', response_code: '200' };
    assert.equal(sum(inbound, 'istio_requests_total', { ...destination, source_workload: 'order-service', source_workload_namespace: NS }), 3);
    assert.equal(sum(inbound, 'istio_request_duration_milliseconds_count', { ...destination, source_workload: 'order-service' }), 3);
    assert.equal(sum(inbound, 'istio_requests_total', { ...destination, source_workload: 'unknown' }), 0);
    assert.ok(received.every((h) => h['x-meshward-peer-workload'] === undefined), 'the payment app never sees the proxies\' header');
  });

  it('names the caller\'s workload as its proxy said it, never as its app wrote it, on both HTTP/1.1 paths', async () => {
    const spoofed = { 'x-meshward-peer-workload': 'spoofed' };
    const before = sum(await stats(payment), 'istio_requests_total', { reporter: 'destination', source_workload: 'order-service', request_protocol: 'http' });
    const apps = received.length;
    // Whole: both fast lanes. Chunked: both proxies hand it to node's server.
    assert.equal((await get(localPort('payment-service'), '/api/v1/payments/s1', { headers: spoofed })).status, 200);
    assert.equal((await request(localPort('payment-service'), '/api/v1/payments/s2', { method: 'POST', headers: spoofed, body: 'amount=1' })).status, 200);
    const inbound = await eventually(
      payment,
      (x) => sum(x, 'istio_requests_total', { reporter: 'destination', source_workload: 'order-service', request_protocol: 'http' }) === before + 2,
      'two more inbound requests from order-service',
    );
    assert.equal(sum(inbound, 'istio_requests_total', { source_workload: 'spoofed' }), 0);
    assert.equal(received.length, apps + 2);
    for (const h of received.slice(apps)) assert.equal(h['x-meshward-peer-workload'], undefined, JSON.stringify(h));
  });

  it('names the caller\'s workload for gRPC, through both proxies\' HTTP/2 paths', async () => {
    const session = http2.connect(`http://127.0.0.1:${localPort('payments-grpc')}`);
    closers.push(() => void session.destroy());
    const apps = received.length;
    const stream = session.request({ ':method': 'POST', ':path': '/pay.Payments/Charge', 'content-type': 'application/grpc', te: 'trailers', 'x-meshward-peer-workload': 'spoofed' });
    stream.end(Buffer.from([0, 0, 0, 0, 0]));
    const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
    const trailers = once(stream, 'trailers') as Promise<[http2.IncomingHttpHeaders]>;
    stream.resume();
    assert.equal(headers[':status'], 200);
    assert.equal((await trailers)[0]['grpc-status'], '0');
    session.close();
    const want = { reporter: 'destination', source_workload: 'order-service', source_principal: id('order-service'), request_protocol: 'grpc', response_code: '200' };
    const inbound = await eventually(payment, (x) => sum(x, 'istio_requests_total', want) === 1, 'one inbound gRPC request from order-service');
    assert.equal(sum(inbound, 'istio_request_duration_milliseconds_count', want), 1);
    assert.equal(sum(inbound, 'istio_requests_total', { source_workload: 'spoofed' }), 0);
    assert.equal(received.length, apps + 1);
    assert.equal(received.at(-1)!['x-meshward-peer-workload'], undefined);
    assert.equal(received.at(-1)![':path'], '/pay.Payments/Charge');
  });

  it('reports outbound TCP connections opened and closed, with the bytes each way', async () => {
    assert.equal(await tcpRoundTrip(localPort('ledger'), 'hello ledger'), 'hello ledger');
    const want = { reporter: 'source', destination_service: host('ledger'), destination_principal: id('payment-service'), connection_security_policy: 'mutual_tls' };
    const s = await eventually(order, (x) => sum(x, 'istio_tcp_connections_closed_total', want) === 1, 'one closed outbound TCP connection');
    assert.equal(sum(s, 'istio_tcp_connections_opened_total', want), 1);
    assert.equal(sum(s, 'istio_tcp_received_bytes_total', want), 12);
    assert.equal(sum(s, 'istio_tcp_sent_bytes_total', want), 12);
    const inbound = await eventually(
      payment,
      (x) => sum(x, 'istio_tcp_connections_closed_total', { reporter: 'destination', source_principal: id('order-service') }) === 1,
      'one closed inbound TCP connection',
    );
    // No header on TCP to name the caller's workload.
    assert.equal(sum(inbound, 'istio_tcp_connections_opened_total', { reporter: 'destination', source_workload: 'unknown', source_principal: id('order-service') }), 1);
    assert.equal(sum(inbound, 'istio_tcp_received_bytes_total', { reporter: 'destination' }), 12);
    assert.equal(sum(inbound, 'istio_tcp_sent_bytes_total', { reporter: 'destination' }), 12);
  });

  it('counts outbound handshake failures by reason, and a refused connection as no handshake', async () => {
    const before = await stats(order);
    for (const name of ['impostor', 'stale', 'stranger', 'gone']) {
      const reply = await get(localPort(name), '/api/v1/payments/1');
      assert.equal(reply.status, 503, `${name}: ${reply.body}`);
    }
    const s = await stats(order);
    const failures = (check: string, name: string): number =>
      sum(s, 'meshward_outbound_handshake_failures_total', { destination_service: host(name), check }) -
      sum(before, 'meshward_outbound_handshake_failures_total', { destination_service: host(name), check });
    assert.equal(failures('not-allowed', 'impostor'), 1, 'secure naming');
    assert.equal(failures('expired', 'stale'), 1);
    assert.equal(failures('untrusted-chain', 'stranger'), 1);
    assert.equal(sum(s, 'meshward_outbound_handshake_failures_total', { destination_service: host('gone') }), 0);
    assert.equal(sum(s, 'meshward_outbound_upstream_failures_total', { destination_service: host('gone'), reason: 'connect-refused' }), 1);
    assert.equal(sum(s, 'istio_requests_total', { reporter: 'source', destination_service: host('gone'), response_code: '503', response_flags: 'UF' }), 1);
    // result="failure" is the sum of the failures by reason.
    assert.equal(sum(s, 'meshward_tls_handshakes_total', { direction: 'outbound', result: 'failure' }), sum(s, 'meshward_outbound_handshake_failures_total'));
    assert.equal(sum(s, 'meshward_tls_handshakes_total', { direction: 'outbound', result: 'failure' }), 3);
  });

  it('counts an outbound handshake that never finishes as a timeout', async () => {
    const silent = net.createServer((socket) => socket.on('error', () => undefined));
    const port = await listen(silent);
    const leaf = await createLeaf(root, { uris: [id('order-service')] });
    const router = new OutboundRouter(config('order-service', [], [upstream('slow', 'http', port)]), engineFrom(''), material(leaf), { connectTimeoutMs: 150 });
    await router.start();
    closers.push(() => router.stop());
    assert.equal((await get(router.ports().upstreams.get('slow')!, '/')).status, 503);
    const s = parse(await router.registry.metrics());
    assert.equal(sum(s, 'meshward_outbound_handshake_failures_total', { check: 'timeout' }), 1);
    assert.equal(sum(s, 'meshward_outbound_upstream_failures_total', { reason: 'connect-timeout' }), 1);
    assert.equal(sum(s, 'meshward_tls_handshakes_total', { direction: 'outbound', result: 'failure' }), 1);
  });

  it('counts successful handshakes and their duration in both directions', async () => {
    // A fresh connection from the order proxy: a new certificate retires its pool.
    order.setMaterial(material(await createLeaf(root, { uris: [id('order-service')] })));
    const before = { out: sum(await stats(order), 'meshward_tls_handshakes_total', { direction: 'outbound', result: 'success' }), in: sum(await stats(payment), 'meshward_tls_handshakes_total', { direction: 'inbound', result: 'success' }) };
    assert.equal((await get(localPort('payment-service'), '/api/v1/payments/9')).status, 200);
    const out = await stats(order);
    assert.equal(sum(out, 'meshward_tls_handshakes_total', { direction: 'outbound', result: 'success' }), before.out + 1);
    assert.equal(
      sum(out, 'meshward_tls_handshake_duration_milliseconds_count', { direction: 'outbound' }),
      sum(out, 'meshward_tls_handshakes_total', { direction: 'outbound', result: 'success' }),
    );
    assert.ok(sum(out, 'meshward_tls_handshake_duration_milliseconds_sum', { direction: 'outbound' }) > 0);
    const inbound = await stats(payment);
    assert.equal(sum(inbound, 'meshward_tls_handshakes_total', { direction: 'inbound', result: 'success' }), before.in + 1);
    assert.equal(
      sum(inbound, 'meshward_tls_handshake_duration_milliseconds_count', { direction: 'inbound' }),
      sum(inbound, 'meshward_tls_handshakes_total', { direction: 'inbound', result: 'success' }),
    );
    assert.ok(sum(inbound, 'meshward_tls_handshake_duration_milliseconds_sum', { direction: 'inbound' }) > 0);
  });

  it('counts the handshakes of an HTTP/1.1-only upstream\'s connections too', async () => {
    const leaf = await createLeaf(root, { uris: [id('payment-service')] });
    const mtls = createMtlsServer(material(leaf), { alpn: ['http/1.1'] });
    const h1 = http.createServer((_req, res) => res.end('old'));
    let connections = 0;
    mtls.server.on('secureConnection', (s: tls.TLSSocket) => {
      if (s.destroyed) return;
      connections++;
      h1.emit('connection', s);
    });
    const port = await listen(mtls.server);
    closers.push(() => h1.closeAllConnections());
    const client = await createLeaf(root, { uris: [id('order-service')] });
    const router = new OutboundRouter(config('order-service', [], [upstream('legacy', 'http', port)]), engineFrom(''), material(client));
    await router.start();
    closers.push(() => router.stop());
    for (let i = 0; i < 3; i++) assert.equal((await get(router.ports().upstreams.get('legacy')!, '/')).status, 200);
    const s = parse(await router.registry.metrics());
    // HTTP/1.1 travels as HTTP/1.1 (no h2UpgradePolicy): every connection the
    // server accepted is one handshake, and the three requests shared one.
    const handshakes = sum(s, 'meshward_tls_handshakes_total', { direction: 'outbound', result: 'success' });
    assert.equal(handshakes, connections, `${handshakes} handshakes, ${connections} connections`);
    assert.equal(handshakes, 1);
    assert.equal(
      sum(s, 'meshward_tls_handshake_duration_milliseconds_count', { direction: 'outbound' }),
      sum(s, 'meshward_tls_handshakes_total', { direction: 'outbound', result: 'success' }),
    );
    assert.equal(sum(s, 'istio_requests_total', { reporter: 'source', destination_principal: id('payment-service'), response_code: '200' }), 3);
  });

  it('counts an inbound handshake refusal under its reason and as a failed handshake', async () => {
    const port = payment.status().inbound[0]!.boundPort;
    const before = await stats(payment);
    // TLS 1.3 without a client certificate: the server refuses it after the handshake.
    const socket = tls.connect({ host: '127.0.0.1', port, ca: bundle.pem, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
    socket.on('error', () => undefined);
    await new Promise((r) => socket.once('close', r));
    const s = await eventually(
      payment,
      (x) => sum(x, 'meshward_tls_handshakes_total', { direction: 'inbound', result: 'failure' }) > sum(before, 'meshward_tls_handshakes_total', { direction: 'inbound', result: 'failure' }),
      'an inbound handshake failure',
    );
    assert.equal(sum(s, 'meshward_tls_handshake_failures_total', { reason: 'no-certificate' }), sum(before, 'meshward_tls_handshake_failures_total', { reason: 'no-certificate' }) + 1);
    assert.equal(sum(s, 'meshward_tls_handshakes_total', { direction: 'inbound', result: 'failure' }), sum(s, 'meshward_tls_handshake_failures_total'));
  });
});
