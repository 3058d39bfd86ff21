/**
 * Retention: how long a channel keeps its messages, and the expiry that enforces it
 * (docs/decisions/019). A channel's lifetime is its own setting (`channel.retention_ms`, chosen
 * by owners and admins, or by either member of a DM) or, while it has none, the server's
 * DEFAULT_RETENTION_MS; 0 = kept for ever.
 *
 * Expiry deletes a *prefix* of the log: a message's HLC never runs behind an older one's, so
 * "older than the lifetime" is every seq below some point. That point is the **low-water mark**
 * `channel.min_seq`: the lowest seq that may still be stored; every seq below it is gone. History,
 * RESUME and unread counts read it, and seq numbering carries on above it (never restarts).
 *
 * The channel's alarm deletes at most LIMITS.retentionBatch rows per tick in one synchronous
 * turn (messages, their reactions, the mark; their attachments are marked for the blob sweep) and
 * asks to be woken again while more remain, or when the oldest remaining message comes due.
 */
import { fail, type Result } from "../../shared/errors.js";
import { count } from "../../shared/metrics.js";
import { LIMITS } from "../../protocol/limits.js";

/** The operator's settings (wrangler.toml vars; unset = defaults below). */
export interface RetentionConfig {
  /** Lifetime of channels without their own setting; 0 = kept for ever. */
  defaultMs: number;
  minMs: number;
  maxMs: number;
}

/** DEFAULT_RETENTION_MS (unset, empty or 0: keep for ever), RETENTION_MIN_MS, RETENTION_MAX_MS. */
export function retentionConfig(env: unknown): RetentionConfig {
  const vars = (env ?? {}) as { DEFAULT_RETENTION_MS?: unknown; RETENTION_MIN_MS?: unknown; RETENTION_MAX_MS?: unknown };
  const ms = (value: unknown, fallback: number): number => {
    const n = Number(value);
    return value !== undefined && value !== "" && Number.isSafeInteger(n) && n >= 0 ? n : fallback;
  };
  const minMs = ms(vars.RETENTION_MIN_MS, LIMITS.retentionMinMs) || LIMITS.retentionMinMs;
  const maxMs = Math.max(minMs, ms(vars.RETENTION_MAX_MS, LIMITS.retentionMaxMs) || LIMITS.retentionMaxMs);
  return { defaultMs: ms(vars.DEFAULT_RETENTION_MS, 0), minMs, maxMs };
}

/**
 * Checks a requested lifetime: `null` (back to the server default) or a whole number of ms
 * between the configured bounds.
 */
export function checkRetention(value: unknown, config: RetentionConfig): Result<{ value: number | null }> {
  if (value === null) return { ok: true, value: null };
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < config.minMs || value > config.maxMs) {
    return fail(
      "invalid_argument",
      `retention_ms must be null (the server default) or a whole number of milliseconds from ${config.minMs} (${duration(config.minMs)}) to ${config.maxMs} (${duration(config.maxMs)}).`,
    );
  }
  return { ok: true, value };
}

/** "7 days", "24 hours", "90 minutes": the largest unit that divides `ms` evenly. */
export function duration(ms: number): string {
  const units: [number, string][] = [[86_400_000, "day"], [3_600_000, "hour"], [60_000, "minute"], [1000, "second"]];
  for (const [size, name] of units) {
    if (ms >= size && ms % size === 0) {
      const n = ms / size;
      return `${n} ${name}${n === 1 ? "" : "s"}`;
    }
  }
  return `${ms} ms`;
}

/** The name-free text of a `retention_set` notice, read after the actor's name. */
export function retentionText(effectiveMs: number): string {
  return effectiveMs > 0 ? `set messages to disappear after ${duration(effectiveMs)}` : "turned off disappearing messages";
}

/** What one expiry tick did. */
export interface ExpiryTick {
  /** Message rows deleted in this tick (≤ LIMITS.retentionBatch). */
  deleted: number;
  /** The low-water mark after the tick. */
  minSeq: number;
  /** When the next tick has work: now (more expired rows remain), later, or never (undefined). */
  nextAt: number | undefined;
}

export class Retention {
  /** The channel's own setting (0: none, the server default applies). */
  private own = 0;
  private min = 1;
  /** When the alarm is wanted for expiry (in memory; recomputed on wake). */
  private wanted: number | undefined;

  /**
   * @param clock "now" for expiry; tests move it instead of waiting out a lifetime
   */
  constructor(
    private readonly sql: SqlStorage,
    readonly config: RetentionConfig,
    public clock: () => number = () => Date.now(),
  ) {}

  /** Reads the setting and the mark from the channel row (on wake and after create). */
  load(): void {
    const row = this.sql.exec<{ retention_ms: number; min_seq: number }>("SELECT retention_ms, min_seq FROM channel WHERE id = 1").toArray()[0];
    this.own = row?.retention_ms ?? 0;
    this.min = row?.min_seq ?? 1;
  }

  /** The channel's own lifetime, or null while the server default applies. */
  get setting(): number | null {
    return this.own > 0 ? this.own : null;
  }

  /** The lifetime in effect; 0 = kept for ever. */
  get ttlMs(): number {
    return this.own > 0 ? this.own : this.config.defaultMs;
  }

  /** The low-water mark: every seq below it has expired. */
  get minSeq(): number {
    return this.min;
  }

  /** Stores a checked setting (null: the server default). The caller logs the notice in the same turn. */
  set(value: number | null): void {
    this.own = value ?? 0;
    this.sql.exec("UPDATE channel SET retention_ms = ? WHERE id = 1", this.own);
    this.wanted = undefined;
  }

  /** When the alarm should next run for expiry (the oldest stored message's expiry), remembered until a tick runs. */
  due(): number | undefined {
    if (this.ttlMs <= 0) return undefined;
    if (this.wanted !== undefined) return this.wanted;
    const oldest = this.sql.exec<{ hlc_ms: number }>("SELECT hlc_ms FROM messages WHERE seq >= ? ORDER BY seq LIMIT 1", this.min).toArray()[0];
    this.wanted = oldest ? oldest.hlc_ms + this.ttlMs : undefined;
    return this.wanted;
  }

  /** Whether expiry has work now (by the clock); cheap: the due time is kept in memory. */
  isDue(): boolean {
    const at = this.due();
    return at !== undefined && at <= this.clock();
  }

  /** A message was appended at `hlcMs`: when the alarm is wanted for expiry (the oldest message's expiry). */
  appended(hlcMs: number): number | undefined {
    if (this.ttlMs <= 0) return undefined;
    // Nothing known (the log was empty, or the lifetime just changed): read the oldest row once.
    return this.due() ?? hlcMs + this.ttlMs;
  }

  /**
   * The alarm's part: one bounded batch when due (`expired` hears the new mark when rows went).
   * Answers when the alarm is next wanted for expiry in real time: the retention clock is the wall
   * clock but for tests, which move it, while the alarm runs on real time (`now`).
   */
  onAlarm(now: number, expired: (minSeq: number) => void): number | undefined {
    let at: number | undefined;
    if (this.isDue()) {
      const r = this.expire();
      if (r.deleted > 0) expired(r.minSeq);
      at = r.nextAt;
    } else {
      at = this.due();
    }
    return at === undefined ? undefined : Math.max(now, at - this.clock() + now);
  }

  /**
   * Deletes up to LIMITS.retentionBatch expired messages from the bottom of the log, with their
   * reactions, in this turn; marks their uploads `deleting` (the attachment sweep removes blob and
   * row after this write is durable) and raises the mark. Reads at most one row past the batch.
   */
  expire(): ExpiryTick {
    const now = this.clock();
    const ttl = this.ttlMs;
    if (ttl <= 0) {
      this.wanted = undefined;
      return { deleted: 0, minSeq: this.min, nextAt: undefined };
    }
    const cutoff = now - ttl;
    const rows = this.sql.exec<{ seq: number; hlc_ms: number }>(
      "SELECT seq, hlc_ms FROM messages WHERE seq >= ? ORDER BY seq LIMIT ?", this.min, LIMITS.retentionBatch + 1,
    ).toArray();
    let n = 0;
    while (n < rows.length && n < LIMITS.retentionBatch && rows[n]!.hlc_ms <= cutoff) n++;
    if (n > 0) {
      const mark = n < rows.length ? rows[n]!.seq : rows[n - 1]!.seq + 1;
      this.sql.exec("DELETE FROM messages WHERE seq < ?", mark);
      this.sql.exec("DELETE FROM reactions WHERE seq < ?", mark);
      this.sql.exec("UPDATE attachments SET state = 'deleting' WHERE attached_seq < ? AND state != 'deleting'", mark);
      this.sql.exec("UPDATE channel SET min_seq = ? WHERE id = 1", mark);
      this.min = mark;
      count("retention.expired", n);
    }
    const next = rows[n];
    this.wanted = next === undefined ? undefined : next.hlc_ms <= cutoff ? now : next.hlc_ms + ttl;
    return { deleted: n, minSeq: this.min, nextAt: this.wanted };
  }
}

/** Appended to CHANNEL_MIGRATIONS (schema.ts). */
export const RETENTION_MIGRATION = `
  -- Retention (docs/decisions/019). channel.retention_ms now means: the channel's own message
  -- lifetime, 0 = none chosen, the server's DEFAULT_RETENTION_MS applies (unset: kept for ever).
  -- min_seq is the low-water mark: every seq below it has expired and is gone.
  ALTER TABLE channel ADD COLUMN min_seq INTEGER NOT NULL DEFAULT 1;
  -- Expiry marks the uploads of expired messages for the blob sweep by seq.
  CREATE INDEX attachments_attached ON attachments (attached_seq) WHERE attached_seq IS NOT NULL;
`;
