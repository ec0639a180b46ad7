// istio_requests_total and istio_request_duration_milliseconds without
// prom-client's per-sample work. A prom-client Counter or Histogram checks
// every label name and builds a string from every label pair on each
// `inc`/`observe` (13 labels here, twice per request: about 5 µs, a few per
// cent of a proxy's CPU per request). Here a label set is found once, by a
// key its caller builds from the few values that vary, and each request then
// only adds to numbers. The two series are registered on the registry as
// prom-client metrics (`get`, `reset`, as Registry reads them), so
// /stats/prometheus prints them as prom-client would, and a side that finds
// them by name (`metricOnce`) counts into the same cells.

import type { Registry } from '../../lib/prometheus.ts';
import { DURATION_BUCKETS } from './series.ts';

const COUNTER = 'istio_requests_total';
const HISTOGRAM = 'istio_request_duration_milliseconds';

/** One label set: its request count and duration histogram. */
export class RequestCell {
  readonly labels: Readonly<Record<string, string>>;
  count = 0;
  sum = 0;
  /** Per bucket of DURATION_BUCKETS, not cumulative; above the last one only `count` grows. */
  readonly buckets = new Float64Array(DURATION_BUCKETS.length);

  constructor(labels: Readonly<Record<string, string>>) {
    this.labels = labels;
  }

  /** One request that took `ms`. */
  observe(ms: number): void {
    this.count++;
    if (!Number.isFinite(ms)) return;
    this.sum += ms;
    const b = DURATION_BUCKETS;
    for (let i = 0; i < b.length; i++) {
      if (ms <= b[i]!) {
        this.buckets[i]!++;
        return;
      }
    }
  }

  reset(): void {
    this.count = 0;
    this.sum = 0;
    this.buckets.fill(0);
  }
}

interface Value {
  labels: Record<string, string | number>;
  sharedLabels?: Readonly<Record<string, string>>;
  value: number;
  metricName?: string;
}

/** The shape prom-client's Registry reads from a metric. */
interface Facet {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator: 'sum';
  readonly cells: RequestSeries;
  get(): Promise<{ name: string; help: string; type: string; values: Value[]; aggregator: 'sum' }>;
  reset(): void;
}

/** The cells of both series, by key; a cell is made the first time its key is seen. */
export class RequestSeries {
  readonly labelNames: readonly string[];
  readonly #cells = new Map<string, RequestCell>();

  private constructor(labelNames: readonly string[]) {
    this.labelNames = labelNames;
  }

  /**
   * The series on `registry`: the ones registered there already when both
   * names are these series' facets, else new ones; null when either name is
   * taken by another metric (the caller then counts into that one).
   */
  static on(registry: Registry, labelNames: readonly string[], help: { readonly requests: string; readonly duration: string }): RequestSeries | null {
    const counter = registry.getSingleMetric(COUNTER) as unknown as Partial<Facet> | undefined;
    const histogram = registry.getSingleMetric(HISTOGRAM) as unknown as Partial<Facet> | undefined;
    if (counter !== undefined || histogram !== undefined) {
      return counter?.cells !== undefined && counter.cells === histogram?.cells ? counter.cells : null;
    }
    const series = new RequestSeries(labelNames);
    registry.registerMetric(series.#counter(help.requests) as never);
    registry.registerMetric(series.#histogram(help.duration) as never);
    return series;
  }

  /** The cell for `key`; `labels` (every one of `labelNames`) is called only when the key is new. */
  cell(key: string, labels: () => Record<string, string>): RequestCell {
    let c = this.#cells.get(key);
    if (c === undefined) {
      c = new RequestCell(Object.freeze(labels()));
      this.#cells.set(key, c);
    }
    return c;
  }

  #reset(): void {
    for (const c of this.#cells.values()) c.reset();
  }

  #counter(help: string): Facet {
    const cells = this.#cells;
    return {
      name: COUNTER,
      help,
      type: 'counter',
      aggregator: 'sum',
      cells: this,
      get: () => Promise.resolve({ name: COUNTER, help, type: 'counter', values: [...cells.values()].map((c) => ({ labels: { ...c.labels }, value: c.count })), aggregator: 'sum' }),
      reset: () => this.#reset(),
    };
  }

  #histogram(help: string): Facet {
    const cells = this.#cells;
    const bucket = `${HISTOGRAM}_bucket`;
    // As prom-client's Histogram.get(): `le` first, then the cell's labels.
    const values = (): Value[] => {
      const out: Value[] = [];
      for (const c of cells.values()) {
        let acc = 0;
        for (let i = 0; i < DURATION_BUCKETS.length; i++) {
          acc += c.buckets[i]!;
          out.push({ labels: { le: DURATION_BUCKETS[i]!, ...c.labels }, value: acc, metricName: bucket });
        }
        out.push({ labels: { le: '+Inf', ...c.labels }, value: c.count, metricName: bucket });
        out.push({ labels: { ...c.labels }, value: c.sum, metricName: `${HISTOGRAM}_sum` });
        out.push({ labels: { ...c.labels }, value: c.count, metricName: `${HISTOGRAM}_count` });
      }
      return out;
    };
    return {
      name: HISTOGRAM,
      help,
      type: 'histogram',
      aggregator: 'sum',
      cells: this,
      get: () => Promise.resolve({ name: HISTOGRAM, help, type: 'histogram', values: values(), aggregator: 'sum' }),
      reset: () => this.#reset(),
    };
  }
}
