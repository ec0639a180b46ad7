// One JSON line per request or TCP connection: who called, what the policy
// engine decided, at which stage and by which policy. A sink function lets
// an embedding process (or a test) take the entries instead of stderr.

export interface AccessLogEntry {
  readonly time: string;
  readonly workload: string;
  readonly port: number;
  readonly protocol: string;
  readonly method?: string;
  readonly path?: string;
  readonly responseCode: number | 'reset';
  readonly decision: 'ALLOW' | 'DENY' | 'BYPASS';
  readonly stage: string | null;
  readonly policy: string | null;
  readonly principal: string | null;
  readonly requestPrincipal?: string | null;
  readonly reason?: string;
  readonly durationMs: number;
  readonly mtls: boolean;
  /** The inbound limit that refused the request (docs/inbound.md, "Limits"), e.g. `header_size`. */
  readonly limit?: string;
  /** The W3C trace id (32 hex) of the request's span, when the proxy traces (config `tracing`). */
  readonly traceId?: string;
}

export type AccessLogSink = (entry: AccessLogEntry) => void;

let timeMs = -1;
let timeText = '';
let second = -1;
let secondPrefix = '';
const MS_DIGITS = Array.from({ length: 1000 }, (_, ms) => `${String(ms).padStart(3, '0')}Z`);

/**
 * The time for an entry, ISO 8601 to the millisecond. At a thousand
 * requests a second nearly every entry has a millisecond of its own, so
 * the date is formatted once per second and the milliseconds appended.
 */
export function logTime(): string {
  const now = Date.now();
  if (now === timeMs) return timeText;
  timeMs = now;
  const ms = now % 1000;
  const s = now - ms;
  if (s !== second) {
    second = s;
    // "2026-12-07T04:45:12." of "2026-12-07T04:45:12.000Z".
    secondPrefix = new Date(s).toISOString().slice(0, -4);
  }
  timeText = secondPrefix + MS_DIGITS[ms]!;
  return timeText;
}

/** Above this many characters waiting, the lines are written at once rather than at the next flush. */
const FLUSH_CHARS = 64 * 1024;
/**
 * How long a line may wait for the ones after it. Written once per
 * event-loop turn, the log took a write for every two requests in the
 * server proxy at 1,000 requests/s (a tenth of its system calls); a tenth
 * of a second batches a hundred lines there and is still too short to
 * notice when following the log (Envoy flushes its file access log every
 * 10 s by default, every second as Istio starts it).
 */
const FLUSH_INTERVAL_MS = 100;
let pending = '';
let scheduled = false;
let flushOnExit = false;

function write(): void {
  if (pending === '') return;
  const text = pending;
  pending = '';
  process.stderr.write(text);
}

function flush(): void {
  scheduled = false;
  write();
}

/**
 * JSON lines on stderr, written together at most every 100 ms (one write for
 * every request that ended in that time, instead of a write each), or at
 * once when 64 KiB are waiting. Nothing is dropped: the lines still waiting
 * when the process exits are written by its 'exit' handler; only a process
 * killed outright (SIGKILL) loses its last 100 ms of lines.
 */
export const stderrAccessLog: AccessLogSink = (entry) => {
  pending += `${JSON.stringify(entry)}\n`;
  if (pending.length >= FLUSH_CHARS) {
    write();
    return;
  }
  if (scheduled) return;
  scheduled = true;
  // Unreferenced: waiting lines must not keep a stopping process alive; its 'exit' handler writes them.
  setTimeout(flush, FLUSH_INTERVAL_MS).unref();
  if (!flushOnExit) {
    flushOnExit = true;
    process.once('exit', flush);
  }
};
