// The inbound HTTP/1.1 fast lane (docs/inbound.md, "The HTTP/1.1 fast
// lane") against a raw TCP app whose responses are written byte by byte, so
// each framing the lane must pass on is exercised exactly: chunked with
// trailers, read until close, HEAD, 204, pipelining, a kept-alive app
// connection that dies under a request, and a response that is not HTTP.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import type { ProxyConfig } from '../../src/api/proxy-config.ts';
import { trustBundleFromPem } from '../../src/identity/trust-bundle.ts';
import { mtlsClientOptions } from '../../src/identity/tls-options.ts';
import { WorkloadProxy } from '../../src/proxy/proxy.ts';
import type { AccessLogEntry } from '../../src/proxy/access-log.ts';
import { get } from '../support/http.ts';
import { createLeaf, createRootCa } from '../support/pki.ts';

const TD = 'cluster.local';

interface AppRequest {
  readonly method: string;
  readonly path: string;
  readonly head: string;
  readonly body: string;
  /** The request's position on its app connection, from 1. */
  readonly nth: number;
}

/** A raw HTTP/1.1 app: `respond` writes the bytes for each request (or destroys the socket). */
async function rawApp(respond: (req: AppRequest, socket: net.Socket) => void): Promise<{ port: number; connections: () => number; seen: AppRequest[]; close: () => void }> {
  const seen: AppRequest[] = [];
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    let buf = Buffer.alloc(0);
    let nth = 0;
    socket.on('error', () => undefined);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        let body = '';
        if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
          // Chunked (what node's full path sends for a chunked request): sizes decoded, no trailers.
          let at = end + 4;
          for (;;) {
            const eol = buf.indexOf('\r\n', at);
            if (eol < 0) return;
            const size = Number.parseInt(buf.subarray(at, eol).toString(), 16);
            if (buf.length < eol + 2 + size + 2) return;
            if (size === 0) {
              at = eol + 4;
              break;
            }
            body += buf.subarray(eol + 2, eol + 2 + size).toString();
            at = eol + 2 + size + 2;
          }
          buf = buf.subarray(at);
        } else {
          const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
          if (buf.length < end + 4 + length) return;
          body = buf.subarray(end + 4, end + 4 + length).toString();
          buf = buf.subarray(end + 4 + length);
        }
        const [method, path] = head.split(' ');
        const req = { method: method!, path: path!, head, body, nth: ++nth };
        seen.push(req);
        respond(req, socket);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    seen,
    close: () => server.close(),
  };
}

/** How a test caller reaches the proxy: plaintext (PERMISSIVE), or mTLS with a mesh SVID, as another proxy does. */
type Dial = (port: number) => Promise<Duplex>;

const dialPlaintext: Dial = async (port) => {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  return socket;
};

/** Sends `raw` on a new connection and reads (after `pauseMs`) until the proxy closes it or `done` says enough. */
async function exchangeOver(dial: Dial, port: number, raw: string, done: (got: string) => boolean = () => false, pauseMs = 0): Promise<{ text: string; closed: boolean }> {
  const socket = await dial(port);
  socket.setEncoding('latin1');
  let got = '';
  let closed = false;
  socket.write(raw);
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 3000);
    socket.on('data', (d: string) => {
      got += d;
      if (done(got)) {
        clearTimeout(timer);
        resolve();
      }
    });
    socket.on('close', () => {
      closed = true;
      clearTimeout(timer);
      resolve();
    });
    if (pauseMs > 0) {
      socket.pause();
      setTimeout(() => socket.resume(), pauseMs);
    }
  });
  socket.destroy();
  return { text: got, closed };
}

const responses = (text: string): number => text.split('HTTP/1.1 ').length - 1;

/** 12 MB in a pattern that differs from itself at any shift of less than 64 KiB. */
const BIG_BODY = Buffer.alloc(12_000_000);
for (let i = 0; i < BIG_BODY.length; i++) BIG_BODY[i] = (i * 7 + (i >> 16)) & 0xff;

// Over mTLS the lane reads the caller's connection through the shared read
// buffer (src/proxy/http1/secured-reads.ts), over plaintext through 'data':
// every case runs both ways.
for (const transport of ['plaintext', 'mTLS'] as const) describe(`inbound HTTP/1.1 fast lane, caller over ${transport}`, { timeout: 20_000 }, () => {
  let app: Awaited<ReturnType<typeof rawApp>>;
  let proxy: WorkloadProxy;
  let port = 0;
  const log: AccessLogEntry[] = [];
  let dial: Dial = dialPlaintext;
  const exchange = (p: number, raw: string, done?: (got: string) => boolean, pauseMs?: number): ReturnType<typeof exchangeOver> => exchangeOver(dial, p, raw, done, pauseMs);

  before(async () => {
    app = await rawApp((req, socket) => {
      const ok = (body: string, extra = ''): void => void socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(body)}${extra}\r\n\r\n${body}`);
      switch (req.path) {
        case '/chunked':
          socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n5\r\nhello\r\n');
          setTimeout(() => socket.write('6;ext=1\r\n world\r\n0\r\nx-sum: 42\r\n\r\n'), 10);
          return;
        case '/until-close':
          socket.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nstreamed until close');
          return;
        case '/empty':
          socket.write('HTTP/1.1 204 No Content\r\nX-Empty: yes\r\n\r\n');
          return;
        case '/interim':
          socket.write(`HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal`);
          return;
        case '/bad':
          socket.write('HTTP/1.1 2x0 Nope\r\n\r\n');
          return;
        case '/split':
          // The head in three reads, 20 ms apart: other connections' reads land in between.
          socket.write('HTTP/1.1 200 OK\r\nCont');
          setTimeout(() => socket.write('ent-Length: 10\r\nX-Part: a'), 20);
          setTimeout(() => socket.write('b\r\n\r\n0123456789'), 40);
          return;
        case '/big':
          // More than the loopback connection to a caller that is not reading holds, in three writes: the
          // proxy's writes to the caller wait, each holding its bytes, while other connections read.
          socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${BIG_BODY.length}\r\n\r\n`);
          socket.write(BIG_BODY.subarray(0, 2_000_000));
          setTimeout(() => socket.write(BIG_BODY.subarray(2_000_000, 4_000_000)), 15);
          setTimeout(() => socket.write(BIG_BODY.subarray(4_000_000)), 30);
          return;
        case '/bad-chunk':
          // The chunked framing breaks in the same read as the head: nothing of it may reach the caller.
          socket.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n');
          return;
        case '/hop':
          ok('hop', '\r\nConnection: x-secret\r\nX-Secret: drop me\r\nKeep-Alive: timeout=30');
          return;
        case '/flaky':
          // A kept-alive connection that dies under its second request, before any byte of a response.
          if (req.nth > 1) socket.destroy();
          else ok('flaky 1');
          return;
        default:
          if (req.method === 'HEAD') socket.write('HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n');
          else ok(`${req.method} ${req.path} ${req.body}`);
      }
    });
    const root = await createRootCa({ trustDomain: TD });
    const bundle = trustBundleFromPem(TD, root.pem);
    if ('error' in bundle) throw new Error(bundle.error);
    const leaf = await createLeaf(root, { uris: [`spiffe://${TD}/ns/production/sa/payment-service`] });
    const config: ProxyConfig = {
      version: 1,
      workload: { name: 'payment-service', namespace: 'production', serviceAccount: 'payment-service', labels: { app: 'payment-service' }, trustDomain: TD },
      // No PeerAuthentication: PERMISSIVE, so a plaintext client can reach the lane.
      inbound: [{ port: 8080, protocol: 'http', appPort: app.port }],
      outbound: [],
      adminPort: 15000,
      policyPaths: [],
    };
    proxy = await WorkloadProxy.start(config, { material: { key: leaf.key, chain: leaf.chain, bundle }, bindPort: () => 0, accessLog: (e) => log.push(e), drainMs: 100 });
    port = proxy.status().inbound[0]!.boundPort;
    if (transport === 'mTLS') {
      const caller = await createLeaf(root, { uris: [`spiffe://${TD}/ns/production/sa/checkout`] });
      const options = mtlsClientOptions({ key: caller.key, chain: caller.chain, bundle }, { allowedIds: new Set([`spiffe://${TD}/ns/production/sa/payment-service`]), alpn: ['http/1.1'] });
      dial = async (p) => {
        const socket = tls.connect({ ...options, host: '127.0.0.1', port: p });
        await once(socket, 'secureConnect');
        return socket;
      };
    }
  });

  after(async () => {
    await proxy?.stop();
    app?.close();
  });

  it('passes a chunked response on byte for byte, extensions and trailers included, and keeps both connections', async () => {
    const before = app.connections();
    const { text, closed } = await exchange(port, 'GET /chunked HTTP/1.1\r\nHost: p\r\n\r\nGET /again HTTP/1.1\r\nHost: p\r\n\r\n', (t) => t.includes('GET /again'));
    assert.equal(closed, false);
    assert.match(text, /^HTTP\/1\.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-sum: 42\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
    assert.ok(app.connections() - before <= 1, 'the pipelined request reused the app connection');
  });

  it('closes the caller\'s connection after a response read until the app closed', async () => {
    const { text, closed } = await exchange(port, 'GET /until-close HTTP/1.1\r\nHost: p\r\n\r\n');
    assert.equal(closed, true);
    assert.match(text, /^HTTP\/1\.1 200 OK\r\ncontent-type: text\/plain\r\nconnection: close\r\n\r\nstreamed until close$/);
  });

  it('answers HEAD and 204 without a body, and the connection carries on', async () => {
    const { text } = await exchange(port, 'HEAD /x HTTP/1.1\r\nHost: p\r\n\r\nGET /empty HTTP/1.1\r\nHost: p\r\n\r\nGET /after HTTP/1.1\r\nHost: p\r\n\r\n', (t) => t.includes('GET /after'));
    assert.equal(responses(text), 3);
    assert.match(text, /^HTTP\/1\.1 200 OK\r\ncontent-length: 11\r\n\r\nHTTP\/1\.1 204 No Content\r\nx-empty: yes\r\n\r\nHTTP\/1\.1 200 OK\r\ncontent-length: 11\r\n\r\nGET \/after $/);
  });

  it('drops interim responses and the headers the app\'s Connection names', async () => {
    const interim = await exchange(port, 'GET /interim HTTP/1.1\r\nHost: p\r\n\r\n', (t) => t.endsWith('final'));
    assert.equal(interim.text, 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal');
    const hop = await exchange(port, 'GET /hop HTTP/1.1\r\nHost: p\r\n\r\n', (t) => t.endsWith('hop'));
    assert.equal(hop.text, 'HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nhop');
  });

  it('retries an idempotent request once when a kept-alive app connection dies under it, and answers 503 to a POST', async () => {
    const first = await exchange(port, 'GET /flaky HTTP/1.1\r\nHost: p\r\n\r\n', (t) => t.endsWith('flaky 1'));
    assert.match(first.text, /flaky 1$/);
    // The next request reuses that app connection, which dies: sent again on a new one.
    const retried = await exchange(port, 'GET /flaky HTTP/1.1\r\nHost: p\r\n\r\n', (t) => t.endsWith('flaky 1'));
    assert.match(retried.text, /^HTTP\/1\.1 200 OK\r\n[\s\S]*flaky 1$/);
    const post = await exchange(port, 'POST /flaky HTTP/1.1\r\nHost: p\r\nContent-Length: 2\r\n\r\nhi', (t) => t.includes('\r\n\r\n') && /(503|200)/.test(t));
    assert.match(post.text, /^HTTP\/1\.1 (503 Service Unavailable\r\n[\s\S]*upstream connect error|200 OK)/);
  });

  it('passes on byte for byte a head split over reads, and a body a paused caller cannot take in at once, while other app connections read', async () => {
    // Upstream reads share one buffer (src/proxy/http1/shared-reads.ts): what a connection keeps past its read must be its own copy.
    const head = `HTTP/1.1 200 OK\r\ncontent-length: ${BIG_BODY.length}\r\n\r\n`;
    const results = await Promise.all([
      exchange(port, 'GET /split HTTP/1.1\r\nHost: p\r\n\r\n', (t) => t.endsWith('0123456789')),
      exchange(port, 'GET /big HTTP/1.1\r\nHost: p\r\n\r\n', (t) => t.length >= head.length + BIG_BODY.length, 300),
      exchange(port, 'GET /split HTTP/1.1\r\nHost: p\r\n\r\n', (t) => t.endsWith('0123456789')),
      exchange(port, 'GET /big HTTP/1.1\r\nHost: p\r\n\r\n', (t) => t.length >= head.length + BIG_BODY.length),
    ]);
    for (const split of [results[0]!, results[2]!]) assert.equal(split.text, 'HTTP/1.1 200 OK\r\ncontent-length: 10\r\nx-part: ab\r\n\r\n0123456789');
    for (const big of [results[1]!, results[3]!]) {
      assert.equal(big.text.slice(0, head.length), head);
      assert.ok(Buffer.from(big.text.slice(head.length), 'latin1').equals(BIG_BODY), 'the body arrived unchanged');
    }
  });

  it('answers 503, not a cut-short 200, to a chunked response whose first read breaks its framing', async () => {
    const { text } = await exchange(port, 'GET /bad-chunk HTTP/1.1\r\nHost: p\r\n\r\n', (t) => t.includes('upstream connect error'));
    assert.match(text, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
    assert.ok(!text.includes('200 OK') && !text.includes('hello'));
    assert.ok(log.some((e) => e.path === '/bad-chunk' && e.responseCode === 503));
  });

  it('answers 503 to a response that is not HTTP/1.1, and logs it', async () => {
    const { text } = await exchange(port, 'GET /bad HTTP/1.1\r\nHost: p\r\n\r\n', (t) => t.includes('upstream connect error'));
    assert.match(text, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
    assert.ok(log.some((e) => e.path === '/bad' && e.responseCode === 503));
  });

  it('hands a request it does not take (a chunked body) to the full path mid-connection, in order', async () => {
    const raw =
      'GET /one HTTP/1.1\r\nHost: p\r\n\r\n' +
      'POST /two HTTP/1.1\r\nHost: p\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n' +
      'GET /three HTTP/1.1\r\nHost: p\r\n\r\n';
    const { text } = await exchange(port, raw, (t) => t.includes('GET /three'));
    assert.equal(responses(text), 3);
    const bodies = text.split('HTTP/1.1 200 OK').slice(1).map((r) => r.slice(r.indexOf('\r\n\r\n') + 4));
    assert.deepEqual(bodies, ['GET /one ', 'POST /two abc', 'GET /three ']);
  });

  it('keeps pipelined requests and their bodies whole past the read they came in', async () => {
    const bodies = Array.from({ length: 6 }, (_, n) => String.fromCharCode(97 + n).repeat(1000 + n));
    const raw = bodies.map((b, n) => `POST /piped-${n} HTTP/1.1\r\nHost: p\r\nContent-Length: ${b.length}\r\n\r\n${b}`).join('');
    const { text } = await exchange(port, raw, (t) => t.includes('POST /piped-5 '));
    assert.equal(responses(text), 6);
    const got = text.split('HTTP/1.1 200 OK').slice(1).map((r) => r.slice(r.indexOf('\r\n\r\n') + 4));
    assert.deepEqual(got, bodies.map((b, n) => `POST /piped-${n} ${b}`));
  });

  if (transport === 'mTLS') {
    it('replaces a caller\'s x-forwarded-client-cert on the lane with the verified peer\'s', async () => {
      await exchange(port, 'GET /xfcc-mtls HTTP/1.1\r\nHost: p\r\nX-Forwarded-Client-Cert: URI=spiffe://evil\r\n\r\n', (t) => t.includes('GET /xfcc-mtls'));
      const seen = app.seen.find((r) => r.path === '/xfcc-mtls')!;
      const lines = seen.head.split('\r\n').filter((l) => /^x-forwarded-client-cert:/i.test(l));
      assert.equal(lines.length, 1, seen.head);
      assert.match(lines[0]!, /URI=spiffe:\/\/cluster\.local\/ns\/production\/sa\/checkout$/);
      assert.doesNotMatch(seen.head, /evil/);
    });
    return;
  }

  it('strips a caller\'s x-forwarded-client-cert on the lane (plaintext: none is set)', async () => {
    await exchange(port, 'GET /xfcc HTTP/1.1\r\nHost: p\r\nX-Forwarded-Client-Cert: URI=spiffe://evil\r\n\r\n', (t) => t.includes('GET /xfcc'));
    const seen = app.seen.find((r) => r.path === '/xfcc')!;
    assert.doesNotMatch(seen.head.toLowerCase(), /x-forwarded-client-cert/);
  });

  it('neither believes nor passes on a plaintext caller\'s x-meshward-peer-workload, on the lane and on the full path', async () => {
    const raw =
      'GET /peer-lane HTTP/1.1\r\nHost: p\r\nX-Meshward-Peer-Workload: spoofed\r\n\r\n' +
      'POST /peer-full HTTP/1.1\r\nHost: p\r\nX-Meshward-Peer-Workload: spoofed\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n';
    const { text } = await exchange(port, raw, (t) => t.includes('POST /peer-full'));
    assert.equal(responses(text), 2);
    for (const path of ['/peer-lane', '/peer-full']) {
      const seen = app.seen.find((r) => r.path === path)!;
      assert.doesNotMatch(seen.head.toLowerCase(), /x-meshward-peer-workload/, path);
    }
    const stats = (await get(proxy.status().adminPort, '/stats/prometheus')).body;
    assert.doesNotMatch(stats, /spoofed/);
    const plaintext = stats.split('\n').filter((l) => l.startsWith('istio_requests_total{') && l.includes('connection_security_policy="none"'));
    assert.ok(plaintext.length > 0, stats);
    for (const l of plaintext) assert.match(l, /source_workload="unknown"/);
  });
});
