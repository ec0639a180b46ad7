// The inbound side's Istio labels (src/proxy/admin/metrics.ts): a request
// carries the caller's workload it was given, a TCP connection "unknown".

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createProxyMetrics, type TcpLabels } from '../../../../src/proxy/admin/metrics.ts';

const CONNECTION: TcpLabels = {
  source_principal: 'spiffe://cluster.local/ns/production/sa/order-service',
  destination_principal: 'spiffe://cluster.local/ns/production/sa/payment-service',
  destination_workload: 'payment-service',
  destination_workload_namespace: 'production',
  destination_service: 'payment-service.production.svc.cluster.local',
  connection_security_policy: 'mutual_tls',
};

async function values(metrics: ReturnType<typeof createProxyMetrics>, name: string): Promise<{ labels: Record<string, string | number>; value: number }[]> {
  const metric = metrics.registry.getSingleMetric(name);
  assert.ok(metric, name);
  return (await metric.get()).values.map((v) => ({ labels: v.labels as Record<string, string | number>, value: v.value }));
}

describe('inbound request and TCP labels', () => {
  it('counts a request under its source_workload, one series per workload', async () => {
    const metrics = createProxyMetrics();
    const count = metrics.requestCounter({ ...CONNECTION, source_workload: 'order-service', request_protocol: 'http' });
    count(200, 1);
    count(200, 2);
    metrics.request({ ...CONNECTION, source_workload: 'unknown', request_protocol: 'http', response_code: '200' }, 3);
    const requests = await values(metrics, 'istio_requests_total');
    const byWorkload = Object.fromEntries(requests.map((v) => [v.labels['source_workload'], v.value]));
    assert.deepEqual(byWorkload, { 'order-service': 2, unknown: 1 });
    for (const v of requests) {
      assert.equal(v.labels['reporter'], 'destination');
      assert.equal(v.labels['source_workload_namespace'], 'production');
    }
  });

  it('reports TCP connections with source_workload="unknown"', async () => {
    const metrics = createProxyMetrics();
    metrics.tcpOpened(CONNECTION);
    const [opened] = await values(metrics, 'istio_tcp_connections_opened_total');
    assert.equal(opened!.labels['source_workload'], 'unknown');
    assert.equal(opened!.value, 1);
  });
});
