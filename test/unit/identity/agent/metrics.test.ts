// The agent's metrics under Istio's names, several agents on one registry.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { createAgentMetrics } from '../../../../src/identity/agent/metrics.ts';

async function values(registry: Registry, name: string) {
  return (await registry.getSingleMetric(name)!.get()).values;
}

describe('agent metrics', () => {
  it('reports each agent’s expiry as seconds left and as a timestamp', async () => {
    const registry = new Registry();
    const now = 1_700_000_000_000;
    const a = createAgentMetrics(registry, { spiffeId: 'spiffe://td/a', notAfter: () => now + 60_000, now: () => now });
    createAgentMetrics(registry, { spiffeId: 'spiffe://td/b', notAfter: () => undefined, now: () => now });
    const left = await values(registry, 'istio_agent_cert_expiry_seconds');
    assert.deepEqual(left, [{ labels: { resource_name: 'default', spiffe_id: 'spiffe://td/a' }, value: 60 }]);
    const at = await values(registry, 'meshward_agent_cert_expiry_timestamp_seconds');
    assert.equal(at[0]!.value, (now + 60_000) / 1000);
    a.detach();
    assert.deepEqual(await values(registry, 'istio_agent_cert_expiry_seconds'), []);
  });

  it('counts CSR calls, failures and latency', async () => {
    const registry = new Registry();
    const m = createAgentMetrics(registry, { spiffeId: 'spiffe://td/a', notAfter: () => undefined, now: Date.now });
    m.csrRequest(true, 12);
    m.csrRequest(false, 30);
    const sum = async (name: string) => (await values(registry, name)).reduce((s, v) => s + v.value, 0);
    assert.equal(await sum('istio_agent_num_outgoing_requests'), 2);
    assert.equal(await sum('istio_agent_num_failed_outgoing_requests'), 1);
    assert.equal(await sum('istio_agent_outgoing_latency'), 42);
  });
});
