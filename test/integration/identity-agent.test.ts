// The workload agent against a real CA server: identities it obtains work
// for mTLS between workloads, it renews at about half the lifetime, a
// server that swaps its TLS context on 'rotated' keeps its open connections
// and presents the new certificate to new ones, and it rides out a CA
// outage on the certificate it has. Certificates live 4 seconds here so
// rotation happens within a test.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { Registry } from 'prom-client';
import { CertificateAuthority } from '../../src/identity/ca/index.ts';
import { BootstrapTokens, CaServer } from '../../src/control/ca-server/index.ts';
import { WorkloadAgent, type AgentSnapshot, type WorkloadAgentOptions } from '../../src/identity/agent/index.ts';
import { createMtlsServer, mtlsClientOptions, verifiedPeer, type MtlsMaterial } from '../../src/identity/tls-options.ts';
import { verifyTlsPeer } from '../../src/identity/verify-svid.ts';

const TD = 'cluster.local';
const WEB = `spiffe://${TD}/ns/shop/sa/web`;
const API = `spiffe://${TD}/ns/shop/sa/api`;

let dir: string;
let ca: CertificateAuthority;
let server: CaServer;
const agents: WorkloadAgent[] = [];
const quiet = () => {};

const material = (s: AgentSnapshot): MtlsMaterial => ({ key: s.keyPem, chain: s.certChainPem, bundle: s.bundle });

async function agentFor(id: string, extra: Partial<WorkloadAgentOptions> = {}): Promise<WorkloadAgent> {
  const agent = new WorkloadAgent({
    spiffeId: id,
    caAddress: server.address,
    trustBundlePem: server.trustBundlePem(),
    bootstrapToken: await server.mintBootstrapToken(id),
    backoff: { initialMs: 50, maxMs: 300 },
    ...extra,
  });
  agents.push(agent);
  return agent;
}

/** A TLS server answering each line with `<client SPIFFE ID> <line>`. */
function echoServer(s: AgentSnapshot) {
  const mtls = createMtlsServer(material(s), { alpn: ['istio'] });
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
  return mtls;
}

async function listen(mtls: ReturnType<typeof echoServer>): Promise<number> {
  mtls.server.listen(0, '127.0.0.1');
  await once(mtls.server, 'listening');
  return (mtls.server.address() as { port: number }).port;
}

async function dial(port: number, s: AgentSnapshot, expect: string): Promise<TLSSocket> {
  const socket = connect({ ...mtlsClientOptions(material(s), { allowedIds: new Set([expect]), alpn: ['istio'] }), host: '127.0.0.1', port });
  await once(socket, 'secureConnect');
  return socket;
}

async function ask(socket: TLSSocket, line: string): Promise<string> {
  socket.write(`${line}\n`);
  let got = '';
  while (!got.includes('\n')) {
    const [d] = (await once(socket, 'data')) as [Buffer];
    got += d.toString();
  }
  return got.trim();
}

/** The next `event`; unlike events.once, an 'error' in between does not reject it. */
function next<T extends unknown[]>(agent: WorkloadAgent, event: 'rotated' | 'bundle'): Promise<T> {
  return new Promise((resolve) => agent.once(event, (...args: unknown[]) => resolve(args as T)));
}

async function metric(registry: Registry, name: string): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return NaN;
  const { values } = await m.get();
  return values.reduce((sum, v) => sum + v.value, 0);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'meshward-agent-'));
  ca = await CertificateAuthority.open({ stateDir: join(dir, 'ca'), trustDomain: TD });
  server = await CaServer.start({ ca, log: quiet });
});

after(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await server?.stop();
  await ca?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('workload agent', () => {
  it('gives two workloads identities that complete an mTLS handshake, each seeing the other', async () => {
    const [web, api] = await Promise.all([agentFor(WEB), agentFor(API)]);
    const [w, a] = await Promise.all([web.start(), api.start()]);
    assert.equal(w.spiffeId, WEB);
    assert.equal(a.spiffeId, API);
    assert.ok(w.keyPem.includes('BEGIN PRIVATE KEY'), 'the key is held in memory as PKCS#8');

    const mtls = echoServer(a);
    const port = await listen(mtls);
    try {
      const socket = await dial(port, w, API);
      const seen = verifyTlsPeer(socket, w.bundle);
      assert.ok(seen.ok && seen.id.uri === API, 'the client sees the server as api');
      assert.equal(await ask(socket, 'hello'), `${WEB} hello`, 'the server sees the client as web');
      socket.destroy();
    } finally {
      mtls.server.close();
    }
  });

  it('rotates at about half the lifetime; a server swapping its context keeps open connections and serves the new certificate', async () => {
    const registry = new Registry();
    const api = await agentFor(API, { ttlSeconds: 4, registry });
    const web = await agentFor(WEB);
    const [first, w] = await Promise.all([api.start(), web.start()]);
    const lifetime = first.notAfter.getTime() - first.issuedAt.getTime();
    // X.509 times are whole seconds (up to 1 s lost) and issuedAt is when the agent got the certificate, after signing.
    assert.ok(lifetime > 2500 && lifetime <= 4000, `lifetime ${lifetime} ms`);
    assert.equal(await metric(registry, 'meshward_agent_cert_expiry_timestamp_seconds'), Math.floor(first.notAfter.getTime() / 1000));
    const left = await metric(registry, 'istio_agent_cert_expiry_seconds');
    assert.ok(left > 2 && left <= 4, `istio_agent_cert_expiry_seconds ${left}`);

    const mtls = echoServer(first);
    api.on('rotated', (s) => mtls.update(material(s)));
    const port = await listen(mtls);
    try {
      const kept = await dial(port, w, API);
      assert.equal(await ask(kept, 'before'), `${WEB} before`);

      const [rotated, reason] = await next<[AgentSnapshot, string]>(api, 'rotated');
      const at = (Date.now() - first.issuedAt.getTime()) / lifetime;
      assert.equal(reason, 'scheduled');
      assert.ok(at >= 0.38 && at <= 0.7, `rotated at ${(at * 100).toFixed(0)}% of the lifetime`);
      assert.notEqual(rotated.serial, first.serial);
      assert.notEqual(rotated.keyPem, first.keyPem, 'a new key for every certificate');

      assert.equal(await ask(kept, 'after'), `${WEB} after`, 'the connection opened before the rotation still works');
      const fresh = await dial(port, w, API);
      assert.equal(fresh.getPeerX509Certificate()!.serialNumber.toLowerCase(), rotated.serial, 'new connections get the new certificate');
      assert.equal(kept.getPeerX509Certificate()!.serialNumber.toLowerCase(), first.serial);
      assert.equal(await ask(fresh, 'new'), `${WEB} new`);
      kept.destroy();
      fresh.destroy();
      assert.equal(await metric(registry, 'istio_agent_num_outgoing_requests'), 2);
    } finally {
      mtls.server.close();
    }
  });

  it('keeps its certificate while the CA is down, backs off, and re-issues when the CA returns on the same port', async () => {
    const registry = new Registry();
    const agent = await agentFor(WEB, { ttlSeconds: 8, registry, backoff: { initialMs: 100, maxMs: 400, multiplier: 2, jitter: 0.2 } });
    const errors: Error[] = [];
    agent.on('error', (e) => errors.push(e));
    let expired = false;
    agent.on('expired', () => (expired = true));
    const first = await agent.start();
    const port = server.port;

    await server.stop();
    const downAt = Date.now();
    // Past the renewal point (40-60% of the lifetime) and a few retries.
    const lifetime = first.notAfter.getTime() - first.issuedAt.getTime();
    await new Promise((r) => setTimeout(r, first.issuedAt.getTime() + 0.6 * lifetime + 500 - Date.now()));
    assert.equal(agent.current()!.serial, first.serial, 'still serving the certificate it has');
    assert.ok(agent.current()!.notAfter.getTime() > Date.now(), 'which is still valid');
    const failed = await metric(registry, 'istio_agent_num_failed_outgoing_requests');
    const downMs = Date.now() - downAt;
    assert.ok(failed >= 2, `retried (${failed} failed CSR calls)`);
    assert.ok(failed <= 12, `but backed off: ${failed} failed CSR calls in ${downMs} ms`);
    assert.ok(errors.length >= failed, "each failure was reported on 'error'");

    const rotation = next<[AgentSnapshot, string]>(agent, 'rotated');
    server = await CaServer.start({ ca, port, log: quiet });
    const [renewed, reason] = await rotation;
    assert.equal(reason, 'retry');
    assert.notEqual(renewed.serial, first.serial);
    assert.ok(renewed.notAfter.getTime() > first.notAfter.getTime());
    assert.ok(Date.now() < first.notAfter.getTime(), 'renewed before the old certificate expired');
    assert.equal(expired, false, 'it never ran on an expired certificate');
  });

  it('waits for a CA that is not up yet, keeping its bootstrap token until it buys a certificate', async () => {
    // The control plane's token minter outlives a restart of its CA server.
    const tokens = new BootstrapTokens({ audience: `spiffe://${TD}/ns/meshward-system/sa/meshward-control` });
    const port = server.port;
    await server.stop();
    const agent = new WorkloadAgent({
      spiffeId: API,
      caAddress: `127.0.0.1:${port}`,
      trustBundlePem: ca.trustBundlePem(),
      bootstrapToken: await tokens.mint(API),
      backoff: { initialMs: 50, maxMs: 200 },
    });
    agents.push(agent);
    const errors: Error[] = [];
    agent.on('error', (e) => errors.push(e));
    const started = agent.start();
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(agent.current(), undefined);
    assert.ok(errors.length >= 2, `${errors.length} attempts while the CA was down`);
    server = await CaServer.start({ ca, port, bootstrapTokens: tokens, log: quiet });
    const first = await started;
    assert.equal(first.spiffeId, API);
  });
});
