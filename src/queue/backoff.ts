/** Waits before each retry: 1 min, 5 min, 30 min, 2 h, 6 h, then 6 h again. */
export const DEFAULT_BACKOFF_MS = [60_000, 300_000, 1_800_000, 7_200_000, 21_600_000];

/**
 * The delay before the next attempt after `attempts` failed ones: the schedule's step with
 * ±20% jitter (so a burst of failures does not retry in lockstep), or the remote's
 * Retry-After when that is longer.
 */
export function retryDelay(attempts: number, schedule: number[], retryAfterMs?: number, random = Math.random): number {
  const base = schedule[Math.min(Math.max(attempts - 1, 0), schedule.length - 1)];
  const jittered = Math.round(base * (0.8 + 0.4 * random()));
  return Math.max(jittered, retryAfterMs ?? 0);
}
