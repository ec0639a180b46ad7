// How a Node command line holds V8's young generation at a fixed size, and
// whether this process was started so: read by the proxy flags
// (proxy-node-flags.ts), which give the size to proxy processes, and by the
// idle trim (memory-trim.ts, which trims at once only when the size is held).

/**
 * Semi-spaces of 8 MiB: the size start-up and traffic grow a proxy's young
 * generation to anyway. Held, a memory-reducing collection gives the pages
 * back without shrinking it; larger, the same traffic keeps 13 MiB more
 * resident for about 5 % less CPU (docs/benchmarks.md, "Memory at start-up").
 */
export const YOUNG_GENERATION_FLAG = '--min-semi-space-size=8';

export interface SemiSpaceFlags {
  /** The value of `--min-semi-space-size`, NaN when given without a number; absent when not given. */
  readonly min?: number;
  readonly max?: number;
}

/**
 * The semi-space sizes on a Node command line, in either spelling V8 takes
 * (`--min-semi-space-size=8`, `--min_semi_space_size=8`; it refuses a value
 * after a space). The last one given wins, as in V8.
 */
export function semiSpaceFlags(args: readonly string[]): SemiSpaceFlags {
  let min: number | undefined;
  let max: number | undefined;
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq === -1) continue;
    const name = arg.slice(0, eq).replaceAll('_', '-');
    if (name !== '--min-semi-space-size' && name !== '--max-semi-space-size') continue;
    const text = arg.slice(eq + 1);
    const value = text.trim() === '' ? Number.NaN : Number(text);
    if (name === '--min-semi-space-size') min = value;
    else max = value;
  }
  return { ...(min !== undefined && { min }), ...(max !== undefined && { max }) };
}

/** NODE_OPTIONS as separate flags. */
export const nodeOptionsWords = (options: string | undefined): string[] => (options ?? '').split(/\s+/).filter((w) => w !== '');

/** True when the caller gave Node a semi-space size, on its command line or in NODE_OPTIONS: theirs is kept. */
export function sizedByCaller(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  const given = semiSpaceFlags([...execArgv, ...nodeOptionsWords(nodeOptions)]);
  return given.min !== undefined || given.max !== undefined;
}

/**
 * True when the process was started with the young generation's size held
 * (a positive `--min-semi-space-size` on Node's command line), so that a
 * trim releases its pages without shrinking it.
 */
export function youngGenerationHeld(execArgv: readonly string[] = process.execArgv): boolean {
  const { min } = semiSpaceFlags(execArgv);
  return min !== undefined && min > 0;
}
