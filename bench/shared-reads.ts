// What a read costs, the two ways node delivers it: a new buffer per read
// through a Readable stream's 'data' event, or `onread` into one buffer the
// process shares (src/proxy/http1/shared-reads.ts). One connection, one
// small request and response at a time; the measured side's CPU per
// exchange, the two ways interleaved round by round, medians and the ratio
// paired within a round. Three kinds of connection, as the proxy has them:
//   - dialed over plain TCP (inbound, to the app) and over TLS (ECDSA P-256,
//     outbound to a peer proxy): the client side is measured;
//   - accepted over plain TCP (the app's connection to its local upstream
//     port), moved onto the shared buffer by src/proxy/http1/accepted-reads.ts,
//     and over TLS (a peer proxy's connection to an inbound port), switched
//     onto it by src/proxy/http1/secured-reads.ts: the server side is measured.
// (docs/benchmarks.md, "Two V8 worker threads, and upstream reads into one
// shared buffer", "The app's connection reads into the shared buffer too",
// and "A peer's connection reads into the shared buffer too")
//
//   npx node bench/shared-reads.ts [--rounds 7] [--exchanges 40000]
//
// The measured side runs on core 0, the other on core 1.

import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { parseArgs } from 'node:util';
import { median, rotate } from './two-hop/measure.ts';
import { createPki } from './two-hop/pki.ts';
import { SharedReads } from '../src/proxy/http1/shared-reads.ts';
import { readIntoSharedBuffer } from '../src/proxy/http1/accepted-reads.ts';
import { readSecuredIntoSharedBuffer } from '../src/proxy/http1/secured-reads.ts';

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '7' },
    exchanges: { type: 'string', default: '40000' },
  },
});

const RESPONSE = Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\nhello world\n');
const REQUEST = Buffer.from('GET / HTTP/1.1\r\nhost: server.bench.svc\r\n\r\n');

if (positionals[0] === 'caller') {
  // Sends a request, and the next one on each read, `exchanges` times; then ends.
  const [port, exchanges] = positionals.slice(1, 3).map(Number);
  const where = { host: '127.0.0.1', port: port! };
  const socket = positionals[3] === 'tls' ? tls.connect({ ...where, rejectUnauthorized: false }) : net.connect(where);
  socket.setNoDelay(true);
  let left = exchanges!;
  socket.on('data', () => {
    if (--left === 0) socket.end();
    else socket.write(REQUEST);
  });
  socket.write(REQUEST);
} else if (positionals[0] === 'server') {
  // Answers every read with one response; prints its TCP and TLS ports.
  const [keyFile, chainFile] = positionals.slice(1);
  const answer = (s: net.Socket): void => {
    s.setNoDelay(true);
    s.on('data', () => s.write(RESPONSE));
    s.on('error', () => undefined);
  };
  const plain = net.createServer(answer).listen(0, '127.0.0.1');
  const secure = tls.createServer({ key: readFileSync(keyFile!), cert: readFileSync(chainFile!) }, answer).listen(0, '127.0.0.1');
  await Promise.all([once(plain, 'listening'), once(secure, 'listening')]);
  console.log(JSON.stringify({ tcp: (plain.address() as net.AddressInfo).port, tls: (secure.address() as net.AddressInfo).port }));
} else {
  execFileSync('taskset', ['-apc', '0', String(process.pid)], { stdio: 'ignore' });
  const ROUNDS = Number(opts.rounds);
  const EXCHANGES = Number(opts.exchanges);
  const dir = mkdtempSync(join(tmpdir(), 'meshward-reads-'));
  const leaf = createPki(dir).leaf('server', 'server.bench.svc');
  const server = spawn('taskset', ['-c', '1', process.execPath, import.meta.filename, 'server', leaf.keyFile, leaf.chainFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [line] = (await once(server.stdout, 'data')) as [Buffer];
  const ports = JSON.parse(line.toString()) as { tcp: number; tls: number };

  type Way = "'data' events" | 'onread, shared buffer';
  const WAYS: readonly Way[] = ["'data' events", 'onread, shared buffer'];

  /** The client's CPU µs per exchange, `EXCHANGES` exchanges one after another on one connection it dials. */
  async function dialed(transport: 'tcp' | 'tls', way: Way): Promise<number> {
    const reads = way === 'onread, shared buffer' ? new SharedReads() : null;
    const where = { host: '127.0.0.1', port: ports[transport], onread: reads?.onread };
    const socket: net.Socket = transport === 'tcp' ? net.connect(where) : tls.connect({ ...where, rejectUnauthorized: false });
    socket.setNoDelay(true);
    await once(socket, transport === 'tcp' ? 'connect' : 'secureConnect');
    let left = EXCHANGES;
    let finished!: () => void;
    const done = new Promise<void>((resolve) => (finished = resolve));
    // One response per read on loopback: each read ends an exchange.
    const onResponse = (): void => {
      if (--left === 0) finished();
      else socket.write(REQUEST);
    };
    if (reads === null) socket.on('data', onResponse);
    else reads.attach(onResponse);
    const before = process.cpuUsage();
    socket.write(REQUEST);
    await done;
    const used = process.cpuUsage(before);
    socket.destroy();
    return (used.user + used.system) / EXCHANGES;
  }

  /** The server's CPU µs per exchange, answering `EXCHANGES` requests one after another on one connection it accepted. */
  async function accepted(transport: 'tcp' | 'tls', way: Way): Promise<number> {
    let before!: NodeJS.CpuUsage;
    let finished!: () => void;
    const done = new Promise<void>((resolve) => (finished = resolve));
    const onAccepted = (socket: net.Socket): void => {
      before = process.cpuUsage();
      // One request per read on loopback: each read is answered.
      if (way === "'data' events") socket.on('data', () => socket.write(RESPONSE));
      else if (socket instanceof tls.TLSSocket) {
        const reads = readSecuredIntoSharedBuffer(socket);
        if (reads === null) throw new Error('the accepted TLS socket did not switch onto the shared buffer');
        reads.attach(() => socket.write(RESPONSE));
      } else {
        const moved = readIntoSharedBuffer(socket);
        if (moved.reads === null) throw new Error('the accepted socket did not move onto the shared buffer');
        moved.reads.attach(() => moved.socket.write(RESPONSE));
        socket = moved.socket;
      }
      socket.on('end', () => socket.end());
      socket.on('close', finished);
    };
    const listener =
      transport === 'tcp'
        ? net.createServer({ pauseOnConnect: way === 'onread, shared buffer', noDelay: true }, onAccepted)
        : tls.createServer({ key: readFileSync(leaf.keyFile), cert: readFileSync(leaf.chainFile), noDelay: true }, onAccepted);
    listener.listen(0, '127.0.0.1');
    await once(listener, 'listening');
    const caller = spawn('taskset', ['-c', '1', process.execPath, import.meta.filename, 'caller', String((listener.address() as net.AddressInfo).port), String(EXCHANGES), transport], { stdio: 'inherit' });
    await done;
    const used = process.cpuUsage(before);
    await once(caller, 'exit');
    listener.close();
    return (used.user + used.system) / EXCHANGES;
  }

  type Kind = 'dialed TCP' | 'dialed TLS' | 'accepted TCP' | 'accepted TLS';
  const KINDS: readonly Kind[] = ['dialed TCP', 'dialed TLS', 'accepted TCP', 'accepted TLS'];
  const measure = (kind: Kind, way: Way): Promise<number> => {
    const transport = kind.endsWith('TLS') ? 'tls' : 'tcp';
    return kind.startsWith('accepted') ? accepted(transport, way) : dialed(transport, way);
  };

  // Untimed first: both ways' code paths optimized before any round counts.
  for (const kind of KINDS) for (const way of WAYS) await measure(kind, way);
  console.log('| connection | way | µs CPU per exchange (median) | range | × \'data\' (paired) |');
  console.log('|---|---|---:|---:|---:|');
  for (const kind of KINDS) {
    const us = new Map<Way, number[]>(WAYS.map((w) => [w, []]));
    for (let round = 0; round < ROUNDS; round++) for (const way of rotate(WAYS, round)) us.get(way)!.push(await measure(kind, way));
    const base = us.get("'data' events")!;
    for (const way of WAYS) {
      const xs = us.get(way)!;
      const ratio = median(xs.map((x, i) => x / base[i]!));
      console.log(`| ${kind} | ${way} | ${median(xs).toFixed(1)} | ${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)} | ${ratio.toFixed(3)} |`);
    }
  }
  server.kill();
  rmSync(dir, { recursive: true, force: true });
}
