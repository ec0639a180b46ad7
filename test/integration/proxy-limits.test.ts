// The inbound limits (docs/inbound.md, "Limits") against real sockets on
// 127.0.0.1: slow and oversized requests, idle connections, stalled
// handshakes and too many connections, over plaintext (PERMISSIVE) and over
// mesh mTLS with test certificates. Each test starts its own proxy with
// small limits, and reads the count from the admin /stats/prometheus.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { ProxyConfig } from '../../src/api/proxy-config.ts';
import { parseProxyConfig } from '../../src/api/proxy-config-schema.ts';
import type { ProxyLimits } from '../../src/api/proxy-limits.ts';
import { mtlsClientOptions } from '../../src/identity/tls-options.ts';
import { trustBundleFromPem } from '../../src/identity/trust-bundle.ts';
import type { MtlsMaterial } from '../../src/identity/tls-options.ts';
import { WorkloadProxy } from '../../src/proxy/proxy.ts';
import type { AccessLogEntry } from '../../src/proxy/access-log.ts';
import { createLeaf, createRootCa } from '../support/pki.ts';

const TD = 'cluster.local';
const PAYMENT = `spiffe://${TD}/ns/production/sa/payment-service`;
const ORDER = `spiffe://${TD}/ns/production/sa/order-service`;

function config(appPort: number, limits?: ProxyLimits): ProxyConfig {
  return {
    version: 1,
    workload: { name: 'payment-service', namespace: 'production', serviceAccount: 'payment-service', labels: { app: 'payment-service' }, trustDomain: TD },
    // No PeerAuthentication: PERMISSIVE, so plaintext and mTLS reach the same port.
    inbound: [{ port: 8080, protocol: 'http', appPort }],
    outbound: [],
    adminPort: 15000,
    policyPaths: [],
    ...(limits !== undefined ? { limits } : {}),
  };
}

interface Running {
  readonly proxy: WorkloadProxy;
  readonly port: number;
  readonly admin: number;
  readonly log: AccessLogEntry[];
}

interface Conn {
  readonly socket: net.Socket;
  data(): string;
  /** Resolves with the milliseconds from the connection's open to its close. */
  readonly closed: Promise<number>;
}

/** A connection to `port`, plaintext or mTLS, collecting what it reads. */
async function dial(port: number, tlsOptions?: tls.ConnectionOptions): Promise<Conn> {
  const started = performance.now();
  const socket = tlsOptions ? tls.connect({ ...tlsOptions, host: '127.0.0.1', port, ALPNProtocols: ['http/1.1'] }) : net.connect(port, '127.0.0.1');
  let got = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (got += d));
  socket.on('error', () => {});
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now() - started)));
  await once(socket, tlsOptions ? 'secureConnect' : 'connect');
  return { socket, data: () => got, closed };
}

async function until(what: string, cond: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function stats(admin: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${admin}/stats/prometheus`);
  return res.text();
}

async function limitCount(admin: number, limit: string): Promise<number> {
  const m = new RegExp(`^meshward_proxy_limit_exceeded_total\\{limit="${limit}"\\} (\\d+)$`, 'm').exec(await stats(admin));
  assert.ok(m, `no meshward_proxy_limit_exceeded_total{limit="${limit}"} series`);
  return Number(m[1]);
}

const REQUEST = 'GET /api/v1/payments/1 HTTP/1.1\r\nHost: payment-service\r\n\r\n';

describe('inbound limits', { timeout: 20_000 }, () => {
  let material: MtlsMaterial;
  let orderTls: tls.ConnectionOptions;
  let app: http.Server;
  let appPort = 0;
  const running: Running[] = [];

  async function start(limits?: ProxyLimits): Promise<Running> {
    const log: AccessLogEntry[] = [];
    const proxy = await WorkloadProxy.start(config(appPort, limits), { material, bindPort: () => 0, accessLog: (e) => log.push(e), drainMs: 100 });
    const st = proxy.status();
    const r = { proxy, port: st.inbound[0]!.boundPort, admin: st.adminPort, log };
    running.push(r);
    return r;
  }

  before(async () => {
    const root = await createRootCa({ trustDomain: TD });
    const bundle = trustBundleFromPem(TD, root.pem);
    if ('error' in bundle) throw new Error(bundle.error);
    const server = await createLeaf(root, { uris: [PAYMENT] });
    material = { key: server.key, chain: server.chain, bundle };
    const order = await createLeaf(root, { uris: [ORDER] });
    orderTls = mtlsClientOptions({ key: order.key, chain: order.chain, bundle }, { allowedIds: new Set([PAYMENT]), alpn: ['http/1.1'] });
    app = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end(`app:${req.url}`));
    });
    app.listen(0, '127.0.0.1');
    await once(app, 'listening');
    appPort = (app.address() as AddressInfo).port;
  });

  after(async () => {
    await Promise.all(running.map((r) => r.proxy.stop()));
    app.closeAllConnections();
    app.close();
  });

  for (const transport of ['plaintext', 'mTLS'] as const) {
    const tlsOf = (): tls.ConnectionOptions | undefined => (transport === 'mTLS' ? orderTls : undefined);

    it(`${transport}: cuts off a slowloris client at the header timeout with 408`, async () => {
      const p = await start({ headerTimeoutMs: 200, requestTimeoutMs: 400 });
      const c = await dial(p.port, tlsOf());
      const sent = performance.now();
      c.socket.write('GET /slow HTTP/1.1\r\nHost: payment-service\r\n');
      // One header line every 50 ms: activity that must not keep the request alive.
      const drip = setInterval(() => c.socket.write(`x-drip-${Math.floor(performance.now())}: 1\r\n`), 50);
      await c.closed;
      clearInterval(drip);
      const ms = performance.now() - sent;
      assert.ok(ms >= 150 && ms < 1000, `closed after ${Math.round(ms)} ms`);
      assert.match(c.data(), /^HTTP\/1\.1 408 Request Timeout\r\n/);
      assert.equal(await limitCount(p.admin, 'header_timeout'), 1);
      const entry = p.log.find((e) => e.limit === 'header_timeout');
      assert.ok(entry, 'an access log entry names the limit');
      assert.equal(entry.responseCode, 408);
      assert.equal(entry.mtls, transport === 'mTLS');
      // The app never saw it.
      assert.ok(!p.log.some((e) => e.responseCode === 200));
    });

    it(`${transport}: closes an idle keep-alive connection at the idle timeout`, async () => {
      const p = await start({ idleTimeoutMs: 200 });
      const c = await dial(p.port, tlsOf());
      c.socket.write(REQUEST);
      await until('the response', () => c.data().includes('app:/api/v1/payments/1'));
      const answered = performance.now();
      await c.closed;
      const ms = performance.now() - answered;
      // `answered` is when the poll saw the response, up to a poll interval after it arrived.
      assert.ok(ms >= 100 && ms < 1000, `closed ${Math.round(ms)} ms after the response`);
      // Quietly: nothing after the first response.
      assert.equal(c.data().match(/HTTP\/1\.1/g)?.length, 1);
      assert.equal(await limitCount(p.admin, 'idle_timeout'), 1);
    });

    it(`${transport}: counts the idle timeout from the last response, not the first`, async () => {
      const p = await start({ idleTimeoutMs: 300 });
      const c = await dial(p.port, tlsOf());
      const responses = (): number => c.data().match(/HTTP\/1\.1 200/g)?.length ?? 0;
      // Requests 200 ms apart: each starts before the idle time since the one before it is over,
      // though the first idle timer falls due in between.
      for (let i = 1; i <= 4; i++) {
        c.socket.write(REQUEST);
        await until(`response ${i}`, () => responses() === i);
        if (i < 4) await new Promise((r) => setTimeout(r, 200));
      }
      const answered = performance.now();
      await c.closed;
      const ms = performance.now() - answered;
      assert.ok(ms >= 200 && ms < 1500, `closed ${Math.round(ms)} ms after the last response`);
      assert.equal(responses(), 4);
      assert.equal(await limitCount(p.admin, 'idle_timeout'), 1);
    });

    it(`${transport}: answers 431 to 200 headers and to a 100 KiB header, with the default limits`, async () => {
      const p = await start();
      const many = await dial(p.port, tlsOf());
      const headers = Array.from({ length: 200 }, (_, i) => `x-h${i}: v\r\n`).join('');
      many.socket.write(`GET /many HTTP/1.1\r\nHost: payment-service\r\n${headers}\r\n`);
      await until('the 431', () => many.data().includes('\r\n\r\n'));
      assert.match(many.data(), /^HTTP\/1\.1 431 /);
      await many.closed;

      const big = await dial(p.port, tlsOf());
      big.socket.write(`GET /big HTTP/1.1\r\nHost: payment-service\r\nx-big: ${'a'.repeat(100 * 1024)}\r\n\r\n`);
      await big.closed;
      assert.match(big.data(), /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);

      assert.equal(await limitCount(p.admin, 'header_count'), 1);
      assert.equal(await limitCount(p.admin, 'header_size'), 1);
      const count = p.log.find((e) => e.limit === 'header_count');
      assert.equal(count?.responseCode, 431);
      assert.equal(count?.path, '/many');
      assert.equal(p.log.find((e) => e.limit === 'header_size')?.responseCode, 431);
      assert.match(await stats(p.admin), /istio_requests_total\{[^}]*response_code="431"[^}]*\} 2/);
      // 100 headers are within the default limit.
      const ok = await dial(p.port, tlsOf());
      ok.socket.write(`GET /ok HTTP/1.1\r\nHost: payment-service\r\n${headers.split('\r\n').slice(0, 99).join('\r\n')}\r\n\r\n`);
      await until('the 200', () => ok.data().includes('app:/ok'));
      ok.socket.destroy();
    });

    it(`${transport}: over the connection limit, a new connection is closed and the open ones still answer`, async () => {
      const p = await start({ maxDownstreamConnections: 3 });
      const open: Conn[] = [];
      for (let i = 0; i < 3; i++) {
        const c = await dial(p.port, tlsOf());
        c.socket.write(REQUEST);
        await until('a response', () => c.data().includes('app:'));
        open.push(c);
      }
      assert.match(await stats(p.admin), /^meshward_proxy_downstream_connections 3$/m);
      const fourth = transport === 'mTLS' ? dial(p.port, tlsOf()) : dial(p.port);
      // A TLS client sees the close as a failed handshake; a plaintext one as an empty read.
      const closedMs = await fourth.then((c) => c.closed, () => 0);
      assert.ok(closedMs < 1000);
      assert.equal(await limitCount(p.admin, 'max_connections'), 1);
      for (const c of open) {
        const before = c.data().length;
        c.socket.write(REQUEST);
        await until('a second response', () => c.data().slice(before).includes('app:'));
        c.socket.destroy();
      }
      await Promise.all(open.map((c) => c.closed));
      await sleep(20);
      assert.match(await stats(p.admin), /^meshward_proxy_downstream_connections 0$/m);
      const after = await dial(p.port, tlsOf());
      after.socket.write(REQUEST);
      await until('a response once below the limit', () => after.data().includes('app:'));
      after.socket.destroy();
    });
  }

  it('answers 408 when the body stalls past the request timeout, and logs the request', async () => {
    const p = await start({ headerTimeoutMs: 200, requestTimeoutMs: 300 });
    const c = await dial(p.port, orderTls);
    c.socket.write('POST /upload HTTP/1.1\r\nHost: payment-service\r\nContent-Length: 100\r\n\r\nfirst part');
    const ms = await c.closed;
    assert.ok(ms < 1500, `closed after ${Math.round(ms)} ms`);
    assert.match(c.data(), /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.equal(await limitCount(p.admin, 'request_timeout'), 1);
    await until('the access log entry', () => p.log.some((e) => e.limit === 'request_timeout'));
    const entry = p.log.find((e) => e.limit === 'request_timeout')!;
    assert.equal(entry.responseCode, 408);
    assert.equal(entry.path, '/upload');
    assert.equal(entry.mtls, true);
  });

  it('closes a TLS handshake that stalls after the first bytes, and a connection that sends nothing', async () => {
    const p = await start({ handshakeTimeoutMs: 200 });
    // The start of a ClientHello record, and then nothing.
    const hello = await dial(p.port);
    hello.socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
    const silent = await dial(p.port);
    const [a, b] = await Promise.all([hello.closed, silent.closed]);
    assert.ok(a >= 150 && a < 1000, `stalled handshake closed after ${Math.round(a)} ms`);
    assert.ok(b >= 150 && b < 1000, `silent connection closed after ${Math.round(b)} ms`);
    assert.equal(hello.data(), '');
    assert.equal(await limitCount(p.admin, 'handshake_timeout'), 2);
    // A handshake that completes is not cut off later.
    const ok = await dial(p.port, orderTls);
    await sleep(300);
    ok.socket.write(REQUEST);
    await until('a response', () => ok.data().includes('app:'));
    ok.socket.destroy();
    assert.equal(await limitCount(p.admin, 'handshake_timeout'), 2);
  });

  it('HTTP/2 over mTLS: 431 for too many headers and too many bytes, GOAWAY when idle', async () => {
    const p = await start({ idleTimeoutMs: 300 });
    const session = http2.connect(`https://127.0.0.1:${p.port}`, { ...orderTls, ALPNProtocols: ['h2'] } as http2.SecureClientSessionOptions);
    session.on('error', () => {});
    const headers: http2.OutgoingHttpHeaders = { ':path': '/many' };
    for (let i = 0; i < 150; i++) headers[`x-h${i}`] = 'v';
    const req = session.request(headers);
    const [response] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
    req.resume();
    assert.equal(response[':status'], 431);
    await once(req, 'close');
    assert.equal(await limitCount(p.admin, 'header_count'), 1);
    // 75 KiB of headers in three fields (node's client refuses to send a
    // block over 64000 bytes unless told otherwise).
    const large = http2.connect(`https://127.0.0.1:${p.port}`, { ...orderTls, ALPNProtocols: ['h2'], maxSendHeaderBlockLength: 1 << 20 } as http2.SecureClientSessionOptions);
    large.on('error', () => {});
    const big = large.request({ ':path': '/big', 'x-a': 'a'.repeat(25 * 1024), 'x-b': 'b'.repeat(25 * 1024), 'x-c': 'c'.repeat(25 * 1024) });
    const [bigResponse] = (await once(big, 'response')) as [http2.IncomingHttpHeaders];
    big.resume();
    assert.equal(bigResponse[':status'], 431);
    large.close();
    assert.equal(await limitCount(p.admin, 'header_size'), 1);
    const ok = session.request({ ':path': '/fine' });
    const [fine] = (await once(ok, 'response')) as [http2.IncomingHttpHeaders];
    ok.resume();
    assert.equal(fine[':status'], 200);
    await once(ok, 'close');
    const goaway = once(session, 'goaway');
    await goaway;
    await once(session, 'close');
    assert.equal(await limitCount(p.admin, 'idle_timeout'), 1);
  });

  it('HTTP/2 over mTLS: 408 when a request body stalls past the request timeout', async () => {
    const p = await start({ headerTimeoutMs: 200, requestTimeoutMs: 300 });
    const session = http2.connect(`https://127.0.0.1:${p.port}`, { ...orderTls, ALPNProtocols: ['h2'] } as http2.SecureClientSessionOptions);
    session.on('error', () => {});
    const started = performance.now();
    const req = session.request({ ':path': '/upload', ':method': 'POST' });
    req.write('first part');
    const [response] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
    const ms = performance.now() - started;
    req.resume();
    assert.equal(response[':status'], 408);
    assert.ok(ms >= 250 && ms < 1500, `answered after ${Math.round(ms)} ms`);
    req.close();
    session.close();
    assert.equal(await limitCount(p.admin, 'request_timeout'), 1);
    await until('the access log entry', () => p.log.some((e) => e.limit === 'request_timeout'));
    const entry = p.log.find((e) => e.limit === 'request_timeout')!;
    assert.equal(entry.responseCode, 408);
    assert.equal(entry.path, '/upload');
  });

  it('lets go at once of a connection whose caller leaves during the handshake, not at the handshake timeout', async () => {
    const p = await start();
    // Half a ClientHello, then the caller's end.
    const hello = await dial(p.port);
    hello.socket.end(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
    // A client that has its side of the handshake and ends before the proxy has its own.
    for (let i = 0; i < 3; i++) {
      const early = tls.connect({ ...orderTls, host: '127.0.0.1', port: p.port });
      early.on('error', () => {});
      await once(early, 'secureConnect');
      early.end();
    }
    const gauge = async (): Promise<string> => /^meshward_proxy_downstream_connections (\d+)$/m.exec(await stats(p.admin))?.[1] ?? '?';
    const deadline = Date.now() + 2000;
    let open = await gauge();
    while (open !== '0' && Date.now() < deadline) {
      await sleep(20);
      open = await gauge();
    }
    assert.equal(open, '0', 'the proxy still holds connections whose callers left (default handshake timeout: 10 s)');
    assert.equal(await limitCount(p.admin, 'handshake_timeout'), 0);
    await hello.closed;
  });

  it('starts every series at zero and reports the open connections', async () => {
    const p = await start();
    const text = await stats(p.admin);
    for (const limit of ['header_size', 'header_count', 'header_timeout', 'request_timeout', 'idle_timeout', 'max_connections', 'handshake_timeout']) {
      assert.match(text, new RegExp(`^meshward_proxy_limit_exceeded_total\\{limit="${limit}"\\} 0$`, 'm'));
    }
    assert.match(text, /^meshward_proxy_downstream_connections 0$/m);
  });
});

describe('limits config', () => {
  const base = config(9000);

  it('accepts no limits, and each limit within its range', () => {
    assert.ok('config' in parseProxyConfig('c', base));
    const ok = parseProxyConfig('c', { ...base, limits: { maxRequestHeadersBytes: 8192, maxRequestHeadersCount: 50, headerTimeoutMs: 5000, requestTimeoutMs: 0, idleTimeoutMs: 60_000, handshakeTimeoutMs: 2000, maxDownstreamConnections: 100 } });
    assert.ok('config' in ok, JSON.stringify(ok));
  });

  it('refuses out-of-range values and a request timeout shorter than the header timeout, naming the field', () => {
    const bad = parseProxyConfig('c', { ...base, limits: { maxRequestHeadersCount: 0, idleTimeoutMs: -1, maxDownstreamConnections: 1.5, headerTimeoutMs: 1000, requestTimeoutMs: 500, unknown: 1 } });
    assert.ok('diagnostics' in bad);
    const paths = bad.diagnostics.map((d) => d.path);
    for (const p of ['limits.maxRequestHeadersCount', 'limits.idleTimeoutMs', 'limits.maxDownstreamConnections']) assert.ok(paths.includes(p), `${p} in ${paths.join(', ')}`);
    const defaultHeader = parseProxyConfig('c', { ...base, limits: { requestTimeoutMs: 500 } });
    assert.ok('diagnostics' in defaultHeader && defaultHeader.diagnostics.some((d) => d.path === 'limits.requestTimeoutMs'));
  });
});
