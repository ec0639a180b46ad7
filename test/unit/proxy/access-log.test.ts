// The stderr access log (src/proxy/access-log.ts): one JSON line per entry,
// written together at the end of the event-loop turn, none lost.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { stderrAccessLog, type AccessLogEntry } from '../../../src/proxy/access-log.ts';

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
  it('writes the entries of one turn as JSON lines in one write, in order', async () => {
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
      assert.deepEqual(writes, [], 'nothing written before the turn ends');
      await new Promise((r) => setImmediate(r));
      stderrAccessLog(entry(4));
      await new Promise((r) => setImmediate(r));
    } finally {
      process.stderr.write = original;
    }
    assert.equal(writes.length, 2);
    const lines = writes.join('').split('\n');
    assert.equal(lines.pop(), '');
    assert.deepEqual(lines.map((l) => (JSON.parse(l) as AccessLogEntry).port), [1, 2, 3, 4]);
    assert.deepEqual(JSON.parse(lines[0]!), entry(1));
  });
});
