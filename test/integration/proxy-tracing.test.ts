// Distributed tracing across two real proxies (as in proxy-e2e.test.ts):
// the order "app" (this test) calls payment-service through its proxy, the
// order proxy opens a CLIENT span and carries the request over mTLS to the
// payment proxy, which opens a SERVER span and hands the payment app a
// traceparent naming it. Both proxies export to a real OTLP/HTTP receiver on
// 127.0.0.1:0 that keeps every JSON body POSTed to it. HTTP/1.1 requests are
// served on both proxies' fast lanes; a chunked one takes node's server at
// both, and the two are compared.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import type { ProxyConfig } from '../../src/api/proxy-config.ts';
import type { MtlsMaterial } from '../../src/identity/tls-options.ts';
import type { TrustBundle } from '../../src/identity/trust-bundle.ts';
import type { AccessLogEntry } from '../../src/proxy/access-log.ts';
import { WorkloadProxy } from '../../src/proxy/proxy.ts';
import { freePort, get as httpGet, type Reply } from '../support/http.ts';
import { createLeaf, createRootCa, type TestCa } from '../support/pki.ts';
import { bundleOf, proxyConfig, upstreamTo } from '../support/proxy.ts';

const TD = 'cluster.local';
const NS = 'production';
const id = (sa: string): string => `spiffe://${TD}/ns/${NS}/sa/${sa}`;
const POLICIES = resolve(import.meta.dirname, '../../examples/authz/policies/payment.yaml');
const PAYMENT_HOST = `payment-service.${NS}.svc.cluster.local`;

interface OtlpValue {
  readonly stringValue?: string;
  readonly intValue?: string;
  readonly boolValue?: boolean;
}

interface ExportedSpan {
  readonly service: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId?: string;
  readonly name: string;
  readonly kind: number;
  readonly startTimeUnixNano: string;
  readonly endTimeUnixNano: string;
  readonly attributes: readonly { readonly key: string; readonly value: OtlpValue }[];
  readonly status: { readonly code?: number };
}

function attr(span: ExportedSpan, key: string): string | boolean | undefined {
  const v = span.attributes.find((a) => a.key === key)?.value;
  return v?.stringValue ?? v?.intValue ?? v?.boolValue;
}

/** An OTLP/HTTP receiver: every POSTed body, flattened to spans with their service.name. */
async function startReceiver(): Promise<{ server: http.Server; url: string; spans: ExportedSpan[]; posts: { contentType: string | undefined; path: string | undefined }[] }> {
  const spans: ExportedSpan[] = [];
  const posts: { contentType: string | undefined; path: string | undefined }[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      posts.push({ contentType: req.headers['content-type'], path: req.url });
      const parsed = JSON.parse(body) as {
        resourceSpans: { resource: { attributes: { key: string; value: OtlpValue }[] }; scopeSpans: { spans: Omit<ExportedSpan, 'service'>[] }[] }[];
      };
      for (const rs of parsed.resourceSpans) {
        const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
        for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ service, ...s });
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`, spans, posts };
}

/** GET as the order app sends it, addressed to payment-service, with `headers` added. */
const get = (port: number, path: string, headers: Record<string, string> = {}): Promise<Reply> => httpGet(port, path, { headers: { host: 'payment-service', ...headers } });

/** A request on a new connection, `headers` as raw name/value pairs (a name may repeat); the response's status and raw headers. */
function rawRequest(port: number, path: string, method: string, headers: string[], body?: string): Promise<{ status: number; raw: string[] }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, raw: res.rawHeaders }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/**
 * Whether node's HTTP stack wrote a message head, not a proxy's fast lane:
 * node adds a Connection header spelled with a capital C, where the lane
 * writes every name in lower case.
 */
const byNode = (raw: readonly string[]): boolean => raw.some((name, i) => i % 2 === 0 && name === 'Connection');

/** Every value of header `name` in raw name/value pairs, in order. */
function valuesOf(raw: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) out.push(raw[i + 1]!);
  return out;
}

const TRACE_HEADERS = ['traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags', 'x-request-id'];

/** The trace headers in raw name/value pairs as sorted `name: value` lines, the ids of one request's trace replaced by their roles. */
function traceFields(raw: readonly string[], ids: Readonly<Record<string, string>>): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (!TRACE_HEADERS.includes(name)) continue;
    let value = raw[i + 1]!;
    for (const [role, id] of Object.entries(ids)) value = value.replaceAll(id, `<${role}>`);
    out.push(`${name}: ${value}`);
  }
  return out.sort();
}

describe('tracing across two proxies', { timeout: 20_000 }, () => {
  let root: TestCa;
  let bundle: TrustBundle;
  let app: http.Server;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  const seen: http.IncomingHttpHeaders[] = [];
  /** The app's requests' headers as they came on the wire. */
  const seenRaw: string[][] = [];
  const proxies: WorkloadProxy[] = [];
  const log: AccessLogEntry[] = [];
  let order: WorkloadProxy;
  let reporting: WorkloadProxy;
  let paymentInbound = 0;

  function config(sa: string, inbound: ProxyConfig['inbound'], paymentPort: number): ProxyConfig {
    return proxyConfig(sa, NS, inbound, paymentPort === 0 ? [] : [upstreamTo('payment-service', NS, paymentPort, [id('payment-service')])], {
      policyPaths: [POLICIES],
      tracing: { otlpEndpoint: receiver.url, sampling: 100 },
    });
  }

  async function startProxy(sa: string, inbound: ProxyConfig['inbound'], paymentPort: number): Promise<WorkloadProxy> {
    const leaf = await createLeaf(root, { uris: [id(sa)] });
    const material: MtlsMaterial = { key: leaf.key, chain: leaf.chain, bundle };
    const proxy = await WorkloadProxy.start(config(sa, inbound, paymentPort), { material, bindPort: () => 0, accessLog: (e) => log.push(e), drainMs: 200 });
    proxies.push(proxy);
    return proxy;
  }

  const localPort = (p: WorkloadProxy): number => p.status().outbound.find((u) => u.name === 'payment-service')!.boundPort;

  /** Flushes every proxy until the trace has `n` spans (spans end when the proxies' responses close). */
  async function spansOf(traceId: string, n: number): Promise<ExportedSpan[]> {
    for (let i = 0; i < 100; i++) {
      await Promise.all(proxies.map((p) => p.flushTraces()));
      const found = receiver.spans.filter((s) => s.traceId === traceId);
      if (found.length >= n) return found;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.fail(`trace ${traceId}: expected ${n} spans, have ${receiver.spans.filter((s) => s.traceId === traceId).length}`);
  }

  const traceparentOf = (h: http.IncomingHttpHeaders | undefined): { traceId: string; parentId: string; flags: string } => {
    const parts = String(h?.['traceparent']).split('-');
    assert.equal(parts.length, 4, `traceparent: ${String(h?.['traceparent'])}`);
    return { traceId: parts[1]!, parentId: parts[2]!, flags: parts[3]! };
  };

  before(async () => {
    receiver = await startReceiver();
    root = await createRootCa({ trustDomain: TD });
    bundle = bundleOf(root);
    app = http.createServer((req, res) => {
      seen.push(req.headers);
      seenRaw.push(req.rawHeaders);
      res.writeHead(req.url?.endsWith('/fail') ? 503 : 200, { 'content-type': 'text/plain' });
      res.end(`paid:${req.url}`);
    });
    app.listen(0, '127.0.0.1');
    await once(app, 'listening');
    const payment = await startProxy('payment-service', [{ port: 8080, protocol: 'http', appPort: (app.address() as AddressInfo).port }], 0);
    paymentInbound = payment.status().inbound[0]!.boundPort;
    order = await startProxy('order-service', [], paymentInbound);
    reporting = await startProxy('reporting-service', [], paymentInbound);
  });

  after(async () => {
    await Promise.all(proxies.map((p) => p.stop()));
    app.closeAllConnections();
    app.close();
    receiver.server.closeAllConnections();
    receiver.server.close();
  });

  it('continues an incoming traceparent: client span → server span → app', async () => {
    const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parent = '00f067aa0ba902b7';
    const reply = await get(localPort(order), '/api/v1/payments/1', { traceparent: `00-${trace}-${parent}-01`, tracestate: 'vendor=x' });
    assert.equal(reply.status, 200);
    const atApp = seen.at(-1);
    const tp = traceparentOf(atApp);
    assert.equal(tp.traceId, trace);
    assert.equal(tp.flags, '01');
    assert.equal(atApp?.['tracestate'], 'vendor=x');
    assert.match(String(atApp?.['x-request-id']), /^[0-9a-f-]{36}$/);

    const spans = await spansOf(trace, 2);
    const client = spans.find((s) => s.kind === 3)!;
    const server = spans.find((s) => s.kind === 2)!;
    assert.ok(client !== undefined && server !== undefined, JSON.stringify(spans));
    assert.equal(client.service, 'order-service.production');
    assert.equal(server.service, 'payment-service.production');
    assert.equal(client.parentSpanId, parent);
    assert.equal(server.parentSpanId, client.spanId);
    assert.equal(tp.parentId, server.spanId);
    assert.match(client.spanId, /^[0-9a-f]{16}$/);
    assert.match(client.startTimeUnixNano, /^\d{19}$/);
    assert.ok(BigInt(client.endTimeUnixNano) >= BigInt(client.startTimeUnixNano));

    assert.equal(client.name, `${PAYMENT_HOST}:8080/*`);
    assert.equal(attr(client, 'upstream_cluster'), `outbound|8080||${PAYMENT_HOST}`);
    assert.equal(attr(client, 'peer.service'), 'payment-service');
    assert.equal(attr(client, 'http.status_code'), '200');
    assert.equal(attr(client, 'response_flags'), '-');
    assert.equal(server.name, 'payment-service.production:8080/*');
    assert.equal(attr(server, 'http.method'), 'GET');
    assert.equal(attr(server, 'http.url'), 'http://payment-service/api/v1/payments/1');
    assert.equal(attr(server, 'upstream_cluster'), 'inbound|8080||');
    assert.equal(attr(server, 'meshward.authz.decision'), 'ALLOW');
    assert.equal(attr(server, 'meshward.peer.principal'), id('order-service'));
    assert.equal(attr(server, 'istio.canonical_service'), 'payment-service');
    assert.match(String(attr(server, 'node_id')), /^sidecar~127\.0\.0\.1~payment-service\.production~/);
    assert.equal(attr(server, 'guid:x-request-id'), atApp?.['x-request-id']);
    assert.deepEqual(server.status, {});

    const entry = log.find((e) => e.path === '/api/v1/payments/1');
    assert.equal(entry?.traceId, trace);
    assert.deepEqual(receiver.posts[0], { contentType: 'application/json', path: '/v1/traces' });
  });

  it('continues a B3 trace and keeps the B3 headers current', async () => {
    const trace = 'a3ce929d0e0e4736';
    const reply = await get(localPort(order), '/api/v1/payments/2', { 'x-b3-traceid': trace, 'x-b3-spanid': 'e457b5a2e4d86bd1', 'x-b3-sampled': '1' });
    assert.equal(reply.status, 200);
    const atApp = seen.at(-1)!;
    const full = `0000000000000000${trace}`;
    assert.equal(traceparentOf(atApp).traceId, full);
    assert.equal(atApp['x-b3-traceid'], trace);
    assert.equal(atApp['x-b3-sampled'], '1');
    const spans = await spansOf(full, 2);
    const client = spans.find((s) => s.kind === 3)!;
    const server = spans.find((s) => s.kind === 2)!;
    assert.equal(client.parentSpanId, 'e457b5a2e4d86bd1');
    assert.equal(server.parentSpanId, client.spanId);
    assert.equal(atApp['x-b3-spanid'], server.spanId);
    assert.equal(atApp['x-b3-parentspanid'], client.spanId);
  });

  it('starts a trace for a request without trace headers', async () => {
    const reply = await get(localPort(order), '/api/v1/payments/3');
    assert.equal(reply.status, 200);
    const atApp = seen.at(-1)!;
    const tp = traceparentOf(atApp);
    assert.match(tp.traceId, /^[0-9a-f]{32}$/);
    assert.equal(tp.flags, '01');
    assert.equal(atApp['x-b3-traceid'], undefined, 'no B3 unless the request came with it');
    const spans = await spansOf(tp.traceId, 2);
    const client = spans.find((s) => s.kind === 3)!;
    const server = spans.find((s) => s.kind === 2)!;
    assert.equal(client.parentSpanId, undefined);
    assert.equal(server.parentSpanId, client.spanId);
    assert.equal(tp.parentId, server.spanId);
  });

  it('starts a new trace instead of continuing a malformed traceparent', async () => {
    const bad = `00-${'4BF92F3577B34DA6A3CE929D0E0E4736'}-00f067aa0ba902b7-01`;
    await get(localPort(order), '/api/v1/payments/4', { traceparent: bad, tracestate: 'vendor=x' });
    const atApp = seen.at(-1)!;
    const tp = traceparentOf(atApp);
    assert.notEqual(tp.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.match(tp.traceId, /^[0-9a-f]{32}$/);
    assert.equal(atApp['tracestate'], undefined);
  });

  it('exports nothing for a trace whose caller did not sample it', async () => {
    const trace = '11111111111111111111111111111111';
    const reply = await get(localPort(order), '/api/v1/payments/5', { traceparent: `00-${trace}-00f067aa0ba902b7-00` });
    assert.equal(reply.status, 200);
    const tp = traceparentOf(seen.at(-1));
    assert.equal(tp.traceId, trace);
    assert.equal(tp.flags, '00');
    // A sampled request after it: once its spans are in, the unsampled ones would have been too.
    const marker = '22222222222222222222222222222222';
    await get(localPort(order), '/api/v1/payments/6', { traceparent: `00-${marker}-00f067aa0ba902b7-01` });
    await spansOf(marker, 2);
    await new Promise((r) => setTimeout(r, 50));
    await Promise.all(proxies.map((p) => p.flushTraces()));
    assert.deepEqual(receiver.spans.filter((s) => s.traceId === trace), []);
    // Still in the access log, for correlation.
    assert.equal(log.find((e) => e.path === '/api/v1/payments/5')?.traceId, trace);
  });

  it('tags a denial with the authorization decision and a 5xx as an error', async () => {
    const denied = '33333333333333333333333333333333';
    assert.equal((await get(localPort(reporting), '/api/v1/payments/7', { traceparent: `00-${denied}-00f067aa0ba902b7-01` })).status, 403);
    const [server] = (await spansOf(denied, 2)).filter((s) => s.kind === 2);
    assert.equal(attr(server!, 'meshward.authz.decision'), 'DENY');
    assert.equal(attr(server!, 'http.status_code'), '403');
    assert.equal(attr(server!, 'response_flags'), 'RBAC');
    assert.equal(attr(server!, 'meshward.authz.stage'), 'authorization');

    const failing = '44444444444444444444444444444444';
    assert.equal((await get(localPort(order), '/api/v1/payments/fail', { traceparent: `00-${failing}-00f067aa0ba902b7-01` })).status, 503);
    const spans = await spansOf(failing, 2);
    for (const s of spans) {
      assert.deepEqual(s.status, { code: 2 });
      assert.equal(attr(s, 'error'), true);
    }
  });

  it('serves traced HTTP/1.1 requests on the fast lane of both proxies', async () => {
    const trace = '77777777777777777777777777777777';
    const parent = '00f067aa0ba902b7';
    const reply = await rawRequest(localPort(order), '/api/v1/payments/11', 'GET', ['host', 'payment-service', 'traceparent', `00-${trace}-${parent}-01`, 'user-agent', 'lane/1']);
    assert.equal(reply.status, 200);
    const atApp = seenRaw.at(-1)!;
    assert.equal(byNode(reply.raw), false, `the order proxy answered on its lane: ${reply.raw.join(' ')}`);
    assert.equal(byNode(atApp), false, `the payment proxy forwarded on its lane: ${atApp.join(' ')}`);

    const spans = await spansOf(trace, 2);
    const client = spans.find((s) => s.kind === 3)!;
    const server = spans.find((s) => s.kind === 2)!;
    assert.equal(client.parentSpanId, parent);
    assert.equal(server.parentSpanId, client.spanId);
    assert.deepEqual(valuesOf(atApp, 'traceparent'), [`00-${trace}-${server.spanId}-01`]);
    assert.equal(valuesOf(atApp, 'x-request-id').length, 1);
    assert.equal(attr(server, 'guid:x-request-id'), valuesOf(atApp, 'x-request-id')[0]);
    assert.equal(attr(client, 'guid:x-request-id'), attr(server, 'guid:x-request-id'));
    assert.equal(attr(client, 'http.protocol'), 'HTTP/1.1');
    assert.equal(attr(client, 'http.url'), 'http://payment-service/api/v1/payments/11');
    assert.equal(attr(client, 'upstream_address'), `127.0.0.1:${paymentInbound}`);
    assert.equal(attr(client, 'meshward.connection_security_policy'), 'mutual_tls');
    assert.equal(attr(server, 'http.protocol'), 'HTTP/1.1');
    assert.equal(attr(server, 'user_agent'), 'lane/1');
    assert.equal(attr(server, 'peer.address'), '127.0.0.1');
    assert.equal(log.find((e) => e.path === '/api/v1/payments/11')?.traceId, trace);
  });

  it('traces on the lane as on the full path, repeated and malformed trace headers included', async () => {
    // Both traceparents are valid alone; sent twice they are one malformed
    // value (node joins them), and the proxy starts a new trace.
    const headers = [
      'host', 'payment-service',
      'traceparent', `00-${'8'.repeat(32)}-00f067aa0ba902b7-01`,
      'traceparent', `00-${'9'.repeat(32)}-00f067aa0ba902b7-01`,
      'tracestate', 'vendor=x',
      'x-request-id', 'rid-a',
      'x-request-id', 'rid-b',
      'x-b3-sampled', '1',
      'user-agent', 'first/1',
      'user-agent', 'second/2',
    ];
    const path = '/api/v1/payments/12';
    // A body of one Content-Length stays on the lane; a chunked one takes node's server at both proxies.
    const lane = await rawRequest(localPort(order), path, 'POST', [...headers, 'content-length', '1'], 'x');
    const laneAtApp = seenRaw.at(-1)!;
    const full = await rawRequest(localPort(order), path, 'POST', headers, 'x');
    const fullAtApp = seenRaw.at(-1)!;
    assert.deepEqual([lane.status, full.status], [200, 200]);
    assert.deepEqual([byNode(lane.raw), byNode(laneAtApp)], [false, false], 'lane');
    assert.deepEqual([byNode(full.raw), byNode(fullAtApp)], [true, true], 'full path');

    const traced = async (atApp: readonly string[]): Promise<{ fields: string[]; client: ExportedSpan; server: ExportedSpan }> => {
      const tps = valuesOf(atApp, 'traceparent');
      assert.equal(tps.length, 1, tps.join(' | '));
      const trace = traceparentOf({ traceparent: tps[0] }).traceId;
      assert.ok(trace !== '8'.repeat(32) && trace !== '9'.repeat(32), trace);
      const spans = await spansOf(trace, 2);
      const client = spans.find((s) => s.kind === 3)!;
      const server = spans.find((s) => s.kind === 2)!;
      assert.equal(client.parentSpanId, undefined);
      assert.equal(server.parentSpanId, client.spanId);
      return { fields: traceFields(atApp, { trace, client: client.spanId, server: server.spanId }), client, server };
    };
    const onLane = await traced(laneAtApp);
    const onFull = await traced(fullAtApp);
    assert.deepEqual(onLane.fields, [
      'traceparent: 00-<trace>-<server>-01',
      'x-b3-parentspanid: <client>',
      'x-b3-sampled: 1',
      'x-b3-spanid: <server>',
      'x-b3-traceid: <trace>',
      'x-request-id: rid-a, rid-b',
    ]);
    assert.deepEqual(onLane.fields, onFull.fields);
    const described = (s: ExportedSpan): unknown => ({ name: s.name, kind: s.kind, status: s.status, attributes: [...s.attributes].sort((a, b) => a.key.localeCompare(b.key)) });
    assert.deepEqual(described(onLane.server), described(onFull.server));
    assert.deepEqual(described(onLane.client), described(onFull.client));
    assert.equal(attr(onLane.server, 'user_agent'), 'first/1');
    assert.equal(attr(onLane.server, 'guid:x-request-id'), 'rid-a, rid-b');

    const logged = (trace: string): unknown => {
      const { time: _t, durationMs: _d, traceId, ...rest } = log.find((e) => e.traceId === trace)!;
      assert.equal(traceId, trace);
      return rest;
    };
    assert.deepEqual(logged(onLane.server.traceId), logged(onFull.server.traceId));
  });

  it('counts exported spans', async () => {
    const text = await order.metrics.registry.metrics();
    assert.match(text, /meshward_tracing_spans_exported_total [1-9]/);
  });
});

describe('tracing without an endpoint', { timeout: 10_000 }, () => {
  it('propagates headers and keeps no spans; without `tracing` headers pass untouched', async () => {
    const root = await createRootCa({ trustDomain: TD });
    const b = bundleOf(root);
    const seen: http.IncomingHttpHeaders[] = [];
    const app = http.createServer((req, res) => {
      seen.push(req.headers);
      res.end('ok');
    });
    app.listen(0, '127.0.0.1');
    await once(app, 'listening');
    const leaf = await createLeaf(root, { uris: [id('payment-service')] });
    const base = proxyConfig('payment-service', NS, [{ port: 9090, protocol: 'http', appPort: (app.address() as AddressInfo).port }], [], { meshConfig: {} });
    const proxy = await WorkloadProxy.start(
      { ...base, tracing: { sampling: 100 } },
      { material: { key: leaf.key, chain: leaf.chain, bundle: b }, bindPort: () => 0, accessLog: () => undefined, drainMs: 100 },
    );
    try {
      const port = proxy.status().inbound[0]!.boundPort;
      const incoming = `00-${'5'.repeat(32)}-00f067aa0ba902b7-01`;
      await get(port, '/x', { traceparent: incoming });
      const tp = String(seen.at(-1)?.['traceparent']);
      assert.match(tp, new RegExp(`^00-${'5'.repeat(32)}-[0-9a-f]{16}-01$`));
      assert.notEqual(tp, incoming);
      assert.doesNotMatch(await proxy.metrics.registry.metrics(), /meshward_tracing_spans/);

      assert.deepEqual(await proxy.update({ ...base, version: 2 }), { ok: true, version: 2 });
      await get(port, '/x', { traceparent: incoming });
      assert.equal(seen.at(-1)?.['traceparent'], incoming);
      assert.equal(seen.at(-1)?.['x-request-id'], undefined);
    } finally {
      await proxy.stop();
      app.closeAllConnections();
      app.close();
    }
  });
});

describe('tracing an app that cannot be reached', { timeout: 10_000 }, () => {
  it('ends the span with 503 and UF on the lane as on the full path', async () => {
    const receiver = await startReceiver();
    const root = await createRootCa({ trustDomain: TD });
    const leaf = await createLeaf(root, { uris: [id('payment-service')] });
    const config = proxyConfig('payment-service', NS, [{ port: 9090, protocol: 'http', appPort: await freePort() }], [], {
      meshConfig: {},
      tracing: { otlpEndpoint: receiver.url, sampling: 100 },
    });
    const proxy = await WorkloadProxy.start(config, { material: { key: leaf.key, chain: leaf.chain, bundle: bundleOf(root) }, bindPort: () => 0, accessLog: () => undefined, drainMs: 100 });
    try {
      const port = proxy.status().inbound[0]!.boundPort;
      const headers = (trace: string): string[] => ['host', 'payment', 'traceparent', `00-${trace}-00f067aa0ba902b7-01`, 'x-request-id', 'down'];
      const laneTrace = 'abababababababababababababababab';
      const fullTrace = 'cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd';
      // One Content-Length: the lane; chunked: node's server.
      const lane = await rawRequest(port, '/down', 'POST', [...headers(laneTrace), 'content-length', '1'], 'x');
      const full = await rawRequest(port, '/down', 'POST', headers(fullTrace), 'x');
      assert.deepEqual([lane.status, byNode(lane.raw)], [503, false]);
      assert.deepEqual([full.status, byNode(full.raw)], [503, true]);
      const spanOf = async (trace: string): Promise<ExportedSpan> => {
        for (let i = 0; i < 100; i++) {
          await proxy.flushTraces();
          const found = receiver.spans.find((s) => s.traceId === trace);
          if (found !== undefined) return found;
          await new Promise((r) => setTimeout(r, 20));
        }
        assert.fail(`no span for ${trace}`);
      };
      const onLane = await spanOf(laneTrace);
      const onFull = await spanOf(fullTrace);
      const described = (s: ExportedSpan): unknown => ({ name: s.name, kind: s.kind, status: s.status, attributes: [...s.attributes].sort((a, b) => a.key.localeCompare(b.key)) });
      assert.deepEqual(described(onLane), described(onFull));
      assert.equal(attr(onLane, 'response_flags'), 'UF');
      assert.equal(attr(onLane, 'http.status_code'), '503');
      assert.equal(attr(onLane, 'error'), true);
      assert.deepEqual(onLane.status, { code: 2 });
    } finally {
      await proxy.stop();
      receiver.server.closeAllConnections();
      receiver.server.close();
    }
  });
});

describe('tracing HTTP/2 hops (h2c local port, http2 inbound port)', { timeout: 10_000 }, () => {
  it('continues the trace through both proxies', async () => {
    const receiver = await startReceiver();
    const root = await createRootCa({ trustDomain: TD });
    const b = bundleOf(root);
    const seen: http2.IncomingHttpHeaders[] = [];
    const app = http2.createServer();
    app.on('stream', (stream, headers) => {
      seen.push(headers);
      stream.respond({ ':status': 200 });
      stream.end('ok');
    });
    app.listen(0, '127.0.0.1');
    await once(app, 'listening');
    const proxies: WorkloadProxy[] = [];
    const start = async (sa: string, inbound: ProxyConfig['inbound'], outbound: ProxyConfig['outbound']): Promise<WorkloadProxy> => {
      const leaf = await createLeaf(root, { uris: [id(sa)] });
      const proxy = await WorkloadProxy.start(
        proxyConfig(sa, NS, inbound, outbound, { policyPaths: [POLICIES], tracing: { otlpEndpoint: receiver.url, sampling: 100 } }),
        { material: { key: leaf.key, chain: leaf.chain, bundle: b }, bindPort: () => 0, accessLog: () => undefined, drainMs: 100 },
      );
      proxies.push(proxy);
      return proxy;
    };
    let client: http2.ClientHttp2Session | undefined;
    try {
      const payment = await start('payment-service', [{ port: 8080, protocol: 'http2', appPort: (app.address() as AddressInfo).port }], []);
      const order = await start('order-service', [], [
        upstreamTo('payment-service', NS, payment.status().inbound[0]!.boundPort, [id('payment-service')], { protocol: 'http2', localPort: 19002 }),
      ]);
      const trace = '66666666666666666666666666666666';
      client = http2.connect(`http://127.0.0.1:${order.status().outbound[0]!.boundPort}`);
      const req = client.request({ ':path': '/api/v1/payments/9', ':authority': 'payment-service', traceparent: `00-${trace}-00f067aa0ba902b7-01` });
      const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
      assert.equal(headers[':status'], 200);
      req.resume();
      await once(req, 'end');
      const tp = String(seen.at(-1)?.['traceparent']).split('-');
      assert.equal(tp[1], trace);
      let spans: ExportedSpan[] = [];
      for (let i = 0; i < 100 && spans.length < 2; i++) {
        await Promise.all(proxies.map((p) => p.flushTraces()));
        spans = receiver.spans.filter((s) => s.traceId === trace);
        if (spans.length < 2) await new Promise((r) => setTimeout(r, 20));
      }
      const clientSpan = spans.find((s) => s.kind === 3)!;
      const serverSpan = spans.find((s) => s.kind === 2)!;
      assert.ok(clientSpan !== undefined && serverSpan !== undefined, JSON.stringify(spans));
      assert.equal(clientSpan.parentSpanId, '00f067aa0ba902b7');
      assert.equal(serverSpan.parentSpanId, clientSpan.spanId);
      assert.equal(tp[2], serverSpan.spanId);
      assert.equal(attr(clientSpan, 'http.protocol'), 'HTTP/2');
      assert.equal(attr(serverSpan, 'http.protocol'), 'HTTP/2');
    } finally {
      client?.close();
      await Promise.all(proxies.map((p) => p.stop()));
      app.close();
      receiver.server.closeAllConnections();
      receiver.server.close();
    }
  });
});
