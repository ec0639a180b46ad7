// What a proxy sends and believes as the caller's workload name
// (src/proxy/peer-workload.ts).

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isPeerWorkload } from '../../../src/proxy/peer-workload.ts';

describe('isPeerWorkload', () => {
  it('takes 1–253 characters of [a-z0-9.-]', () => {
    for (const name of ['order-service', 'a', 'v1.2-canary', '0', 'x'.repeat(253)]) assert.equal(isPeerWorkload(name), true, name);
  });

  it('refuses anything else: empty, too long, upper case, other punctuation, controls, non-ASCII', () => {
    for (const name of ['', 'x'.repeat(254), 'Order', 'order_service', 'a b', 'a,b', 'a\r\nx-evil: 1', 'a\t', 'ordér', 'a/b', 'a"b']) {
      assert.equal(isPeerWorkload(name), false, JSON.stringify(name));
    }
  });
});
