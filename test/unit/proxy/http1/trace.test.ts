// Trace context on the fast lane (src/proxy/http1/trace.ts): the trace
// headers read from the lane's own parse as node's parser gives them to the
// full path, and written back once each, as a span left them.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { parseRequestHead, type RequestHead } from '../../../../src/proxy/http1/head.ts';
import { traceHeaders, traceLines, untracedFields } from '../../../../src/proxy/http1/trace.ts';
import { Tracer } from '../../../../src/proxy/tracing/tracer.ts';
import { proxyConfig } from '../../../support/proxy.ts';

const TP_A = `00-${'a'.repeat(32)}-00f067aa0ba902b7-01`;
const TP_B = `00-${'b'.repeat(32)}-00f067aa0ba902b7-01`;

const parse = (text: string): RequestHead => parseRequestHead(Buffer.from(text, 'latin1'), 0, 16_384, 100) as RequestHead;

/** The headers object node's HTTP/1.1 server builds from `text`, sent on a real connection. */
async function nodeHeaders(text: string): Promise<http.IncomingHttpHeaders> {
  const server = http.createServer((req, res) => res.end());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const got = once(server, 'request') as Promise<[http.IncomingMessage]>;
    const socket = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.end(text);
    const [req] = await got;
    socket.destroy();
    return req.headers;
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

describe('fast lane trace headers', () => {
  it('reads the trace headers as node gives them to the full path: repeated ones joined, the first User-Agent', async () => {
    const text =
      'GET / HTTP/1.1\r\nHost: a\r\n' +
      `Traceparent: ${TP_A}\r\ntraceparent: ${TP_B}\r\n` +
      'X-Request-Id: one\r\nx-request-id: two\r\nTracestate: v=1\r\nX-B3-Sampled: 1\r\nb3: 0\r\n' +
      'User-Agent: first\r\nUser-Agent: second\r\nX-Other: 1\r\nConnection: close\r\n\r\n';
    const head = parse(text);
    const fromNode = await nodeHeaders(text);
    const wanted = ['traceparent', 'tracestate', 'b3', 'x-b3-sampled', 'x-request-id'];
    assert.deepEqual(
      Object.fromEntries(Object.entries(traceHeaders(head))),
      Object.fromEntries(wanted.map((name) => [name, fromNode[name]])),
    );
    assert.equal(fromNode['traceparent'], `${TP_A}, ${TP_B}`);
    assert.equal(head.userAgent, fromNode['user-agent']);
    assert.equal(head.userAgent, 'first');
    assert.deepEqual(untracedFields(head), { names: ['user-agent', 'user-agent', 'x-other', 'connection'], values: ['first', 'second', '1', 'close'] });
  });

  it('writes each header a span left once, a continued trace with its tracestate, and nothing of the caller\'s in their place', () => {
    const head = parse(`GET / HTTP/1.1\r\nHost: a\r\ntraceparent: ${TP_A}\r\ntracestate: v=1\r\nx-b3-parentspanid: 1111111111111111\r\nx-b3-sampled: 1\r\n\r\n`);
    const tracer = new Tracer(proxyConfig('order-service', 'production', [], []), { sampling: 100 }, { registry: new Registry() });
    const span = tracer.start('client', 'payment:8080/*', traceHeaders(head));
    const trace = traceHeaders(head);
    span.inject(trace);
    const lines = traceLines(trace).split('\r\n').slice(1).sort();
    assert.deepEqual(lines, [
      `traceparent: 00-${'a'.repeat(32)}-${span.spanId}-01`,
      'tracestate: v=1',
      `x-b3-parentspanid: 00f067aa0ba902b7`,
      'x-b3-sampled: 1',
      `x-b3-spanid: ${span.spanId}`,
      `x-b3-traceid: ${'a'.repeat(32)}`,
      `x-request-id: ${span.requestId}`,
    ]);
    assert.deepEqual(untracedFields(head), { names: [], values: [] });
  });

  it('leaves out a value that could not be sent as a header', () => {
    assert.equal(traceLines({ 'x-request-id': 'a\r\nx-evil: 1', traceparent: TP_A, b3: 'x\n' }), `\r\ntraceparent: ${TP_A}`);
  });
});
