// Endpoint choice, HTTP proxy host matching and header mapping, without
// sockets.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ProxyConfig, Upstream } from '../../../../src/api/proxy-config.ts';
import { Balancer } from '../../../../src/proxy/outbound/balancer.ts';
import { endToEnd, requestHeaders, requestTarget } from '../../../../src/proxy/outbound/headers.ts';
import { RouteTable } from '../../../../src/proxy/outbound/route.ts';
import { serviceNamespace } from '../../../../src/proxy/outbound/dial.ts';
import { engineFrom } from '../../../support/engine.ts';

const ep = (port: number) => ({ host: '127.0.0.1', port, identities: [] });
const upstream = (o: Partial<Upstream> = {}): Upstream => ({
  name: 'payment',
  host: 'payment.foo.svc.cluster.local',
  servicePort: 8080,
  protocol: 'http',
  endpoints: [ep(1), ep(2), ep(3)],
  ...o,
});

describe('Balancer', () => {
  it('walks the endpoints in order with ROUND_ROBIN', () => {
    const b = new Balancer(upstream());
    assert.deepEqual([1, 2, 3, 4, 5].map(() => b.pick()!.index), [0, 1, 2, 0, 1]);
  });

  it('picks the less busy of two distinct random endpoints with LEAST_REQUEST', () => {
    // random() → 0 then 0: candidates 0 and 1.
    const b = new Balancer(upstream({ loadBalancer: 'LEAST_REQUEST' }), () => 0);
    const first = b.pick()!;
    assert.equal(first.index, 0, 'a tie goes to the first candidate');
    assert.equal(b.pick()!.index, 1, 'endpoint 0 is busy');
    first.release();
    first.release();
    assert.deepEqual(b.inFlight(), [0, 1, 0], 'release counts once');
  });

  it('returns null without endpoints', () => {
    assert.equal(new Balancer(upstream({ endpoints: [] })).pick(), null);
  });
});

describe('RouteTable.byAuthority', () => {
  const config = {
    version: 1,
    workload: { name: 'sleep', namespace: 'bar', serviceAccount: 'sleep', labels: {}, trustDomain: 'cluster.local' },
    identity: {},
    inbound: [],
    outbound: [upstream()],
    adminPort: 0,
    policyPaths: [],
  } satisfies ProxyConfig;
  const table = new RouteTable(config, engineFrom(''));

  it('matches the name or the host, with no port, the service port or 80', () => {
    for (const a of ['payment', 'PAYMENT:8080', 'payment.foo.svc.cluster.local', 'payment.foo.svc.cluster.local.:80']) {
      assert.equal(table.byAuthority(a)?.upstream.name, 'payment', a);
    }
  });

  it('matches nothing else', () => {
    for (const a of ['payments', 'payment:9090', '', 'payment.foo']) assert.equal(table.byAuthority(a), undefined, a);
  });

  it('dials with mesh mTLS by default (auto mTLS)', () => {
    assert.equal(table.byName('payment')!.plan.kind, 'mtls');
  });
});

describe('header mapping', () => {
  it('drops hop-by-hop headers, host and those named in Connection; keeps te: trailers', () => {
    const out = endToEnd({
      host: 'x',
      connection: 'close, X-Custom',
      'x-custom': '1',
      'keep-alive': 'timeout=5',
      'transfer-encoding': 'chunked',
      te: 'trailers, deflate',
      'proxy-authorization': 'Basic abc',
      accept: 'text/plain',
    });
    assert.deepEqual(out, { te: 'trailers', accept: 'text/plain' });
  });

  it('never passes on the app\'s x-meshward-peer-workload; sets this proxy\'s for a mesh peer', () => {
    const app = { 'x-meshward-peer-workload': 'spoofed', accept: 'text/plain' };
    assert.deepEqual(endToEnd(app), { accept: 'text/plain' });
    assert.deepEqual(requestHeaders(app, null), { accept: 'text/plain' });
    assert.deepEqual(requestHeaders(app, 'sleep'), { accept: 'text/plain', 'x-meshward-peer-workload': 'sleep' });
  });

  it('splits origin-form and absolute-form targets', () => {
    assert.deepEqual(requestTarget('/a?b', 'h:1'), { authority: 'h:1', path: '/a?b' });
    assert.deepEqual(requestTarget('http://payment:8080/a?b', 'ignored'), { authority: 'payment:8080', path: '/a?b' });
    assert.equal(requestTarget('https://payment/', undefined), null);
    assert.equal(requestTarget('not a url', undefined), null);
  });

  it('reads the namespace of a service FQDN', () => {
    assert.equal(serviceNamespace('payment.foo.svc.cluster.local', 'bar'), 'foo');
    assert.equal(serviceNamespace('example.com', 'bar'), 'bar');
  });
});
