// The control plane in process, with real proxies and raw stream clients
// against it: each proxy receives its own workload's config and only the
// policy that concerns it; a proxy cannot ask for another workload's config;
// a NACK is visible in status and metrics; a change to one workload's policy
// is pushed to that workload alone; a workload not in the mesh file can
// register itself, but only as the identity its certificate proves.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadMeshFile, type MeshFile } from '../../src/api/mesh-file.ts';
import { ControlPlane } from '../../src/control/control-plane.ts';
import { WorkloadAgent } from '../../src/identity/agent/index.ts';
import { ConfigClient } from '../../src/proxy/config-client.ts';
import { ManagedProxy } from '../../src/proxy/managed-proxy.ts';
import { Client, credentials, status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { CONFIG_STREAM_PATH, configService, type ConfigRequest, type ConfigResponse } from '../../src/api/config-messages.ts';
import { checkCaIdentity } from '../../src/identity/agent/ca-client.ts';
import { freePort, get } from '../support/http.ts';
import { until } from '../support/wait.ts';

const TD = 'cluster.local';
const id = (sa: string): string => `spiffe://${TD}/ns/demo/sa/${sa}`;

const PA = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: istio-system }
spec: { mtls: { mode: STRICT } }
`;
const policyFor = (app: string, caller: string): string => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ${app}-policy, namespace: demo }
spec:
  selector: { matchLabels: { app: ${app} } }
  action: ALLOW
  rules:
    - from: [{ source: { principals: ["cluster.local/ns/demo/sa/${caller}"] } }]
`;

describe('control plane: config stream', { timeout: 60_000 }, () => {
  let dir: string;
  let mesh: MeshFile;
  let cp: ControlPlane;
  let app: Server;
  const proxies: ManagedProxy[] = [];
  const extras: { stop(): Promise<void> }[] = [];
  let ports: { appB: number; adminA: number; adminB: number; local: number; mesh: number };

  async function agentFor(sa: string): Promise<WorkloadAgent> {
    const agent = new WorkloadAgent({
      spiffeId: id(sa),
      caAddress: cp.caServer.address,
      trustBundlePem: cp.caServer.trustBundlePem(),
      bootstrapToken: await cp.caServer.mintBootstrapToken(id(sa)),
    });
    agent.on('error', () => {});
    await agent.start();
    extras.push(agent);
    return agent;
  }

  function client(agent: WorkloadAgent, workload: string, apply: (c: unknown) => { ok: true } | { ok: false; error: string }, extra: { registration?: unknown; log?: (e: string, f: Readonly<Record<string, unknown>>) => void } = {}): ConfigClient {
    const c = new ConfigClient({
      address: cp.caServer.address,
      controlPlaneIdentity: cp.caServer.identity,
      workload,
      credentials: () => {
        const s = agent.current()!;
        return { keyPem: s.keyPem, certChainPem: s.certChainPem, bundlePem: s.bundlePem };
      },
      apply: async (config) => apply(config),
      backoff: { initialMs: 50, maxMs: 200 },
      ...(extra.registration !== undefined ? { registration: extra.registration } : {}),
      log: (_level, event, fields) => extra.log?.(event, fields),
    });
    c.start();
    extras.push(c);
    return c;
  }

  const metric = async (name: string): Promise<number> => {
    const text = await cp.registry.metrics();
    const line = text.split('\n').find((l) => l.startsWith(name));
    return line === undefined ? 0 : Number(line.split(' ').pop());
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshward-cp-'));
    mkdirSync(join(dir, 'policies'));
    writeFileSync(join(dir, 'policies/mesh.yaml'), PA);
    writeFileSync(join(dir, 'policies/b.yaml'), policyFor('b', 'a'));
    writeFileSync(join(dir, 'policies/a.yaml'), policyFor('a', 'nobody'));
    app = createServer((req, res) => res.end(`b saw ${String(req.headers['x-forwarded-client-cert']).split('URI=')[1]}`));
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
    ports = { appB: (app.address() as AddressInfo).port, adminA: await freePort(), adminB: await freePort(), local: await freePort(), mesh: await freePort() };
    writeFileSync(
      join(dir, 'mesh.yaml'),
      `policies: policies
controlPlane: { listen: 127.0.0.1:${await freePort()}, admin: 127.0.0.1:${await freePort()} }
workloads:
  - { name: a, namespace: demo, serviceAccount: a, labels: { app: a }, address: 127.0.21.1, adminPort: ${ports.adminA},
      ports: [{ port: ${ports.mesh}, protocol: http, appPort: ${await freePort()} }],
      upstreams: [{ service: b, port: ${ports.mesh}, localPort: ${ports.local} }] }
  - { name: b, namespace: demo, serviceAccount: b, labels: { app: b }, address: 127.0.21.2, adminPort: ${ports.adminB},
      ports: [{ port: ${ports.mesh}, protocol: http, appPort: ${ports.appB} }] }
`,
    );
    const loaded = loadMeshFile(join(dir, 'mesh.yaml'));
    assert.ok('mesh' in loaded, JSON.stringify(loaded));
    mesh = loaded.mesh;
    cp = await ControlPlane.start({ mesh, stateDir: join(dir, 'state'), debounceMs: 20 });
    for (const w of ['a', 'b']) {
      proxies.push(
        await ManagedProxy.start({
          workload: `demo/${w}`,
          spiffeId: id(w),
          trustDomain: TD,
          controlPlane: cp.caServer.address,
          trustBundlePem: cp.caServer.trustBundlePem(),
          bootstrapToken: await cp.caServer.mintBootstrapToken(id(w)),
          accessLog: () => {},
        }),
      );
    }
  });

  after(async () => {
    for (const e of extras) await e.stop();
    for (const p of proxies) await p.stop();
    await cp.stop();
    app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('each proxy runs its own workload\'s config, with only the policy that concerns it', async () => {
    const res = await get(ports.local, '/hello');
    assert.equal(res.status, 200);
    assert.equal(res.body, `b saw ${id('a')}`);
    const dump = JSON.parse((await get(ports.adminB, '/config_dump')).body) as { workload: { name: string }; resources: { file: string }[] };
    assert.equal(dump.workload.name, 'b');
    assert.deepEqual(dump.resources.map((r) => r.file.split('/').pop()).sort(), ['b.yaml', 'mesh.yaml']);
    const st = cp.status();
    assert.equal(st.proxies.length, 2);
    assert.ok(st.proxies.every((p) => p.ackedVersion === p.pushedVersion && p.nack === null));
  });

  it('a policy change for one workload is pushed to that workload alone', async () => {
    const before = await metric('pilot_xds_pushes');
    const versionA = proxies[0]!.status().configVersion;
    writeFileSync(join(dir, 'policies/b.yaml'), policyFor('b', 'nobody'));
    await until('b to deny a', async () => ((await get(ports.local, '/hello')).status === 403 ? true : undefined));
    assert.equal((await metric('pilot_xds_pushes')) - before, 1);
    assert.equal(proxies[0]!.status().configVersion, versionA);
    assert.ok((await metric('pilot_proxy_convergence_time_count')) >= 1);
    writeFileSync(join(dir, 'policies/b.yaml'), policyFor('b', 'a'));
    await until('b to allow a again', async () => ((await get(ports.local, '/hello')).status === 200 ? true : undefined));
  });

  it('refuses a proxy that asks for another workload\'s config', async () => {
    const agentA = await agentFor('a');
    const reasons: string[] = [];
    let applied = 0;
    client(agentA, 'demo/b', () => ((applied += 1), { ok: true }), { log: (event, f) => event === 'config-stream-retry' && reasons.push(String(f['reason'])) });
    await until('a refusal', () => (reasons.length > 0 ? true : undefined));
    assert.equal(applied, 0);
    assert.match(reasons[0]!, /PERMISSION_DENIED|is not demo\/b/);
  });

  it('refuses a stream without a client certificate: a bootstrap token buys a certificate, not a config', async () => {
    const channel = credentials.createSsl(Buffer.from(cp.caServer.trustBundlePem()), null, null, {
      checkServerIdentity: (_host, cert) => checkCaIdentity(cert, cp.caServer.identity),
    });
    const raw = new Client(cp.caServer.address, channel, { 'grpc.ssl_target_name_override': 'meshward-ca' });
    try {
      const method = configService().Stream!;
      const call = raw.makeBidiStreamRequest<ConfigRequest, ConfigResponse>(CONFIG_STREAM_PATH, method.requestSerialize, method.responseDeserialize);
      let pushes = 0;
      call.on('data', () => (pushes += 1));
      const ended = new Promise<ServiceError>((resolve) => call.on('error', resolve));
      call.write({ workload: 'demo/b', node_id: 'x', version_info: '', response_nonce: '', error_detail: '', registration_json: '' });
      const err = await ended;
      assert.equal(err.code, grpcStatus.UNAUTHENTICATED);
      assert.equal(pushes, 0);
    } finally {
      raw.close();
    }
  });

  it('a NACK is visible in status and metrics, and the next ACK clears it', async () => {
    const agentB = await agentFor('b');
    let refuse = true;
    const before = await metric('pilot_total_xds_rejects');
    client(agentB, 'demo/b', () => (refuse ? { ok: false, error: 'port 1234 is in use' } : { ok: true }));
    const nacked = await until('the NACK', () => cp.status().proxies.find((p) => p.nack !== null));
    assert.equal(nacked.nack!.error, 'port 1234 is in use');
    assert.equal((await metric('pilot_total_xds_rejects')) - before, 1);
    // As in xDS, a refused config is not sent again; the next change is.
    refuse = false;
    writeFileSync(join(dir, 'policies/b.yaml'), policyFor('b', 'a').replace('"cluster.local/ns/demo/sa/a"', '"cluster.local/ns/demo/sa/a", "cluster.local/ns/demo/sa/x"'));
    await until('the NACK to clear', () => (cp.status().proxies.filter((p) => p.workload === 'demo/b').every((p) => p.nack === null) ? true : undefined));
    writeFileSync(join(dir, 'policies/b.yaml'), policyFor('b', 'a'));
  });

  it('a workload not in the mesh file registers itself, but only as its own identity', async () => {
    const agentC = await agentFor('c');
    const registration = { name: 'c', namespace: 'demo', serviceAccount: 'c', labels: { app: 'c' }, address: '127.0.21.3', adminPort: await freePort(), ports: [{ port: ports.mesh, protocol: 'http', appPort: await freePort() }] };
    let config: { workload: { name: string } } | undefined;
    client(agentC, 'demo/c', (c) => ((config = c as typeof config), { ok: true }), { registration });
    await until('c\'s config', () => config);
    assert.equal(config!.workload.name, 'c');
    assert.ok(cp.status().registry.some((w) => w.workload === 'demo/c' && w.dynamic));

    // c's certificate cannot register d.
    const reasons: string[] = [];
    client(agentC, 'demo/d', () => ({ ok: true }), { registration: { ...registration, name: 'd', serviceAccount: 'd' }, log: (event, f) => event === 'config-stream-retry' && reasons.push(String(f['reason'])) });
    await until('the refusal', () => (reasons.length > 0 ? true : undefined));
    assert.match(reasons[0]!, /may not register demo\/d/);
    assert.ok(!cp.status().registry.some((w) => w.workload === 'demo/d'));
  });
});
