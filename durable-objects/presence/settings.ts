/**
 * Presence timings, read from the Worker's vars (wrangler.toml) so tests can shorten them.
 */
export interface PresenceTimings {
  /** An online/away report not refreshed within this many ms makes the user offline (a zombie). */
  ttlMs: number;
  /** An offline report is published only if the user is still offline this many ms later. */
  offlineGraceMs: number;
  /** A user's subscribers get at most one delta per this many ms; the latest state wins. 0: no damping. */
  minIntervalMs: number;
  /** A user offline (or hidden) this long is forgotten: their row is deleted, last seen reads 0. */
  retentionMs: number;
}

export const DEFAULT_PRESENCE_TIMINGS: PresenceTimings = { ttlMs: 600_000, offlineGraceMs: 15_000, minIntervalMs: 2_000, retentionMs: 30 * 24 * 3_600_000 };

/** Reads the timings from the Worker's vars, falling back to the default for anything unusable. */
export function presenceTimingsFromEnv(env: {
  PRESENCE_TTL_MS?: string; PRESENCE_OFFLINE_GRACE_MS?: string; PRESENCE_MIN_INTERVAL_MS?: string; PRESENCE_RETENTION_MS?: string;
}): PresenceTimings {
  const ttlMs = Number(env.PRESENCE_TTL_MS ?? DEFAULT_PRESENCE_TIMINGS.ttlMs);
  const offlineGraceMs = Number(env.PRESENCE_OFFLINE_GRACE_MS ?? DEFAULT_PRESENCE_TIMINGS.offlineGraceMs);
  const minIntervalMs = Number(env.PRESENCE_MIN_INTERVAL_MS ?? DEFAULT_PRESENCE_TIMINGS.minIntervalMs);
  const retentionMs = Number(env.PRESENCE_RETENTION_MS ?? DEFAULT_PRESENCE_TIMINGS.retentionMs);
  return {
    ttlMs: Number.isSafeInteger(ttlMs) && ttlMs > 0 ? ttlMs : DEFAULT_PRESENCE_TIMINGS.ttlMs,
    offlineGraceMs: Number.isSafeInteger(offlineGraceMs) && offlineGraceMs >= 0 ? offlineGraceMs : DEFAULT_PRESENCE_TIMINGS.offlineGraceMs,
    minIntervalMs: Number.isSafeInteger(minIntervalMs) && minIntervalMs >= 0 ? minIntervalMs : DEFAULT_PRESENCE_TIMINGS.minIntervalMs,
    retentionMs: Number.isSafeInteger(retentionMs) && retentionMs > 0 ? retentionMs : DEFAULT_PRESENCE_TIMINGS.retentionMs,
  };
}
