// When the agent acts: renewal at a fraction of the certificate's lifetime,
// exponential backoff while the CA cannot be reached, and the spread of
// early re-issues after a root is activated. Pure functions of the clock and
// a random source, so the rules are tested without timers.
//
// Renewing at half the lifetime (Istio's SECRET_GRACE_PERIOD_RATIO, SPIRE's
// agent) leaves the other half to ride out a CA outage; the jitter keeps a
// fleet started together from renewing together.

export interface RotationPolicy {
  /** Fraction of the lifetime after which to renew, in (0, 1). Default 0.5. */
  fraction: number;
  /**
   * Added to `fraction`, uniformly in [-jitter, +jitter], per certificate.
   * Default 0.1: renew between 40% and 60% of the lifetime.
   */
  jitter: number;
}

export interface BackoffPolicy {
  /** Delay before the first retry. */
  initialMs: number;
  /** No delay exceeds this, jitter included. */
  maxMs: number;
  /** Growth per failed attempt. */
  multiplier: number;
  /** Each delay is scaled by a factor uniform in [1 - jitter, 1 + jitter]. */
  jitter: number;
}

export const DEFAULT_ROTATION: RotationPolicy = Object.freeze({ fraction: 0.5, jitter: 0.1 });
export const DEFAULT_BACKOFF: BackoffPolicy = Object.freeze({ initialMs: 1000, maxMs: 30_000, multiplier: 2, jitter: 0.2 });

export type Random = () => number;

const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, x));

/**
 * Milliseconds from `nowMs` until the certificate valid from `issuedAtMs`
 * (when the agent received it: the CA may backdate notBefore for clock skew,
 * which is not lifetime the agent can use) to `notAfterMs` should be renewed.
 * Never negative.
 */
export function renewalDelayMs(
  issuedAtMs: number,
  notAfterMs: number,
  nowMs: number,
  policy: RotationPolicy = DEFAULT_ROTATION,
  random: Random = Math.random,
): number {
  const lifetime = Math.max(0, notAfterMs - issuedAtMs);
  const fraction = clamp(policy.fraction + (2 * random() - 1) * policy.jitter, 0, 1);
  return Math.max(0, issuedAtMs + fraction * lifetime - nowMs);
}

/** Delay before retry number `attempt` (0 for the first retry). */
export function backoffDelayMs(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF, random: Random = Math.random): number {
  const base = Math.min(policy.maxMs, policy.initialMs * policy.multiplier ** Math.max(0, attempt));
  const jittered = base * (1 + (2 * random() - 1) * policy.jitter);
  return clamp(Math.round(jittered), 0, policy.maxMs);
}

/**
 * Delay before re-issuing under a newly activated root: uniform in
 * [0, spreadMs), but never later than the regular renewal would be, so a
 * root change never postpones a renewal.
 */
export function reissueDelayMs(spreadMs: number, regularDelayMs: number, random: Random = Math.random): number {
  return Math.max(0, Math.min(regularDelayMs, Math.floor(random() * spreadMs)));
}

/** Validates a policy given by a caller; returns the problems found. */
export function checkRotationPolicy(p: RotationPolicy): string[] {
  const problems: string[] = [];
  if (!(p.fraction > 0 && p.fraction < 1)) problems.push(`rotation fraction must be in (0, 1), got ${p.fraction}`);
  if (!(p.jitter >= 0 && p.jitter < Math.min(p.fraction, 1 - p.fraction) + 1e-9)) {
    problems.push(`rotation jitter must be in [0, min(fraction, 1 - fraction)], got ${p.jitter}`);
  }
  return problems;
}

export function checkBackoffPolicy(p: BackoffPolicy): string[] {
  const problems: string[] = [];
  if (!(p.initialMs > 0)) problems.push(`backoff initialMs must be > 0, got ${p.initialMs}`);
  if (!(p.maxMs >= p.initialMs)) problems.push(`backoff maxMs must be >= initialMs, got ${p.maxMs}`);
  if (!(p.multiplier >= 1)) problems.push(`backoff multiplier must be >= 1, got ${p.multiplier}`);
  if (!(p.jitter >= 0 && p.jitter < 1)) problems.push(`backoff jitter must be in [0, 1), got ${p.jitter}`);
  return problems;
}
