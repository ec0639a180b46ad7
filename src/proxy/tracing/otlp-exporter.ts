// Finished spans to an OpenTelemetry collector over OTLP/HTTP with the JSON
// encoding (https://opentelemetry.io/docs/specs/otlp/#otlphttp): batches of
// up to 512 spans, or whatever is queued after a second, POSTed to the
// endpoint as `resourceSpans → scopeSpans → spans`, ids as hex strings and
// times as unix nanoseconds in decimal strings. The queue is bounded: a span
// that finds it full is dropped and counted, as is a batch the collector
// refuses or does not answer. Nothing here blocks or throws on the request
// path; export happens on timers, one batch in flight at a time.
//
//   const exporter = new OtlpExporter(new URL('http://127.0.0.1:4318/v1/traces'), resource, metrics);
//   exporter.enqueue(span);     // from Span.end
//   await exporter.shutdown();  // sends what is queued, then closes

import type * as Http from 'node:http';
import { http } from '../../lib/node-http.ts';
import * as https from 'node:https';
import { Counter, type Registry } from '../../lib/prometheus.ts';

export type AttributeValue = string | number | boolean;
export type Attributes = Readonly<Record<string, AttributeValue>>;

/** OTLP's SpanKind: SPAN_KIND_SERVER = 2, SPAN_KIND_CLIENT = 3. */
export type SpanKindCode = 2 | 3;

export interface FinishedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentId: string | null;
  readonly name: string;
  readonly kind: SpanKindCode;
  /** Unix epoch milliseconds, fractional. */
  readonly startMs: number;
  readonly endMs: number;
  readonly attributes: Attributes;
  readonly error: boolean;
}

export interface ExporterOptions {
  /** Spans held at most; more are dropped. Default 2048 (the OpenTelemetry SDK's default). */
  readonly maxQueue?: number;
  /** Spans per POST; default 512. */
  readonly maxBatch?: number;
  /** How long a span may wait for a batch; default 1000 ms. */
  readonly intervalMs?: number;
  /** Time allowed for one POST; default 5000 ms. */
  readonly timeoutMs?: number;
}

export type DropReason = 'queue_full' | 'export_failed' | 'stopped';

export interface TracingMetrics {
  exported(n: number): void;
  dropped(reason: DropReason, n: number): void;
}

/** The tracing counters on a proxy's registry; reused when a tracer is rebuilt on the same registry. */
export function createTracingMetrics(registry: Registry): TracingMetrics {
  const exported =
    (registry.getSingleMetric('meshward_tracing_spans_exported_total') as Counter | undefined) ??
    new Counter({ name: 'meshward_tracing_spans_exported_total', help: 'Spans the OTLP collector accepted.', registers: [registry] });
  const dropped =
    (registry.getSingleMetric('meshward_tracing_spans_dropped_total') as Counter<'reason'> | undefined) ??
    new Counter({
      name: 'meshward_tracing_spans_dropped_total',
      help: 'Sampled spans not exported: queue full, export failed, or finished after the proxy stopped.',
      labelNames: ['reason'] as const,
      registers: [registry],
    });
  return {
    exported: (n) => exported.inc(n),
    dropped: (reason, n) => dropped.inc({ reason }, n),
  };
}

interface KeyValue {
  readonly key: string;
  readonly value: { readonly stringValue: string } | { readonly intValue: string } | { readonly doubleValue: number } | { readonly boolValue: boolean };
}

export function keyValues(attributes: Attributes): KeyValue[] {
  const out: KeyValue[] = [];
  for (const key in attributes) {
    const v = attributes[key]!;
    const value =
      typeof v === 'string' ? { stringValue: v } : typeof v === 'boolean' ? { boolValue: v } : Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v };
    out.push({ key, value });
  }
  return out;
}

/**
 * Epoch milliseconds (fractional) as a decimal string of nanoseconds (past
 * 2^53, so not a JSON number). A double near today's epoch holds about a
 * quarter of a microsecond, so the string is exact to the microsecond.
 */
export function unixNanos(ms: number): string {
  const whole = Math.floor(ms);
  const micros = Math.min(999, Math.round((ms - whole) * 1e3));
  return `${whole}${String(micros).padStart(3, '0')}000`;
}

/** One OTLP/JSON ExportTraceServiceRequest. */
export function otlpBody(resource: readonly KeyValue[], common: readonly KeyValue[], spans: readonly FinishedSpan[]): string {
  return JSON.stringify({
    resourceSpans: [
      {
        resource: { attributes: resource },
        scopeSpans: [
          {
            scope: { name: 'meshward' },
            spans: spans.map((s) => ({
              traceId: s.traceId,
              spanId: s.spanId,
              ...(s.parentId !== null ? { parentSpanId: s.parentId } : {}),
              name: s.name,
              kind: s.kind,
              startTimeUnixNano: unixNanos(s.startMs),
              endTimeUnixNano: unixNanos(s.endMs),
              attributes: [...keyValues(s.attributes), ...common],
              // STATUS_CODE_ERROR = 2; unset otherwise, as Envoy leaves it.
              status: s.error ? { code: 2 } : {},
            })),
          },
        ],
      },
    ],
  });
}

export class OtlpExporter {
  readonly #endpoint: URL;
  readonly #resource: readonly KeyValue[];
  readonly #common: readonly KeyValue[];
  readonly #metrics: TracingMetrics;
  readonly #maxQueue: number;
  readonly #maxBatch: number;
  readonly #intervalMs: number;
  readonly #timeoutMs: number;
  readonly #agent: Http.Agent;
  #queue: FinishedSpan[] = [];
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();
  #stopped = false;
  #abandoned = false;

  /** `common` attributes go on every span (Istio tags each span with node_id and the canonical service). */
  constructor(endpoint: URL, resource: Attributes, common: Attributes, metrics: TracingMetrics, options: ExporterOptions = {}) {
    this.#endpoint = endpoint;
    this.#resource = keyValues(resource);
    this.#common = keyValues(common);
    this.#metrics = metrics;
    this.#maxQueue = options.maxQueue ?? 2048;
    this.#maxBatch = options.maxBatch ?? 512;
    this.#intervalMs = options.intervalMs ?? 1000;
    this.#timeoutMs = options.timeoutMs ?? 5000;
    this.#agent = endpoint.protocol === 'https:' ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
  }

  /** Queues a finished span; drops and counts it when the queue is full. */
  enqueue(span: FinishedSpan): void {
    if (this.#stopped) {
      this.#metrics.dropped('stopped', 1);
      return;
    }
    if (this.#queue.length >= this.#maxQueue) {
      this.#metrics.dropped('queue_full', 1);
      return;
    }
    this.#queue.push(span);
    if (this.#queue.length === this.#maxBatch) {
      void this.flush();
    } else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => void this.flush(), this.#intervalMs);
      this.#timer.unref();
    }
  }

  /** Sends everything queued now, a batch at a time; resolves when done (never rejects). */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(() => this.#drain());
    return this.#flushing;
  }

  /**
   * Sends what is queued, for at most one POST timeout in all (a dead
   * collector must not hold up a proxy's stop), then closes the connections;
   * spans ended afterwards are dropped and counted.
   */
  async shutdown(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.flush(), new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#timeoutMs)))]);
    clearTimeout(timer);
    // Aborts a POST still in flight (its spans count as export_failed); the rest are not sent.
    this.#abandoned = true;
    this.#agent.destroy();
  }

  async #drain(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    while (this.#queue.length > 0) {
      if (this.#abandoned) {
        this.#metrics.dropped('stopped', this.#queue.length);
        this.#queue = [];
        return;
      }
      const batch = this.#queue.splice(0, this.#maxBatch);
      let body: string;
      try {
        body = otlpBody(this.#resource, this.#common, batch);
      } catch {
        this.#metrics.dropped('export_failed', batch.length);
        continue;
      }
      if (await this.#post(body)) this.#metrics.exported(batch.length);
      else this.#metrics.dropped('export_failed', batch.length);
    }
  }

  #post(body: string): Promise<boolean> {
    return new Promise((resolve) => {
      const send = this.#endpoint.protocol === 'https:' ? https.request : http.request;
      let req: Http.ClientRequest;
      try {
        req = send(this.#endpoint, {
          method: 'POST',
          agent: this.#agent,
          timeout: this.#timeoutMs,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        });
      } catch {
        resolve(false);
        return;
      }
      req.on('response', (res) => {
        res.resume();
        const ok = res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300;
        res.on('end', () => resolve(ok));
        res.on('error', () => resolve(false));
        res.on('close', () => resolve(ok));
      });
      req.on('timeout', () => req.destroy(new Error('OTLP export timed out')));
      req.on('error', () => resolve(false));
      req.end(body);
    });
  }
}
