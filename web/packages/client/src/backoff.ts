// Reconnect delays: "full jitter" exponential backoff. Attempt n waits a
// uniformly random time in [0, min(cap, base·2^n)), so a thousand pages
// that lost the same server do not come back in lockstep.

export interface BackoffOptions {
  /** First ceiling in ms (attempt 0). Default 500. */
  baseMs?: number;
  /** Largest ceiling in ms. Default 30 000. */
  capMs?: number;
  /** Smallest delay in ms, whatever the jitter. Default 0. */
  minMs?: number;
}

export const DEFAULT_BACKOFF: Required<BackoffOptions> = { baseMs: 500, capMs: 30_000, minMs: 0 };

/** The ceiling of attempt n (0-based). */
export function backoffCeiling(attempt: number, opts: BackoffOptions = {}): number {
  const { baseMs, capMs } = { ...DEFAULT_BACKOFF, ...opts };
  // 2^n overflows to Infinity for large n; min() keeps it at the cap.
  return Math.min(capMs, baseMs * Math.pow(2, Math.max(0, attempt)));
}

/** The delay before attempt n+1 after n failures: random in [min, ceiling). */
export function fullJitter(attempt: number, random: () => number = Math.random, opts: BackoffOptions = {}): number {
  const minMs = opts.minMs ?? DEFAULT_BACKOFF.minMs;
  const ceiling = backoffCeiling(attempt, opts);
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.max(minMs, Math.floor(r * ceiling));
}
