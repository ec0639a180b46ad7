// Gives a long-running process's idle memory back to the system.
//
// V8 grows the young generation while a process starts (modules compile,
// config loads: a burst of allocation that survives) and under load, and it
// never shrinks it again on its own while the process sits idle: a proxy
// kept 16 MiB of young generation, 11 MiB of it resident, after start-up
// with nothing in it. A memory-reducing collection shrinks it to its
// initial 1 MiB; the next burst of traffic grows it again, so throughput
// under load is unchanged (a fixed cap on the young generation would cost
// about 5 % of it).
//
// So: one such collection once start-up is done, and another whenever the
// process goes idle after being busy. Busy and idle are read from the
// process's own CPU time every `intervalMs`: nothing on the request path.

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

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

/** Runs one memory-reducing collection now; false if V8 offers none. */
export function trimMemory(): boolean {
  const fn = memoryReducingGc();
  if (fn === null) return false;
  fn({ type: 'major', execution: 'sync', flavor: 'last-resort' });
  return true;
}

export interface IdleTrimOptions {
  /** How often CPU time is read; default 30 s. */
  readonly intervalMs?: number;
  /** A window with at least this share of one core counts as busy; default 5 %. */
  readonly busyShare?: number;
  /** A window with at most this share of one core counts as idle; default 0.5 %. */
  readonly idleShare?: number;
}

/**
 * Trims once now, then again at the first idle window after a busy one.
 * Returns a function that stops the watching; the timer never keeps the
 * process alive.
 */
export function trimMemoryWhenIdle(options: IdleTrimOptions = {}): () => void {
  const intervalMs = options.intervalMs ?? 30_000;
  const busyMicros = intervalMs * 1000 * (options.busyShare ?? 0.05);
  const idleMicros = intervalMs * 1000 * (options.idleShare ?? 0.005);
  trimMemory();
  let last = process.cpuUsage();
  let busySinceTrim = false;
  const timer = setInterval(() => {
    const now = process.cpuUsage();
    const used = now.user - last.user + (now.system - last.system);
    if (used >= busyMicros) {
      busySinceTrim = true;
    } else if (used <= idleMicros && busySinceTrim) {
      busySinceTrim = false;
      trimMemory();
      // The collection's own CPU time is not traffic.
      last = process.cpuUsage();
      return;
    }
    last = now;
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
