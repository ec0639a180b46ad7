// Finds where a chunked message body (RFC 9112 §7.1) ends, so the proxy can
// pass the body on byte for byte, trailers included, and know when the
// connection is free for the next message. It checks the framing strictly
// (hex sizes, CRLF everywhere, no control bytes in extensions or trailer
// lines) and does not copy anything.
//
//   const scanner = new ChunkedScanner();
//   const end = scanner.scan(chunk, 0);   // -1: all consumed; -2: bad framing; else: offset just past the body

const CR = 0x0d;
const LF = 0x0a;
const MAX_SIZE_DIGITS = 12;
const MAX_TRAILER_BYTES = 64 * 1024;

const enum_ = {
  size: 0,
  extension: 1,
  sizeLf: 2,
  data: 3,
  dataCr: 4,
  dataLf: 5,
  trailerStart: 6,
  trailerLine: 7,
  trailerLf: 8,
  finalLf: 9,
} as const;
type State = (typeof enum_)[keyof typeof enum_];

function hex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

export class ChunkedScanner {
  #state: State = enum_.size;
  #size = 0;
  #digits = 0;
  #trailerBytes = 0;

  /** Scans `buf` from `start`: -1 when the body goes on past it, -2 on a framing error, else the offset just past the body's end. */
  scan(buf: Buffer, start: number): number {
    let i = start;
    const n = buf.length;
    while (i < n) {
      const c = buf[i]!;
      switch (this.#state) {
        case enum_.size: {
          const d = hex(c);
          if (d >= 0) {
            if (++this.#digits > MAX_SIZE_DIGITS) return -2;
            this.#size = this.#size * 16 + d;
          } else if (this.#digits === 0) return -2;
          else if (c === CR) this.#state = enum_.sizeLf;
          else if (c === 0x3b /* ; */ || c === 0x20 || c === 0x09) this.#state = enum_.extension;
          else return -2;
          i++;
          break;
        }
        case enum_.extension:
          if (c === CR) this.#state = enum_.sizeLf;
          else if ((c < 0x20 && c !== 0x09) || c === 0x7f) return -2;
          i++;
          break;
        case enum_.sizeLf:
          if (c !== LF) return -2;
          i++;
          if (this.#size === 0) this.#state = enum_.trailerStart;
          else this.#state = enum_.data;
          break;
        case enum_.data: {
          const take = Math.min(this.#size, n - i);
          this.#size -= take;
          i += take;
          if (this.#size === 0) this.#state = enum_.dataCr;
          break;
        }
        case enum_.dataCr:
          if (c !== CR) return -2;
          this.#state = enum_.dataLf;
          i++;
          break;
        case enum_.dataLf:
          if (c !== LF) return -2;
          this.#state = enum_.size;
          this.#digits = 0;
          this.#size = 0;
          i++;
          break;
        case enum_.trailerStart:
          if (c === CR) this.#state = enum_.finalLf;
          else if (c === 0x20 || c === 0x09) return -2; // obs-fold
          else this.#state = enum_.trailerLine;
          i++;
          break;
        case enum_.trailerLine:
          if (++this.#trailerBytes > MAX_TRAILER_BYTES) return -2;
          if (c === CR) this.#state = enum_.trailerLf;
          else if ((c < 0x20 && c !== 0x09) || c === 0x7f) return -2;
          i++;
          break;
        case enum_.trailerLf:
          if (c !== LF) return -2;
          this.#state = enum_.trailerStart;
          i++;
          break;
        case enum_.finalLf:
          if (c !== LF) return -2;
          return i + 1;
      }
    }
    return -1;
  }
}
