// An accepted connection moved onto the shared read buffer, with real
// sockets on 127.0.0.1: its bytes arrive through the shared buffer, writes
// and half-close work, the server still counts it (close() waits for it,
// maxConnections holds), and a socket that is not node's own is left as it
// came.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as net from 'node:net';
import { readIntoSharedBuffer, type AcceptedReads } from '../../../../src/proxy/http1/accepted-reads.ts';

async function listen(o: net.ServerOpts, onAccepted: (a: AcceptedReads) => void): Promise<{ server: net.Server; port: number }> {
  const server = net.createServer({ pauseOnConnect: true, ...o }, (accepted) => onAccepted(readIntoSharedBuffer(accepted)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as net.AddressInfo).port };
}

async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  return socket;
}

describe('readIntoSharedBuffer', () => {
  it('delivers the bytes through the shared buffer, sends replies and passes on a half-close', async () => {
    let serverSide: net.Socket | undefined;
    const { server, port } = await listen({ allowHalfOpen: true }, ({ socket, reads }) => {
      serverSide = socket;
      assert.notEqual(reads, null, 'node\'s socket moves onto the shared buffer');
      let got = '';
      reads!.attach((chunk) => {
        got += chunk.toString('latin1');
        socket.write(`echo:${chunk.toString('latin1')}`);
      });
      // Half-open: the caller's end arrives, and this side still writes before ending.
      socket.on('end', () => socket.end(`|total:${got}`));
    });
    const client = await connect(port);
    const replies: Buffer[] = [];
    client.on('data', (c: Buffer) => replies.push(c));
    client.write('one');
    await new Promise((r) => setTimeout(r, 30));
    client.end('two');
    await once(client, 'end');
    assert.equal(Buffer.concat(replies).toString(), 'echo:oneecho:two|total:onetwo');
    assert.equal(serverSide!.allowHalfOpen, true, 'the server\'s allowHalfOpen is kept');
    client.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('keeps the connection counted: close() waits for it, and maxConnections refuses the next', async () => {
    const accepted: net.Socket[] = [];
    const { server, port } = await listen({}, ({ socket }) => accepted.push(socket));
    server.maxConnections = 1;
    const first = await connect(port);
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(accepted.length, 1);
    const second = await connect(port);
    await once(second, 'close');
    assert.equal(accepted.length, 1, 'over maxConnections: closed at once');
    let closed = false;
    server.close(() => (closed = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(closed, false, 'close() waits while the moved connection is open');
    first.destroy();
    accepted[0]!.destroy();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(closed, true, 'and ends once it closes');
  });

  it('leaves a socket without node\'s handle reading through \'data\'', () => {
    const loose = new net.Socket();
    const { socket, reads } = readIntoSharedBuffer(loose);
    assert.equal(socket, loose);
    assert.equal(reads, null);
    loose.destroy();
  });
});
