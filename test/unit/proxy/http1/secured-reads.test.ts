// A TLS connection a node TLS server accepted, switched onto the shared read
// buffer at 'secureConnection', with real TLS on 127.0.0.1: its decrypted
// bytes arrive through the shared buffer (the first ones too, sent right
// behind the handshake), replies and half-close work, pause() holds reads
// back, and a socket already reading another way is left as it is.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { readSecuredIntoSharedBuffer } from '../../../../src/proxy/http1/secured-reads.ts';
import type { SharedReads } from '../../../../src/proxy/http1/shared-reads.ts';
import { createLeaf, createRootCa, type TestCa, type TestLeaf } from '../../../support/pki.ts';

let ca: TestCa;
let leaf: TestLeaf;

before(async () => {
  ca = await createRootCa({ trustDomain: 'cluster.local' });
  leaf = await createLeaf(ca, { uris: ['spiffe://cluster.local/ns/default/sa/server'], dnsNames: ['localhost'] });
});

async function listen(onSecured: (socket: tls.TLSSocket, reads: SharedReads | null) => void): Promise<{ server: tls.Server; port: number }> {
  const server = tls.createServer({ key: leaf.keyPem, cert: leaf.chainPem, allowHalfOpen: true }, (socket) => onSecured(socket, readSecuredIntoSharedBuffer(socket)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

function connect(port: number): tls.TLSSocket {
  return tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: ca.pem });
}

async function close(server: tls.Server): Promise<void> {
  await new Promise<void>((r) => server.close(() => r()));
}

describe('readSecuredIntoSharedBuffer', { timeout: 10_000 }, () => {
  const servers: tls.Server[] = [];
  after(async () => {
    for (const s of servers) if (s.listening) await close(s);
  });

  it('delivers decrypted bytes through the shared buffer, the first ones too, and passes on a half-close', async () => {
    const buffers = new Set<ArrayBufferLike>();
    let shared: ArrayBufferLike | undefined;
    const { server, port } = await listen((socket, reads) => {
      assert.notEqual(reads, null, 'node\'s TLS socket switches onto the shared buffer');
      shared = (reads!.onread.buffer as Uint8Array).buffer;
      let got = '';
      reads!.attach((chunk) => {
        buffers.add(chunk.buffer);
        got += chunk.toString('latin1');
        socket.write(`echo:${chunk.toString('latin1')}`);
      });
      socket.on('end', () => socket.end(`|total:${got}`));
    });
    servers.push(server);
    const client = connect(port);
    // Written before the handshake ends: node sends it right behind the client's Finished.
    client.write('one');
    const replies: Buffer[] = [];
    client.on('data', (c: Buffer) => replies.push(c));
    await once(client, 'secureConnect');
    await new Promise((r) => setTimeout(r, 30));
    client.end('two');
    await once(client, 'end');
    assert.equal(Buffer.concat(replies).toString(), 'echo:oneecho:two|total:onetwo');
    assert.deepEqual([...buffers], [shared], 'every read came through the one shared buffer');
    client.destroy();
  });

  it('holds reads back while the socket is paused, and goes on when it resumes', async () => {
    const chunks: string[] = [];
    let serverSide: tls.TLSSocket | undefined;
    const { server, port } = await listen((socket, reads) => {
      serverSide = socket;
      reads!.attach((chunk) => {
        chunks.push(chunk.toString('latin1'));
        socket.pause();
      });
    });
    servers.push(server);
    const client = connect(port);
    await once(client, 'secureConnect');
    client.write('first');
    await new Promise((r) => setTimeout(r, 40));
    client.write('second');
    await new Promise((r) => setTimeout(r, 60));
    assert.deepEqual(chunks, ['first'], 'nothing is read while paused');
    serverSide!.resume();
    await new Promise((r) => setTimeout(r, 40));
    assert.deepEqual(chunks, ['first', 'second']);
    // Paused again by its own reader: it would not read the client's end.
    serverSide!.destroy();
    client.destroy();
  });

  it('leaves a socket that already reads through onread, or has closed, as it is', async () => {
    let secured!: () => void;
    const serverSecured = new Promise<void>((resolve) => (secured = resolve));
    const { server, port } = await listen((socket) => {
      socket.end();
      secured();
    });
    servers.push(server);
    const own = new Uint8Array(1024);
    // node's tls.connect takes `onread` as net.connect does; its types do not say so.
    const dialed = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: ca.pem, onread: { buffer: own, callback: () => true } } as tls.ConnectionOptions);
    await once(dialed, 'secureConnect');
    assert.equal(readSecuredIntoSharedBuffer(dialed), null, 'a socket built with onread keeps its own buffer');
    // Closed only once the server has its side: a server whose handshake the client cut short waits in close().
    await serverSecured;
    dialed.destroy();
    assert.equal(readSecuredIntoSharedBuffer(dialed), null, 'a destroyed socket is left alone');
  });
});
