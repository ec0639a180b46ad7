// Benchmark: authorization decisions per second and per-decision latency
// with 10, 1,000 and 10,000 AuthorizationPolicies in one namespace, one of
// which selects the workload under test. Two paths are measured:
//   - "decide": what the proxy runs per request once it holds the workload's
//     view (attributes in, AuthzResult out);
//   - "lookup+decide": the same plus finding the workload's view by namespace
//     and labels, as a one-off caller does;
//   - "full pipeline": PolicyEngine.decide on raw request facts — peer
//     authentication (mesh-wide STRICT), path normalization, attribute
//     preparation and authorization — everything but JWT signature checks.
// Baseline in the same run: an empty function call through the same loop,
// so loop and timer overhead can be read off.
//
// Run: npm run bench   (results are written up in docs/benchmarks.md)

import { PolicyEngine } from '../src/policy/engine.ts';
import { DEFAULT_MESH_CONFIG } from '../src/api/mesh-config.ts';
import type { AuthorizationPolicy, PeerAuthentication, ResourceSet } from '../src/api/resources.ts';
import type { EngineInput } from '../src/policy/engine.ts';
import { authorize } from '../src/policy/authz/evaluate.ts';
import type { RequestAttributes } from '../src/policy/authz/attributes.ts';
import { parseIp } from '../src/lib/cidr.ts';

const NAMESPACE = 'production';
const LABELS = Object.freeze({ app: 'payment-service', version: 'v1' });

function policy(name: string, app: string, i: number): AuthorizationPolicy {
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name, namespace: NAMESPACE, labels: {}, annotations: {} },
    spec: {
      selector: { matchLabels: { app } },
      action: 'ALLOW',
      rules: [
        {
          from: [{ source: { principals: [`cluster.local/ns/${NAMESPACE}/sa/order-service`, `cluster.local/ns/${NAMESPACE}/sa/billing-service`] } }],
          to: [{ operation: { methods: ['POST', 'GET'], paths: ['/api/v1/payments/*', '/api/v1/refunds/*'] } }],
        },
        {
          from: [{ source: { namespaces: ['monitoring'] } }],
          to: [{ operation: { paths: ['/metrics'], ports: ['9090'] } }],
          when: [{ key: 'request.headers[x-tenant]', values: [`tenant-${i % 17}`, 'shared-*'] }],
        },
      ],
    },
    source: { file: 'bench', documentIndex: i, line: 1 },
  };
}

function resources(count: number): ResourceSet {
  const policies: AuthorizationPolicy[] = [];
  for (let i = 0; i < count - 1; i++) policies.push(policy(`policy-${i}`, `service-${i}`, i));
  policies.push(policy('payment-service-policy', 'payment-service', count));
  const strict: PeerAuthentication = {
    apiVersion: 'security.istio.io/v1',
    kind: 'PeerAuthentication',
    metadata: { name: 'default', namespace: 'istio-system', labels: {}, annotations: {} },
    spec: { mtls: { mode: 'STRICT' } },
    source: { file: 'bench', documentIndex: 0, line: 1 },
  };
  return { peerAuthentications: [strict], authorizationPolicies: policies, requestAuthentications: [], destinationRules: [] };
}

function attributes(principal: string, method: string, path: string): RequestAttributes {
  return {
    http: true,
    principal,
    principalUri: `spiffe://${principal}`,
    sourceIp: parseIp('10.0.2.7'),
    remoteIp: parseIp('10.0.2.7'),
    destinationIp: parseIp('10.0.1.5'),
    destinationPort: 8080,
    sni: '',
    method,
    path,
    hostLower: 'payment-service.production.svc.cluster.local',
    headers: { 'x-tenant': 'tenant-3' },
    jwt: null,
  };
}

const ALLOWED = attributes('cluster.local/ns/production/sa/order-service', 'POST', '/api/v1/payments/42');
const DENIED = attributes('cluster.local/ns/production/sa/reporting-service', 'GET', '/api/v1/payments/42');

function input(principal: string, method: string, path: string): EngineInput {
  return {
    destination: { namespace: NAMESPACE, labels: LABELS, serviceAccount: 'payment-service', port: 8080 },
    connection: { mtls: true, principal, clientNamespace: NAMESPACE, ip: '10.0.2.7' },
    request: { protocol: 'http', method, path, host: 'payment-service.production.svc.cluster.local', headers: { 'x-tenant': 'tenant-3' } },
  };
}

const FULL_ALLOWED = input('cluster.local/ns/production/sa/order-service', 'POST', '/api/v1/payments/42?currency=EUR');
const FULL_DENIED = input('cluster.local/ns/production/sa/reporting-service', 'GET', '/api/v1/./payments/42');

interface Result {
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
}

/** Runs fn `iterations` times after a warm-up; timing each call (ns) and the whole loop. */
function measure(fn: () => unknown, iterations: number): Result {
  for (let i = 0; i < 200_000; i++) fn();
  const samples = new Float64Array(iterations);
  const start = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    samples[i] = Number(process.hrtime.bigint() - t0);
  }
  const total = Number(process.hrtime.bigint() - start);
  // Throughput from an untimed loop, so the clock reads do not count.
  const t1 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn();
  const untimed = Number(process.hrtime.bigint() - t1);
  samples.sort();
  void total;
  return {
    perSecond: iterations / (untimed / 1e9),
    p50: samples[Math.floor(iterations * 0.5)]!,
    p99: samples[Math.floor(iterations * 0.99)]!,
  };
}

function row(label: string, r: Result): string {
  const fmt = (ns: number) => `${(ns / 1000).toFixed(2)} µs`;
  return `| ${label} | ${Math.round(r.perSecond).toLocaleString('en-US')} | ${fmt(r.p50)} | ${fmt(r.p99)} |`;
}

const ITERATIONS = Number(process.env['BENCH_ITERATIONS'] ?? 500_000);
const lines: string[] = [];
lines.push(`Node ${process.version}, ${ITERATIONS.toLocaleString('en-US')} decisions per row (per-call times include ~one clock read)`);
lines.push('');
lines.push('| case | decisions/s | p50 | p99 |');
lines.push('|---|---|---|---|');
let sink = 0;
lines.push(row('baseline: empty call', measure(() => (sink += 1), ITERATIONS)));
for (const count of [10, 1_000, 10_000]) {
  const t0 = performance.now();
  const engine = new PolicyEngine(resources(count), DEFAULT_MESH_CONFIG);
  const view = engine.authz.forWorkload(NAMESPACE, LABELS);
  const compileMs = performance.now() - t0;
  if (!authorize(view, ALLOWED).allowed || authorize(view, DENIED).allowed) throw new Error('benchmark policies decide wrongly');
  const full = [engine.decide(FULL_ALLOWED), engine.decide(FULL_DENIED)];
  if (full.some((d) => d instanceof Promise) || (full[0] as { decision: string }).decision !== 'ALLOW' || (full[1] as { decision: string }).decision !== 'DENY') {
    throw new Error('benchmark pipeline decides wrongly or asynchronously');
  }
  lines.push(row(`${count} policies, decide, allowed`, measure(() => authorize(view, ALLOWED), ITERATIONS)));
  lines.push(row(`${count} policies, decide, denied`, measure(() => authorize(view, DENIED), ITERATIONS)));
  lines.push(
    row(
      `${count} policies, lookup+decide, allowed`,
      measure(() => authorize(engine.authz.forWorkload(NAMESPACE, LABELS), ALLOWED), ITERATIONS),
    ),
  );
  lines.push(row(`${count} policies, full pipeline, allowed`, measure(() => engine.decide(FULL_ALLOWED), ITERATIONS)));
  lines.push(row(`${count} policies, full pipeline, denied`, measure(() => engine.decide(FULL_DENIED), ITERATIONS)));
  lines.push(`<!-- ${count} policies: compile + first view ${compileMs.toFixed(1)} ms -->`);
}
console.log(lines.join('\n'));
if (sink < 0) console.log(sink);
