// Certificate rotation during continuous load loses no request. A real CA
// server issues both workloads' certificates to WorkloadAgents with a
// lifetime of a few seconds, so each renews about every second and a half;
// two WorkloadProxy objects follow their agents (`material: agent`). The
// order "app" (this test) calls the payment app through the order proxy's
// local port, over fresh connections and a keep-alive connection, and holds
// one response streaming across everything, while both certificates rotate
// at least twice and the CA rotates its root. Zero requests may fail; the
// admin API's /certs must show new serials, and new connections must present
// the new certificates in both directions.

import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import type { ProxyConfig } from '../../src/api/proxy-config.ts';
import { CaServer } from '../../src/control/ca-server/index.ts';
import { WorkloadAgent, type AgentSnapshot } from '../../src/identity/agent/index.ts';
import { CertificateAuthority } from '../../src/identity/ca/index.ts';
import { mtlsClientOptions } from '../../src/identity/tls-options.ts';
import { WorkloadProxy } from '../../src/proxy/proxy.ts';
import { get as httpGet, type Reply } from '../support/http.ts';
import { proxyConfig, upstreamTo } from '../support/proxy.ts';

const TD = 'cluster.local';
const NS = 'shop';
const id = (sa: string): string => `spiffe://${TD}/ns/${NS}/sa/${sa}`;
const ORDER = id('order-service');
const PAYMENT = id('payment-service');

let dir: string;
let ca: CertificateAuthority;
let caServer: CaServer;
const agents: WorkloadAgent[] = [];
const proxies: WorkloadProxy[] = [];
const closers: (() => void)[] = [];

async function agentFor(spiffeId: string): Promise<WorkloadAgent> {
  const agent = new WorkloadAgent({
    spiffeId,
    caAddress: caServer.address,
    trustBundlePem: caServer.trustBundlePem(),
    bootstrapToken: await caServer.mintBootstrapToken(spiffeId),
    // Renewed between 40% and 60% of three seconds (the CA rounds notAfter
    // down to the second): a rotation every 1–2 s per workload.
    ttlSeconds: 3,
    reissueSpreadMs: 200,
    backoff: { initialMs: 50, maxMs: 300 },
  });
  agent.on('error', () => undefined);
  agents.push(agent);
  return agent;
}

function config(sa: string, inbound: ProxyConfig['inbound'], outbound: ProxyConfig['outbound']): ProxyConfig {
  // STRICT: every connection is mTLS, so a failed handshake cannot pass as plaintext.
  return proxyConfig(sa, NS, inbound, outbound, { policyPaths: [join(dir, 'strict.yaml')] });
}

/** GET through `agent` (false: a fresh connection), given up after 3 s without a byte. */
const get = (port: number, path: string, agent: http.Agent | false): Promise<Reply> => httpGet(port, path, { agent, timeoutMs: 3000 });

function getJson(port: number, path: string): Promise<Record<string, unknown>> {
  return get(port, path, false).then((r) => JSON.parse(r.body) as Record<string, unknown>);
}

const leafHash = (s: AgentSnapshot): string => createHash('sha256').update(new X509Certificate(s.certChainPem).raw).digest('hex');

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'meshward-proxy-rotation-'));
  ca = await CertificateAuthority.open({ stateDir: join(dir, 'ca'), trustDomain: TD });
  caServer = await CaServer.start({ ca, log: () => {} });
  await writeFile(
    join(dir, 'strict.yaml'),
    'apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: { name: default, namespace: istio-system }\nspec: { mtls: { mode: STRICT } }\n',
  );
});

after(async () => {
  for (const close of closers) close();
  await Promise.all(proxies.map((p) => p.stop()));
  await Promise.all(agents.map((a) => a.stop()));
  await caServer?.stop();
  await ca?.close();
  await rm(dir, { recursive: true, force: true });
});

it('rotates both workloads\' certificates and the root under continuous load with zero failed requests', { timeout: 20_000 }, async (t) => {
  // The payment app: says which client certificate reached it (the proxy's
  // x-forwarded-client-cert Hash), and streams /stream for as long as asked.
  const callers = new Set<string>();
  const app = http.createServer((req, res) => {
    const hash = /Hash=([0-9a-f]+)/.exec(String(req.headers['x-forwarded-client-cert']))?.[1] ?? 'none';
    callers.add(hash);
    if (req.url?.startsWith('/stream')) {
      let n = 0;
      res.writeHead(200, { 'content-type': 'text/plain' });
      const timer = setInterval(() => {
        res.write(`tick ${n++}\n`);
        if (n === Number(new URL(req.url!, 'http://x').searchParams.get('ticks'))) {
          clearInterval(timer);
          res.end('done\n');
        }
      }, 50);
      res.on('close', () => clearInterval(timer));
      return;
    }
    res.end(`paid ${req.url} ${hash}`);
  });
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  closers.push(() => {
    app.closeAllConnections();
    app.close();
  });

  const [orderAgent, paymentAgent] = await Promise.all([agentFor(ORDER), agentFor(PAYMENT)]);
  const rotations = { order: 0, payment: 0 };
  orderAgent.on('rotated', () => rotations.order++);
  paymentAgent.on('rotated', () => rotations.payment++);
  const opts = { bindPort: () => 0, accessLog: () => undefined, drainMs: 500 };
  const payment = await WorkloadProxy.start(config('payment-service', [{ port: 8080, protocol: 'http', appPort: (app.address() as AddressInfo).port }], []), {
    ...opts,
    material: paymentAgent,
  });
  proxies.push(payment);
  const paymentPort = payment.status().inbound[0]!.boundPort;
  const order = await WorkloadProxy.start(
    config('order-service', [], [upstreamTo('payment-service', NS, paymentPort, [PAYMENT])]),
    { ...opts, material: orderAgent },
  );
  proxies.push(order);
  const local = order.status().outbound[0]!.boundPort;
  const firstCerts = { order: await getJson(order.status().adminPort, '/certs'), payment: await getJson(payment.status().adminPort, '/certs') };
  assert.equal(firstCerts.order['spiffeId'], ORDER);
  assert.equal(firstCerts.order['serial'], orderAgent.current()!.serial);
  assert.equal(firstCerts.payment['serial'], paymentAgent.current()!.serial);
  const firstRoot = orderAgent.current()!.certRoot;

  // Load: fresh connections, one keep-alive connection, and a response that streams throughout.
  const stats = { fresh: 0, kept: 0, failures: [] as string[] };
  let running = true;
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
  closers.push(() => keepAlive.destroy());
  const loop = async (name: 'fresh' | 'kept', agent: http.Agent | false): Promise<void> => {
    for (let i = 0; running; i++) {
      try {
        const reply = await get(local, `/pay/${name}-${i}`, agent);
        if (reply.status !== 200 || !reply.body.startsWith(`paid /pay/${name}-${i} `)) throw new Error(`${reply.status} ${reply.body.trim()}`);
        stats[name]++;
      } catch (err) {
        stats.failures.push(`${name}-${i}: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  const loops = [loop('fresh', false), loop('fresh', false), loop('kept', keepAlive)];
  const STREAM_TICKS = 90; // 4.5 s of a response held open on one upstream stream
  const stream = get(local, `/stream?ticks=${STREAM_TICKS}`, false);

  // At least two rotations of each certificate...
  const deadline = Date.now() + 10_000;
  while ((rotations.order < 2 || rotations.payment < 2) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(rotations.order >= 2 && rotations.payment >= 2, `both certificates rotated twice: ${JSON.stringify(rotations)}`);
  // ...then a root rotation, and traffic after it.
  const root = await caServer.rotateRoot({ recheckMs: 25 });
  await new Promise((r) => setTimeout(r, 300));
  running = false;
  await Promise.all(loops);
  const streamed = await stream;

  t.diagnostic(`requests: ${JSON.stringify(stats)}, rotations: ${JSON.stringify(rotations)}, client certificates seen: ${callers.size}`);
  assert.deepEqual(stats.failures, [], 'no request failed');
  assert.ok(stats.fresh > 50 && stats.kept > 20, `traffic ran throughout: ${JSON.stringify(stats)}`);
  assert.equal(streamed.status, 200);
  assert.equal(streamed.body.split('\n').filter((l) => l.startsWith('tick ')).length, STREAM_TICKS, 'the held response lost nothing');
  assert.match(streamed.body, /done\n$/);
  assert.ok(callers.size >= 3, `the payment app saw at least three order certificates: ${callers.size}`);

  // The root moved, and both agents hold certificates from the new one.
  assert.notEqual(root.newRoot, firstRoot);
  for (const agent of [orderAgent, paymentAgent]) assert.equal(agent.current()!.certRoot, root.newRoot);

  // /certs shows what each proxy serves now: a new serial, the agent's.
  for (const [proxy, agent, first] of [
    [order, orderAgent, firstCerts.order],
    [payment, paymentAgent, firstCerts.payment],
  ] as const) {
    // (Read around the call: a renewal may land in between.)
    const held = agent.current()!.serial;
    const now = await getJson(proxy.status().adminPort, '/certs');
    assert.notEqual(now['serial'], first['serial']);
    assert.ok([held, agent.current()!.serial].includes(String(now['serial'])), `${proxy.status().spiffeId} serves its agent's certificate`);
  }

  // New connections present the new certificates. Outbound: the payment app
  // sees the hash of the order agent's current leaf on a fresh request.
  const current = orderAgent.current()!;
  const reply = await get(local, '/pay/last', false);
  assert.equal(reply.status, 200);
  if (orderAgent.current() === current) assert.equal(reply.body.split(' ').at(-1), leafHash(current));
  // Inbound: a handshake with the payment proxy now shows its agent's current serial.
  const order2 = orderAgent.current()!;
  const heldSerial = paymentAgent.current()!.serial;
  const socket = connect({
    ...mtlsClientOptions({ key: order2.keyPem, chain: order2.certChainPem, bundle: order2.bundle }, { allowedIds: new Set([PAYMENT]) }),
    host: '127.0.0.1',
    port: paymentPort,
  });
  await once(socket, 'secureConnect');
  const served = (socket as TLSSocket).getPeerX509Certificate()!.serialNumber.toLowerCase();
  socket.destroy();
  assert.ok([heldSerial, paymentAgent.current()!.serial].includes(served), 'the payment proxy serves its agent\'s certificate');
  assert.notEqual(served, firstCerts.payment['serial']);
});
