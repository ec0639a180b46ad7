// Shared wording for the `ca` and `cert` commands: durations, dates, and
// turning a CaError into the one line the operator reads.

import { CaError } from '../identity/ca/index.ts';
import type { RotationStep } from '../control/ca-server/index.ts';

export function formatDuration(seconds: number): string {
  const s = Math.abs(Math.round(seconds));
  const days = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  if (days >= 2) return `${days}d`;
  if (days === 1) return hours > 0 ? `1d ${hours}h` : '1d';
  if (hours > 0) return minutes > 0 ? `${hours}h ${minutes}m` : `${hours}h`;
  if (minutes > 0) return `${minutes}m`;
  return `${s}s`;
}

/** `2036-11-20T09:48:33Z (in 3649d)` or `… (expired 2d ago)`. */
export function formatExpiry(notAfter: Date, now: Date): string {
  const delta = (notAfter.getTime() - now.getTime()) / 1000;
  const when = notAfter.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return delta >= 0 ? `${when} (in ${formatDuration(delta)})` : `${when} (expired ${formatDuration(delta)} ago)`;
}

/** Prints a CA error for the operator: the detail (file, check) is theirs to see. */
export function printCaError(err: unknown): boolean {
  if (!(err instanceof CaError)) return false;
  process.stderr.write(`meshward: ${err.detail} (${err.reason})\n`);
  return true;
}

/** A root rotation step as the CA server reports it, with what it waits for. */
export const ROTATION_STEP_TEXT: Record<RotationStep, string> = {
  idle: 'idle (no rotation since the server started)',
  distributing: 'distributing (the new root is in the bundle, not signing; waiting until every agent trusts it)',
  reissuing: 'reissuing (the new root signs; waiting until every agent holds a certificate from it)',
  retiring: 'retiring (the old root left the bundle; waiting until every agent has applied that)',
  complete: 'complete (the new root signs; the old root is retired)',
  failed: 'stopped before completing',
};
