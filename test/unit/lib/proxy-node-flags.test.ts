// The Node flags proxy processes are started with (src/lib/proxy-node-flags.ts):
// only proxies get them, a flag the caller set either way is kept, and the
// pinned Node takes them.

import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { MEMORY_REDUCER_OFF, V8_POOL_TWO_THREADS, memoryReducerSetByCaller, nodeFlagsFor, v8PoolSizedByCaller } from '../../../src/lib/proxy-node-flags.ts';
import { YOUNG_GENERATION_FLAG } from '../../../src/lib/young-generation.ts';

describe('proxy node flags', () => {
  it('gives proxy commands the held young generation, the memory reducer off and two V8 worker threads', () => {
    for (const command of ['proxy', 'node-proxy', 'gateway']) assert.deepEqual(nodeFlagsFor(command, [], undefined), [YOUNG_GENERATION_FLAG, MEMORY_REDUCER_OFF, V8_POOL_TWO_THREADS]);
    for (const command of ['controlplane', 'up', 'validate', undefined]) assert.deepEqual(nodeFlagsFor(command, [], undefined), []);
  });

  it('never overrides a semi-space size the caller chose', () => {
    assert.deepEqual(nodeFlagsFor('proxy', ['--max-semi-space-size=0'], undefined), [MEMORY_REDUCER_OFF, V8_POOL_TWO_THREADS]);
    assert.deepEqual(nodeFlagsFor('proxy', [], '--max-old-space-size=256  --max-semi-space-size=4'), [MEMORY_REDUCER_OFF, V8_POOL_TWO_THREADS]);
  });

  it('keeps the memory reducer as the caller set it, in every spelling V8 takes', () => {
    for (const flag of ['--memory-reducer', '--no-memory-reducer', '--nomemory-reducer', '--no_memory_reducer', '--memory_reducer']) {
      assert.equal(memoryReducerSetByCaller([flag], undefined), true, flag);
      assert.deepEqual(nodeFlagsFor('gateway', [flag], undefined), [YOUNG_GENERATION_FLAG, V8_POOL_TWO_THREADS], flag);
    }
    assert.equal(memoryReducerSetByCaller([], '--memory-reducer'), true);
    // A different flag with the same stem is not this one.
    assert.equal(memoryReducerSetByCaller(['--memory-reducer-for-small-heaps'], undefined), false);
    assert.equal(memoryReducerSetByCaller(['--max-old-space-size=256'], '--trace-gc'), false);
  });

  it('keeps a V8 worker pool size the caller chose, on the command line or in NODE_OPTIONS', () => {
    for (const flag of ['--v8-pool-size=4', '--v8_pool_size=0']) {
      assert.equal(v8PoolSizedByCaller([flag], undefined), true, flag);
      assert.deepEqual(nodeFlagsFor('proxy', [flag], undefined), [YOUNG_GENERATION_FLAG, MEMORY_REDUCER_OFF], flag);
    }
    assert.deepEqual(nodeFlagsFor('proxy', [], '--v8-pool-size=2'), [YOUNG_GENERATION_FLAG, MEMORY_REDUCER_OFF]);
    assert.equal(v8PoolSizedByCaller(['--max-old-space-size=256'], '--trace-gc'), false);
  });

  it('once given, asks for nothing more: the relaunch happens once', () => {
    const flags = nodeFlagsFor('proxy', [], undefined);
    assert.deepEqual(nodeFlagsFor('proxy', flags, undefined), []);
  });

  it('gives flags that this Node accepts', () => {
    const child = spawnSync(process.execPath, [...nodeFlagsFor('proxy', [], undefined), '-p', 'JSON.stringify(process.execArgv)'], { encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    // execArgv ends with -p and its script.
    assert.deepEqual((JSON.parse(child.stdout) as string[]).slice(0, 3), [YOUNG_GENERATION_FLAG, MEMORY_REDUCER_OFF, V8_POOL_TWO_THREADS]);
  });
});
