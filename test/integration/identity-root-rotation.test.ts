// A full root rotation under continuous mTLS traffic must cost zero failed
// requests. A client workload calls a server workload every few
// milliseconds, over fresh connections (a full handshake each, with the
// material of that moment) and over reused ones (a connection held across
// the whole rotation, and a pooled one replaced every few dozen requests),
// while the CA server adds a root, activates it and retires the old one.
// Each workload swaps its TLS material when its agent says so, as a proxy
// does.

import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { CertificateAuthority } from '../../src/identity/ca/index.ts';
import { CaServer } from '../../src/control/ca-server/index.ts';
import { WorkloadAgent, type AgentSnapshot } from '../../src/identity/agent/index.ts';
import { createMtlsServer, mtlsClientOptions, verifiedPeer, type MtlsMaterial } from '../../src/identity/tls-options.ts';

const TD = 'cluster.local';
const CLIENT = `spiffe://${TD}/ns/shop/sa/checkout`;
const SERVER = `spiffe://${TD}/ns/shop/sa/inventory`;

let dir: string;
let ca: CertificateAuthority;
let caServer: CaServer;
const agents: WorkloadAgent[] = [];

const material = (s: AgentSnapshot): MtlsMaterial => ({ key: s.keyPem, chain: s.certChainPem, bundle: s.bundle });

async function agentFor(id: string): Promise<WorkloadAgent> {
  const agent = new WorkloadAgent({
    spiffeId: id,
    caAddress: caServer.address,
    trustBundlePem: caServer.trustBundlePem(),
    bootstrapToken: await caServer.mintBootstrapToken(id),
    // Long enough that no regular renewal interferes; re-issue under the
    // new root within 300 ms of its activation.
    ttlSeconds: 600,
    reissueSpreadMs: 300,
    backoff: { initialMs: 50, maxMs: 300 },
  });
  agents.push(agent);
  return agent;
}

/** One request: a line out, a line back. Resolves with the reply; rejects on any failure. */
function request(socket: TLSSocket, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.includes('\n')) done(null);
    };
    const onError = (err: Error) => done(err);
    const onClose = () => done(new Error('connection closed'));
    const timer = setTimeout(() => done(new Error('timeout')), 2000);
    function done(err: Error | null) {
      clearTimeout(timer);
      socket.off('data', onData).off('error', onError).off('close', onClose);
      if (err) reject(err);
      else resolve(got.trim());
    }
    socket.on('data', onData).on('error', onError).on('close', onClose);
    socket.write(`${line}\n`);
  });
}

async function dial(port: number, options: ConnectionOptions): Promise<TLSSocket> {
  const socket = connect({ ...options, host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  });
  return socket;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'meshward-rotation-'));
  ca = await CertificateAuthority.open({ stateDir: join(dir, 'ca'), trustDomain: TD });
  caServer = await CaServer.start({ ca, log: () => {} });
});

after(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await caServer?.stop();
  await ca?.close();
  await rm(dir, { recursive: true, force: true });
});

it('rotates the root under continuous mTLS traffic with zero failed requests', { timeout: 20_000 }, async () => {
  const [clientAgent, serverAgent] = await Promise.all([agentFor(CLIENT), agentFor(SERVER)]);
  const [c0, s0] = await Promise.all([clientAgent.start(), serverAgent.start()]);
  const oldRoot = s0.certRoot;
  assert.equal(c0.certRoot, oldRoot);

  // The server workload: answers `<client ID> <line>`; swaps material on every agent event.
  const mtls = createMtlsServer(material(s0), { alpn: ['istio'] });
  const swapServer = (s: AgentSnapshot) => mtls.update(material(s));
  serverAgent.on('rotated', swapServer);
  serverAgent.on('bundle', swapServer);
  mtls.server.on('secureConnection', (socket: TLSSocket) => {
    const peer = verifiedPeer(socket)?.id.uri ?? '?';
    let buf = '';
    socket.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        socket.write(`${peer} ${buf.slice(0, i)}\n`);
        buf = buf.slice(i + 1);
      }
    });
    socket.on('error', () => {});
  });
  const refused: string[] = [];
  mtls.server.on('tlsClientError', (err) => refused.push(err.message));
  mtls.server.listen(0, '127.0.0.1');
  await once(mtls.server, 'listening');
  const port = (mtls.server.address() as { port: number }).port;

  // The client workload: options rebuilt whenever its agent changes material.
  const clientOptions = (s: AgentSnapshot) => mtlsClientOptions(material(s), { allowedIds: new Set([SERVER]), alpn: ['istio'] });
  let options = clientOptions(c0);
  clientAgent.on('rotated', (s) => (options = clientOptions(s)));
  clientAgent.on('bundle', (s) => (options = clientOptions(s)));

  const stats = { fresh: 0, reused: 0, pooled: 0, failures: [] as string[] };
  let running = true;
  const expectReply = (reply: string, line: string) => {
    if (reply !== `${CLIENT} ${line}`) throw new Error(`unexpected reply "${reply}"`);
  };

  const held = await dial(port, options); // held across the whole rotation
  const loops = [
    (async () => {
      for (let i = 0; running; i++) {
        try {
          const s = await dial(port, options);
          expectReply(await request(s, `fresh-${i}`), `fresh-${i}`);
          s.destroy();
          stats.fresh++;
        } catch (err) {
          stats.failures.push(`fresh-${i}: ${(err as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 3));
      }
    })(),
    (async () => {
      for (let i = 0; running; i++) {
        try {
          expectReply(await request(held, `held-${i}`), `held-${i}`);
          stats.reused++;
        } catch (err) {
          stats.failures.push(`held-${i}: ${(err as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 3));
      }
    })(),
    (async () => {
      let pooled: TLSSocket | undefined;
      for (let i = 0; running; i++) {
        try {
          if (!pooled || i % 40 === 0) {
            pooled?.destroy();
            pooled = await dial(port, options);
          }
          expectReply(await request(pooled, `pooled-${i}`), `pooled-${i}`);
          stats.pooled++;
        } catch (err) {
          stats.failures.push(`pooled-${i}: ${(err as Error).message}`);
          pooled = undefined;
        }
        await new Promise((r) => setTimeout(r, 3));
      }
      pooled?.destroy();
    })(),
  ];

  await new Promise((r) => setTimeout(r, 150)); // traffic before
  const result = await caServer.rotateRoot({ recheckMs: 25 });
  await new Promise((r) => setTimeout(r, 150)); // traffic after
  running = false;
  await Promise.all(loops);
  held.destroy();
  mtls.server.close();

  assert.deepEqual(stats.failures, [], 'no request failed');
  assert.deepEqual(refused, [], 'the server refused no handshake');
  assert.ok(stats.fresh > 20 && stats.reused > 20 && stats.pooled > 20, `traffic ran throughout: ${JSON.stringify(stats)}`);
  const rotation = caServer.status().rotation;
  assert.deepEqual(
    rotation.history.map((h) => h.step),
    ['distributing', 'reissuing', 'retiring', 'complete'],
  );
  assert.deepEqual(rotation.waitingFor, []);

  const newRoot = result.newRoot;
  assert.notEqual(newRoot, oldRoot);
  assert.deepEqual(result.oldRoots, [oldRoot]);
  for (const agent of [clientAgent, serverAgent]) {
    const s = agent.current()!;
    assert.equal(s.certRoot, newRoot, `${s.spiffeId} holds a certificate from the new root`);
    assert.deepEqual(s.bundle.fingerprints, [newRoot], `${s.spiffeId}'s bundle no longer has the old root`);
    assert.equal(s.signingRoot, newRoot);
  }
  assert.equal(caServer.status().servingCertificate.root, newRoot, 'the CA server serves from the new root too');
  assert.deepEqual(
    ca.roots().map((r) => [r.fingerprint, r.state]),
    [
      [oldRoot, 'retired'],
      [newRoot, 'active'],
    ],
  );
});
