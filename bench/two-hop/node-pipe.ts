// A floor for the two-hop benchmark, not a proxy: two Node processes that
// copy bytes between a plaintext socket and an mTLS connection with the
// same certificates, and nothing else — no HTTP parsing, no policy, no
// metrics, no log, one upstream connection per downstream one. What it
// costs per request is what Node's sockets, streams and TLS cost on this
// machine; what meshward costs above it is its own work.
//
//   node bench/two-hop/node-pipe.ts client LISTEN_PORT UPSTREAM_PORT KEY CHAIN ROOT
//   node bench/two-hop/node-pipe.ts server LISTEN_PORT APP_PORT KEY CHAIN ROOT

import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';

const [role, listenPort, upstreamPort, keyFile, chainFile, rootFile] = process.argv.slice(2);
if (role !== 'client' && role !== 'server') throw new Error('usage: node-pipe.ts client|server LISTEN_PORT UPSTREAM_PORT KEY CHAIN ROOT');

const material = { key: readFileSync(keyFile!), cert: readFileSync(chainFile!), ca: readFileSync(rootFile!) };

/** Bytes each way as they arrive; either side closing closes both. */
function pipe(a: net.Socket, b: net.Socket): void {
  a.on('data', (chunk: Buffer) => b.write(chunk));
  b.on('data', (chunk: Buffer) => a.write(chunk));
  a.on('close', () => b.destroy());
  b.on('close', () => a.destroy());
  a.on('error', () => undefined);
  b.on('error', () => undefined);
}

if (role === 'client') {
  // One context for every connection, as a proxy would hold it (a TLS server makes its own once).
  const context = tls.createSecureContext(material);
  net
    .createServer({ noDelay: true }, (down) => {
      // The peer's certificate chain is verified against the root; its name is not checked (the floor has no secure naming).
      const up = tls.connect({ host: '127.0.0.1', port: Number(upstreamPort), secureContext: context, checkServerIdentity: () => undefined });
      up.setNoDelay(true);
      pipe(down, up);
    })
    .listen(Number(listenPort), '127.0.0.1');
} else {
  tls
    .createServer({ ...material, requestCert: true, rejectUnauthorized: true }, (down) => {
      down.setNoDelay(true);
      pipe(down, net.connect({ host: '127.0.0.1', port: Number(upstreamPort), noDelay: true }));
    })
    .listen(Number(listenPort), '127.0.0.1');
}

process.on('SIGTERM', () => process.exit(0));
