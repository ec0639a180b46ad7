// The inbound proxy end to end on 127.0.0.1: real apps behind it, real mTLS
// clients (certificates from test/support/pki.ts) and plaintext clients in
// front of it, the payment scenario's policies deciding. Every listener binds
// port 0; policy still sees the configured workload ports (8080 STRICT, 9090
// PERMISSIVE).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { ProxyConfig } from '../../src/api/proxy-config.ts';
import { loadProxyConfig } from '../../src/api/proxy-config-schema.ts';
import { mtlsClientOptions, type MtlsMaterial } from '../../src/identity/tls-options.ts';
import { trustBundleFromPem, type TrustBundle } from '../../src/identity/trust-bundle.ts';
import { WorkloadProxy } from '../../src/proxy/proxy.ts';
import type { AccessLogEntry } from '../../src/proxy/access-log.ts';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { createLeaf, createRootCa, type TestCa, type TestLeaf } from '../support/pki.ts';

const TD = 'cluster.local';
const PAYMENT = `spiffe://${TD}/ns/production/sa/payment-service`;
const ORDER = `spiffe://${TD}/ns/production/sa/order-service`;
const REPORTING = `spiffe://${TD}/ns/production/sa/reporting-service`;
const POLICIES = resolve(import.meta.dirname, '../../examples/authz/policies/payment.yaml');

function bundleOf(ca: TestCa): TrustBundle {
  const b = trustBundleFromPem(TD, ca.pem);
  if ('error' in b) throw new Error(b.error);
  return b;
}

function material(leaf: TestLeaf, bundle: TrustBundle): MtlsMaterial {
  return { key: leaf.key, chain: leaf.chain, bundle };
}

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
}

/** An HTTP/1.1 app that records what reached it and echoes the request body. */
async function startApp(port = 0): Promise<{ server: http.Server; port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-app': 'payment' });
      res.end(`app:${req.url}:${Buffer.concat(chunks).toString()}`);
    });
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port, seen };
}

function config(appPort: number, tcpAppPort: number, version = 1, grpcAppPort = 1): ProxyConfig {
  return {
    version,
    workload: { name: 'payment-service', namespace: 'production', serviceAccount: 'payment-service', labels: { app: 'payment-service' }, trustDomain: TD },
    identity: { files: { keyFile: '/secret/key.pem', certChainFile: '/secret/chain.pem', bundleFile: '/secret/bundle.pem' } },
    inbound: [
      { port: 8080, protocol: 'http', appPort, healthPaths: ['/healthz'] },
      { port: 9090, protocol: 'http', appPort },
      { port: 7000, protocol: 'tcp', appPort: tcpAppPort },
      { port: 9443, protocol: 'grpc', appPort: grpcAppPort },
    ],
    outbound: [],
    adminPort: 15000,
    policyPaths: [POLICIES],
  };
}

interface Reply {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

function get(port: number, path: string, opts: { tls?: tls.ConnectionOptions; method?: string; body?: string; headers?: http.OutgoingHttpHeaders } = {}): Promise<Reply> {
  return new Promise((resolvePromise, reject) => {
    const base = { host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: { host: 'payment-service', ...opts.headers } };
    // Without an agent, the request dials through createConnection: one fresh connection each.
    const tlsOptions = opts.tls;
    const req = tlsOptions
      ? http.request({ ...base, createConnection: () => tls.connect({ ...tlsOptions, host: '127.0.0.1', port, ALPNProtocols: ['http/1.1'] }) })
      : http.request({ ...base, agent: false });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

const LEDGER = `spiffe://${TD}/ns/production/sa/ledger`;
const LEDGER_POLICY = `
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: { name: ledger, namespace: production }
spec:
  selector: { matchLabels: { app: ledger } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/production/sa/order-service"] } }]
`;

const REPORTING_POLICY = `
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: { name: reporting-reads, namespace: production }
spec:
  selector: { matchLabels: { app: payment-service } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/production/sa/reporting-service"] } }]
      to: [{ operation: { methods: ["GET"], paths: ["/api/v1/payments/*"] } }]
`;

/** Sends two writes and a FIN over mTLS, and returns everything read until the connection closes. */
async function tcpExchange(port: number, options: tls.ConnectionOptions): Promise<string> {
  const socket = tls.connect({ ...options, host: '127.0.0.1', port, allowHalfOpen: true } as tls.ConnectionOptions);
  let got = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (got += d));
  socket.on('error', () => {});
  socket.write('hello ');
  socket.end('world');
  await once(socket, 'close');
  return got;
}

/** The istio_requests_total lines of a scrape that contain every one of `parts`, once the proxy has counted them (it counts as a response ends). */
async function requestLines(admin: number, ...parts: string[]): Promise<string[]> {
  let lines: string[] = [];
  for (let i = 0; i < 50 && lines.length === 0; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 20));
    const stats = (await get(admin, '/stats/prometheus')).body;
    lines = stats.split('\n').filter((l) => l.startsWith('istio_requests_total{') && parts.every((p) => l.includes(p)));
  }
  return lines;
}

/** Resolves with the error a refused request ends with. */
async function refused(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  assert.fail('the request was not refused');
}

describe('inbound proxy', () => {
  let root: TestCa;
  let foreign: TestCa;
  let bundle: TrustBundle;
  let serverLeaf: TestLeaf;
  let orderLeaf: TestLeaf;
  let orderTls: tls.ConnectionOptions;
  let reportingTls: tls.ConnectionOptions;
  let foreignTls: tls.ConnectionOptions;
  let app: Awaited<ReturnType<typeof startApp>>;
  let tcpApp: net.Server;
  let grpcApp: http2.Http2Server;
  let grpcAppPort = 0;
  let port9443 = 0;
  let proxy: WorkloadProxy;
  const log: AccessLogEntry[] = [];
  let port8080 = 0;
  let port9090 = 0;
  let port7000 = 0;
  let admin = 0;

  before(async () => {
    root = await createRootCa({ trustDomain: TD });
    foreign = await createRootCa({ trustDomain: TD, name: 'foreign root' });
    bundle = bundleOf(root);
    serverLeaf = await createLeaf(root, { uris: [PAYMENT] });
    const client = (leaf: TestLeaf, b: TrustBundle): tls.ConnectionOptions =>
      mtlsClientOptions(material(leaf, b), { allowedIds: new Set([PAYMENT]), alpn: ['http/1.1'] });
    orderLeaf = await createLeaf(root, { uris: [ORDER] });
    orderTls = client(orderLeaf, bundle);
    reportingTls = client(await createLeaf(root, { uris: [REPORTING] }), bundle);
    foreignTls = client(await createLeaf(foreign, { uris: [ORDER] }), bundle);

    app = await startApp();
    // A TCP app that answers only once the client has finished sending: it
    // proves the client's FIN crossed the proxy while the reply direction stayed open.
    tcpApp = net.createServer({ allowHalfOpen: true }, (s) => {
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('end', () => s.end(`echo:${Buffer.concat(chunks).toString()}`));
    });
    tcpApp.listen(0, '127.0.0.1');
    await once(tcpApp, 'listening');

    // An h2c app answering the way a gRPC server does: headers, a message, then grpc-status in trailers.
    grpcApp = http2.createServer();
    grpcApp.on('stream', (stream, headers) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': `ok ${String(headers[':path'])} te=${String(headers['te'])}` }));
        stream.end(Buffer.concat(chunks));
      });
    });
    grpcApp.listen(0, '127.0.0.1');
    await once(grpcApp, 'listening');
    grpcAppPort = (grpcApp.address() as AddressInfo).port;

    proxy = await WorkloadProxy.start(config(app.port, (tcpApp.address() as AddressInfo).port, 1, grpcAppPort), {
      material: material(serverLeaf, bundle),
      bindPort: () => 0,
      accessLog: (e) => log.push(e),
      drainMs: 200,
    });
    const st = proxy.status();
    port8080 = st.inbound.find((p) => p.port === 8080)!.boundPort;
    port9090 = st.inbound.find((p) => p.port === 9090)!.boundPort;
    port7000 = st.inbound.find((p) => p.port === 7000)!.boundPort;
    port9443 = st.inbound.find((p) => p.port === 9443)!.boundPort;
    admin = st.adminPort;
    assert.deepEqual(st.inbound.map((p) => p.mode), ['STRICT', 'PERMISSIVE', 'STRICT', 'STRICT']);
  });

  after(async () => {
    await proxy?.stop();
    app?.server.closeAllConnections();
    app?.server.close();
    tcpApp?.close();
    grpcApp?.close();
  });

  it('STRICT refuses plaintext, except the health path', async () => {
    await refused(get(port8080, '/api/v1/payments/1'));
    const health = await get(port8080, '/healthz');
    assert.equal(health.status, 200);
    assert.equal(health.body, 'app:/healthz:');
  });

  it('STRICT refuses a certificate from a foreign CA, and counts it', async () => {
    await refused(get(port8080, '/api/v1/payments/1', { tls: foreignTls }));
    const stats = await get(admin, '/stats/prometheus');
    assert.match(stats.body, /meshward_tls_handshake_failures_total\{reason="[a-z-]+"\} [1-9]/);
  });

  it('PERMISSIVE accepts plaintext and mTLS on the same port', async () => {
    // Plaintext carries no principal, so the ALLOW policy denies it — but it is served.
    const plain = await get(port9090, '/api/v1/payments/1');
    assert.equal(plain.status, 403);
    const mtls = await get(port9090, '/api/v1/payments/1', { tls: orderTls });
    assert.equal(mtls.status, 200);
  });

  it('PERMISSIVE does not believe a plaintext caller\'s x-meshward-peer-workload', async () => {
    const plain = await get(port9090, '/api/v1/payments/2', { headers: { 'x-meshward-peer-workload': 'plain-spoof' } });
    assert.equal(plain.status, 403);
    const lines = await requestLines(admin, 'connection_security_policy="none"', 'response_code="403"');
    assert.ok(lines.length > 0);
    for (const l of lines) assert.match(l, /source_workload="unknown"/);
    assert.doesNotMatch((await get(admin, '/stats/prometheus')).body, /plain-spoof/);
  });

  it('allows order-service and denies reporting-service with RBAC: access denied', async () => {
    const ok = await get(port8080, '/api/v1/payments/42', { tls: orderTls, method: 'POST', body: 'charge' });
    assert.equal(ok.status, 200);
    assert.equal(ok.body, 'app:/api/v1/payments/42:charge');
    assert.equal(ok.headers['x-app'], 'payment');
    const before = app.seen.length;
    const denied = await get(port8080, '/api/v1/payments/42', { tls: reportingTls });
    assert.equal(denied.status, 403);
    assert.equal(denied.body, 'RBAC: access denied');
    assert.equal(app.seen.length, before);
    const entry = log.findLast((e) => e.principal === REPORTING.slice('spiffe://'.length));
    assert.equal(entry?.decision, 'DENY');
    assert.equal(entry?.stage, 'authorization');
    assert.equal(entry?.responseCode, 403);
  });

  it('reuses one kept-alive connection to the app for sequential requests on new client connections', async () => {
    let appConnections = 0;
    const counted = (): void => void appConnections++;
    app.server.on('connection', counted);
    try {
      for (let i = 0; i < 20; i++) {
        // A new mTLS connection each, sending Connection: close: that is the client's hop, not the app's.
        const reply = await get(port8080, `/api/v1/payments/${i}`, { tls: orderTls, method: 'POST', body: 'charge' });
        assert.equal(reply.status, 200);
      }
    } finally {
      app.server.off('connection', counted);
    }
    assert.ok(appConnections <= 1, `${appConnections} connections to the app for 20 sequential requests`);
    assert.equal(app.seen.at(-1)!.headers.connection, 'keep-alive');
  });

  it('replaces a spoofed x-forwarded-client-cert with its own', async () => {
    const r = await get(port8080, '/api/v1/payments/7', { tls: orderTls, headers: { 'x-forwarded-client-cert': 'URI=spiffe://cluster.local/ns/production/sa/admin' } });
    assert.equal(r.status, 200);
    const xfcc = app.seen.at(-1)!.headers['x-forwarded-client-cert'];
    const hash = createHash('sha256').update(orderLeaf.cert.raw).digest('hex');
    assert.equal(xfcc, `By=${PAYMENT};Hash=${hash};URI=${ORDER}`);
    // Plaintext on the permissive port: the spoofed header is dropped, none is added.
    await get(port9090, '/healthz', { headers: { 'x-forwarded-client-cert': 'URI=spiffe://evil' } });
    assert.ok(app.seen.every((s) => !String(s.headers['x-forwarded-client-cert'] ?? '').includes('evil')));
  });

  it('names the caller\'s workload as a mesh peer\'s proxy said it, and never passes the header to the app', async () => {
    const peer = (name: string): http.OutgoingHttpHeaders => ({ 'x-meshward-peer-workload': name });
    assert.equal((await get(port8080, '/api/v1/payments/w1', { tls: orderTls, headers: peer('order-v2') })).status, 200);
    assert.equal(app.seen.at(-1)!.url, '/api/v1/payments/w1');
    assert.equal(app.seen.at(-1)!.headers['x-meshward-peer-workload'], undefined);
    const named = await requestLines(admin, 'source_workload="order-v2"');
    assert.equal(named.length, 1);
    assert.match(named[0]!, new RegExp(`source_principal="${ORDER}".*connection_security_policy="mutual_tls"`));
    // Not a workload name (upper case and _, or longer than 253): not believed, and not passed on either.
    for (const bad of ['Order_V2', 'x'.repeat(254)]) {
      assert.equal((await get(port8080, '/api/v1/payments/w2', { tls: orderTls, headers: peer(bad) })).status, 200);
      assert.equal(app.seen.at(-1)!.headers['x-meshward-peer-workload'], undefined);
    }
    // A request the policy denies is counted under the name too.
    assert.equal((await get(port8080, '/api/v1/payments/w3', { tls: reportingTls, headers: peer('reporting') })).status, 403);
    assert.equal((await requestLines(admin, 'source_workload="reporting"', 'response_code="403"')).length, 1);
    // HTTP/2, through node's server.
    const session = http2.connect(`https://127.0.0.1:${port8080}`, { ...orderTls, ALPNProtocols: ['h2'] } as http2.SecureClientSessionOptions);
    try {
      const stream = session.request({ ':method': 'GET', ':path': '/api/v1/payments/w4', ':authority': 'payment-service', 'x-meshward-peer-workload': 'order-h2' });
      const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
      stream.resume();
      await once(stream, 'end');
      assert.equal(headers[':status'], 200);
    } finally {
      session.close();
    }
    assert.equal(app.seen.at(-1)!.url, '/api/v1/payments/w4');
    assert.equal(app.seen.at(-1)!.headers['x-meshward-peer-workload'], undefined);
    assert.equal((await requestLines(admin, 'source_workload="order-h2"', 'response_code="200"')).length, 1);
    const stats = (await get(admin, '/stats/prometheus')).body;
    assert.doesNotMatch(stats, /Order_V2|xxxxxxxx/);
  });

  it('path normalization attacks never reach a forbidden handler', async () => {
    for (const path of ['/api/v1/payments/../../admin', '/api/v1/payments%2F..%2F..%2Fadmin', '//admin', '/api/v1/payments/..//admin', '/api/v1/payments/%2e%2e/%2e%2e/admin']) {
      const r = await get(port8080, path, { tls: orderTls });
      assert.equal(r.status, 403, path);
    }
    // Allowed after normalization: the app gets the normalized path, never the raw dots.
    const r = await get(port8080, '/api/v1/refunds/x/../5?q=1', { tls: orderTls });
    assert.equal(r.status, 200);
    assert.equal(app.seen.at(-1)!.url, '/api/v1/refunds/5?q=1');
    assert.ok(app.seen.every((s) => !s.url.includes('admin')));
  });

  it('serves an HTTP/2 client over mTLS', async () => {
    const session = http2.connect(`https://127.0.0.1:${port8080}`, { ...orderTls, ALPNProtocols: ['h2'] } as http2.SecureClientSessionOptions);
    try {
      const stream = session.request({ ':method': 'GET', ':path': '/api/v1/payments/h2', ':authority': 'payment-service' });
      const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
      let body = '';
      stream.setEncoding('utf8');
      stream.on('data', (d: string) => (body += d));
      await once(stream, 'end');
      assert.equal(headers[':status'], 200);
      assert.equal(body, 'app:/api/v1/payments/h2:');
      const denied = session.request({ ':method': 'DELETE', ':path': '/api/v1/payments/h2' });
      const [dh] = (await once(denied, 'response')) as [http2.IncomingHttpHeaders];
      denied.resume();
      assert.equal(dh[':status'], 403);
    } finally {
      session.close();
    }
  });

  it('forwards gRPC over HTTP/2 to the app, with trailers', async () => {
    const session = http2.connect(`https://127.0.0.1:${port9443}`, { ...orderTls, ALPNProtocols: ['h2'] } as http2.SecureClientSessionOptions);
    try {
      const stream = session.request({ ':method': 'POST', ':path': '/api/v1/payments/Charge', 'content-type': 'application/grpc', te: 'trailers' });
      stream.end(Buffer.from([0, 0, 0, 0, 2, 8, 1]));
      const trailers = new Promise<http2.IncomingHttpHeaders>((ok) => stream.on('trailers', (t) => ok(t)));
      const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      await once(stream, 'end');
      assert.equal(headers[':status'], 200);
      assert.equal(headers['content-type'], 'application/grpc');
      assert.deepEqual([...Buffer.concat(chunks)], [0, 0, 0, 0, 2, 8, 1]);
      const t = await trailers;
      assert.equal(t['grpc-status'], '0');
      assert.equal(t['grpc-message'], 'ok /api/v1/payments/Charge te=trailers');
    } finally {
      session.close();
    }
  });

  it('answers 503 while the app is down, and recovers', async () => {
    const port = app.port;
    app.server.closeAllConnections();
    await new Promise<void>((r) => app.server.close(() => r()));
    const down = await get(port8080, '/api/v1/payments/1', { tls: orderTls });
    assert.equal(down.status, 503);
    assert.match(down.body, /^upstream connect error/);
    const seen = app.seen;
    app = await startApp(port);
    app.seen.push(...seen);
    const up = await get(port8080, '/api/v1/payments/1', { tls: orderTls });
    assert.equal(up.status, 200);
  });

  it('closes TCP that an HTTP-only ALLOW policy cannot match', async () => {
    // The ALLOW rule names only HTTP operations, so no TCP connection matches it.
    assert.equal(await tcpExchange(port7000, orderTls), '');
  });

  it('relays TCP over mTLS with half-close, and denies by principal on L4', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mw-ledger-'));
    writeFileSync(join(dir, 'ledger.yaml'), LEDGER_POLICY);
    const tcpPort = (tcpApp.address() as AddressInfo).port;
    const ledger = await WorkloadProxy.start(
      {
        ...config(app.port, tcpPort),
        workload: { name: 'ledger', namespace: 'production', serviceAccount: 'ledger', labels: { app: 'ledger' }, trustDomain: TD },
        inbound: [{ port: 7000, protocol: 'tcp', appPort: tcpPort }],
        policyPaths: [dir],
      },
      { material: material(await createLeaf(root, { uris: [LEDGER] }), bundle), bindPort: () => 0, accessLog: () => {}, drainMs: 200 },
    );
    try {
      const port = ledger.status().inbound[0]!.boundPort;
      const ledgerClient = (leaf: TestLeaf) => mtlsClientOptions(material(leaf, bundle), { allowedIds: new Set([LEDGER]), alpn: ['istio'] });
      assert.equal(await tcpExchange(port, ledgerClient(orderLeaf)), 'echo:hello world');
      assert.equal(await tcpExchange(port, ledgerClient(await createLeaf(root, { uris: [REPORTING] }))), '');
      const stats = (await get(ledger.status().adminPort, '/stats/prometheus')).body;
      assert.match(stats, /istio_tcp_connections_opened_total\{[^}]*source_principal="spiffe:\/\/cluster.local\/ns\/production\/sa\/order-service"[^}]*\} 1/);
      assert.match(stats, /istio_tcp_connections_closed_total\{[^}]*connection_security_policy="mutual_tls"[^}]*\} 1/);
    } finally {
      await ledger.stop();
    }
  });

  it('refuses an invalid config update and keeps enforcing the old policy', async () => {
    const bad = { ...config(app.port, 1, 2, grpcAppPort), inbound: [{ port: 70000, protocol: 'http', appPort: app.port }] };
    const r = await proxy.update(bad);
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.diagnostics.some((d) => d.path === 'inbound[0].port'));
    const older = await proxy.update(config(app.port, 1, 0, grpcAppPort));
    assert.equal(older.ok, false);
    assert.equal(proxy.status().version, 1);
    const denied = await get(port8080, '/api/v1/payments/1', { tls: reportingTls });
    assert.equal(denied.status, 403);
  });

  it('applies a valid update atomically: the new policy decides the next request', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mw-update-'));
    writeFileSync(join(dir, 'reporting.yaml'), REPORTING_POLICY);
    const next = { ...config(app.port, (tcpApp.address() as AddressInfo).port, 2, grpcAppPort), policyPaths: [POLICIES, dir] };
    const r = await proxy.update(next);
    assert.deepEqual(r, { ok: true, version: 2 });
    assert.equal(proxy.status().version, 2);
    assert.equal((await get(port8080, '/api/v1/payments/1', { tls: reportingTls })).status, 200);
    assert.equal((await get(port8080, '/api/v1/refunds/1', { tls: reportingTls })).status, 403);
  });

  it('admin /certs and /stats/prometheus report the right values', async () => {
    const certs = JSON.parse((await get(admin, '/certs')).body) as { spiffeId: string; serial: string; notAfter: string };
    assert.equal(certs.spiffeId, PAYMENT);
    assert.equal(certs.serial, serverLeaf.cert.serialNumber.toLowerCase());
    assert.equal(certs.notAfter, new Date(serverLeaf.cert.validTo).toISOString());
    const stats = (await get(admin, '/stats/prometheus')).body;
    const line = (code: string, principal: string) =>
      stats.split('\n').find((l) => l.startsWith('istio_requests_total{') && l.includes(`response_code="${code}"`) && l.includes(`source_principal="${principal}"`) && l.includes('connection_security_policy="mutual_tls"'));
    assert.ok(line('200', ORDER), stats);
    assert.ok(line('403', REPORTING), stats);
    assert.match(line('403', REPORTING)!, /destination_workload="payment-service".*destination_workload_namespace="production"/);
    assert.match(stats, /istio_request_duration_milliseconds_bucket/);
    const dump = (await get(admin, '/config_dump')).body;
    assert.ok(!dump.includes('/secret/key.pem'));
    assert.ok(dump.includes('[redacted]'));
  });

  it('admin /memory reports the process memory, and POST /memory/trim gives the idle part back', async () => {
    const mem = JSON.parse((await get(admin, '/memory')).body) as { rssMiB: number; youngGenerationMiB: number; cMemoryTrim: boolean };
    assert.ok(mem.rssMiB > 0 && mem.youngGenerationMiB > 0, JSON.stringify(mem));
    // The addon `npm install` builds loads in the proxy (src/lib/malloc-trim.ts).
    assert.equal(mem.cMemoryTrim, true, JSON.stringify(mem));
    assert.equal((await get(admin, '/memory/trim')).status, 405);
    const trim = await get(admin, '/memory/trim', { method: 'POST' });
    assert.equal(trim.status, 200);
    const r = JSON.parse(trim.body) as { trimmed: boolean; before: { youngGenerationMiB: number }; after: { youngGenerationMiB: number } };
    assert.equal(r.trimmed, true);
    // V8's initial young generation; whatever it was before.
    assert.ok(r.after.youngGenerationMiB <= 2 && r.after.youngGenerationMiB <= r.before.youngGenerationMiB, trim.body);
    // At most one a second, and never from a web page.
    assert.equal((await get(admin, '/memory/trim', { method: 'POST' })).status, 429);
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await get(admin, '/memory/trim', { method: 'POST', headers: { origin: 'https://example.com' } })).status, 403);
    // The proxy serves on as before.
    assert.equal((await get(port8080, '/api/v1/payments/1', { tls: orderTls })).status, 200);
  });
});

describe('inbound proxy with request authentication', () => {
  it('answers 401 as Envoy does for a bad JWT, and forwards a good one', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }] });
    const dir = mkdtempSync(join(tmpdir(), 'mw-jwt-'));
    writeFileSync(
      join(dir, 'jwt.yaml'),
      `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: jwt, namespace: foo }
spec:
  jwtRules:
  - issuer: testing@secure.istio.io
    jwks: '${jwks}'
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: require-jwt, namespace: foo }
spec:
  action: ALLOW
  rules:
  - from: [{ source: { requestPrincipals: ["*"] } }]
`,
    );
    const app = await startApp();
    const root = await createRootCa({ trustDomain: TD });
    const leaf = await createLeaf(root, { uris: [`spiffe://${TD}/ns/foo/sa/httpbin`] });
    const proxy = await WorkloadProxy.start(
      {
        ...config(app.port, 1),
        workload: { name: 'httpbin', namespace: 'foo', serviceAccount: 'httpbin', labels: { app: 'httpbin' }, trustDomain: TD },
        inbound: [{ port: 8000, protocol: 'http', appPort: app.port }],
        policyPaths: [dir],
      },
      { material: material(leaf, bundleOf(root)), bindPort: () => 0, accessLog: () => {}, drainMs: 200 },
    );
    try {
      const port = proxy.status().inbound[0]!.boundPort;
      const sign = (key: typeof privateKey) =>
        new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer('testing@secure.istio.io').setExpirationTime('1h').sign(key);
      const bad = await get(port, '/headers', { headers: { authorization: `Bearer ${(await sign(privateKey)).slice(0, -4)}AAAA` } });
      assert.equal(bad.status, 401);
      assert.equal(bad.body, 'Jwt verification fails');
      assert.match(String(bad.headers['www-authenticate']), /^Bearer realm="http:\/\/payment-service\/headers"$/);
      assert.equal((await get(port, '/headers')).status, 403);
      const good = await get(port, '/headers', { headers: { authorization: `Bearer ${await sign(privateKey)}` } });
      assert.equal(good.status, 200);
      assert.equal(app.seen.length, 1);
    } finally {
      await proxy.stop();
      app.server.closeAllConnections();
      app.server.close();
    }
  });
});

describe('stopping a proxy', () => {
  it('lets a request in flight finish, then refuses new connections', async () => {
    let arrived = (_release: () => void): void => {};
    const reached = new Promise<() => void>((r) => (arrived = r));
    const slow = http.createServer((_req, res) => arrived(() => res.end('late')));
    slow.listen(0, '127.0.0.1');
    await once(slow, 'listening');
    const root = await createRootCa({ trustDomain: TD });
    const proxy = await WorkloadProxy.start(
      { ...config((slow.address() as AddressInfo).port, 1), inbound: [{ port: 9090, protocol: 'http', appPort: (slow.address() as AddressInfo).port }], policyPaths: [] },
      { material: material(await createLeaf(root, { uris: [PAYMENT] }), bundleOf(root)), bindPort: () => 0, accessLog: () => {}, drainMs: 2000 },
    );
    const port = proxy.status().inbound[0]!.boundPort;
    try {
      const inFlight = get(port, '/slow');
      const release = await reached;
      const stopped = proxy.stop();
      release();
      const r = await inFlight;
      assert.equal(r.status, 200);
      assert.equal(r.body, 'late');
      await stopped;
      await refused(get(port, '/after'));
    } finally {
      await proxy.stop();
      slow.closeAllConnections();
      slow.close();
    }
  });
});

describe('proxy config validation', () => {
  it('names file, field path and reason', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mw-proxy-config-'));
    const file = join(dir, 'proxy.yaml');
    writeFileSync(
      file,
      JSON.stringify({ ...config(8000, 8001), adminPort: 0, inbound: [{ port: 8080, protocol: 'http', appPort: 8000 }, { port: 8080, protocol: 'tcp', appPort: 8001, extra: 1 }] }),
    );
    const r = loadProxyConfig(file);
    assert.ok('diagnostics' in r);
    const paths = r.diagnostics.map((d) => d.path);
    assert.ok(paths.includes('adminPort'), JSON.stringify(r.diagnostics));
    assert.ok(paths.includes('inbound[1].extra'), JSON.stringify(r.diagnostics));
    assert.ok(paths.includes('inbound[1].port'), JSON.stringify(r.diagnostics));
    assert.ok(r.diagnostics.every((d) => d.file === file));
  });
});
