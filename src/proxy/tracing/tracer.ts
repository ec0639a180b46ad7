// A span per hop, as an Envoy sidecar makes them: the inbound side opens a
// SERVER span, the outbound side a CLIENT span, each continuing the trace the
// request carries (W3C traceparent, else B3, else a new one) and handing its
// own span id on in the headers it forwards. Built once per tracing config;
// a request pays for extracting the incoming context, two random ids and a
// header string. Spans are kept only when sampled and an OTLP endpoint is
// configured; otherwise only the headers are written.
//
//   const span = tracer.start('server', name, req.headers);
//   span.inject(forwardedHeaders);                  // traceparent, B3, x-request-id
//   span.end(status, span.recording ? { ... } : undefined);

import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Registry } from '../../lib/prometheus.ts';
import type { ProxyConfig, TracingConfig } from '../../api/proxy-config.ts';
import { createTracingMetrics, OtlpExporter, type Attributes, type ExporterOptions, type FinishedSpan, type SpanKindCode } from './otlp-exporter.ts';
import { b3IsShort, detachedSampling, extract, formatTraceparent, hasB3, newSpanId, newTraceId } from './trace-context.ts';

/** Istio's default meshConfig sampling (`defaultConfig.tracing.sampling`): 1 %. */
export const DEFAULT_SAMPLING = 1;

const REQUEST_ID = 'x-request-id';

/** Wall-clock milliseconds with sub-millisecond precision. */
function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export class Span implements FinishedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentId: string | null;
  readonly sampled: boolean;
  readonly name: string;
  readonly kind: SpanKindCode;
  readonly startMs: number;
  /** The request's x-request-id, the one received or a new one. */
  readonly requestId: string;
  /** True when the span will be exported: sampled, with an endpoint. */
  readonly recording: boolean;
  /** Envoy's response flags, when the proxy itself failed the request (`UF`: the app could not be reached). */
  responseFlags = '-';
  endMs = 0;
  attributes: Attributes = {};
  error = false;
  readonly #b3: 'b3' | 'b3-single' | null;
  readonly #shortB3: boolean;
  readonly #keepTracestate: boolean;
  readonly #exporter: OtlpExporter | null;
  #ended = false;

  constructor(
    kind: SpanKindCode,
    name: string,
    ids: { traceId: string; parentId: string | null; sampled: boolean; requestId: string },
    propagation: { b3: 'b3' | 'b3-single' | null; shortB3: boolean; keepTracestate: boolean },
    exporter: OtlpExporter | null,
  ) {
    this.kind = kind;
    this.name = name;
    this.traceId = ids.traceId;
    this.spanId = newSpanId();
    this.parentId = ids.parentId;
    this.sampled = ids.sampled;
    this.requestId = ids.requestId;
    this.startMs = nowMs();
    this.#b3 = propagation.b3;
    this.#shortB3 = propagation.shortB3;
    this.#keepTracestate = propagation.keepTracestate;
    this.#exporter = ids.sampled ? exporter : null;
    this.recording = this.#exporter !== null;
  }

  /**
   * Writes this span as the parent into headers about to be forwarded:
   * `traceparent` always, the B3 headers in the form the request came with,
   * `x-request-id` when it had none. A `tracestate` survives only when the
   * request's traceparent was continued (W3C: it belongs to that trace).
   */
  inject(headers: OutgoingHttpHeaders): void {
    headers.traceparent = formatTraceparent(this.traceId, this.spanId, this.sampled);
    if (!this.#keepTracestate) delete headers.tracestate;
    if (headers[REQUEST_ID] === undefined) headers[REQUEST_ID] = this.requestId;
    if (this.#b3 === null) return;
    const traceId = this.#shortB3 ? this.traceId.slice(16) : this.traceId;
    if (this.#b3 === 'b3') {
      headers['x-b3-traceid'] = traceId;
      headers['x-b3-spanid'] = this.spanId;
      if (this.parentId !== null) headers['x-b3-parentspanid'] = this.parentId;
      else delete headers['x-b3-parentspanid'];
      headers['x-b3-sampled'] = this.sampled ? '1' : '0';
    } else {
      headers.b3 = `${traceId}-${this.spanId}-${this.sampled ? '1' : '0'}${this.parentId !== null ? `-${this.parentId}` : ''}`;
    }
  }

  /** Ends the span once; `status` 0 means no response was sent. 5xx and resets are errors. */
  end(status: number, attributes?: Attributes): void {
    if (this.#ended) return;
    this.#ended = true;
    if (this.#exporter === null) return;
    this.endMs = nowMs();
    this.error = status === 0 || status >= 500;
    if (attributes !== undefined) this.attributes = attributes;
    this.#exporter.enqueue(this);
  }
}

export interface TracerOptions {
  /** The proxy's metrics registry, for the export counters. */
  readonly registry: Registry;
  readonly exporter?: ExporterOptions;
}

export class Tracer {
  /** The config it was built from; a proxy rebuilds its tracer when this changes. */
  readonly settings: TracingConfig;
  readonly serviceName: string;
  readonly #threshold: number;
  readonly #exporter: OtlpExporter | null;

  constructor(config: ProxyConfig, settings: TracingConfig, options: TracerOptions) {
    const w = config.workload;
    this.settings = settings;
    this.serviceName = settings.serviceName ?? `${w.name}.${w.namespace}`;
    this.#threshold = (settings.sampling ?? DEFAULT_SAMPLING) / 100;
    const canonical = w.labels['service.istio.io/canonical-name'] ?? w.labels['app.kubernetes.io/name'] ?? w.labels['app'] ?? w.name;
    this.#exporter =
      settings.otlpEndpoint === undefined
        ? null
        : new OtlpExporter(
            new URL(settings.otlpEndpoint),
            { 'service.name': this.serviceName, 'service.namespace': w.namespace, 'telemetry.sdk.name': 'meshward' },
            {
              component: 'proxy',
              node_id: `sidecar~${config.address ?? '127.0.0.1'}~${w.name}.${w.namespace}~${w.namespace}.svc.cluster.local`,
              'istio.canonical_service': canonical,
              'istio.namespace': w.namespace,
            },
            createTracingMetrics(options.registry),
            options.exporter,
          );
  }

  /** Whether spans are exported at all (an OTLP endpoint is configured). */
  get exporting(): boolean {
    return this.#exporter !== null;
  }

  /** Opens a span for a request with these (incoming) headers: continues its trace or starts one. */
  start(kind: 'server' | 'client', name: string, headers: IncomingHttpHeaders): Span {
    const incoming = extract(headers);
    const b3 = hasB3(headers);
    const rid = headers[REQUEST_ID];
    const requestId = typeof rid === 'string' && rid.length > 0 ? rid : randomUUID();
    const code: SpanKindCode = kind === 'server' ? 2 : 3;
    if (incoming !== null) {
      const sampled = incoming.sampled ?? this.#sample();
      return new Span(
        code,
        name,
        { traceId: incoming.traceId, parentId: incoming.parentId, sampled, requestId },
        {
          b3,
          // A 64-bit B3 id stays 64-bit while the trace id fits in it (it may have come as a padded traceparent).
          shortB3: b3 !== null && b3IsShort(headers, b3) && incoming.traceId.startsWith('0000000000000000'),
          keepTracestate: incoming.format === 'w3c',
        },
        this.#exporter,
      );
    }
    const sampled = (b3 === null ? undefined : detachedSampling(headers)) ?? this.#sample();
    return new Span(code, name, { traceId: newTraceId(), parentId: null, sampled, requestId }, { b3, shortB3: false, keepTracestate: false }, this.#exporter);
  }

  /** Sends the spans queued so far. */
  flush(): Promise<void> {
    return this.#exporter?.flush() ?? Promise.resolve();
  }

  /** Sends what is queued and closes the exporter; spans ended later are dropped. */
  shutdown(): Promise<void> {
    return this.#exporter?.shutdown() ?? Promise.resolve();
  }

  #sample(): boolean {
    return this.#threshold >= 1 || (this.#threshold > 0 && Math.random() < this.#threshold);
  }
}

/** The tracer for a config, or null when it has no `tracing` (then requests are not touched). */
export function tracerFor(config: ProxyConfig, options: TracerOptions): Tracer | null {
  return config.tracing === undefined ? null : new Tracer(config, config.tracing, options);
}

/** Whether a new config needs a new tracer. */
export function tracingChanged(tracer: Tracer | null, config: ProxyConfig): boolean {
  const next = config.tracing;
  if (tracer === null || next === undefined) return (tracer === null) !== (next === undefined);
  const w = config.workload;
  return (
    tracer.settings.otlpEndpoint !== next.otlpEndpoint ||
    tracer.settings.sampling !== next.sampling ||
    tracer.serviceName !== (next.serviceName ?? `${w.name}.${w.namespace}`)
  );
}
