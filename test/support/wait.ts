// Waiting in tests for what happens a moment after the call that caused it:
// a pushed config applied, a retry logged, a status changed.

/**
 * Calls `probe` every 20 ms until it returns something other than undefined,
 * and returns that; throws `timed out waiting for <what>` after `timeoutMs`.
 *
 * @example
 *   await until('b to deny a', async () => ((await get(port, '/hello')).status === 403 ? true : undefined));
 */
export async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
