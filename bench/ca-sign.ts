// Benchmark: the identity layer's two costs.
//
//   1. Certificates signed per second by the CSR service (CreateCertificate
//      over gRPC+TLS on loopback), with a P-256 and an RSA-2048 CA key, for
//      1 and N concurrent clients. Clients renew as agents do (mTLS with
//      their current SVID), each over one long-lived channel; CSRs are made
//      beforehand, so client key generation is not in the figure.
//   2. mTLS handshakes per second into a node:tls listener using
//      agent-issued certificates (EC P-256 and RSA-2048 workload keys), side
//      by side with `openssl s_server` on the same certificates when openssl
//      is on PATH, and nginx when it is installed.
//
// Every server runs in its own process (undici's benchmarks do the same), so
// its CPU time can be read apart from the load generator's: Node servers
// report process.cpuUsage() over IPC; for openssl and nginx the harness
// reads utime+stime from /proc/<pid>/stat. "per CPU-s" divides the count by
// the server's CPU seconds, which compares servers fairly even when the
// load generator (one Node process) is the bottleneck.
//
// openssl s_server needs the key in a file: the harness writes a copy of the
// agent's in-memory key to a private temporary directory and removes it at
// exit. Nothing else here writes a key.
//
// Run: npx node bench/ca-sign.ts [--duration-ms 3000] [--concurrency 16]

import { fork, spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createNetServer } from 'node:net';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { connect, createServer as createTlsServer, type ConnectionOptions } from 'node:tls';
import { Client, Metadata, credentials, type ServiceError } from '@grpc/grpc-js';
import {
  AGENT_ID_METADATA,
  CREATE_CERTIFICATE_PATH,
  identityServices,
  type IstioCertificateRequest,
  type IstioCertificateResponse,
} from '../src/api/identity-messages.ts';
import { CertificateAuthority, type CaKeyType } from '../src/identity/ca/index.ts';
import { CaServer } from '../src/control/ca-server/index.ts';
import { WorkloadAgent, type AgentSnapshot, type WorkloadKeyType } from '../src/identity/agent/index.ts';
import { createCertificate, checkCaIdentity } from '../src/identity/agent/ca-client.ts';
import { generateKeyAndCsr } from '../src/identity/agent/keys.ts';
import { createMtlsServer, mtlsClientOptions, mtlsServerOptions, type MtlsMaterial } from '../src/identity/tls-options.ts';
import { trustBundleFromPem } from '../src/identity/trust-bundle.ts';
import { onPath } from './host.ts';

const TD = 'bench.local';
const CA_ID = `spiffe://${TD}/ns/meshward-system/sa/meshward-control`;
const SERVER_ID = `spiffe://${TD}/ns/bench/sa/server`;
const CLIENT_ID = `spiffe://${TD}/ns/bench/sa/client`;

interface CpuReply {
  user: number;
  system: number;
}

// --- child processes ------------------------------------------------------------

/** The CSR service in its own process: `ca-server <keyType>`. */
async function runCaServerChild(keyType: CaKeyType): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'meshward-bench-ca-'));
  const ca = await CertificateAuthority.open({ stateDir: dir, trustDomain: TD, keyType, workloadTtlSeconds: 3600 });
  const server = await CaServer.start({ ca, log: () => {} });
  process.on('disconnect', () => process.exit(0));
  process.on('message', (msg: { cmd: string; id?: string; seq?: number }) => {
    if (msg.cmd === 'cpu') process.send!({ cpu: process.cpuUsage(), seq: msg.seq });
    else if (msg.cmd === 'token') void server.mintBootstrapToken(msg.id!).then((token) => process.send!({ token, seq: msg.seq }));
    else if (msg.cmd === 'stop') void server.stop().then(() => ca.close()).then(() => rm(dir, { recursive: true, force: true })).then(() => process.exit(0));
  });
  process.send!({ address: server.address, bundlePem: server.trustBundlePem() });
}

/** A node:tls mTLS listener in its own process: `tls-server <plain|guarded>`; material arrives over IPC. */
function runTlsServerChild(kind: 'plain' | 'guarded'): void {
  process.on('disconnect', () => process.exit(0));
  process.once('message', (m: { keyPem: string; certChainPem: string; bundlePem: string }) => {
    const bundle = trustBundleFromPem(TD, m.bundlePem);
    if ('error' in bundle) throw new Error(bundle.error);
    const material: MtlsMaterial = { key: m.keyPem, chain: m.certChainPem, bundle };
    const server = kind === 'guarded' ? createMtlsServer(material).server : createTlsServer(mtlsServerOptions(material));
    server.on('secureConnection', (s) => s.on('error', () => {}).end());
    server.on('tlsClientError', () => {});
    server.listen(0, '127.0.0.1', () => {
      process.send!({ port: (server.address() as { port: number }).port });
      process.on('message', (msg: { cmd: string; seq?: number }) => {
        if (msg.cmd === 'cpu') process.send!({ cpu: process.cpuUsage(), seq: msg.seq });
        else if (msg.cmd === 'stop') process.exit(0);
      });
    });
  });
}

let nextAsk = 0;

/** One request to a child over IPC; replies carry the request's `seq`. */
function ask<T>(child: ChildProcess, msg: object, key: string): Promise<T> {
  const seq = ++nextAsk;
  return new Promise((resolve) => {
    const on = (reply: Record<string, unknown>) => {
      if (reply.seq === seq && key in reply) {
        child.off('message', on);
        resolve(reply[key] as T);
      }
    };
    child.on('message', on);
    child.send({ ...msg, seq });
  });
}

function forkSelf(args: string[]): ChildProcess {
  const child = fork(new URL(import.meta.url).pathname, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  child.setMaxListeners(0); // one listener per request in flight
  return child;
}

async function cpuSecondsOfChild(child: ChildProcess): Promise<number> {
  const c = await ask<CpuReply>(child, { cmd: 'cpu' }, 'cpu');
  return (c.user + c.system) / 1e6;
}

let clockTicks = 100;
try {
  clockTicks = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
} catch {
  // Linux's USER_HZ is 100 nearly everywhere.
}

/** utime + stime of any process, in seconds, from /proc/<pid>/stat. */
async function cpuSecondsOfPid(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}

// --- load generators --------------------------------------------------------------

interface Run {
  count: number;
  errors: number;
  seconds: number;
  cpuSeconds: number;
}

async function timed(durationMs: number, cpu: () => Promise<number>, worker: (stop: () => boolean) => Promise<[number, number]>, concurrency: number): Promise<Run> {
  const cpu0 = await cpu();
  const t0 = process.hrtime.bigint();
  const deadline = Date.now() + durationMs;
  const results = await Promise.all(Array.from({ length: concurrency }, () => worker(() => Date.now() >= deadline)));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpuSeconds = (await cpu()) - cpu0;
  return { count: results.reduce((s, [n]) => s + n, 0), errors: results.reduce((s, [, e]) => s + e, 0), seconds, cpuSeconds };
}

async function signRuns(keyType: CaKeyType, concurrencies: number[], durationMs: number): Promise<{ c: number; run: Run }[]> {
  const child = forkSelf(['ca-server', keyType]);
  const { address, bundlePem } = await new Promise<{ address: string; bundlePem: string }>((resolve) => child.once('message', resolve as never));
  const conn = { address, bundlePem, caIdentity: CA_ID, agentId: 'bench', timeoutMs: 10_000 };
  const method = identityServices().certificate.CreateCertificate!;
  const max = Math.max(...concurrencies);

  // One identity, SVID and channel per client; a few CSRs each, made up front.
  const clients = await Promise.all(
    Array.from({ length: max }, async (_, i) => {
      const id = `spiffe://${TD}/ns/bench/sa/client-${i}`;
      const { keyPem, csrPem } = await generateKeyAndCsr(id);
      const token = await ask<string>(child, { cmd: 'token', id }, 'token');
      const chain = await createCertificate(conn, { kind: 'token', token }, { csrPem, ttlSeconds: 0, metadata: {} });
      const creds = credentials.createSsl(Buffer.from(bundlePem), Buffer.from(keyPem), Buffer.from(chain[0]!), {
        checkServerIdentity: (_h, cert) => checkCaIdentity(cert, CA_ID),
      });
      const client = new Client(address, creds, { 'grpc.ssl_target_name_override': 'meshward-ca', 'grpc.use_local_subchannel_pool': 1 });
      const csrs = await Promise.all(Array.from({ length: 4 }, async () => (await generateKeyAndCsr(id)).csrPem));
      return { client, csrs };
    }),
  );
  const md = new Metadata();
  md.set(AGENT_ID_METADATA, 'bench');
  const once1 = (client: Client, csr: string) =>
    new Promise<boolean>((resolve) => {
      client.makeUnaryRequest<IstioCertificateRequest, IstioCertificateResponse>(
        CREATE_CERTIFICATE_PATH,
        method.requestSerialize,
        method.responseDeserialize,
        { csr, validity_duration: 0 },
        md,
        (err: ServiceError | null) => resolve(err === null),
      );
    });

  const out: { c: number; run: Run }[] = [];
  for (const c of concurrencies) {
    let next = 0;
    const worker = async (stop: () => boolean): Promise<[number, number]> => {
      const { client, csrs } = clients[next++ % clients.length]!;
      let n = 0;
      let e = 0;
      for (let i = 0; !stop(); i++) {
        if (await once1(client, csrs[i % csrs.length]!)) n++;
        else e++;
      }
      return [n, e];
    };
    await timed(300, () => Promise.resolve(0), worker, c); // warm-up
    next = 0;
    out.push({ c, run: await timed(durationMs, () => cpuSecondsOfChild(child), worker, c) });
  }
  for (const { client } of clients) client.close();
  child.send({ cmd: 'stop' });
  await once(child, 'exit');
  return out;
}

async function handshakeRun(port: number, options: ConnectionOptions, concurrency: number, durationMs: number, cpu: () => Promise<number>): Promise<Run> {
  const one = () =>
    new Promise<boolean>((resolve) => {
      const s = connect({ ...options, host: '127.0.0.1', port });
      s.once('secureConnect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
  const worker = async (stop: () => boolean): Promise<[number, number]> => {
    let n = 0;
    let e = 0;
    while (!stop()) {
      if (await one()) n++;
      else e++;
    }
    return [n, e];
  };
  await timed(300, () => Promise.resolve(0), worker, concurrency);
  return timed(durationMs, cpu, worker, concurrency);
}

async function freePort(): Promise<number> {
  const s = createNetServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function waitForPort(port: number, ms: number): Promise<void> {
  const until = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ port, host: '127.0.0.1', rejectUnauthorized: false });
      s.once('secureConnect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok || Date.now() > until) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}


async function issueWithAgents(keyType: WorkloadKeyType): Promise<{ server: AgentSnapshot; client: AgentSnapshot; stop: () => Promise<void> }> {
  const child = forkSelf(['ca-server', 'ec-p256']);
  const { address, bundlePem } = await new Promise<{ address: string; bundlePem: string }>((resolve) => child.once('message', resolve as never));
  const agents = await Promise.all(
    [SERVER_ID, CLIENT_ID].map(async (id) => {
      const token = await ask<string>(child, { cmd: 'token', id }, 'token');
      return new WorkloadAgent({ spiffeId: id, caAddress: address, trustBundlePem: bundlePem, bootstrapToken: token, keyType });
    }),
  );
  const [server, client] = await Promise.all(agents.map((a) => a.start()));
  return {
    server: server!,
    client: client!,
    stop: async () => {
      await Promise.all(agents.map((a) => a.stop()));
      child.send({ cmd: 'stop' });
    },
  };
}

// --- main -----------------------------------------------------------------------

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const fmt = (x: number, digits = 0) => x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

async function main(): Promise<void> {
  const durationMs = arg('--duration-ms', 3000);
  const concurrency = arg('--concurrency', 16);
  const started = Date.now();
  console.log(`# meshward identity benchmark\n`);
  console.log(`Node ${process.version}, ${cpus().length} CPU (${cpus()[0]?.model ?? 'unknown'}), ${durationMs} ms per row after a 300 ms warm-up.\n`);

  console.log('## CSR signing (CreateCertificate over gRPC+TLS, loopback, renewal with mTLS)\n');
  console.log('| CA key | clients | certs/s | server CPU-s | certs per server CPU-s | errors |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const keyType of ['ec-p256', 'rsa-2048'] as const) {
    for (const { c, run } of await signRuns(keyType, [1, concurrency], durationMs)) {
      console.log(`| ${keyType} | ${c} | ${fmt(run.count / run.seconds)} | ${fmt(run.cpuSeconds, 2)} | ${fmt(run.count / run.cpuSeconds)} | ${run.errors} |`);
    }
  }

  console.log(`\n## mTLS handshakes (TLS 1.3, client certificate required, ${concurrency} concurrent clients)\n`);
  console.log('| workload key | server | handshakes/s | server CPU-s | handshakes per server CPU-s | errors |');
  console.log('|---|---|---:|---:|---:|---:|');
  const notes: string[] = [];
  const hasOpenssl = onPath('openssl');
  if (!hasOpenssl) notes.push('openssl is not on PATH: its rows are skipped.');
  if (!onPath('nginx')) notes.push('nginx is not installed: no nginx rows.');
  for (const keyType of ['ec-p256', 'rsa-2048'] as const) {
    const issued = await issueWithAgents(keyType);
    const options = mtlsClientOptions({ key: issued.client.keyPem, chain: issued.client.certChainPem, bundle: issued.client.bundle }, { allowedIds: new Set([SERVER_ID]) });
    const row = (server: string, run: Run) =>
      console.log(`| ${keyType} | ${server} | ${fmt(run.count / run.seconds)} | ${fmt(run.cpuSeconds, 2)} | ${fmt(run.count / run.cpuSeconds)} | ${run.errors} |`);

    for (const kind of ['plain', 'guarded'] as const) {
      const child = forkSelf(['tls-server', kind]);
      child.send({ keyPem: issued.server.keyPem, certChainPem: issued.server.certChainPem, bundlePem: issued.server.bundlePem });
      const { port } = await new Promise<{ port: number }>((resolve) => child.once('message', resolve as never));
      const run = await handshakeRun(port, options, concurrency, durationMs, () => cpuSecondsOfChild(child));
      row(kind === 'plain' ? 'node:tls' : 'node:tls + SVID checks', run);
      child.send({ cmd: 'stop' });
      await once(child, 'exit');
    }

    if (hasOpenssl) {
      const dir = await mkdtemp(join(tmpdir(), 'meshward-bench-openssl-'));
      try {
        await writeFile(join(dir, 'key.pem'), issued.server.keyPem, { mode: 0o600 });
        await writeFile(join(dir, 'chain.pem'), issued.server.certChainPem);
        await writeFile(join(dir, 'bundle.pem'), issued.server.bundlePem);
        const port = await freePort();
        const ossl = spawn(
          'openssl',
          ['s_server', '-quiet', '-naccept', '1000000000', '-accept', `127.0.0.1:${port}`, '-cert', join(dir, 'chain.pem'), '-key', join(dir, 'key.pem'),
            '-CAfile', join(dir, 'bundle.pem'), '-Verify', '3', '-verify_return_error', '-tls1_3'],
          { stdio: ['pipe', 'ignore', 'ignore'] },
        );
        await waitForPort(port, 5000);
        const run = await handshakeRun(port, options, concurrency, durationMs, () => cpuSecondsOfPid(ossl.pid!));
        row(`openssl s_server (${execFileSync('openssl', ['version']).toString().split(' ').slice(0, 2).join(' ')})`, run);
        ossl.kill();
        await once(ossl, 'exit');
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
    await issued.stop();
  }
  if (notes.length > 0) console.log(`\n${notes.map((n) => `- ${n}`).join('\n')}`);
  console.log(`\nTotal ${((Date.now() - started) / 1000).toFixed(0)} s.`);
}

const mode = process.argv[2];
if (mode === 'ca-server') await runCaServerChild(process.argv[3] as CaKeyType);
else if (mode === 'tls-server') runTlsServerChild(process.argv[3] as 'plain' | 'guarded');
else await main();
