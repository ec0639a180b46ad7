// A TLS connection a node TLS server accepted, read through the shared buffer
// (./shared-reads.ts) as a dialed TLS connection is: its decrypted bytes go
// to a callback instead of a new buffer per read pushed through 'data':
// 0.91× the CPU of an exchange read through 'data' (bench/shared-reads.ts),
// and 12 µs less per request in the server proxy of the two-hop path
// (docs/benchmarks.md, "A peer's connection reads into the shared buffer too").
//
// A TLS server builds the sockets it accepts itself, without node's `onread`
// option, and the handle a TLS socket reads from is its own TLS layer, which
// cannot move into another socket as a TCP handle can (./accepted-reads.ts).
// So the socket is switched in place, as `onread` would have set it up: the
// user buffer on its handle (`useUserBuffer`, a method of every node stream
// handle) and the two per-socket slots node's read callback looks in
// (net.js's `kBuffer` and `kBufferCb`, symbols every node socket carries from
// its constructor on). Those slots are not documented: where a socket lacks
// them, or its handle lacks the method, it stays on 'data'; the tests
// (test/unit/proxy/http1/secured-reads.test.ts) fail if node changes them.
//
// Switch at 'secureConnection', before any decrypted byte has been read:
// node announces the handshake from inside the read that completes it, so
// bytes the peer sent with its last handshake message come after.
//
//   tlsServer.on('secureConnection', (socket) => {
//     const reads = readSecuredIntoSharedBuffer(socket);
//     if (reads === null) socket.on('data', …); else reads.attach(…);
//   });

import type { TLSSocket } from 'node:tls';
import { SharedReads } from './shared-reads.ts';

/** The undocumented parts of a TLS socket used here. */
interface SecuredInternals {
  _handle?: { useUserBuffer?: (buffer: Uint8Array) => void } | null;
  [slot: symbol]: unknown;
}

/** node's read slots, found by name on the first socket that has them. */
let slots: { buffer: symbol; callback: symbol } | null | undefined;

function readSlots(socket: object): { buffer: symbol; callback: symbol } | null {
  if (slots !== undefined) return slots;
  const own = Object.getOwnPropertySymbols(socket);
  const buffer = own.find((s) => s.description === 'kBuffer');
  const callback = own.find((s) => s.description === 'kBufferCb');
  slots = buffer === undefined || callback === undefined ? null : { buffer, callback };
  return slots;
}

/** Switches `socket`'s reads to the shared buffer and returns where they go; null when it stays on 'data'. */
export function readSecuredIntoSharedBuffer(socket: TLSSocket): SharedReads | null {
  const internals = socket as unknown as SecuredInternals;
  const handle = internals._handle;
  if (handle === null || handle === undefined || typeof handle.useUserBuffer !== 'function') return null;
  // Bytes already pushed to the stream would come out of order behind the shared buffer's.
  if (socket.readableLength > 0 || socket.destroyed) return null;
  const found = readSlots(socket);
  if (found === null || !(found.buffer in internals) || !(found.callback in internals)) return null;
  // A socket built with `onread` already reads this way.
  if (internals[found.buffer] !== null) return null;
  const reads = new SharedReads();
  const { buffer, callback } = reads.onread;
  handle.useUserBuffer(buffer as Uint8Array);
  internals[found.buffer] = buffer;
  internals[found.callback] = callback;
  return reads;
}
