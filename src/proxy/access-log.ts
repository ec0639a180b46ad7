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

/** The time for an entry, ISO 8601 to the millisecond: formatted once per millisecond, not once per request. */
export function logTime(): string {
  const now = Date.now();
  if (now !== timeMs) {
    timeMs = now;
    timeText = new Date(now).toISOString();
  }
  return timeText;
}

/** Above this many characters waiting, the lines are written at once rather than at the end of the turn. */
const FLUSH_CHARS = 64 * 1024;
let pending = '';
let scheduled = false;
let flushOnExit = false;

function flush(): void {
  scheduled = false;
  if (pending === '') return;
  const text = pending;
  pending = '';
  process.stderr.write(text);
}

/**
 * JSON lines on stderr, written together once per turn of the event loop
 * (one write for every request that ended in it, instead of a synchronous
 * write each). Nothing is dropped: the lines still waiting when the process
 * exits are written by its 'exit' handler; only a process killed outright
 * (SIGKILL) loses the lines of its last turn.
 */
export const stderrAccessLog: AccessLogSink = (entry) => {
  pending += `${JSON.stringify(entry)}\n`;
  if (pending.length >= FLUSH_CHARS) {
    flush();
    return;
  }
  if (scheduled) return;
  scheduled = true;
  setImmediate(flush);
  if (!flushOnExit) {
    flushOnExit = true;
    process.once('exit', flush);
  }
};
