/**
 * Reconnect delays. Pure functions: the connection passes its own random source, so tests pin
 * the jitter.
 *
 * Why jitter: a deploy closes every socket at once. Without jitter every client retries on the
 * same schedule and the reconnect storm repeats at 1 s, 2 s, 4 s... (seed §7.3). Multiplying by
 * a uniform factor in [0.5, 1.5) spreads each wave over a full base interval.
 */

export const BACKOFF_BASE_MS = 1_000;
export const BACKOFF_CAP_MS = 60_000;

/**
 * Delay before reconnect attempt `attempt` (0 for the first retry after a drop):
 * `min(60 s, 1 s × 2^attempt) × rand(0.5, 1.5)`.
 *
 * @example
 * backoffDelay(0, () => 0.5); // 1000
 * backoffDelay(10, () => 0);  // 30000: capped at 60 s, then jittered down
 */
export function backoffDelay(attempt: number, random: () => number = Math.random): number {
  const exponent = Math.max(0, Math.floor(attempt));
  const base = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** exponent);
  return Math.round(base * (0.5 + clampUnit(random())));
}

/**
 * Delay after a GOAWAY: at least what the server asked for, plus up to half of it (at least 1 s)
 * so clients told the same number do not return in lockstep.
 *
 * @example
 * goAwayDelay(10_000, () => 0.5); // 12500
 */
export function goAwayDelay(reconnectAfterMs: number, random: () => number = Math.random): number {
  const base = Math.max(0, reconnectAfterMs);
  return Math.round(base + clampUnit(random()) * Math.max(BACKOFF_BASE_MS, base / 2));
}

function clampUnit(x: number): number {
  return Number.isFinite(x) ? Math.min(Math.max(x, 0), 1) : 0.5;
}
