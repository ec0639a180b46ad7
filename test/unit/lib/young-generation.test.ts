// The young generation's flags (src/lib/young-generation.ts): a caller's
// own size read in both spellings V8 takes, so that it is kept and the idle
// trim knows it.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { semiSpaceFlags, sizedByCaller, youngGenerationHeld } from '../../../src/lib/young-generation.ts';

describe('young generation flags', () => {
  it('reads a semi-space size in both spellings, the last one winning', () => {
    assert.deepEqual(semiSpaceFlags(['--min-semi-space-size=16']), { min: 16 });
    assert.deepEqual(semiSpaceFlags(['--max_semi_space_size=32']), { max: 32 });
    assert.deepEqual(semiSpaceFlags(['--min-semi-space-size=8', '--min-semi-space-size=2']), { min: 2 });
    assert.deepEqual(semiSpaceFlags(['--min-semi-space-size=']), { min: Number.NaN });
    assert.deepEqual(semiSpaceFlags(['--min-semi-space-sizes=8', '--expose-gc']), {});
  });

  it('knows a held young generation from the command line', () => {
    assert.equal(youngGenerationHeld(['--min-semi-space-size=16']), true);
    assert.equal(youngGenerationHeld(['--min_semi_space_size=8']), true);
    assert.equal(youngGenerationHeld(['--min-semi-space-size=0', '--max-semi-space-size=16']), false);
    assert.equal(youngGenerationHeld(['--min-semi-space-size=x']), false);
    assert.equal(youngGenerationHeld([]), false);
    // This test process is started without it: its idle trim waits.
    assert.equal(youngGenerationHeld(), false);
  });

  it('reads the flag as Node hands it over in execArgv', () => {
    const child = spawnSync(process.execPath, ['--min_semi_space_size=8', '-p', 'JSON.stringify(process.execArgv)'], { encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    assert.equal(youngGenerationHeld(JSON.parse(child.stdout) as string[]), true, child.stdout);
  });

  it('knows a size the caller chose, on the command line or in NODE_OPTIONS', () => {
    assert.equal(sizedByCaller([], '--max-old-space-size=256  --max-semi-space-size=4'), true);
    assert.equal(sizedByCaller(['--max-semi-space-size=0'], undefined), true);
    assert.equal(sizedByCaller([], '--max-old-space-size=256'), false);
    assert.equal(sizedByCaller(['--min_semi_space_size=2'], undefined), true);
  });
});
