// The C allocator's free memory given back (src/lib/malloc-trim.ts and
// native/malloc-trim.c, built by `npm install`): on this project's
// platform (Linux with glibc) the addon is built and loads, and it returns
// what plain collections leave resident. Each case runs in a process of
// its own, since what is measured is that process's RSS.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { MALLOC_TRIM_ADDON, cMemoryTrimAvailable, onGlibc } from '../../../src/lib/malloc-trim.ts';

const moduleUrl = (path: string): string => JSON.stringify(new URL(path, import.meta.url).href);

/**
 * A child that fills the C heap with 2 KiB Buffers, keeps one in sixteen
 * (which pins almost every page), drops the rest, runs `release`, and
 * prints its RSS in MiB after a plain full collection and after `release`.
 */
function fragmentThen(release: string): { collected: number; released: number; result: unknown } {
  const script = `
    import { releaseFreedCMemory } from ${moduleUrl('../../../src/lib/malloc-trim.ts')};
    import { trimMemory } from ${moduleUrl('../../../src/lib/memory-trim.ts')};
    const rss = () => process.memoryUsage().rss / 1048576;
    const keep = [];
    let all = [];
    for (let i = 0; i < 40_000; i++) {
      const b = Buffer.allocUnsafeSlow(2048);
      b.fill(i & 0xff);
      all.push(b);
      if (i % 16 === 0) keep.push(b);
    }
    all = null;
    gc();
    gc();
    const collected = rss();
    const result = ${release};
    console.log(JSON.stringify({ collected, released: rss(), result, kept: keep.length }));
  `;
  const child = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(child.status, 0, child.stderr);
  return JSON.parse(child.stdout) as { collected: number; released: number; result: unknown };
}

describe('C allocator trim', { skip: !onGlibc() && 'malloc_trim is glibc’s' }, () => {
  it('is built by the install and loads', () => {
    assert.ok(existsSync(MALLOC_TRIM_ADDON), `${MALLOC_TRIM_ADDON} is missing: run npm run build:native (it needs a C compiler)`);
    assert.equal(cMemoryTrimAvailable(), true);
  });

  it('gives back the free pages a full collection leaves resident', () => {
    const r = fragmentThen('releaseFreedCMemory()');
    assert.equal(r.result, true, JSON.stringify(r));
    // About 80 MiB were freed; the collection alone returns none of it.
    assert.ok(r.collected - r.released > 50, JSON.stringify(r));
  });

  it('is part of the memory trim that proxies run when idle', () => {
    const r = fragmentThen('trimMemory()');
    assert.equal(r.result, true, JSON.stringify(r));
    assert.ok(r.collected - r.released > 50, JSON.stringify(r));
  });
});
