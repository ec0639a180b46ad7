// The agent's timing rules, without timers: renewal at a jittered fraction
// of the lifetime, capped exponential backoff, and the spread of early
// re-issues after a root activation.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_BACKOFF,
  DEFAULT_ROTATION,
  backoffDelayMs,
  checkBackoffPolicy,
  checkRotationPolicy,
  reissueDelayMs,
  renewalDelayMs,
} from '../../../../src/identity/agent/schedule.ts';

const fixed = (x: number) => () => x;
const HOUR = 3600_000;

describe('renewalDelayMs', () => {
  it('renews at half the lifetime by default, give or take a tenth of it', () => {
    const at = (r: number) => Math.round(renewalDelayMs(0, HOUR, 0, DEFAULT_ROTATION, fixed(r)));
    assert.equal(at(0.5), 0.5 * HOUR);
    assert.equal(at(0), 0.4 * HOUR);
    assert.equal(at(1), 0.6 * HOUR);
  });

  it('counts from when the certificate was received, and from now', () => {
    const issued = 1_000_000;
    assert.equal(renewalDelayMs(issued, issued + HOUR, issued + 0.1 * HOUR, { fraction: 0.7, jitter: 0 }), 0.6 * HOUR);
  });

  it('is never negative, even past the renewal point or for an expired certificate', () => {
    assert.equal(renewalDelayMs(0, HOUR, 0.9 * HOUR, DEFAULT_ROTATION, fixed(0.5)), 0);
    assert.equal(renewalDelayMs(0, HOUR, 2 * HOUR, DEFAULT_ROTATION, fixed(0.5)), 0);
    assert.equal(renewalDelayMs(HOUR, 0, 0, DEFAULT_ROTATION, fixed(0.5)), HOUR);
  });

  it('spreads a fleet over the jitter window', () => {
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const delays = Array.from({ length: 2000 }, () => renewalDelayMs(0, 1000, 0, DEFAULT_ROTATION, random));
    assert.ok(Math.min(...delays) >= 400 && Math.max(...delays) <= 600);
    assert.ok(Math.min(...delays) < 420 && Math.max(...delays) > 580, 'uses the whole window');
  });
});

describe('backoffDelayMs', () => {
  it('doubles from the initial delay up to the cap', () => {
    const p = { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0 };
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 20].map((n) => backoffDelayMs(n, p)),
      [100, 200, 400, 800, 1000, 1000, 1000],
    );
  });

  it('jitters each delay and never exceeds the cap', () => {
    const p = { initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0.2 };
    assert.equal(backoffDelayMs(0, p, fixed(0)), 80);
    assert.equal(backoffDelayMs(0, p, fixed(1)), 120);
    assert.equal(backoffDelayMs(10, p, fixed(1)), 1000);
    assert.equal(backoffDelayMs(10, p, fixed(0)), 800);
  });

  it('has sensible defaults: 1 s, doubling, 30 s cap', () => {
    assert.equal(backoffDelayMs(0, DEFAULT_BACKOFF, fixed(0.5)), 1000);
    assert.equal(backoffDelayMs(50, DEFAULT_BACKOFF, fixed(0.5)), 30_000);
  });
});

describe('reissueDelayMs', () => {
  it('is uniform in the spread window', () => {
    assert.equal(reissueDelayMs(1000, HOUR, fixed(0)), 0);
    assert.equal(reissueDelayMs(1000, HOUR, fixed(0.5)), 500);
  });

  it('never postpones a renewal that is due sooner', () => {
    assert.equal(reissueDelayMs(10_000, 200, fixed(0.9)), 200);
  });
});

describe('policy checks', () => {
  it('accepts the defaults', () => {
    assert.deepEqual(checkRotationPolicy(DEFAULT_ROTATION), []);
    assert.deepEqual(checkBackoffPolicy(DEFAULT_BACKOFF), []);
  });

  it('refuses fractions outside (0, 1) and jitter that could cross them', () => {
    assert.equal(checkRotationPolicy({ fraction: 1, jitter: 0 }).length, 1);
    assert.equal(checkRotationPolicy({ fraction: 0, jitter: 0 }).length, 1);
    assert.equal(checkRotationPolicy({ fraction: 0.9, jitter: 0.2 }).length, 1);
    assert.deepEqual(checkRotationPolicy({ fraction: 0.7, jitter: 0.3 }), []);
  });

  it('refuses a backoff that cannot grow or a cap below the start', () => {
    assert.equal(checkBackoffPolicy({ initialMs: 100, maxMs: 50, multiplier: 2, jitter: 0 }).length, 1);
    assert.equal(checkBackoffPolicy({ initialMs: 0, maxMs: 50, multiplier: 0.5, jitter: 1 }).length, 3);
  });
});
