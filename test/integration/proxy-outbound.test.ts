// The outbound router against real servers on 127.0.0.1: the "remote side"
// of each test is a guarded mTLS server (createMtlsServer) speaking HTTP/2,
// HTTP/1.1 or raw TCP, with certificates from test/support/pki.ts. The app
// side is node's own http, http2 and net clients dialling the router.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { Counter, Registry } from 'prom-client';
import type { ProxyConfig, Upstream } from '../../src/api/proxy-config.ts';
import { createMtlsServer, type MtlsMaterial } from '../../src/identity/tls-options.ts';
import { trustBundleFromPem, type TrustBundle } from '../../src/identity/trust-bundle.ts';
import { CONNECT_ERROR_BODY, OutboundRouter } from '../../src/proxy/outbound/index.ts';
import type { PolicyEngine } from '../../src/policy/engine.ts';
import { engineFrom } from '../support/engine.ts';
import { createRootCa, createLeaf, type TestLeaf } from '../support/pki.ts';

const TD = 'cluster.local';
const CLIENT_ID = `spiffe://${TD}/ns/bar/sa/sleep`;
const PAYMENT_ID = `spiffe://${TD}/ns/foo/sa/payment`;
const EVIL_ID = `spiffe://${TD}/ns/foo/sa/impostor`;
/**
 * An endpoint that is down: nothing listens on port 1 (tcpmux) here, and no
 * listener a test opens on port 0 can be given it, so every connection is
 * refused. (A port closed by the test itself could be handed to the next
 * listener another test opens.)
 */
const REFUSING_PORT = 1;

let bundle: TrustBundle;
let client: TestLeaf;
let rotated: TestLeaf;
let payment: TestLeaf;
let impostor: TestLeaf;

const material = (leaf: TestLeaf): MtlsMaterial => ({ key: leaf.key, chain: leaf.chain, bundle });

interface Seen {
  peer: string;
  serial: string;
  method: string;
  path: string;
  authority: string | undefined;
  httpVersion: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

type Handler = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse, seen: Seen) => void;

interface Remote {
  port: number;
  /** TLS connections accepted so far. */
  connections(): number;
  /**
   * TCP connections accepted so far, handshaken or not. A probe the client
   * closes as soon as its handshake is done may never reach secureConnection.
   */
  tcpConnections(): number;
  /** New full handshakes present `leaf`; established connections keep theirs. */
  present(leaf: TestLeaf): void;
  seen: Seen[];
  close(): Promise<void>;
}

const closers: (() => Promise<void>)[] = [];

/** A mesh server: mTLS with `leaf`, HTTP/2 (or HTTP/1.1 only), recording who called and what. */
async function meshHttpServer(leaf: TestLeaf, opts: { h1Only?: boolean; handler?: Handler } = {}): Promise<Remote> {
  const seen: Seen[] = [];
  const peers = new WeakMap<TLSSocket, { id: string; serial: string }>();
  const mtls = createMtlsServer(material(leaf), {
    ...(opts.h1Only ? { alpn: ['http/1.1'] } : {}),
    onAccepted: (socket, verdict) => peers.set(socket, { id: verdict.id.uri, serial: verdict.leaf.serialNumber }),
  });
  const handle = (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse, socket: TLSSocket): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const peer = peers.get(socket);
      const s: Seen = {
        peer: peer?.id ?? '',
        serial: peer?.serial ?? '',
        method: req.method ?? '',
        path: req.url ?? '',
        authority: 'authority' in req ? req.authority : req.headers.host,
        httpVersion: req.httpVersion,
        headers: req.headers as http.IncomingHttpHeaders,
        body: Buffer.concat(chunks).toString(),
      };
      seen.push(s);
      if (opts.handler) opts.handler(req, res, s);
      else (res as http.ServerResponse).end(`hello ${s.peer}`);
    });
  };
  // node hands the h2 compat API a proxy of the socket; keep the real one per session.
  const sessionSocket = new WeakMap<http2.Http2Session, TLSSocket>();
  let connecting: TLSSocket | undefined;
  const h2 = http2.createServer((req, res) => handle(req, res, sessionSocket.get(req.stream.session!)!));
  h2.on('session', (session) => sessionSocket.set(session, connecting!));
  const h1 = http.createServer((req, res) => handle(req, res, req.socket as TLSSocket));
  let connections = 0;
  let tcpConnections = 0;
  mtls.server.on('connection', () => tcpConnections++);
  mtls.server.on('secureConnection', (socket: TLSSocket) => {
    if (socket.destroyed) return;
    connections++;
    if (socket.alpnProtocol === 'h2') {
      connecting = socket;
      h2.emit('connection', socket);
    } else h1.emit('connection', socket);
  });
  mtls.server.listen(0, '127.0.0.1');
  await once(mtls.server, 'listening');
  const sockets = new Set<net.Socket>();
  mtls.server.on('secureConnection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  const close = async (): Promise<void> => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => mtls.server.close(() => r()));
  };
  closers.push(close);
  return {
    port: (mtls.server.address() as AddressInfo).port,
    connections: () => connections,
    tcpConnections: () => tcpConnections,
    present: (next) => {
      // Keeps the session ticket keys, as a server rotating its certificate may:
      // a client resuming a session would not see the new certificate.
      const keys = mtls.server.getTicketKeys();
      mtls.update(material(next));
      mtls.server.setTicketKeys(keys);
    },
    seen,
    close,
  };
}

/** An engine whose DestinationRule has HTTP/1.1 carried as HTTP/2 to the foo services (h2UpgradePolicy UPGRADE). */
function upgraded(): PolicyEngine {
  return engineFrom(`
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: upgrade, namespace: foo }
spec:
  host: "*.foo.svc.cluster.local"
  trafficPolicy: { connectionPool: { http: { h2UpgradePolicy: UPGRADE } } }
`);
}

function upstream(name: string, ports: number[], o: Partial<Upstream> = {}, identities: string[] = [PAYMENT_ID]): Upstream {
  return {
    name,
    host: `${name}.foo.svc.cluster.local`,
    servicePort: 8080,
    protocol: 'http',
    localPort: 0,
    endpoints: ports.map((port) => ({ host: '127.0.0.1', port, identities })),
    ...o,
  };
}

function proxyConfig(outbound: Upstream[], httpProxyPort?: number): ProxyConfig {
  return {
    version: 1,
    workload: { name: 'sleep', namespace: 'bar', serviceAccount: 'sleep', labels: { app: 'sleep' }, trustDomain: TD },
    identity: {},
    inbound: [],
    outbound,
    ...(httpProxyPort !== undefined ? { httpProxyPort } : {}),
    adminPort: 0,
    policyPaths: [],
  };
}

async function startRouter(outbound: Upstream[], o: { httpProxyPort?: number; engine?: PolicyEngine } = {}) {
  const registry = new Registry();
  const router = new OutboundRouter(proxyConfig(outbound, o.httpProxyPort), o.engine ?? engineFrom(''), material(client), {
    registry,
    connectTimeoutMs: 2000,
  });
  await router.start();
  closers.push(() => router.stop());
  return { router, registry, port: (name: string) => router.ports().upstreams.get(name)! };
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(port: number, o: { path?: string; method?: string; headers?: http.OutgoingHttpHeaders; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: o.path ?? '/', method: o.method ?? 'GET', headers: o.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

async function counter(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (metric === undefined) return 0;
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want))
    .reduce((sum, v) => sum + v.value, 0);
}

before(async () => {
  const root = await createRootCa({ trustDomain: TD });
  const b = trustBundleFromPem(TD, root.pem);
  if ('error' in b) throw new Error(b.error);
  bundle = b;
  client = await createLeaf(root, { uris: [CLIENT_ID] });
  rotated = await createLeaf(root, { uris: [CLIENT_ID] });
  payment = await createLeaf(root, { uris: [PAYMENT_ID] });
  impostor = await createLeaf(root, { uris: [EVIL_ID] });
});

after(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
});

describe('outbound router: HTTP over mTLS', () => {
  it('carries an app request on its local port as HTTP/2 over mTLS, presenting the workload SVID', async () => {
    const remote = await meshHttpServer(payment);
    const { port, registry } = await startRouter([upstream('payment', [remote.port])], { engine: upgraded() });
    const reply = await request(port('payment'), {
      method: 'POST',
      path: '/pay?id=7',
      headers: { 'content-type': 'text/plain', connection: 'keep-alive, x-hop', 'x-hop': 'drop me', 'x-keep': 'yes', 'x-meshward-peer-workload': 'spoofed' },
      body: 'amount=10',
    });
    assert.equal(reply.status, 200);
    assert.equal(reply.body, `hello ${CLIENT_ID}`);
    const seen = remote.seen[0]!;
    assert.equal(seen.peer, CLIENT_ID);
    assert.equal(seen.httpVersion, '2.0');
    assert.equal(seen.method, 'POST');
    assert.equal(seen.path, '/pay?id=7');
    assert.equal(seen.body, 'amount=10');
    assert.equal(seen.headers['x-keep'], 'yes');
    assert.equal(seen.headers['x-hop'], undefined, 'headers named in Connection are hop-by-hop');
    assert.equal(seen.headers['x-meshward-peer-workload'], 'sleep', 'the workload\'s name, as this proxy says it, not as the app wrote it');
    assert.equal(
      await counter(registry, 'istio_requests_total', { reporter: 'source', response_code: '200', connection_security_policy: 'mutual_tls' }),
      1,
    );
  });

  it('counts into an istio_requests_total registered earlier with other labels, keeping the labels it has', async () => {
    const remote = await meshHttpServer(payment);
    const registry = new Registry();
    new Counter({
      name: 'istio_requests_total',
      help: 'registered by the inbound side',
      labelNames: ['reporter', 'source_principal', 'destination_principal', 'response_code', 'connection_security_policy'],
      registers: [registry],
    });
    const router = new OutboundRouter(proxyConfig([upstream('payment', [remote.port])]), engineFrom(''), material(client), { registry });
    await router.start();
    closers.push(() => router.stop());
    assert.equal((await request(router.ports().upstreams.get('payment')!)).status, 200);
    const { values } = await registry.getSingleMetric('istio_requests_total')!.get();
    assert.deepEqual(values.map((v) => [v.labels, v.value]), [
      [{ reporter: 'source', source_principal: CLIENT_ID, destination_principal: PAYMENT_ID, response_code: '200', connection_security_policy: 'mutual_tls' }, 1],
    ]);
  });

  it('reuses one multiplexed connection for concurrent requests to an endpoint', async () => {
    const remote = await meshHttpServer(payment);
    const { port } = await startRouter([upstream('payment', [remote.port])], { engine: upgraded() });
    const replies = await Promise.all([1, 2, 3, 4].map((i) => request(port('payment'), { path: `/${i}` })));
    assert.deepEqual(replies.map((r) => r.status), [200, 200, 200, 200]);
    assert.equal(remote.seen.length, 4);
    assert.equal(remote.connections(), 1);
  });

  it('by default (h2UpgradePolicy unset) carries HTTP/1.1 as HTTP/1.1 over one kept-alive mTLS connection', async () => {
    const remote = await meshHttpServer(payment);
    const { port, registry } = await startRouter([upstream('payment', [remote.port])]);
    for (let i = 0; i < 10; i++) {
      const headers = { 'x-keep': 'yes', 'proxy-authorization': 'Basic c2VjcmV0', ...(i % 2 === 1 ? { 'x-meshward-peer-workload': 'spoofed' } : {}) };
      const reply = await request(port('payment'), { method: 'POST', path: `/pay/${i}?x=1`, headers, body: `n=${i}` });
      assert.equal(reply.status, 200, reply.body);
      assert.equal(reply.body, `hello ${CLIENT_ID}`);
    }
    assert.equal(remote.seen.length, 10);
    assert.ok(remote.seen.every((s, i) => s.httpVersion === '1.1' && s.peer === CLIENT_ID && s.path === `/pay/${i}?x=1` && s.body === `n=${i}`));
    assert.equal(remote.seen[0]!.headers['x-keep'], 'yes');
    assert.equal(remote.seen[0]!.headers['proxy-authorization'], undefined, 'hop-by-hop headers stay on the app\'s hop');
    // Set by the proxy on every request to a mesh peer; the app's own value never sent.
    assert.deepEqual(new Set(remote.seen.map((s) => s.headers['x-meshward-peer-workload'])), new Set(['sleep']));
    assert.equal(remote.connections(), 1, 'sequential requests share one connection');
    assert.equal(await counter(registry, 'istio_requests_total', { reporter: 'source', response_code: '200', connection_security_policy: 'mutual_tls' }), 10);
    // Concurrent requests each take a connection of their own.
    const replies = await Promise.all([1, 2, 3].map((i) => request(port('payment'), { path: `/c${i}` })));
    assert.deepEqual(replies.map((r) => r.status), [200, 200, 200]);
    assert.ok(remote.connections() >= 2 && remote.connections() <= 4, `${remote.connections()} connections`);
  });

  it('hands a request it does not take whole (a chunked body) to the full path, which delivers it', async () => {
    const remote = await meshHttpServer(payment);
    const { port } = await startRouter([upstream('payment', [remote.port])]);
    const reply = await new Promise<Reply>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: port('payment'), path: '/chunked', method: 'POST', agent: false, headers: { 'x-meshward-peer-workload': 'spoofed' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      });
      req.on('error', reject);
      req.write('part one, ');
      setTimeout(() => req.end('part two'), 20);
    });
    assert.equal(reply.status, 200);
    assert.equal(remote.seen.at(-1)!.body, 'part one, part two');
    assert.equal(remote.seen.at(-1)!.headers['x-meshward-peer-workload'], 'sleep');
  });

  // The app's connections read into one buffer the process shares
  // (src/proxy/http1/accepted-reads.ts): a body that waits for a new
  // connection, and requests read ahead of the one in flight, must be
  // copies, not views of bytes the next read overwrites.
  it('keeps what the app sent past the read it came in: bodies waiting for a dial, pipelined requests', async () => {
    const remote = await meshHttpServer(payment);
    const { port } = await startRouter([upstream('payment', [remote.port])]);
    const post = (path: string, body: string): string => `POST ${path} HTTP/1.1\r\nHost: payment\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const bodyOf = (tag: string): string => `${tag}:`.padEnd(900, tag);
    /** Writes `bytes` in one write and reads until `responses` responses have come back. */
    const exchange = async (bytes: string, responses: number): Promise<string> => {
      const socket = net.connect(port('payment'), '127.0.0.1');
      await once(socket, 'connect');
      socket.write(bytes);
      let text = '';
      for await (const chunk of socket) {
        text += (chunk as Buffer).toString('latin1');
        if (text.split(`hello ${CLIENT_ID}`).length - 1 === responses) break;
      }
      socket.destroy();
      return text;
    };
    // Eight first requests at once: each waits for a connection of its own to be dialed while the others' reads land.
    const tags = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    const replies = await Promise.all(tags.map((t) => exchange(post(`/dial/${t}`, bodyOf(t)), 1)));
    assert.ok(replies.every((r) => r.startsWith('HTTP/1.1 200 ')), replies.join('\n'));
    for (const t of tags) assert.equal(remote.seen.find((s) => s.path === `/dial/${t}`)?.body, bodyOf(t), `the body of /dial/${t}`);
    // Three requests in one write: the two behind a short GET wait while its response is read over their bytes' place in the buffer.
    const pipelined = await exchange(`GET /pipelined/first HTTP/1.1\r\nHost: payment\r\n\r\n${post('/pipelined/y', bodyOf('y'))}${post('/pipelined/z', bodyOf('z'))}`, 3);
    assert.equal(pipelined.split('HTTP/1.1 200 ').length - 1, 3, pipelined);
    assert.deepEqual(
      remote.seen.filter((s) => s.path.startsWith('/pipelined/')).map((s) => [s.path, s.body]),
      [['/pipelined/first', ''], ['/pipelined/y', bodyOf('y')], ['/pipelined/z', bodyOf('z')]],
    );
  });

  it('stops reading past 64 KiB read ahead and goes on: 40 pipelined 4 KB requests all arrive, whole and in order', async () => {
    const remote = await meshHttpServer(payment);
    const { port } = await startRouter([upstream('payment', [remote.port])]);
    const bodyOf = (i: number): string => `${i}:`.padEnd(4096, String.fromCharCode(97 + (i % 26)));
    const requests = Array.from({ length: 40 }, (_, i) => `POST /ahead/${i} HTTP/1.1\r\nHost: payment\r\nContent-Length: 4096\r\n\r\n${bodyOf(i)}`);
    const socket = net.connect(port('payment'), '127.0.0.1');
    await once(socket, 'connect');
    socket.write(requests.join(''));
    let text = '';
    for await (const chunk of socket) {
      text += (chunk as Buffer).toString('latin1');
      if (text.split(`hello ${CLIENT_ID}`).length - 1 === 40) break;
    }
    socket.destroy();
    assert.equal(text.split('HTTP/1.1 200 ').length - 1, 40);
    const seen = remote.seen.filter((s) => s.path.startsWith('/ahead/'));
    assert.deepEqual(seen.map((s) => s.path), requests.map((_, i) => `/ahead/${i}`));
    assert.ok(seen.every((s, i) => s.body === bodyOf(i)), 'every body as sent');
  });

  it('delivers a request handed to the full path whole while other app connections read into the shared buffer', async () => {
    const remote = await meshHttpServer(payment);
    const { port } = await startRouter([upstream('payment', [remote.port])]);
    const ask = (path: string, body: string): Promise<Reply> => request(port('payment'), { method: 'POST', path, body });
    assert.equal((await ask('/warm', 'w')).status, 200);
    // A chunked request goes to the full path with its first chunk, which waits there while a new connection is dialed for it.
    const handed = net.connect(port('payment'), '127.0.0.1');
    await once(handed, 'connect');
    const first = 'first chunk '.repeat(20);
    handed.write(`POST /handed HTTP/1.1\r\nHost: payment\r\nTransfer-Encoding: chunked\r\n\r\n${first.length.toString(16)}\r\n${first}\r\n`);
    // Meanwhile other app connections' requests and responses are read into the shared buffer.
    for (let i = 0; i < 6; i++) assert.equal((await ask(`/between/${i}`, 'z'.repeat(600))).status, 200);
    handed.write('4\r\nlast\r\n0\r\n\r\n');
    let text = '';
    for await (const chunk of handed) {
      text += (chunk as Buffer).toString('latin1');
      if (text.endsWith(`hello ${CLIENT_ID}`)) break;
    }
    handed.destroy();
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.equal(remote.seen.find((s) => s.path === '/handed')?.body, `${first}last`);
  });

  it('falls back to HTTP/1.1 when the server does not select h2', async () => {
    const remote = await meshHttpServer(payment, { h1Only: true });
    const { port } = await startRouter([upstream('payment', [remote.port])], { engine: upgraded() });
    const first = await request(port('payment'), { method: 'PUT', path: '/a', body: 'one' });
    const second = await request(port('payment'), { path: '/b' });
    assert.deepEqual([first.status, second.status], [200, 200]);
    assert.equal(remote.tcpConnections(), 2, 'the h2 probe, then one kept-alive HTTP/1.1 connection');
    assert.deepEqual(remote.seen.map((s) => [s.httpVersion, s.peer, s.path, s.body]), [
      ['1.1', CLIENT_ID, '/a', 'one'],
      ['1.1', CLIENT_ID, '/b', ''],
    ]);
  });

  // node 24 gives an https request that carries its own checkServerIdentity
  // a connection pool of its own: the agent must hold the TLS options.
  it('keeps one HTTP/1.1 connection alive for sequential requests to a server without h2', async () => {
    const remote = await meshHttpServer(payment, { h1Only: true });
    const { port, registry } = await startRouter([upstream('payment', [remote.port])], { engine: upgraded() });
    for (let i = 0; i < 20; i++) {
      // agent: false makes the app send Connection: close, which is its hop, not the upstream's.
      const reply = await request(port('payment'), { path: `/${i}` });
      assert.equal(reply.status, 200, reply.body);
    }
    assert.equal(remote.seen.length, 20);
    assert.ok(remote.seen.every((s) => s.httpVersion === '1.1' && s.peer === CLIENT_ID));
    assert.ok(remote.connections() <= 2, `${remote.connections()} TLS connections for 20 sequential requests`);
    assert.equal(remote.tcpConnections(), 2, 'the h2 probe and one kept-alive connection');
    assert.equal(await counter(registry, 'meshward_tls_handshakes_total', { result: 'success' }), remote.tcpConnections());
    assert.equal(
      await counter(registry, 'istio_requests_total', { response_code: '200', destination_principal: PAYMENT_ID, connection_security_policy: 'mutual_tls' }),
      20,
    );
  });

  it('checks secure naming on every new HTTP/1.1 connection, not only the first', async () => {
    const held: (() => void)[] = [];
    const handler: Handler = (_req, res, s) => {
      if (s.path === '/hold') held.push(() => (res as http.ServerResponse).end('late'));
      else (res as http.ServerResponse).end('ok');
    };
    const remote = await meshHttpServer(payment, { h1Only: true, handler });
    const { port, registry } = await startRouter([upstream('payment', [remote.port])]);
    assert.equal((await request(port('payment'))).status, 200);
    // The kept-alive connection is busy, so the next request needs a new one,
    // and the server now presents an identity the endpoint does not allow.
    const slow = request(port('payment'), { path: '/hold' });
    while (held.length === 0) await new Promise((r) => setTimeout(r, 5));
    remote.present(impostor);
    for (let i = 0; i < 2; i++) {
      const refused = await request(port('payment'), { method: 'POST', body: 'secret' });
      assert.equal(refused.status, 503);
      assert.match(refused.body, /secure naming/);
      assert.match(refused.body, /not-allowed/);
    }
    assert.equal(remote.seen.length, 2, 'nothing reaches a server that failed secure naming');
    assert.equal(await counter(registry, 'meshward_outbound_handshake_failures_total', { check: 'not-allowed' }), 2);
    held[0]!();
    assert.equal((await slow).body, 'late');
  });

  it('refuses a server whose SPIFFE ID is not one of the endpoint identities (secure naming) with 503', async () => {
    const remote = await meshHttpServer(impostor);
    const { port, registry } = await startRouter([upstream('payment', [remote.port])]);
    const reply = await request(port('payment'), { method: 'POST', body: 'secret' });
    assert.equal(reply.status, 503);
    assert.match(reply.body, new RegExp(CONNECT_ERROR_BODY));
    assert.match(reply.body, /secure naming/);
    assert.match(reply.body, /not-allowed/);
    assert.equal(remote.seen.length, 0, 'nothing reaches a server that failed secure naming');
    assert.equal(await counter(registry, 'meshward_outbound_handshake_failures_total', { check: 'not-allowed' }), 1);
    assert.equal(await counter(registry, 'istio_requests_total', { response_code: '503', response_flags: 'UF' }), 1);
  });

  it('answers 503 for an endpoint that is down, counts it, and keeps serving', async () => {
    const live = await meshHttpServer(payment);
    const { port, registry } = await startRouter([upstream('dead', [REFUSING_PORT]), upstream('live', [live.port])]);
    const reply = await request(port('dead'));
    assert.equal(reply.status, 503);
    assert.match(reply.body, /^upstream connect error or disconnect\/reset before headers/);
    assert.match(reply.body, /ECONNREFUSED/);
    assert.equal(await counter(registry, 'meshward_outbound_upstream_failures_total', { reason: 'connect-refused' }), 1);
    assert.equal((await request(port('live'))).status, 200);
    assert.equal((await request(port('dead'))).status, 503);
  });

  it('sends plaintext when a DestinationRule sets tls.mode DISABLE for the host', async () => {
    const seen: string[] = [];
    const plain = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.host} ${req.headers['x-meshward-peer-workload'] ?? '-'}`);
      res.end('plain');
    });
    plain.listen(0, '127.0.0.1');
    await once(plain, 'listening');
    closers.push(() => new Promise((r) => plain.close(() => r())));
    const engine = engineFrom(`
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: legacy, namespace: foo }
spec:
  host: legacy.foo.svc.cluster.local
  trafficPolicy:
    tls: { mode: DISABLE }
`);
    const { port, registry } = await startRouter([upstream('legacy', [(plain.address() as AddressInfo).port])], { engine });
    // The full path: the fast lane serves only ISTIO_MUTUAL upstreams.
    const reply = await request(port('legacy'), { path: '/old', headers: { 'x-meshward-peer-workload': 'spoofed' } });
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'plain');
    assert.equal(seen.length, 1);
    // Not a mesh proxy: the app's value is dropped and none is set.
    assert.match(seen[0]!, /^GET \/old \S+ -$/);
    assert.equal(await counter(registry, 'istio_requests_total', { connection_security_policy: 'none', response_code: '200' }), 1);
  });

  it('with tls.mode SIMPLE, verifies the server by bundle and host name and sends no client certificate', async () => {
    const root = await createRootCa({ trustDomain: TD });
    const web = await createLeaf(root, { uris: [], dnsNames: ['shop.foo.svc.cluster.local'] });
    const seen: (string | null)[] = [];
    const server = http2.createSecureServer({ key: web.keyPem, cert: web.chainPem, allowHTTP1: true, requestCert: true, rejectUnauthorized: false });
    server.on('request', (req, res) => {
      const cert = (req.socket as unknown as TLSSocket).getPeerCertificate();
      seen.push(cert !== null && Object.keys(cert).length > 0 ? 'client-cert' : null);
      res.end('simple');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    closers.push(() => new Promise((r) => server.close(() => r())));
    const engine = engineFrom(`
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: shop, namespace: foo }
spec:
  host: shop.foo.svc.cluster.local
  trafficPolicy:
    tls: { mode: SIMPLE }
`);
    const simpleBundle = trustBundleFromPem(TD, `${bundle.pem}${root.pem}`);
    if ('error' in simpleBundle) throw new Error(simpleBundle.error);
    const registry = new Registry();
    const router = new OutboundRouter(
      proxyConfig([upstream('shop', [(server.address() as AddressInfo).port]), upstream('other', [(server.address() as AddressInfo).port])]),
      engine,
      { key: client.key, chain: client.chain, bundle: simpleBundle },
      { registry },
    );
    await router.start();
    closers.push(() => router.stop());
    const reply = await request(router.ports().upstreams.get('shop')!);
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'simple');
    assert.deepEqual(seen, [null]);
    assert.equal(await counter(registry, 'istio_requests_total', { connection_security_policy: 'tls' }), 1);
    // The same server under ISTIO_MUTUAL has no SVID to show.
    const refused = await request(router.ports().upstreams.get('other')!);
    assert.equal(refused.status, 503);
  });

  it('after setMaterial, a new connection presents the new certificate', async () => {
    const remote = await meshHttpServer(payment);
    const { router, port } = await startRouter([upstream('payment', [remote.port])]);
    assert.equal((await request(port('payment'))).status, 200);
    assert.throws(() => router.setMaterial({ key: rotated.key, chain: client.chain, bundle }), /does not belong/);
    router.setMaterial(material(rotated));
    assert.equal((await request(port('payment'))).status, 200);
    assert.deepEqual(
      remote.seen.map((s) => s.serial),
      [client.cert.serialNumber, rotated.cert.serialNumber],
    );
    assert.equal(remote.connections(), 2);
  });
});

describe('outbound router: failures and changes', () => {
  it('answers 503 when the handshake does not finish within the connect timeout', async () => {
    // Accepts TCP, never answers the ClientHello.
    const silent = net.createServer((socket) => socket.on('error', () => undefined));
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const held = new Set<net.Socket>();
    silent.on('connection', (s) => held.add(s));
    closers.push(async () => {
      for (const s of held) s.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    });
    const registry = new Registry();
    const config = proxyConfig([upstream('slow', [(silent.address() as AddressInfo).port])]);
    const router = new OutboundRouter(config, engineFrom(''), material(client), { registry, connectTimeoutMs: 150 });
    await router.start();
    closers.push(() => router.stop());
    const reply = await request(router.ports().upstreams.get('slow')!);
    assert.equal(reply.status, 503);
    assert.match(reply.body, /connect-timeout/);
    assert.equal(await counter(registry, 'meshward_outbound_upstream_failures_total', { reason: 'connect-timeout' }), 1);
  });

  it('refuses tls.mode MUTUAL with a reason instead of dialling', async () => {
    const remote = await meshHttpServer(payment);
    const engine = engineFrom(`
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: external, namespace: foo }
spec:
  host: payment.foo.svc.cluster.local
  trafficPolicy:
    tls: { mode: MUTUAL, clientCertificate: /etc/certs/cert.pem, privateKey: /etc/certs/key.pem }
`);
    const { port, registry } = await startRouter([upstream('payment', [remote.port])], { engine });
    const reply = await request(port('payment'));
    assert.equal(reply.status, 503);
    assert.match(reply.body, /foo\/external sets tls\.mode MUTUAL/);
    assert.equal(remote.connections(), 0);
    assert.equal(await counter(registry, 'meshward_outbound_upstream_failures_total', { reason: 'tls-mode-unsupported' }), 1);
  });

  it('streams a large request body to the upstream and the response back', async () => {
    const handler: Handler = (_req, res, s) => (res as http.ServerResponse).end(s.body.toUpperCase());
    const remote = await meshHttpServer(payment, { handler });
    const { port } = await startRouter([upstream('payment', [remote.port])]);
    const body = 'abcdefgh'.repeat(256 * 1024);
    const reply = await request(port('payment'), { method: 'POST', body });
    assert.equal(reply.status, 200);
    assert.equal(reply.body.length, body.length);
    assert.equal(reply.body, body.toUpperCase());
  });

  it('update() moves an upstream to new endpoints and opens and closes listeners to match', async () => {
    const a = await meshHttpServer(payment);
    const b = await meshHttpServer(payment);
    const { router, port } = await startRouter([upstream('payment', [a.port]), upstream('old', [a.port])]);
    const paymentPort = port('payment');
    const oldPort = port('old');
    assert.equal((await request(paymentPort)).status, 200);
    await router.update(proxyConfig([upstream('payment', [b.port]), upstream('fresh', [b.port])]), engineFrom(''));
    assert.equal(router.ports().upstreams.get('payment'), paymentPort, 'an unchanged listener stays open');
    assert.equal(router.ports().upstreams.has('old'), false);
    assert.equal((await request(paymentPort)).status, 200);
    assert.equal((await request(port('fresh'))).status, 200);
    assert.deepEqual([a.seen.length, b.seen.length], [1, 2]);
    await assert.rejects(request(oldPort), /ECONNREFUSED/);
  });
});

describe('outbound router: load balancing', () => {
  it('spreads requests over two endpoints with ROUND_ROBIN', async () => {
    const a = await meshHttpServer(payment);
    const b = await meshHttpServer(payment);
    const { port } = await startRouter([upstream('payment', [a.port, b.port])]);
    for (let i = 0; i < 4; i++) assert.equal((await request(port('payment'))).status, 200);
    assert.deepEqual([a.seen.length, b.seen.length], [2, 2]);
  });

  it('prefers the idle endpoint with LEAST_REQUEST', async () => {
    const held: (() => void)[] = [];
    const handler: Handler = (_req, res, s) => {
      if (s.path === '/hold') held.push(() => (res as http.ServerResponse).end('late'));
      else (res as http.ServerResponse).end('ok');
    };
    const a = await meshHttpServer(payment, { handler });
    const b = await meshHttpServer(payment, { handler });
    const { router, port } = await startRouter([upstream('payment', [a.port, b.port], { loadBalancer: 'LEAST_REQUEST' })]);
    const slow = request(port('payment'), { path: '/hold' });
    while (held.length === 0) await new Promise((r) => setTimeout(r, 5));
    const busy = a.seen.length === 1 ? a : b;
    const idle = busy === a ? b : a;
    assert.deepEqual([...router.inFlight('payment')].sort(), [0, 1]);
    for (let i = 0; i < 3; i++) assert.equal((await request(port('payment'))).status, 200);
    assert.equal(idle.seen.length, 3);
    assert.equal(busy.seen.length, 1);
    held[0]!();
    assert.equal((await slow).body, 'late');
  });
});

describe('outbound router: HTTP proxy listener', () => {
  it('routes by absolute-form target or Host header, 502 for unknown hosts, 405 for CONNECT', async () => {
    const remote = await meshHttpServer(payment);
    const { router } = await startRouter([upstream('payment', [remote.port], { localPort: undefined })], { httpProxyPort: 0 });
    const proxyPort = router.ports().httpProxy!;
    const absolute = await request(proxyPort, { path: 'http://payment/charge?x=1' });
    assert.equal(absolute.status, 200);
    const byHost = await request(proxyPort, { path: '/refund', headers: { host: 'payment.foo.svc.cluster.local:8080' } });
    assert.equal(byHost.status, 200);
    assert.deepEqual(remote.seen.map((s) => [s.path, s.authority]), [
      ['/charge?x=1', 'payment'],
      ['/refund', 'payment.foo.svc.cluster.local:8080'],
    ]);
    const unknown = await request(proxyPort, { path: 'http://nowhere/' });
    assert.equal(unknown.status, 502);
    assert.match(unknown.body, /no upstream named nowhere/);

    const socket = net.connect(proxyPort, '127.0.0.1');
    socket.end('CONNECT payment:443 HTTP/1.1\r\nHost: payment:443\r\n\r\n');
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString()));
    await once(socket, 'close');
    assert.match(text, /^HTTP\/1\.1 405 /);
  });
});

describe('outbound router: TCP and gRPC', () => {
  it('pipes a TCP upstream over mTLS, passing on a half-close', async () => {
    const peers: string[] = [];
    const mtls = createMtlsServer(material(payment), { onAccepted: (_s, v) => peers.push(v.id.uri) });
    mtls.server.on('secureConnection', (socket: TLSSocket) => {
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString()));
      // Answers only after the client has finished sending: the reply must
      // still reach the app after its end was passed on.
      socket.on('end', () => socket.end(`${socket.alpnProtocol}:${[...text].reverse().join('')}`));
    });
    mtls.server.listen(0, '127.0.0.1');
    await once(mtls.server, 'listening');
    closers.push(() => new Promise((r) => mtls.server.close(() => r())));
    const { port, registry } = await startRouter([
      upstream('ledger', [(mtls.server.address() as AddressInfo).port], { protocol: 'tcp' }),
    ]);
    const app = net.connect({ port: port('ledger'), host: '127.0.0.1', allowHalfOpen: true });
    await once(app, 'connect');
    app.write('hello ');
    app.end('world');
    let reply = '';
    app.on('data', (d: Buffer) => (reply += d.toString()));
    await once(app, 'end');
    app.destroy();
    assert.equal(reply, 'istio:dlrow olleh');
    assert.deepEqual(peers, [CLIENT_ID]);
    assert.equal(await counter(registry, 'istio_tcp_connections_opened_total', { connection_security_policy: 'mutual_tls' }), 1);
  });

  it('resets the app connection when a TCP upstream is down, and counts it', async () => {
    const { port, registry } = await startRouter([upstream('ledger', [REFUSING_PORT], { protocol: 'tcp' })]);
    for (let i = 0; i < 2; i++) {
      const app = net.connect(port('ledger'), '127.0.0.1');
      const [err] = (await once(app, 'error')) as [NodeJS.ErrnoException];
      assert.equal(err.code, 'ECONNRESET');
    }
    assert.equal(await counter(registry, 'meshward_outbound_upstream_failures_total', { reason: 'connect-refused' }), 2);
    assert.equal(await counter(registry, 'istio_tcp_connections_opened_total', {}), 0);
  });

  it('forwards gRPC (h2c from the app) as h2 with trailers', async () => {
    const handler: Handler = (_req, res) => {
      const r = res as http2.Http2ServerResponse;
      r.setHeader('content-type', 'application/grpc');
      r.addTrailers({ 'grpc-status': '0', 'grpc-message': 'fine' });
      r.end(Buffer.from([0, 0, 0, 0, 0]));
    };
    const remote = await meshHttpServer(payment, { handler });
    const { port } = await startRouter([upstream('payment', [remote.port], { protocol: 'grpc' })]);
    const session = http2.connect(`http://127.0.0.1:${port('payment')}`);
    closers.push(async () => void session.destroy());
    const stream = session.request({ ':method': 'POST', ':path': '/pay.Payments/Charge', 'content-type': 'application/grpc', te: 'trailers', 'x-meshward-peer-workload': 'spoofed' });
    stream.end(Buffer.from([0, 0, 0, 0, 0]));
    const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
    const trailersSeen = once(stream, 'trailers') as Promise<[http2.IncomingHttpHeaders]>;
    stream.resume();
    const [trailers] = await trailersSeen;
    session.close();
    assert.equal(headers[':status'], 200);
    assert.equal(headers['content-type'], 'application/grpc');
    assert.equal(trailers['grpc-status'], '0');
    assert.equal(trailers['grpc-message'], 'fine');
    assert.equal(remote.seen[0]!.path, '/pay.Payments/Charge');
    assert.equal(remote.seen[0]!.peer, CLIENT_ID);
    assert.equal(remote.seen[0]!.headers['x-meshward-peer-workload'], 'sleep');
  });
});
