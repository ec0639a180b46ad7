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

export const stderrAccessLog: AccessLogSink = (entry) => {
  process.stderr.write(`${JSON.stringify(entry)}\n`);
};
