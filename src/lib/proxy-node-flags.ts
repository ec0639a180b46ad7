// The Node flags a proxy process runs with. V8 reads them only when a
// process starts, so they go on its command line: the launcher
// (bin/meshward.js) relaunches a proxy without them, and `meshward up`
// starts its proxies with them and spares them the relaunch. A flag the
// caller set either way is the caller's choice, and kept.
//
// - The young generation held at a fixed size (young-generation.ts).
// - V8's memory reducer off. Left on, it runs a memory-reducing collection
//   a few seconds after a process goes quiet, and such a collection lets
//   go of the object shapes (maps) that only optimized code still refers
//   to: between requests a proxy has no request objects alive, so the
//   optimized functions of its request path are thrown away with them
//   (about 50 in the benchmark's two proxies, "embedded weak objects
//   cleared"). The next traffic then runs unoptimized code and recompiles
//   on the proxy's own core for seconds: at 1,000 requests/s over one
//   connection after 20 s of quiet, a median p99 of 1.4 ms against 0.7 ms
//   with the reducer off, and 7–18 % more CPU per request
//   (bench/quiet-spell.ts; docs/benchmarks.md, "The memory reducer").
//   The proxy gives idle memory back by itself instead, once ready and
//   after idle minutes (memory-trim.ts).
// - Node's pool of V8 worker threads at two threads instead of four. A
//   proxy's background work (concurrent marking and sweeping, optimizing
//   compiles) is small and still runs beside the main thread, on another
//   core where there is one. Each thread that allocates keeps a glibc arena
//   whose top the allocator's trim does not give back: with two fewer, a
//   sidecar settles 0.3–1.4 MiB lower after traffic. One thread settles
//   lower still, but the tail read worse with it: a median p99 of 1.22 ms
//   against 0.91 (four threads) and 0.91 (two) over four interleaved
//   rounds at 1,000 requests/s (bench/worker-threads.ts; docs/benchmarks.md,
//   "Two V8 worker threads, and upstream reads into one shared buffer").

import { YOUNG_GENERATION_FLAG, nodeOptionsWords, sizedByCaller } from './young-generation.ts';

/** The commands whose processes are proxies: long-lived, started once, then busy or idle for hours. */
export const PROXY_COMMANDS: ReadonlySet<string> = new Set(['proxy', 'node-proxy', 'gateway']);

export const MEMORY_REDUCER_OFF = '--no-memory-reducer';

/** `--memory-reducer` and its negations in every spelling V8 takes (`--no-`, `--no`, `_` for `-`). */
const MEMORY_REDUCER = /^--(?:no[-_]?)?memory[-_]reducer(?:=.*)?$/;

export const V8_POOL_TWO_THREADS = '--v8-pool-size=2';

/** `--v8-pool-size`, with `_` for `-` as Node also takes it. */
const V8_POOL_SIZE = /^--v8[-_]pool[-_]size(?:=.*)?$/;

/** True when a Node command line (or NODE_OPTIONS) has a flag `flag` matches. */
function givenByCaller(flag: RegExp, execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return [...execArgv, ...nodeOptionsWords(nodeOptions)].some((arg) => flag.test(arg));
}

/** True when a Node command line (or NODE_OPTIONS) turns V8's memory reducer on or off. */
export function memoryReducerSetByCaller(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return givenByCaller(MEMORY_REDUCER, execArgv, nodeOptions);
}

/** True when a Node command line (or NODE_OPTIONS) sizes V8's worker pool. */
export function v8PoolSizedByCaller(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return givenByCaller(V8_POOL_SIZE, execArgv, nodeOptions);
}

/**
 * The Node flags a process running `command` should be started with and
 * was not: for a proxy, the held young generation unless the caller sized
 * it, the memory reducer off unless the caller set it, and two V8 worker
 * threads unless the caller sized the pool.
 */
export function nodeFlagsFor(command: string | undefined, execArgv: readonly string[], nodeOptions: string | undefined): string[] {
  if (!PROXY_COMMANDS.has(command ?? '')) return [];
  const flags: string[] = [];
  if (!sizedByCaller(execArgv, nodeOptions)) flags.push(YOUNG_GENERATION_FLAG);
  if (!memoryReducerSetByCaller(execArgv, nodeOptions)) flags.push(MEMORY_REDUCER_OFF);
  if (!v8PoolSizedByCaller(execArgv, nodeOptions)) flags.push(V8_POOL_TWO_THREADS);
  return flags;
}
