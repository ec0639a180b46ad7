// Where an HTTP/1.1 connection's reads go: through node's `onread` into one
// buffer the whole process shares, rather than into a new buffer per read
// passed up through a Readable stream's 'data' event: about 5–13 µs less CPU
// per read, over TCP and over TLS alike, in a request-response ping-pong
// (bench/shared-reads.ts; docs/benchmarks.md, "Two V8 worker threads,
// and upstream reads into one shared buffer", and "The app's connection
// reads into the shared buffer too").
//
// One buffer for every connection is sound because node hands a read to
// its callback and waits for the callback to return before it reads again,
// on any socket. Whatever the reader has not copied by then is overwritten
// by the next read, so a reader copies what it keeps past its read (`keep`):
// a partial head, a body slice it writes on as it is, bytes read ahead.
// Re-serializing a head into a new buffer, the common case, is a copy
// already.
//
//   const reads = new SharedReads();
//   const socket = net.connect({ host, port, onread: reads.onread });
//   reads.attach((chunk) => …);   // chunk: valid until this call returns

import type { OnReadOpts } from 'node:net';

/** As large as node's own reads: one TLS record is at most 16 KiB; a plaintext read takes what the kernel has. */
const SHARED_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** `bytes` as a reader may keep them past its read: a copy when they are in the shared buffer, else themselves. */
export function keep(bytes: Buffer): Buffer {
  return bytes.buffer === SHARED_BUFFER.buffer ? Buffer.from(bytes) : bytes;
}

export class SharedReads {
  #sink: ((chunk: Buffer) => void) | null = null;
  /** Bytes that arrived before a reader was attached, copied. */
  #early: Buffer | null = null;

  /** The `onread` option for `net.connect`, `tls.connect`, or a socket around an accepted handle (./accepted-reads.ts). */
  readonly onread: OnReadOpts = {
    buffer: SHARED_BUFFER,
    callback: (bytes: number, buffer: Uint8Array): boolean => {
      const chunk = (buffer as Buffer).subarray(0, bytes);
      const sink = this.#sink;
      if (sink !== null) sink(chunk);
      else this.#early = this.#early === null ? Buffer.from(chunk) : Buffer.concat([this.#early, chunk]);
      return true;
    },
  };

  /** From now on each read goes to `sink`, first any that came before. */
  attach(sink: (chunk: Buffer) => void): void {
    this.#sink = sink;
    const early = this.#early;
    this.#early = null;
    if (early !== null) sink(early);
  }
}
