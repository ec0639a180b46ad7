// The product end to end: `meshward up` on the shop demo (a copy of its mesh
// file and policies in a temporary directory, the apps from examples/shop),
// then every outcome the demo promises, with real requests: an order through
// the gateway with an admin's token, reporting → payments denied with 403,
// plaintext to payment's mesh port refused at TLS, the gateway refusing no
// token, a forged one and a user's POST. Then the control plane's job: a
// policy file changed on disk is enforced within a second; an invalid one is
// reported and the old policy stays; with the control plane killed traffic
// flows and authz holds, and the proxies reconnect when it is back; an app
// killed yields 503 and recovers. Ctrl-C (SIGINT) stops it all and nothing
// is left running. The demo's ports and mesh addresses are moved (ports
// +10000, 127.0.10.x → 127.0.110.x), so the tests run while the demo does.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freshBundleEntry } from '../../src/lib/bundle-manifest.ts';

const REPO = resolve(import.meta.dirname, '../..');
const SHOP = join(REPO, 'examples/shop');
const BIN = join(REPO, 'bin/meshward.js');
/** Where the demo's port `p` is in this copy of it. */
const moved = (p: number): number => p + 10_000;
/** The demo's mesh address 127.0.10.x, in this copy 127.0.110.x. */
const PAYMENT_ADDRESS = '127.0.110.3';

/**
 * The demo's files with their ports and mesh addresses moved: every
 * 127.0.0.1 port the demo uses (8443, 150xx, 180xx, 190xx) and every
 * 127.0.10.x address. The mesh ports themselves (8080, 9090) stay, on the
 * moved addresses.
 */
function relocate(text: string): string {
  return text.replace(/\b(8443|150\d\d|180\d\d|190\d\d)\b/g, (p) => String(moved(Number(p)))).replaceAll('127.0.10.', '127.0.110.');
}

/** The demo's mesh file and policies, moved, in `dir`; the apps run from the repository (they import its dependencies). */
function copyDemo(dir: string): string {
  cpSync(join(SHOP, 'policies'), join(dir, 'policies'), { recursive: true });
  const jwtPolicy = join(dir, 'policies', 'gateway-jwt.yaml');
  writeFileSync(jwtPolicy, relocate(readFileSync(jwtPolicy, 'utf8')));
  const meshFile = join(dir, 'mesh.yaml');
  writeFileSync(meshFile, relocate(readFileSync(join(SHOP, 'mesh.yaml'), 'utf8')).replaceAll(' apps/', ` ${SHOP}/apps/`));
  return meshFile;
}

const GATEWAY = `https://localhost:${moved(8443)}`;
const REPORTING_TO_PAYMENT = `http://127.0.0.1:${moved(19041)}`;
const ORDER_TO_PAYMENT = `http://127.0.0.1:${moved(19011)}`;
const ISSUER = `http://127.0.0.1:${moved(18000)}`;

interface Reply {
  readonly status: number;
  readonly body: string;
  readonly headers: Record<string, string | string[] | undefined>;
}

let dir: string;
let stateDir: string;
let meshFile: string;
let up: ChildProcess;
let output = '';
let gatewayCa: Buffer;

function call(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  const u = new URL(url);
  const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((done, fail) => {
    const req = send(
      u,
      { method: init.method ?? 'GET', headers: init.headers ?? {}, agent: false, ...(u.protocol === 'https:' ? { ca: gatewayCa } : {}), timeout: 5000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => done({ status: res.statusCode ?? 0, body, headers: res.headers }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', fail);
    req.end(init.body);
  });
}

async function token(role: 'admin' | 'user'): Promise<string> {
  return (await call(`${ISSUER}/token?sub=alice&role=${role}`)).body.trim();
}

async function placeOrder(auth: string): Promise<Reply> {
  return call(`${GATEWAY}/api/v1/orders`, {
    method: 'POST',
    headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/json' },
    body: JSON.stringify({ item: 'book', amount: 12 }),
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n--- meshward up output ---\n${output.slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function meshward(...args: string[]): string {
  return execFileSync(process.execPath, [BIN, ...args, '--state-dir', stateDir], { cwd: dir, encoding: 'utf8' });
}

interface StatusJson {
  controlPlane: { running: boolean; connectedProxies: number; invalidPolicy: string[] | null; policyVersion: number | null };
  workloads: { name: string; spiffeId: string; ready: boolean; appPort: number; adminPort: number; inbound: { port: number; mtlsMode: string }[]; upstreams: { service: string; localPort: number }[] }[];
  gateway: { address: string; ready: boolean; caFile: string };
}

function status(): StatusJson {
  return JSON.parse(meshward('status', '-f', meshFile, '-o', 'json')) as StatusJson;
}

/** Pids of processes whose command line mentions `needle`. */
function pidsMatching(needle: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', needle], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Resolves when a plaintext HTTP request to host:port gets no HTTP answer (the connection is reset or closed). */
function plaintextOutcome(host: string, port: number): Promise<'refused' | string> {
  return new Promise((done) => {
    const s = connect(port, host, () => s.write(`GET /api/v1/payments/1 HTTP/1.1\r\nhost: ${host}\r\n\r\n`));
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('error', () => done(got === '' ? 'refused' : got));
    s.on('close', () => done(got === '' ? 'refused' : got));
    s.setTimeout(5000, () => s.destroy());
  });
}

const ALLOW_REPORTING = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: reporting-may-read-summary
  namespace: production
spec:
  selector:
    matchLabels:
      app: payment-service
  action: ALLOW
  rules:
    - from:
        - source:
            principals: ["cluster.local/ns/production/sa/reporting-service"]
      to:
        - operation:
            methods: ["GET"]
            paths: ["/api/v1/payments/summary"]
`;

describe('meshward up: the shop demo end to end', { timeout: 180_000 }, () => {
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshward-up-'));
    stateDir = join(dir, 'state');
    meshFile = copyDemo(dir);
    up = spawn(process.execPath, [BIN, 'up', '-f', meshFile, '--state-dir', stateDir], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    up.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    await until('the mesh to be up', async () => (output.includes('The mesh is up') ? true : undefined), 90_000);
    gatewayCa = readFileSync(join(stateDir, 'gateway/ca.crt'));
  });

  after(async () => {
    if (up.exitCode === null) {
      up.kill('SIGKILL');
      for (const pid of pidsMatching(dir)) process.kill(pid, 'SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints the status table and the tour', () => {
    assert.match(output, /production\/payment-service\s+spiffe:\/\/cluster\.local\/ns\/production\/sa\/payment-service\s+127\.0\.110\.3:8080 STRICT, 127\.0\.110\.3:9090 PERMISSIVE/);
    assert.match(output, /1\. A call that succeeds/);
    assert.ok(output.includes(`curl -i http://127.0.0.1:${moved(19041)}/api/v1/payments/summary`), output);
  });

  it('starts its proxies on the bundle when the bundle is built from the sources as they are, else on the launcher', () => {
    const entry = freshBundleEntry();
    const proxies = pidsMatching(stateDir)
      .map((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'))
      .filter((argv) => argv.includes('node-proxy') || argv.includes('gateway'));
    assert.ok(proxies.length >= 1, JSON.stringify(proxies));
    for (const argv of proxies) assert.ok(argv.includes(entry ?? BIN), argv.join(' '));
    assert.match(output, new RegExp(`proxy-started .*runningFrom=${entry === null ? 'source' : 'bundle'}`));
    assert.doesNotMatch(output, new RegExp(`proxy-started .*runningFrom=${entry === null ? 'bundle' : 'source'}`));
  });

  it('status -o json lists every workload with its identity, ports, mTLS modes and readiness', () => {
    const s = status();
    assert.equal(s.controlPlane.running, true);
    assert.equal(s.controlPlane.connectedProxies, 5);
    assert.deepEqual(s.workloads.map((w) => w.name).sort(), ['billing-service', 'order-service', 'payment-service', 'reporting-service']);
    const payment = s.workloads.find((w) => w.name === 'payment-service')!;
    assert.equal(payment.spiffeId, 'spiffe://cluster.local/ns/production/sa/payment-service');
    assert.equal(payment.appPort, moved(18083));
    assert.equal(payment.adminPort, moved(15003));
    assert.deepEqual(payment.inbound.map((i) => `${i.port}:${i.mtlsMode}`), ['8080:STRICT', '9090:PERMISSIVE']);
    assert.ok(s.workloads.every((w) => w.ready));
    assert.deepEqual(s.workloads.find((w) => w.name === 'reporting-service')!.upstreams, [{ service: 'payment-service', port: 8080, localPort: moved(19041) }]);
    assert.equal(s.gateway.address, GATEWAY.replace('localhost', '127.0.0.1'));
    assert.equal(s.gateway.ready, true);
  });

  it('an admin places an order through the gateway: order → payment and billing → payment over mTLS', async () => {
    const r = await placeOrder(await token('admin'));
    assert.equal(r.status, 201, r.body);
    const order = JSON.parse(r.body) as { payment: { caller: string }; caller: string };
    assert.equal(order.caller, 'spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway');
    assert.equal(order.payment.caller, 'spiffe://cluster.local/ns/production/sa/order-service');
  });

  it('reporting-service is denied payments with 403, counted as Istio counts it', async () => {
    const r = await call(`${REPORTING_TO_PAYMENT}/api/v1/payments/summary`);
    assert.equal(r.status, 403);
    assert.equal(r.body, 'RBAC: access denied');
    // The series the alert on istio_requests_total{response_code="403"} and Istio's service dashboard read.
    const metrics = (await call(`http://127.0.0.1:${moved(15003)}/stats/prometheus`)).body;
    const denied = metrics.split('\n').find((l) => l.startsWith('istio_requests_total{') && l.includes('response_code="403"'));
    assert.ok(denied, metrics);
    assert.match(denied, /reporter="destination"/);
    assert.match(denied, /source_principal="spiffe:\/\/cluster\.local\/ns\/production\/sa\/reporting-service"/);
    assert.match(denied, /destination_service="payment-service\.production\.svc\.cluster\.local"/);
    assert.match(denied, /destination_service_name="payment-service"/);
    assert.match(denied, /connection_security_policy="mutual_tls"/);
  });

  it('plaintext straight to payment-service\'s mesh port is refused at TLS; the PERMISSIVE metrics port answers', async () => {
    assert.equal(await plaintextOutcome(PAYMENT_ADDRESS, 8080), 'refused');
    const metrics = await call(`http://${PAYMENT_ADDRESS}:9090/metrics`);
    assert.equal(metrics.status, 200);
  });

  it('the gateway refuses no token (403), a forged token (401) and a user\'s POST (403); a user may GET', async () => {
    assert.equal((await call(`${GATEWAY}/api/v1/orders`)).status, 403);
    const forged = await call(`${GATEWAY}/api/v1/orders`, { headers: { authorization: 'Bearer not.a.jwt' } });
    assert.equal(forged.status, 401);
    assert.match(String(forged.headers['www-authenticate']), /^Bearer/);
    const user = await token('user');
    assert.equal((await placeOrder(user)).status, 403);
    assert.equal((await call(`${GATEWAY}/api/v1/orders`, { headers: { authorization: `Bearer ${user}` } })).status, 200);
  });

  it('a policy file changed on disk is enforced within a second, and removed again', async (t) => {
    const file = join(dir, 'policies/reporting-may-read-summary.yaml');
    const t0 = performance.now();
    writeFileSync(file, ALLOW_REPORTING);
    await until('the new policy to be enforced', async () => ((await call(`${REPORTING_TO_PAYMENT}/api/v1/payments/summary`)).status === 200 ? true : undefined), 10_000);
    const ms = performance.now() - t0;
    t.diagnostic(`policy change → enforced by the proxy: ${ms.toFixed(0)} ms`);
    assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
    unlinkSync(file);
    await until('the policy removal to be enforced', async () => ((await call(`${REPORTING_TO_PAYMENT}/api/v1/payments/summary`)).status === 403 ? true : undefined), 10_000);
  });

  it('an invalid policy is reported and the last good policy stays in force', async () => {
    const file = join(dir, 'policies/broken.yaml');
    writeFileSync(file, ALLOW_REPORTING.replace('action: ALLOW', 'action: MAYBE'));
    const s = await until('the error to be reported', async () => {
      const st = status();
      return st.controlPlane.invalidPolicy !== null ? st : undefined;
    });
    assert.match(s.controlPlane.invalidPolicy!.join('\n'), /broken\.yaml.*action/s);
    // Nothing of the broken file applies; what was allowed still is.
    assert.equal((await call(`${REPORTING_TO_PAYMENT}/api/v1/payments/summary`)).status, 403);
    assert.equal((await placeOrder(await token('admin'))).status, 201);
    const metrics = await call(`http://${readServer().adminAddress}/metrics`);
    assert.match(metrics.body, /^meshward_config_invalid 1$/m);
    unlinkSync(file);
    await until('the error to clear', async () => (status().controlPlane.invalidPolicy === null ? true : undefined));
  });

  it('with the control plane killed traffic flows and authz holds; the proxies reconnect when it is back', async () => {
    const before = readServer();
    process.kill(before.pid, 'SIGKILL');
    // At once, before the supervisor restarts it.
    assert.equal((await placeOrder(await token('admin'))).status, 201);
    assert.equal((await call(`${REPORTING_TO_PAYMENT}/api/v1/payments/summary`)).status, 403);
    await until('the control plane to be back with every proxy connected', async () => {
      const s = status();
      return s.controlPlane.running && s.controlPlane.connectedProxies === 5 && readServer().pid !== before.pid ? true : undefined;
    }, 30_000);
    assert.equal((await placeOrder(await token('admin'))).status, 201);
  });

  it('an app that dies yields 503, and recovers when it is restarted', async () => {
    const [pid] = pidsMatching(`${SHOP}/apps/payment-service.ts`);
    assert.ok(pid !== undefined);
    process.kill(pid, 'SIGKILL');
    await until('a 503 from payment-service\'s proxy', async () => ((await call(`${ORDER_TO_PAYMENT}/api/v1/payments/1`)).status === 503 ? true : undefined), 5000);
    // The app answers again (404: this new instance has no payment 1).
    await until('payment-service to answer again', async () => ((await call(`${ORDER_TO_PAYMENT}/api/v1/payments/1`)).status < 500 ? true : undefined), 20_000);
    assert.equal((await placeOrder(await token('admin'))).status, 201);
  });

  it('SIGINT stops everything and leaves no process behind', async () => {
    up.kill('SIGINT');
    const [code] = (await once(up, 'exit')) as [number | null];
    assert.equal(code, 0);
    assert.deepEqual(pidsMatching(dir), []);
    assert.deepEqual(pidsMatching(`${SHOP}/apps/`), []);
    assert.equal(await plaintextOutcome(PAYMENT_ADDRESS, 9090), 'refused');
  });
});

function readServer(): { pid: number; adminAddress: string } {
  return JSON.parse(readFileSync(join(stateDir, 'ca/server.json'), 'utf8')) as { pid: number; adminAddress: string };
}

describe('meshward up --sidecars: one proxy process per workload', { timeout: 120_000 }, () => {
  it('runs the demo with a process per proxy, and stops them all', async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshward-sidecars-'));
    stateDir = join(dir, 'state');
    output = '';
    try {
      meshFile = copyDemo(dir);
      up = spawn(process.execPath, [BIN, 'up', '--sidecars', '-f', meshFile, '--state-dir', stateDir], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      up.stdout!.on('data', (d: Buffer) => (output += d.toString()));
      up.stderr!.on('data', (d: Buffer) => (output += d.toString()));
      await until('the mesh to be up', async () => (output.includes('The mesh is up') ? true : undefined), 90_000);
      gatewayCa = readFileSync(join(stateDir, 'gateway/ca.crt'));
      // Four workload proxies and the gateway, each its own process.
      const proxyPids = [...pidsMatching(`node-proxy -f ${meshFile}`), ...pidsMatching(`gateway -f ${meshFile}`)];
      assert.equal(proxyPids.length, 5);
      // Started with the proxy flags, once each: up gives them, so the launcher does not relaunch with them again.
      for (const pid of proxyPids) {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
        assert.equal(argv.filter((a) => a === '--min-semi-space-size=8').length, 1, argv.join(' '));
        assert.equal(argv.filter((a) => a === '--no-memory-reducer').length, 1, argv.join(' '));
        assert.equal(argv.filter((a) => a === '--v8-pool-size=2').length, 1, argv.join(' '));
      }
      assert.equal((await placeOrder(await token('admin'))).status, 201);
      assert.equal((await call(`${REPORTING_TO_PAYMENT}/api/v1/payments/summary`)).status, 403);
      up.kill('SIGINT');
      const [code] = (await once(up, 'exit')) as [number | null];
      assert.equal(code, 0);
      assert.deepEqual(pidsMatching(dir), []);
    } finally {
      if (up.exitCode === null) up.kill('SIGKILL');
      for (const pid of pidsMatching(dir)) process.kill(pid, 'SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
