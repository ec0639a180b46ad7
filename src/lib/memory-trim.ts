// Gives a long-running process's idle memory back to the system: V8's
// (below), and the C allocator's free memory where the addon for it is
// built (malloc-trim.ts).
//
// V8 grows the young generation while a process starts (modules compile,
// config loads: a burst of allocation that survives) and under load, and
// does not give its pages back while the process sits idle: a proxy keeps
// two semi-spaces of 8 MiB, 10 MiB of them resident, after start-up with
// nothing in them. A memory-reducing collection releases them.
//
// What that collection does to the young generation's size depends on how
// the process was started. Left to V8, it shrinks the young generation to
// its initial 1 MiB, and a young generation trimmed while traffic goes on
// stays small under moderate load (V8 grows it only as objects survive,
// and few do in a proxy): the proxy then collects more often and promotes
// more. Measured on the two-hop benchmark, such a trim at start-up cost
// 0.47× against 0.49× nginx's throughput and 0.110 against 0.092 vCPU at
// 1,000 requests/s. Started with the young generation's size held
// (`--min-semi-space-size`, which proxy processes are started with:
// src/lib/young-generation.ts), the collection releases the pages and
// keeps the size, so traffic after a trim costs nothing more than traffic
// before it.
//
// Hence two rules. Held: trim as soon as start-up is over, and again after
// a few idle minutes. Not held: only after the idle minutes, when memory
// matters and speed does not. Busy and idle are read from the process's
// own CPU time once a window: nothing on the request path.
//
// V8's own memory reducer makes such collections a few seconds into any
// quiet spell. Proxies run with it off (proxy-node-flags.ts): a
// memory-reducing collection also discards the optimized code of the
// request path, and the traffic after it pays for recompiling. So the trims
// here are a proxy's only ones: at the end of start-up, before there is
// optimized code to lose, and after minutes of quiet.
//
// A held young generation also fills again while the process idles: health
// probes and certificate renewals allocate a little, and each page they
// touch stays resident until the next trim (a plain collection does not
// release pages). So idle minutes trim again once the young generation's
// resident part has grown past a few MiB, traffic or not.

import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { cMemoryTrimAvailable, releaseFreedCMemory } from './malloc-trim.ts';
import { youngGenerationHeld } from './young-generation.ts';

type GcFunction = (options: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

let gc: GcFunction | null | undefined;

/**
 * V8's own `gc()`, with the options that ask for a memory-reducing
 * collection. It exists only in contexts created after --expose-gc is set,
 * hence the new context; the flag changes nothing else.
 */
function memoryReducingGc(): GcFunction | null {
  if (gc === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      const fn: unknown = runInNewContext('gc');
      gc = typeof fn === 'function' ? (fn as GcFunction) : null;
    } catch {
      gc = null;
    }
  }
  return gc;
}

/** How long after a trim the C allocator is trimmed once more. */
const LATE_C_TRIM_MS = 1000;

/**
 * Runs one memory-reducing collection now, then gives the C allocator's
 * free pages back (malloc-trim.ts): after the collection, since the
 * native memory of what it collected (Buffers' contents, socket and TLS
 * wraps) is freed by it. Some of that is freed a moment later (V8 sweeps
 * array buffers on another thread, and Node's wraps go in a callback after
 * the collection), hence one more C trim a second on. False if V8 offers
 * no such collection.
 */
export function trimMemory(): boolean {
  const fn = memoryReducingGc();
  if (fn !== null) fn({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  if (cMemoryTrimAvailable()) {
    releaseFreedCMemory();
    setTimeout(releaseFreedCMemory, LATE_C_TRIM_MS).unref();
  }
  return fn !== null;
}

const MiB = 1024 * 1024;

function youngGeneration(): { space_size: number; physical_space_size: number } | undefined {
  return getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
}

const youngGenerationResident = (): number => youngGeneration()?.physical_space_size ?? 0;

const inMiB = (bytes: number): number => Math.round((bytes / MiB) * 10) / 10;

export interface MemoryReport {
  readonly rssMiB: number;
  readonly heapUsedMiB: number;
  readonly heapTotalMiB: number;
  /** The young generation's size, and how much of it is resident. */
  readonly youngGenerationMiB: number;
  readonly youngGenerationResidentMiB: number;
  readonly externalMiB: number;
  /** Whether a trim also gives the C allocator's free memory back (malloc-trim.ts). */
  readonly cMemoryTrim: boolean;
}

/** The process's memory as an operator reads it (the admin API's `/memory`). */
export function memoryReport(): MemoryReport {
  const m = process.memoryUsage();
  const young = youngGeneration();
  return {
    rssMiB: inMiB(m.rss),
    heapUsedMiB: inMiB(m.heapUsed),
    heapTotalMiB: inMiB(m.heapTotal),
    youngGenerationMiB: inMiB(young?.space_size ?? 0),
    youngGenerationResidentMiB: inMiB(young?.physical_space_size ?? 0),
    externalMiB: inMiB(m.external),
    cMemoryTrim: cMemoryTrimAvailable(),
  };
}

export interface IdleTrimOptions {
  /** How often CPU time is read; default 60 s. */
  readonly intervalMs?: number;
  /** How many idle windows in a row, after a busy one (or start-up), before a trim; default 3. */
  readonly idleWindows?: number;
  /** A window with at least this share of one core counts as busy; default 5 %. */
  readonly busyShare?: number;
  /** A window with at most this share of one core counts as idle; default 0.5 %. */
  readonly idleShare?: number;
  /** Trim at once, start-up being over; default when the young generation's size is held (`youngGenerationHeld`). */
  readonly atStart?: boolean;
  /** Idle windows trim, even with no busy one since the last trim, once this much of the young generation is resident; default 4 MiB. */
  readonly youngResidentMiB?: number;
}

/**
 * Call when start-up is over. Trims at once when `atStart`, then after
 * `idleWindows` idle windows in a row that follow start-up (when not
 * trimmed) or a busy window, once each time, or that find the young
 * generation's resident part above `youngResidentMiB`. Returns a function
 * that stops the watching; the timer never keeps the process alive.
 */
export function trimMemoryWhenIdle(options: IdleTrimOptions = {}): () => void {
  const intervalMs = options.intervalMs ?? 60_000;
  const idleWindows = options.idleWindows ?? 3;
  const busyMicros = intervalMs * 1000 * (options.busyShare ?? 0.05);
  const idleMicros = intervalMs * 1000 * (options.idleShare ?? 0.005);
  const youngResidentBytes = (options.youngResidentMiB ?? 4) * MiB;
  const atStart = options.atStart ?? youngGenerationHeld();
  if (atStart) trimMemory();
  let last = process.cpuUsage();
  let busySinceTrim = !atStart;
  let idleInARow = 0;
  const timer = setInterval(() => {
    const now = process.cpuUsage();
    const used = now.user - last.user + (now.system - last.system);
    last = now;
    if (used >= busyMicros) {
      busySinceTrim = true;
      idleInARow = 0;
      return;
    }
    idleInARow = used <= idleMicros ? idleInARow + 1 : 0;
    if (idleInARow >= idleWindows && (busySinceTrim || youngGenerationResident() > youngResidentBytes)) {
      busySinceTrim = false;
      idleInARow = 0;
      trimMemory();
      // The collection's own CPU time is not traffic.
      last = process.cpuUsage();
    }
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
