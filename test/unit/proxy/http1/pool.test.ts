import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { H1Pool } from '../../../../src/proxy/http1/pool.ts';

// Real loopback connections to a server that only reads.
describe('H1Pool: idle connections', () => {
  let server: Server;
  let port = 0;
  before(async () => {
    server = createServer((s) => {
      s.on('error', () => undefined);
      s.resume();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as { port: number }).port;
  });
  after(() => server.close());

  const open = async (): Promise<Socket> => {
    const s = connect({ host: '127.0.0.1', port });
    await once(s, 'connect');
    return s;
  };

  it('closes an idle connection when its time is up, without a request to notice', async () => {
    const pool = new H1Pool(80);
    const socket = await open();
    pool.release('app', pool.adopt(socket), true, -1);
    assert.equal(socket.destroyed, false);
    await sleep(200);
    assert.equal(socket.destroyed, true, 'the pool closed it');
    assert.equal(pool.take('app'), null);
    pool.destroy();
  });

  it('keeps a connection that is reused, closes the one left idle behind it', async () => {
    const pool = new H1Pool(150);
    const [left, reused] = [await open(), await open()];
    pool.release('app', pool.adopt(left), true, -1);
    const up = pool.adopt(reused);
    pool.release('app', up, true, -1);
    // Taken and given back every 50 ms: the newest is handed out first, so `left` stays idle.
    for (let i = 0; i < 6; i++) {
      await sleep(50);
      assert.equal(pool.take('app'), up);
      pool.release('app', up, true, -1);
    }
    assert.equal(left.destroyed, true, 'idle past its time');
    assert.equal(reused.destroyed, false, 'in use all along');
    pool.destroy();
    assert.equal(reused.destroyed, true);
  });

  it('follows the keep-alive timeout the server announced, less a second', async () => {
    const pool = new H1Pool(60_000);
    const socket = await open();
    pool.release('app', pool.adopt(socket), true, 1100);
    await sleep(250);
    assert.equal(socket.destroyed, true);
    pool.destroy();
  });

  it('closes idle connections at once when drained', async () => {
    const pool = new H1Pool(60_000);
    const socket = await open();
    pool.release('app', pool.adopt(socket), true, -1);
    pool.drain();
    assert.equal(socket.destroyed, true);
    await once(socket, 'close');
    assert.equal(pool.idle, true, 'drained, nothing open');
  });
});
