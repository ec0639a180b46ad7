// The C allocator's free memory given back to the system: glibc's
// malloc_trim, through the small addon native/malloc-trim.c (built when
// the project is installed, by tools/build-native.ts).
//
// Why it matters to a proxy: the memory OpenSSL and Node's socket and
// stream wraps take per connection comes from malloc, and once those
// connections close it is free but stays resident, pinned by the
// long-lived allocations made in between. After 13 s of mixed load a
// proxy pair held 13–19 MiB more this way than at start-up, and no
// collection of V8's touches it (docs/benchmarks.md, "The C allocator's
// free memory").
//
// The addon is optional: where it was not built (no C compiler, not
// glibc), releaseFreedCMemory() returns false and does nothing.

import { existsSync } from 'node:fs';
import { packageFile } from './installation.ts';

/** Where tools/build-native.ts writes the addon. */
export const MALLOC_TRIM_ADDON = packageFile('build', 'native', 'malloc-trim.node');

/** Whether this process runs on Linux with glibc, where malloc_trim exists and the addon can be built. */
export function onGlibc(): boolean {
  if (process.platform !== 'linux') return false;
  const header = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
  return typeof header?.glibcVersionRuntime === 'string';
}

interface Addon {
  mallocTrim(): boolean;
}

let addon: Addon | null | undefined;

function load(): Addon | null {
  if (addon !== undefined) return addon;
  addon = null;
  if (!existsSync(MALLOC_TRIM_ADDON)) return addon;
  try {
    const module = { exports: {} as Partial<Addon> };
    process.dlopen(module, MALLOC_TRIM_ADDON);
    if (typeof module.exports.mallocTrim === 'function') addon = module.exports as Addon;
  } catch {
    // Built for another Node or system: the trim does without it.
  }
  return addon;
}

/** Whether this process can give the C allocator's free memory back (the addon is built and loads). */
export function cMemoryTrimAvailable(): boolean {
  return load() !== null;
}

/**
 * Gives every whole free page of the C allocator back to the system
 * (glibc's malloc_trim(0)). Returns whether any was; false when the addon
 * is not available. About 7 ms for a fragmented 100 MiB heap, well under a
 * millisecond when there is little to give back.
 */
export function releaseFreedCMemory(): boolean {
  return load()?.mallocTrim() ?? false;
}
