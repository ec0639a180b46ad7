// Benchmark: the fast lane's HTTP/1.1 head parsers (src/proxy/http1/head.ts)
// on the heads the two-hop benchmark carries: a node:http app's response
// (six fields) and a request as a client proxy passes it on (five).
// Time per parse, and per re-serialization of the response head.
//
//   npx node bench/head-parse.ts [--iterations 1000000] [--rounds 3]

import { parseArgs } from 'node:util';
import { parseRequestHead, parseResponseHead, writeResponseHead, type ResponseHead } from '../src/proxy/http1/head.ts';

const { values: opts } = parseArgs({
  options: { iterations: { type: 'string', default: '1000000' }, rounds: { type: 'string', default: '3' } },
});
const N = Number(opts.iterations);

const response = Buffer.from(
  'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 30\r\nDate: Mon, 07 Dec 2026 05:40:00 GMT\r\nConnection: keep-alive\r\nKeep-Alive: timeout=60\r\n\r\nok: the two-hop benchmark app\n',
);
const request = Buffer.from(
  'GET /api/v1/payments/summary HTTP/1.1\r\nhost: payment-service.production.svc.cluster.local:8080\r\nuser-agent: curl/8.0\r\naccept: */*\r\nx-meshward-peer-workload: reporting-service\r\n\r\n',
);

/** µs per call of `fn`, over N calls; `sink` keeps the results observable so nothing is optimized away. */
function time(fn: () => number): number {
  let sink = 0;
  const t = performance.now();
  for (let i = 0; i < N; i++) sink += fn();
  const us = ((performance.now() - t) * 1000) / N;
  if (sink === 0) throw new Error('no result');
  return us;
}

const out = Buffer.allocUnsafe(1024);
const head = parseResponseHead(response, 0, 60_000) as ResponseHead;
console.log('| round | response head parse | its re-serialization | request head parse |');
console.log('|---:|---:|---:|---:|');
for (let r = 1; r <= Number(opts.rounds); r++) {
  const res = time(() => (parseResponseHead(response, 0, 60_000) as ResponseHead).size);
  const ser = time(() => writeResponseHead(head, out, 0));
  const req = time(() => {
    const h = parseRequestHead(request, 0, 60_000, 100);
    return typeof h === 'string' ? 0 : h.end;
  });
  console.log(`| ${r} | ${res.toFixed(3)} µs | ${ser.toFixed(3)} µs | ${req.toFixed(3)} µs |`);
}
