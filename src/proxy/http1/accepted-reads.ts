// A connection a node server accepted, read through `onread` into the shared
// buffer (./shared-reads.ts) as a dialed one is. Node takes `onread` only
// when it builds a socket from options, and a server builds its sockets
// without one, so the accepted socket's handle moves into a new socket
// built with it: 0.83× the CPU of an exchange read through 'data'
// (bench/shared-reads.ts).
//
// This leans on what node does not document: a socket's `_handle`, the
// Socket constructor's `handle` option (node's own modules build sockets
// around handles with it), and `_server` (which counts the server's open
// connections, for `close()` and `maxConnections`). Where a socket lacks
// them it is returned as it came, reading through 'data'; the tests
// (test/unit/proxy/http1/accepted-reads.test.ts) fail if node changes them.
// The server must accept with `pauseOnConnect`, so the accepted socket has
// read nothing.
//
//   const server = net.createServer({ pauseOnConnect: true }, (accepted) => {
//     const { socket, reads } = readIntoSharedBuffer(accepted);
//     if (reads === null) socket.on('data', …); else reads.attach(…);
//   });

import { Socket, type SocketConstructorOpts } from 'node:net';
import { SharedReads } from './shared-reads.ts';

/** The undocumented parts of a socket used here. */
interface SocketInternals {
  _handle?: { readStart?: unknown } | null;
  _server?: unknown;
  server?: unknown;
}

export interface AcceptedReads {
  readonly socket: Socket;
  /** Where the socket's reads go; null when they come as 'data' events. */
  readonly reads: SharedReads | null;
}

/** `accepted`, paused since its accept, as a socket reading into the shared buffer; the caller uses the returned socket only. */
export function readIntoSharedBuffer(accepted: Socket): AcceptedReads {
  const old = accepted as unknown as SocketInternals;
  const handle = old._handle;
  if (handle === null || handle === undefined || typeof handle.readStart !== 'function' || !('_server' in old) || accepted.readableLength > 0) {
    accepted.resume();
    return { socket: accepted, reads: null };
  }
  const reads = new SharedReads();
  // The old socket lets go of the handle first: nothing it does later can close it.
  old._handle = null;
  const server = old._server;
  old._server = null;
  old.server = null;
  const socket = new Socket({ handle: handle as SocketConstructorOpts['handle'], allowHalfOpen: accepted.allowHalfOpen, onread: reads.onread });
  // The server counts this connection until the new socket closes.
  const moved = socket as unknown as SocketInternals;
  moved._server = server;
  moved.server = server;
  return { socket, reads };
}
