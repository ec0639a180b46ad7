// h2UpgradePolicy: whether a client sidecar carries HTTP/1.1 to a service as
// HTTP/2. Only UPGRADE upgrades (Istio's mesh default is DO_NOT_UPGRADE); a
// portLevelSettings entry for the port replaces the top-level policy.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { engineFrom } from '../../../support/engine.ts';

const rule = (trafficPolicy: string): string => `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: payments, namespace: production }
spec:
  host: payment-service.production.svc.cluster.local
  trafficPolicy: ${trafficPolicy}
`;
const HOST = 'payment-service.production.svc.cluster.local';

describe('h2UpgradePolicy', () => {
  it('does not upgrade without a DestinationRule, or with DEFAULT or DO_NOT_UPGRADE', () => {
    assert.equal(engineFrom('').h2Upgrade('production', HOST, 8080), false);
    for (const policy of ['DEFAULT', 'DO_NOT_UPGRADE']) {
      assert.equal(engineFrom(rule(`{ connectionPool: { http: { h2UpgradePolicy: ${policy} } } }`)).h2Upgrade('production', HOST, 8080), false, policy);
    }
  });

  it('upgrades with UPGRADE, for that host only', () => {
    const engine = engineFrom(rule('{ connectionPool: { http: { h2UpgradePolicy: UPGRADE } } }'));
    assert.equal(engine.h2Upgrade('production', HOST, 8080), true);
    assert.equal(engine.h2Upgrade('production', 'billing-service.production.svc.cluster.local', 8080), false);
  });

  it('a portLevelSettings entry replaces the top-level policy for its port', () => {
    const engine = engineFrom(
      rule(`
    connectionPool: { http: { h2UpgradePolicy: UPGRADE } }
    portLevelSettings:
    - port: { number: 9090 }
      connectionPool: { http: { h2UpgradePolicy: DO_NOT_UPGRADE } }
    - port: { number: 9091 }
      loadBalancer: { simple: ROUND_ROBIN }`),
    );
    assert.equal(engine.h2Upgrade('production', HOST, 8080), true);
    assert.equal(engine.h2Upgrade('production', HOST, 9090), false);
    // An entry without connectionPool replaces it too: nothing set, no upgrade.
    assert.equal(engine.h2Upgrade('production', HOST, 9091), false);
  });
});
