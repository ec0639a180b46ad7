// `meshward ca serve` as an operator runs it: a real server process on a
// temporary state directory, a workload agent (in this process) that gets
// its first certificate with a bootstrap token from the admin endpoint, an
// online root rotation started by `meshward ca rotate-root` and followed
// with `meshward ca status -o json`, then SIGTERM.

import { it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { access, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { WorkloadAgent } from '../../src/identity/agent/index.ts';

const BIN = resolve(import.meta.dirname, '../../bin/meshward.js');
const TD = 'example.org';
const WORKLOAD = `spiffe://${TD}/ns/shop/sa/checkout`;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function meshward(args: string[]): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, stdout, stderr }));
  });
}

interface ServerFile {
  pid: number;
  grpcAddress: string;
  adminAddress: string;
  startedAt: string;
  adminToken: string;
}

/** The parts of `meshward ca status -o json` this test reads. */
interface StatusJson {
  rotationPhase: string;
  roots: { fingerprint: string; state: string }[];
  server: {
    pid: number;
    rotation: { step: string; newRoot: string | null; history: { step: string }[] };
    agents: { spiffeId: string; certRoot: string | null }[];
  } | null;
}

let dir: string;
let stateDir: string;
let serve: ChildProcess | undefined;
let serveStderr = '';
let agent: WorkloadAgent | undefined;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Starts `meshward ca serve` on port 0 for both listeners; resolves with its one line of output. */
async function startServe(): Promise<string> {
  const child = spawn(process.execPath, [BIN, 'ca', 'serve', '--state-dir', stateDir, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  serve = child;
  child.stderr!.on('data', (d: Buffer) => (serveStderr += d.toString()));
  let out = '';
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`ca serve printed nothing in 8 s; stderr:\n${serveStderr}`)), 8000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) {
        clearTimeout(timer);
        resolvePromise(out.trim());
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`ca serve exited with ${code}; stderr:\n${serveStderr}`));
    });
  });
}

async function admin(file: ServerFile, method: string, path: string, opts: { token?: string; body?: unknown } = {}) {
  const headers: Record<string, string> = {};
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`http://${file.adminAddress}${path}`, {
    method,
    headers,
    ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, text, json: () => JSON.parse(text) };
}

/** Polls `meshward ca status -o json` until `done` holds, with a deadline. */
async function statusUntil(done: (s: StatusJson) => boolean): Promise<StatusJson> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await meshward(['ca', 'status', '--state-dir', stateDir, '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const status = JSON.parse(r.stdout) as StatusJson;
    if (done(status)) return status;
    assert.ok(Date.now() < deadline, `rotation did not complete in time: ${JSON.stringify(status.server?.rotation)}\n${serveStderr}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** SIGTERM, then what a clean stop leaves: exit 0, no server.json, no lock, no process. */
async function stopServe(pid: number): Promise<void> {
  const exited = once(serve!, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  serve!.kill('SIGTERM');
  const [code, signal] = await exited;
  assert.deepEqual([code, signal], [0, null], serveStderr);
  await assert.rejects(access(join(stateDir, 'server.json')), { code: 'ENOENT' });
  await assert.rejects(access(join(stateDir, 'lock')), { code: 'ENOENT' });
  assert.equal(alive(pid), false, 'no process is left');
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'meshward-cli-ca-serve-'));
  stateDir = join(dir, 'state');
});

after(async () => {
  await agent?.stop();
  if (serve && serve.exitCode === null && serve.signalCode === null) serve.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

it('refuses a listen address off loopback', async () => {
  const r = await meshward(['ca', 'serve', '--state-dir', stateDir, '--listen', '0.0.0.0:15012']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--listen 0\.0\.0\.0:15012: not a loopback address; the CA server listens on loopback only/);
});

it('serves, rotates the root online with an agent connected, and stops cleanly on SIGTERM', { timeout: 30_000 }, async () => {
  const init = await meshward(['ca', 'init', '--state-dir', stateDir, '--trust-domain', TD]);
  assert.equal(init.code, 0, init.stderr);

  const line = await startServe();
  const file = JSON.parse(await readFile(join(stateDir, 'server.json'), 'utf8')) as ServerFile;
  assert.equal((await stat(join(stateDir, 'server.json'))).mode & 0o777, 0o600);
  assert.equal(file.pid, serve!.pid);
  assert.match(file.grpcAddress, /^127\.0\.0\.1:\d+$/);
  assert.match(file.adminAddress, /^127\.0\.0\.1:\d+$/);
  assert.equal(line, `serving CA for trust domain ${TD}: grpc ${file.grpcAddress}, admin http://${file.adminAddress} (pid ${file.pid})`);

  // The POST endpoints want the token from server.json.
  assert.equal((await admin(file, 'POST', '/rotate-root')).status, 401);
  assert.equal((await admin(file, 'POST', '/bootstrap-token', { token: 'x'.repeat(43), body: { spiffeId: WORKLOAD } })).status, 401);
  const foreign = await admin(file, 'POST', '/bootstrap-token', { token: file.adminToken, body: { spiffeId: 'spiffe://other.org/ns/shop/sa/checkout' } });
  assert.equal(foreign.status, 400);
  assert.equal(foreign.json().error.code, 'bad-spiffe-id');

  const grant = await admin(file, 'POST', '/bootstrap-token', { token: file.adminToken, body: { spiffeId: WORKLOAD } });
  assert.equal(grant.status, 200, grant.text);
  const { token, caAddress, trustBundlePem } = grant.json();
  assert.equal(caAddress, file.grpcAddress);
  agent = new WorkloadAgent({
    spiffeId: WORKLOAD,
    caAddress,
    trustBundlePem,
    bootstrapToken: token,
    // Long enough that no regular renewal happens; re-issue soon after the new root signs.
    ttlSeconds: 600,
    reissueSpreadMs: 200,
    backoff: { initialMs: 50, maxMs: 300 },
  });
  const first = await agent.start();
  const oldRoot = first.certRoot;

  const rotate = await meshward(['ca', 'rotate-root', '--state-dir', stateDir]);
  assert.equal(rotate.code, 0, rotate.stderr);
  assert.match(rotate.stdout, new RegExp(`^root rotation started on the CA server \\(pid ${file.pid}, grpc ${file.grpcAddress}\\)$`, 'm'));
  assert.match(rotate.stdout, /^ {2}phase {6}(distributing|reissuing|retiring|complete) /m);
  assert.match(rotate.stdout, new RegExp(`^ {2}old root {3}${oldRoot}$`, 'm'));
  assert.match(rotate.stdout, /meshward ca status/);

  // Followed as an operator would.
  const status = await statusUntil(
    (st) => st.server?.rotation.step === 'complete' && st.roots.find((r) => r.fingerprint === oldRoot)?.state === 'retired',
  );
  const server = status.server!;
  const newRoot = server.rotation.newRoot!;
  assert.notEqual(newRoot, oldRoot);
  assert.deepEqual(
    status.roots.map((r) => [r.fingerprint, r.state]),
    [
      [oldRoot, 'retired'],
      [newRoot, 'active'],
    ],
  );
  assert.equal(status.rotationPhase, 'none');
  assert.deepEqual(
    server.rotation.history.map((h) => h.step),
    ['distributing', 'reissuing', 'retiring', 'complete'],
  );
  assert.equal(server.pid, file.pid);
  assert.equal('adminToken' in server, false, 'status never prints the admin token');
  assert.deepEqual(
    server.agents.map((a) => [a.spiffeId, a.certRoot]),
    [[WORKLOAD, newRoot]],
  );

  const now = agent.current()!;
  assert.equal(now.certRoot, newRoot, 'the agent holds a certificate from the new root');
  assert.deepEqual(now.bundle.fingerprints, [newRoot], 'its bundle no longer holds the old root');

  const text = await meshward(['ca', 'status', '--state-dir', stateDir]);
  assert.match(text.stdout, new RegExp(`^server {9}pid ${file.pid}, grpc ${file.grpcAddress}, admin http://${file.adminAddress}$`, 'm'));
  assert.match(text.stdout, /^live rotation {2}complete /m);
  assert.match(text.stdout, /^agents {9}1 \(1 connected\)$/m);

  await stopServe(file.pid);
  assert.doesNotMatch(serveStderr, /PRIVATE KEY|adminToken/);
  assert.equal(serveStderr.includes(file.adminToken), false);
});

it('resumes, when it starts, a rotation begun offline', { timeout: 30_000 }, async () => {
  await agent?.stop();
  const offline = await meshward(['ca', 'rotate-root', '--state-dir', stateDir]);
  assert.equal(offline.code, 0, offline.stderr);
  assert.match(offline.stdout, /^rotation phase: trusting-new-root$/m);
  const added = /^added root (\S+)$/m.exec(offline.stdout)![1]!;

  await startServe();
  const file = JSON.parse(await readFile(join(stateDir, 'server.json'), 'utf8')) as ServerFile;
  const status = await statusUntil((st) => st.server?.rotation.step === 'complete');
  assert.equal(status.server!.rotation.newRoot, added);
  assert.equal(status.rotationPhase, 'none');
  assert.deepEqual(
    status.roots.map((r) => r.state),
    ['retired', 'retired', 'active'],
  );
  assert.match(serveStderr, /"event":"root-rotation-resumed"/);
  await stopServe(file.pid);
});
