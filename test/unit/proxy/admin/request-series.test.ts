// istio_requests_total and istio_request_duration_milliseconds counted by
// src/proxy/admin/request-series.ts: the same exposition as prom-client's
// Counter and Histogram given the same samples, one cell per key, shared by
// both directions on one registry, and out of the way of series another
// component registered under those names.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Counter, Histogram, Registry } from 'prom-client';
import { RequestSeries } from '../../../../src/proxy/admin/request-series.ts';
import { DURATION_BUCKETS } from '../../../../src/proxy/admin/series.ts';

const NAMES = ['reporter', 'source_principal', 'response_code'] as const;
const HELP = { requests: 'Requests.', duration: 'Duration.' };
const SAMPLES: [Record<(typeof NAMES)[number], string>, number][] = [
  [{ reporter: 'source', source_principal: 'spiffe://td/ns/a/sa/x', response_code: '200' }, 0.4],
  [{ reporter: 'source', source_principal: 'spiffe://td/ns/a/sa/x', response_code: '200' }, 7],
  [{ reporter: 'destination', source_principal: 'spiffe://td/ns/a/sa/"q"', response_code: '503' }, 20000],
  [{ reporter: 'source', source_principal: 'spiffe://td/ns/a/sa/x', response_code: '200' }, 10],
];

describe('RequestSeries', () => {
  it('prints what prom-client prints for the same samples', async () => {
    const ours = new Registry();
    const series = RequestSeries.on(ours, NAMES, HELP)!;
    for (const [labels, ms] of SAMPLES) series.cell(Object.values(labels).join('\n'), () => ({ ...labels })).observe(ms);

    const theirs = new Registry();
    const c = new Counter({ name: 'istio_requests_total', help: HELP.requests, labelNames: NAMES, registers: [theirs] });
    const h = new Histogram({ name: 'istio_request_duration_milliseconds', help: HELP.duration, labelNames: NAMES, buckets: [...DURATION_BUCKETS], registers: [theirs] });
    for (const [labels, ms] of SAMPLES) {
      c.inc(labels);
      h.observe(labels, ms);
    }
    assert.equal(await ours.metrics(), await theirs.metrics());
    // prom-client's values also carry an empty `exemplar` (null or undefined); exemplars are not used here.
    const json = async (r: Registry): Promise<unknown> => JSON.parse(JSON.stringify(await r.getMetricsAsJSON(), (k, v: unknown) => (k === 'exemplar' ? undefined : v))) as unknown;
    assert.deepEqual(await json(ours), await json(theirs));
  });

  it('makes a cell once per key and shares the series with the other direction', () => {
    const registry = new Registry();
    const a = RequestSeries.on(registry, NAMES, HELP)!;
    const b = RequestSeries.on(registry, NAMES, HELP);
    assert.equal(b, a);
    let made = 0;
    const labels = (): Record<string, string> => {
      made++;
      return { reporter: 'source', source_principal: 'p', response_code: '200' };
    };
    const one = a.cell('k', labels);
    one.observe(1);
    assert.equal(b!.cell('k', labels), one);
    assert.equal(made, 1);
    assert.equal(one.count, 1);
  });

  it('steps aside when another component registered either name', () => {
    const registry = new Registry();
    new Counter({ name: 'istio_requests_total', help: 'other', labelNames: ['reporter'], registers: [registry] });
    assert.equal(RequestSeries.on(registry, NAMES, HELP), null);
  });

  it('zeroes its cells on reset', async () => {
    const registry = new Registry();
    const series = RequestSeries.on(registry, NAMES, HELP)!;
    series.cell('k', () => ({ reporter: 'source', source_principal: 'p', response_code: '200' })).observe(3);
    registry.resetMetrics();
    const { values } = await registry.getSingleMetric('istio_requests_total')!.get();
    assert.deepEqual(values.map((v) => v.value), [0]);
  });
});
