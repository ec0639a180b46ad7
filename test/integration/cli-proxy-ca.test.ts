// `meshward proxy --config` with `identity.ca`, as an operator runs it: a
// real `meshward ca serve` on a temporary state directory, a bootstrap token
// from its admin endpoint, and the proxy as a process that gets its SVID from
// that CA. A client whose certificate comes from the same CA (through a
// second token) calls the app through the proxy over mTLS; SIGTERM stops
// both processes with exit 0.

import { after, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as http from 'node:http';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { WorkloadAgent } from '../../src/identity/agent/index.ts';
import { mtlsClientOptions } from '../../src/identity/tls-options.ts';
import { MESHWARD_BIN, runMeshward } from '../support/cli.ts';

const TD = 'cluster.local';
const PAYMENT = `spiffe://${TD}/ns/production/sa/payment-service`;
const ORDER = `spiffe://${TD}/ns/production/sa/order-service`;
const POLICIES = resolve(import.meta.dirname, '../../examples/authz/policies/payment.yaml');

interface ServerFile {
  grpcAddress: string;
  adminAddress: string;
  adminToken: string;
}

interface Grant {
  token: string;
  caAddress: string;
  trustBundlePem: string;
}

const children: ChildProcess[] = [];
const cleanups: (() => Promise<unknown>)[] = [];

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const clean of cleanups.reverse()) await clean().catch(() => undefined);
});

/** A port that was free a moment ago (the proxy binds the ports its config names). */
async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Starts `meshward <args>` and resolves once its stream `from` has shown `ready`; rejects if it exits first. */
function start(args: string[], from: 'stdout' | 'stderr', ready: string): { child: ChildProcess; output: () => string; started: Promise<void> } {
  const child = spawn(process.execPath, [MESHWARD_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let text = '';
  let other = '';
  const started = new Promise<void>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`meshward ${args[0]} not ready in 8 s:\n${text}${other}`)), 8000);
    child[from]!.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes(ready)) {
        clearTimeout(timer);
        ok();
      }
    });
    child[from === 'stdout' ? 'stderr' : 'stdout']!.on('data', (d: Buffer) => (other += d.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`meshward ${args[0]} exited with ${code}:\n${text}${other}`));
    });
  });
  started.catch(() => undefined);
  return { child, output: () => text + other, started };
}

async function exitOf(child: ChildProcess): Promise<[number | null, NodeJS.Signals | null]> {
  if (child.exitCode !== null || child.signalCode !== null) return [child.exitCode, child.signalCode];
  return (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
}

async function bootstrapToken(file: ServerFile, spiffeId: string): Promise<Grant> {
  const res = await fetch(`http://${file.adminAddress}/bootstrap-token`, {
    method: 'POST',
    headers: { authorization: `Bearer ${file.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ spiffeId }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as Grant;
}

it('gets its SVID from a running CA server with a bootstrap token, serves mTLS with it, and exits 0 on SIGTERM', { timeout: 20_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mw-cli-proxy-ca-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const stateDir = join(dir, 'state');
  const init = await runMeshward(['ca', 'init', '--state-dir', stateDir, '--trust-domain', TD]);
  assert.equal(init.code, 0, init.stderr);
  const serve = start(['ca', 'serve', '--state-dir', stateDir, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'], 'stdout', '\n');
  await serve.started;
  const file = JSON.parse(await readFile(join(stateDir, 'server.json'), 'utf8')) as ServerFile;

  // The app, behind the proxy's inbound port.
  const seen: { url: string; xfcc: string | undefined }[] = [];
  const app = http.createServer((req, res) => {
    seen.push({ url: req.url ?? '', xfcc: req.headers['x-forwarded-client-cert'] as string | undefined });
    req.resume();
    req.on('end', () => res.end(`app:${req.url}`));
  });
  app.listen(0, '127.0.0.1');
  await once(app, 'listening');
  cleanups.push(async () => {
    app.closeAllConnections();
    await new Promise((r) => app.close(r));
  });

  const grant = await bootstrapToken(file, PAYMENT);
  assert.equal(grant.caAddress, file.grpcAddress);
  await writeFile(join(dir, 'bundle.pem'), grant.trustBundlePem);
  const adminPort = await freePort();
  const inboundPort = await freePort();
  await writeFile(
    join(dir, 'proxy.json'),
    JSON.stringify({
      version: 1,
      workload: { name: 'payment-service', namespace: 'production', serviceAccount: 'payment-service', labels: { app: 'payment-service' }, trustDomain: TD },
      // bundleFile is relative: read next to the config.
      identity: { ca: { address: grant.caAddress, bundleFile: 'bundle.pem', bootstrapToken: grant.token } },
      inbound: [{ port: inboundPort, protocol: 'http', appPort: (app.address() as net.AddressInfo).port }],
      outbound: [],
      adminPort,
      policyPaths: [POLICIES],
    }),
  );
  const proxy = start(['proxy', '--config', join(dir, 'proxy.json')], 'stderr', '"proxy-started"');
  let client: WorkloadAgent | undefined;
  try {
    await proxy.started;

    const certs = (await (await fetch(`http://127.0.0.1:${adminPort}/certs`)).json()) as { spiffeId: string; serial: string };
    assert.equal(certs.spiffeId, PAYMENT);
    const caStatus = (await (await fetch(`http://${file.adminAddress}/status`)).json()) as { server: { agents: { spiffeId: string }[] } };
    assert.deepEqual(caStatus.server.agents.map((a) => a.spiffeId), [PAYMENT], 'the proxy is the CA server’s agent');

    // A client with its own certificate from the same CA.
    const order = await bootstrapToken(file, ORDER);
    client = new WorkloadAgent({ spiffeId: ORDER, caAddress: order.caAddress, trustBundlePem: order.trustBundlePem, bootstrapToken: order.token });
    client.on('error', () => undefined);
    const svid = await client.start();
    const options = mtlsClientOptions(
      { key: svid.keyPem, chain: svid.certChainPem, bundle: svid.bundle },
      { allowedIds: new Set([PAYMENT]), alpn: ['http/1.1'] },
    );
    let peerSerial = '';
    const reply = await new Promise<{ status: number; body: string }>((ok, fail) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: inboundPort,
          method: 'POST',
          path: '/api/v1/payments/7',
          headers: { host: 'payment-service' },
          createConnection: () => {
            const socket = tls.connect({ ...options, host: '127.0.0.1', port: inboundPort });
            socket.once('secureConnect', () => (peerSerial = socket.getPeerX509Certificate()!.serialNumber.toLowerCase()));
            return socket;
          },
        },
        (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => ok({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', fail);
      req.end('charge');
    });
    assert.equal(reply.status, 200, reply.body);
    assert.equal(reply.body, 'app:/api/v1/payments/7');
    // The client checked the chain against the CA's bundle and the ID by secure naming; this is the SVID /certs reports.
    assert.equal(peerSerial, certs.serial);
    assert.equal(seen.length, 1);
    assert.match(seen[0]!.xfcc ?? '', new RegExp(`URI=${ORDER}$`));
  } finally {
    proxy.child.kill('SIGTERM');
    await client?.stop();
  }
  const [code, signal] = await exitOf(proxy.child);
  assert.deepEqual([code, signal], [0, null], proxy.output());
  assert.match(proxy.output(), /"proxy-stopping"/);
  assert.equal(proxy.output().includes(grant.token), false, 'the bootstrap token is never logged');
  assert.doesNotMatch(proxy.output(), /PRIVATE KEY/);

  serve.child.kill('SIGTERM');
  assert.deepEqual(await exitOf(serve.child), [0, null], serve.output());
});
