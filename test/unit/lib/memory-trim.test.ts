import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { getHeapSpaceStatistics } from 'node:v8';
import { memoryReport, trimMemory, trimMemoryWhenIdle } from '../../../src/lib/memory-trim.ts';

const MiB = 1024 * 1024;

function youngGenerationBytes(): number {
  const s = getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
  assert.ok(s, 'V8 reports a new_space');
  return s.space_size;
}

/** Allocation that survives a few scavenges: what makes V8 grow the young generation. */
function growYoungGeneration(): void {
  for (let round = 0; round < 20 && youngGenerationBytes() <= 4 * MiB; round++) {
    let keep: object[] = [];
    for (let i = 0; i < 300_000; i++) keep.push({ i, s: `v${i}` });
    keep = [];
    void keep;
  }
}

describe('memory trim', () => {
  it('shrinks a grown young generation back to its initial size', () => {
    growYoungGeneration();
    const before = youngGenerationBytes();
    assert.ok(before > 4 * MiB, `young generation grew to ${before / MiB} MiB`);
    assert.equal(trimMemory(), true);
    const after = youngGenerationBytes();
    assert.ok(after <= 2 * MiB, `young generation after the trim: ${after / MiB} MiB`);
  });

  it('trims once the process has been idle for the windows it waits, and not before', async () => {
    growYoungGeneration();
    const stop = trimMemoryWhenIdle({ intervalMs: 150, idleWindows: 3, idleShare: 0.02 });
    try {
      // Start-up counts as busy: nothing is trimmed at once.
      assert.ok(youngGenerationBytes() > 4 * MiB, 'not trimmed at start');
      // Busy: allocation over more than one window keeps the young generation grown.
      const busyUntil = Date.now() + 400;
      while (Date.now() < busyUntil) growYoungGeneration();
      const grown = youngGenerationBytes();
      assert.ok(grown > 4 * MiB, `young generation grew to ${grown / MiB} MiB`);
      // Idle: three windows with nothing to do, and some slack.
      await new Promise((r) => setTimeout(r, 900));
      const after = youngGenerationBytes();
      assert.ok(after <= 2 * MiB, `young generation after going idle: ${after / MiB} MiB`);
    } finally {
      stop();
    }
  });

  it('reports the memory an operator reads', () => {
    const r = memoryReport();
    assert.ok(r.rssMiB > r.heapUsedMiB && r.heapUsedMiB > 0, JSON.stringify(r));
    assert.ok(r.youngGenerationMiB >= r.youngGenerationResidentMiB, JSON.stringify(r));
  });
});
