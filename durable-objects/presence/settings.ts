/**
 * Presence timings, read from the Worker's vars (wrangler.toml) so tests can shorten them.
 */
export interface PresenceTimings {
  /** An online/away report not refreshed within this many ms makes the user offline (a zombie). */
  ttlMs: number;
  /** An offline report is published only if the user is still offline this many ms later. */
  offlineGraceMs: number;
}

export const DEFAULT_PRESENCE_TIMINGS: PresenceTimings = { ttlMs: 90_000, offlineGraceMs: 15_000 };

/** Reads the timings from the Worker's vars, falling back to the default for anything unusable. */
export function presenceTimingsFromEnv(env: { PRESENCE_TTL_MS?: string; PRESENCE_OFFLINE_GRACE_MS?: string }): PresenceTimings {
  const ttlMs = Number(env.PRESENCE_TTL_MS ?? DEFAULT_PRESENCE_TIMINGS.ttlMs);
  const offlineGraceMs = Number(env.PRESENCE_OFFLINE_GRACE_MS ?? DEFAULT_PRESENCE_TIMINGS.offlineGraceMs);
  return {
    ttlMs: Number.isSafeInteger(ttlMs) && ttlMs > 0 ? ttlMs : DEFAULT_PRESENCE_TIMINGS.ttlMs,
    offlineGraceMs: Number.isSafeInteger(offlineGraceMs) && offlineGraceMs >= 0 ? offlineGraceMs : DEFAULT_PRESENCE_TIMINGS.offlineGraceMs,
  };
}
