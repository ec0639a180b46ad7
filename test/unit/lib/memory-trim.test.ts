import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
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

  it('trims at once when told start-up is over', () => {
    growYoungGeneration();
    assert.ok(youngGenerationBytes() > 4 * MiB, 'grown before');
    const stop = trimMemoryWhenIdle({ atStart: true });
    try {
      assert.ok(youngGenerationBytes() <= 2 * MiB, `young generation right after start-up: ${youngGenerationBytes() / MiB} MiB`);
    } finally {
      stop();
    }
  });

  it('with the young generation held, keeps its size and trims again when idle minutes find it refilled', async () => {
    // A process of its own: the size is fixed when V8 starts.
    const script = `
      import { getHeapSpaceStatistics } from 'node:v8';
      import { trimMemoryWhenIdle } from ${JSON.stringify(new URL('../../../src/lib/memory-trim.ts', import.meta.url).href)};
      const young = () => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
      const sample = () => ({ size: young().space_size, resident: young().physical_space_size });
      const keep = [];
      for (let i = 0; i < 200_000; i++) keep.push({ i, s: 'v' + i });
      const grown = sample();
      // Windows of 200 ms; a burst of allocation under a tenth of one is neither busy nor idle.
      trimMemoryWhenIdle({ intervalMs: 200, idleWindows: 2, idleShare: 0.02, busyShare: 0.5, youngResidentMiB: 3 });
      const atStart = sample();
      let garbage = [];
      for (let i = 0; i < 80_000; i++) garbage.push({ i, s: 'w' + i });
      garbage = null;
      const refilled = sample();
      setTimeout(() => { console.log(JSON.stringify({ grown, atStart, refilled, later: sample() })); keep.length = 0; }, 1000);
    `;
    const child = spawnSync(process.execPath, ['--min-semi-space-size=8', '--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    const r = JSON.parse(child.stdout) as Record<'grown' | 'atStart' | 'refilled' | 'later', { size: number; resident: number }>;
    assert.ok(r.grown.size >= 8 * MiB, child.stdout);
    assert.ok(r.grown.resident > 6 * MiB, child.stdout);
    // Trimmed at start: the pages go, the size stays.
    assert.equal(r.atStart.size, 8 * MiB, child.stdout);
    assert.ok(r.atStart.resident < 2 * MiB, child.stdout);
    // Refilled with no busy window since, then trimmed again by the idle windows.
    assert.ok(r.refilled.resident > 3 * MiB, child.stdout);
    assert.ok(r.later.resident < 2 * MiB && r.later.size === 8 * MiB, child.stdout);
  });

  it('reports the memory an operator reads', () => {
    const r = memoryReport();
    assert.ok(r.rssMiB > r.heapUsedMiB && r.heapUsedMiB > 0, JSON.stringify(r));
    assert.ok(r.youngGenerationMiB >= r.youngGenerationResidentMiB, JSON.stringify(r));
    assert.equal(typeof r.cMemoryTrim, 'boolean', JSON.stringify(r));
  });
});
