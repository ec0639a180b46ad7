// Trace context parsing (src/proxy/tracing/trace-context.ts): what is
// continued and what starts a new trace, the headers a span writes, and the
// OTLP/JSON encoding of finished spans.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import type { ProxyConfig } from '../../../src/api/proxy-config.ts';
import { parseProxyConfig } from '../../../src/api/proxy-config-schema.ts';
import { OtlpExporter, otlpBody, unixNanos, type DropReason, type FinishedSpan } from '../../../src/proxy/tracing/otlp-exporter.ts';
import {
  detachedSampling,
  extract,
  formatTraceparent,
  newSpanId,
  newTraceId,
  parseB3Multi,
  parseB3Single,
  parseTraceparent,
} from '../../../src/proxy/tracing/trace-context.ts';
import { Tracer } from '../../../src/proxy/tracing/tracer.ts';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';
const VALID = `00-${TRACE}-${PARENT}-01`;

describe('parseTraceparent', () => {
  it('reads the W3C example', () => {
    assert.deepEqual(parseTraceparent(VALID), { traceId: TRACE, parentId: PARENT, sampled: true, format: 'w3c' });
  });

  it('reads the sampled flag from the low bit only', () => {
    assert.equal(parseTraceparent(`00-${TRACE}-${PARENT}-00`)?.sampled, false);
    assert.equal(parseTraceparent(`00-${TRACE}-${PARENT}-03`)?.sampled, true);
    assert.equal(parseTraceparent(`00-${TRACE}-${PARENT}-02`)?.sampled, false);
  });

  it('accepts a later version with extra fields, as a version 00 parser must', () => {
    assert.equal(parseTraceparent(`01-${TRACE}-${PARENT}-01-what-comes-next`)?.traceId, TRACE);
    assert.equal(parseTraceparent(`01-${TRACE}-${PARENT}-01`)?.traceId, TRACE);
  });

  const malformed: Record<string, string | undefined> = {
    absent: undefined,
    empty: '',
    'version ff': `ff-${TRACE}-${PARENT}-01`,
    'version 00 with extra fields': `00-${TRACE}-${PARENT}-01-extra`,
    'later version, no dash after flags': `01-${TRACE}-${PARENT}-01x`,
    'upper-case trace id': `00-${TRACE.toUpperCase()}-${PARENT}-01`,
    'upper-case parent id': `00-${TRACE}-${PARENT.toUpperCase()}-01`,
    'upper-case version': `0A-${TRACE}-${PARENT}-01`,
    'upper-case flags': `00-${TRACE}-${PARENT}-0A`,
    'all-zero trace id': `00-${'0'.repeat(32)}-${PARENT}-01`,
    'all-zero parent id': `00-${TRACE}-${'0'.repeat(16)}-01`,
    'short trace id': `00-${TRACE.slice(1)}-${PARENT}-01`,
    'long parent id': `00-${TRACE}-${PARENT}0-01`,
    'one-digit flags': `00-${TRACE}-${PARENT}-1`,
    'non-hex character': `00-${TRACE.slice(0, 31)}g-${PARENT}-01`,
    'wrong separator': `00_${TRACE}-${PARENT}-01`,
    'two headers joined': `${VALID}, ${VALID}`,
    'surrounding space': ` ${VALID}`,
  };
  for (const [what, value] of Object.entries(malformed)) {
    it(`refuses ${what}`, () => assert.equal(parseTraceparent(value), null));
  }
});

describe('B3', () => {
  const SPAN = 'e457b5a2e4d86bd1';
  it('reads multi-header B3 with a 128-bit trace id', () => {
    assert.deepEqual(parseB3Multi(TRACE, SPAN, '1'), { traceId: TRACE, parentId: SPAN, sampled: true, format: 'b3' });
  });

  it('pads a 64-bit trace id and remembers it was short', () => {
    const ctx = parseB3Multi('a3ce929d0e0e4736', SPAN, '0');
    assert.equal(ctx?.traceId, '0000000000000000a3ce929d0e0e4736');
    assert.equal(ctx?.sampled, false);
    assert.equal(ctx?.shortB3TraceId, true);
  });

  it('leaves the decision to the proxy without x-b3-sampled; debug samples', () => {
    assert.equal(parseB3Multi(TRACE, SPAN, undefined)?.sampled, undefined);
    assert.equal(parseB3Multi(TRACE, SPAN, undefined, '1')?.sampled, true);
  });

  for (const [what, t, s] of [
    ['an upper-case trace id', TRACE.toUpperCase(), SPAN],
    ['an all-zero trace id', '0'.repeat(32), SPAN],
    ['a 20-digit trace id', TRACE.slice(0, 20), SPAN],
    ['an all-zero span id', TRACE, '0'.repeat(16)],
    ['a short span id', TRACE, SPAN.slice(1)],
    ['no span id', TRACE, undefined],
  ] as const) {
    it(`refuses multi-header B3 with ${what}`, () => assert.equal(parseB3Multi(t, s, '1'), null));
  }

  it('reads single-header b3 in its forms', () => {
    assert.deepEqual(parseB3Single(`${TRACE}-${SPAN}-1-${PARENT}`), { traceId: TRACE, parentId: SPAN, sampled: true, format: 'b3-single' });
    assert.equal(parseB3Single(`${TRACE}-${SPAN}`)?.sampled, undefined);
    assert.equal(parseB3Single(`${TRACE}-${SPAN}-0`)?.sampled, false);
    assert.equal(parseB3Single(`${TRACE}-${SPAN}-d`)?.sampled, true);
    assert.equal(parseB3Single(`a3ce929d0e0e4736-${SPAN}-1`)?.traceId, '0000000000000000a3ce929d0e0e4736');
  });

  for (const value of ['0', '1', `${TRACE}-${SPAN}-2`, `${TRACE}-${SPAN}-1-${PARENT}x`, `${TRACE.toUpperCase()}-${SPAN}-1`, `${TRACE}-${'0'.repeat(16)}-1`, `${TRACE}-${SPAN}x`]) {
    it(`does not continue b3: ${value}`, () => assert.equal(parseB3Single(value), null));
  }

  it('keeps a sampling decision sent alone', () => {
    assert.equal(detachedSampling({ b3: '0' }), false);
    assert.equal(detachedSampling({ 'x-b3-sampled': '1' }), true);
    assert.equal(detachedSampling({}), undefined);
  });
});

describe('extract', () => {
  const SPAN = 'e457b5a2e4d86bd1';
  it('prefers a valid traceparent over B3', () => {
    assert.equal(extract({ traceparent: VALID, 'x-b3-traceid': 'a'.repeat(32), 'x-b3-spanid': SPAN })?.format, 'w3c');
  });

  it('falls back to B3 when traceparent is malformed', () => {
    const ctx = extract({ traceparent: `ff-${TRACE}-${PARENT}-01`, 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN });
    assert.equal(ctx?.format, 'b3');
  });

  it('starts a new trace from garbage', () => {
    assert.equal(extract({ traceparent: `00-${'0'.repeat(32)}-${PARENT}-01` }), null);
    assert.equal(extract({ traceparent: ['a', 'b'] }), null);
    assert.equal(extract({}), null);
  });
});

describe('ids', () => {
  it('are lower-case hex of the right length, not zero, and differ', () => {
    const traces = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const t = newTraceId();
      const s = newSpanId();
      assert.ok(parseTraceparent(formatTraceparent(t, s, true)) !== null);
      traces.add(t);
    }
    assert.equal(traces.size, 1000);
  });
});

function config(tracing: ProxyConfig['tracing']): ProxyConfig {
  return {
    version: 1,
    workload: { name: 'order', namespace: 'shop', serviceAccount: 'order', labels: { app: 'order' }, trustDomain: 'cluster.local' },
    inbound: [],
    outbound: [],
    adminPort: 15000,
    policyPaths: [],
    ...(tracing !== undefined ? { tracing } : {}),
  };
}

describe('Span headers', () => {
  it('a continued W3C trace keeps tracestate and names the proxy span as parent', () => {
    const tracer = new Tracer(config({ sampling: 0 }), { sampling: 0 }, { registry: new Registry() });
    const span = tracer.start('server', 'x', { traceparent: VALID, tracestate: 'k=v' });
    const out: Record<string, string> = { tracestate: 'k=v' };
    span.inject(out);
    assert.equal(out['traceparent'], `00-${TRACE}-${span.spanId}-01`);
    assert.equal(out['tracestate'], 'k=v');
    assert.equal(span.parentId, PARENT);
    assert.match(out['x-request-id']!, /^[0-9a-f-]{36}$/);
    assert.equal(span.recording, false, 'no endpoint: nothing kept');
  });

  it('a new trace drops a stale tracestate and follows the sampling percentage', () => {
    const off = new Tracer(config({ sampling: 0 }), { sampling: 0 }, { registry: new Registry() });
    const span = off.start('server', 'x', { traceparent: 'garbage', tracestate: 'k=v', 'x-request-id': 'rid' });
    const out: Record<string, string> = { tracestate: 'k=v', 'x-request-id': 'rid' };
    span.inject(out);
    assert.equal(span.parentId, null);
    assert.equal(span.sampled, false);
    assert.equal(out['tracestate'], undefined);
    assert.equal(out['x-request-id'], 'rid');
    const on = new Tracer(config({ sampling: 100 }), { sampling: 100 }, { registry: new Registry() });
    assert.equal(on.start('server', 'x', {}).sampled, true);
  });

  it('B3 headers are rewritten in the form they came, with the short trace id kept short', () => {
    const tracer = new Tracer(config({}), {}, { registry: new Registry() });
    const multi = tracer.start('client', 'x', { 'x-b3-traceid': 'a3ce929d0e0e4736', 'x-b3-spanid': 'e457b5a2e4d86bd1', 'x-b3-sampled': '1' });
    const out: Record<string, string> = {};
    multi.inject(out);
    assert.equal(out['x-b3-traceid'], 'a3ce929d0e0e4736');
    assert.equal(out['x-b3-spanid'], multi.spanId);
    assert.equal(out['x-b3-parentspanid'], 'e457b5a2e4d86bd1');
    assert.equal(out['x-b3-sampled'], '1');
    assert.equal(out['traceparent'], `00-0000000000000000a3ce929d0e0e4736-${multi.spanId}-01`);
    const single = tracer.start('client', 'x', { b3: `${TRACE}-e457b5a2e4d86bd1-0` });
    const out2: Record<string, string> = {};
    single.inject(out2);
    assert.equal(out2['b3'], `${TRACE}-${single.spanId}-0-e457b5a2e4d86bd1`);
  });
});

describe('OTLP/JSON', () => {
  it('writes nanoseconds as decimal strings without losing precision', () => {
    assert.equal(unixNanos(1_700_000_000_123.25), '1700000000123250000');
    assert.equal(unixNanos(1_700_000_000_000 + 0.1234), '1700000000000123000');
    assert.equal(unixNanos(1_700_000_000_000), '1700000000000000000');
  });

  it('encodes a span as resourceSpans → scopeSpans → spans', () => {
    const body = JSON.parse(
      otlpBody([{ key: 'service.name', value: { stringValue: 'order.shop' } }], [], [
        { traceId: TRACE, spanId: PARENT, parentId: null, name: 'n', kind: 2, startMs: 1, endMs: 2, attributes: { 'http.status_code': 503, ok: false }, error: true },
      ]),
    );
    const span = body.resourceSpans[0].scopeSpans[0].spans[0];
    assert.equal(span.traceId, TRACE);
    assert.equal(span.parentSpanId, undefined);
    assert.equal(span.kind, 2);
    assert.equal(span.startTimeUnixNano, '1000000');
    assert.deepEqual(span.attributes, [
      { key: 'http.status_code', value: { intValue: '503' } },
      { key: 'ok', value: { boolValue: false } },
    ]);
    assert.deepEqual(span.status, { code: 2 });
  });
});

describe('OtlpExporter', () => {
  it('drops and counts spans past the queue bound, a refused export, and spans after shutdown', async () => {
    const counts: Record<string, number> = {};
    const metrics = {
      exported: (n: number) => (counts['exported'] = (counts['exported'] ?? 0) + n),
      dropped: (reason: DropReason, n: number) => (counts[reason] = (counts[reason] ?? 0) + n),
    };
    // Port 1 on loopback: nothing listens, the POST is refused at once.
    const exporter = new OtlpExporter(new URL('http://127.0.0.1:1/v1/traces'), {}, {}, metrics, { maxQueue: 2, maxBatch: 10 });
    const span: FinishedSpan = { traceId: TRACE, spanId: PARENT, parentId: null, name: 'n', kind: 3, startMs: 1, endMs: 2, attributes: {}, error: false };
    exporter.enqueue(span);
    exporter.enqueue(span);
    exporter.enqueue(span);
    assert.deepEqual(counts, { queue_full: 1 });
    await exporter.flush();
    assert.deepEqual(counts, { queue_full: 1, export_failed: 2 });
    await exporter.shutdown();
    exporter.enqueue(span);
    assert.deepEqual(counts, { queue_full: 1, export_failed: 2, stopped: 1 });
  });
});

describe('OtlpExporter against a collector that never answers', () => {
  it('does not hold up shutdown past the POST timeout', async () => {
    const server = createServer(() => undefined);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const dropped: string[] = [];
    const exporter = new OtlpExporter(
      new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`),
      {},
      {},
      { exported: () => undefined, dropped: (reason) => dropped.push(reason) },
      { timeoutMs: 150, maxBatch: 1 },
    );
    const span: FinishedSpan = { traceId: TRACE, spanId: PARENT, parentId: null, name: 'n', kind: 2, startMs: 1, endMs: 2, attributes: {}, error: false };
    exporter.enqueue(span);
    exporter.enqueue(span);
    const t0 = performance.now();
    await exporter.shutdown();
    assert.ok(performance.now() - t0 < 1000);
    server.closeAllConnections();
    server.close();
  });
});

describe('tracing config', () => {
  it('accepts the fields and refuses a bad endpoint or percentage', () => {
    assert.ok('config' in parseProxyConfig('t', config({ otlpEndpoint: 'http://127.0.0.1:4318/v1/traces', sampling: 100, serviceName: 'order' })));
    const bad = parseProxyConfig('t', config({ otlpEndpoint: 'not a url', sampling: 101 } as never));
    assert.ok('diagnostics' in bad);
    const paths = bad.diagnostics.map((d) => d.path);
    assert.ok(paths.includes('tracing.otlpEndpoint'), JSON.stringify(bad.diagnostics));
    assert.ok(paths.includes('tracing.sampling'), JSON.stringify(bad.diagnostics));
    assert.ok('diagnostics' in parseProxyConfig('t', config({ otlpEndpoint: 'ftp://127.0.0.1/x' })));
  });
});
