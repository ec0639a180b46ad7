// The stderr access log (src/proxy/access-log.ts): one JSON line per entry,
// written together at most every 100 ms, none lost, the waiting ones
// written when the process exits.

import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { logTime, stderrAccessLog, type AccessLogEntry } from '../../../src/proxy/access-log.ts';

const entry = (port: number): AccessLogEntry => ({
  time: '2026-11-23T13:00:00.000Z',
  workload: 'bench/server',
  port,
  protocol: 'http',
  method: 'GET',
  path: '/"quoted"',
  responseCode: 200,
  decision: 'ALLOW',
  stage: null,
  policy: null,
  principal: 'cluster.local/ns/bench/sa/client',
  requestPrincipal: null,
  durationMs: 0.5,
  mtls: true,
});

describe('stderrAccessLog', () => {
  it('writes the entries of 100 ms as JSON lines in one write, in order', async () => {
    const writes: string[] = [];
    const original = process.stderr.write;
    process.stderr.write = ((chunk: string) => {
      writes.push(chunk);
      return true;
    }) as typeof process.stderr.write;
    try {
      stderrAccessLog(entry(1));
      stderrAccessLog(entry(2));
      stderrAccessLog(entry(3));
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(writes, [], 'nothing written at the end of the turn');
      await new Promise((r) => setTimeout(r, 120));
      assert.equal(writes.length, 1, 'one write for the three');
      stderrAccessLog(entry(4));
      await new Promise((r) => setTimeout(r, 120));
    } finally {
      process.stderr.write = original;
    }
    assert.equal(writes.length, 2);
    const lines = writes.join('').split('\n');
    assert.equal(lines.pop(), '');
    assert.deepEqual(lines.map((l) => (JSON.parse(l) as AccessLogEntry).port), [1, 2, 3, 4]);
    assert.deepEqual(JSON.parse(lines[0]!), entry(1));
  });

  it('writes the waiting entries when the process exits, and does not keep it alive for them', () => {
    const module = new URL('../../../src/proxy/access-log.ts', import.meta.url).href;
    const script = `
      const { stderrAccessLog } = await import(${JSON.stringify(module)});
      stderrAccessLog({ port: 1 });
      stderrAccessLog({ port: 2 });
      globalThis.started = performance.now();
      process.on('exit', () => process.stdout.write(String(performance.now() - globalThis.started)));`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    assert.deepEqual(child.stderr.trim().split('\n').map((l) => (JSON.parse(l) as { port: number }).port), [1, 2]);
    assert.ok(Number(child.stdout) < 50, `exited ${child.stdout} ms after logging, not at once`);
  });
});

describe('logTime', () => {
  it('is the ISO 8601 time to the millisecond, across seconds, minutes and days', () => {
    mock.timers.enable({ apis: ['Date'], now: Date.UTC(2026, 11, 31, 23, 59, 58, 990) });
    try {
      // Steps that land on every kind of boundary, and repeat a millisecond.
      for (const step of [0, 0, 1, 8, 1, 1, 9, 990, 1, 999, 61_000, 3_600_000]) {
        mock.timers.tick(step);
        assert.equal(logTime(), new Date(Date.now()).toISOString());
      }
    } finally {
      mock.timers.reset();
    }
  });
});
