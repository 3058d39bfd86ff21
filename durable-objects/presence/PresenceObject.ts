/**
 * PresenceObject: one presence shard (DESIGN.md). Users are spread over PRESENCE_SHARDS shards
 * per jurisdiction by a hash of their id (`presenceStub()` in shared/routing.ts). A shard
 * keeps each of its users' status and last_seen, and who watches them, and pushes deltas to the
 * watchers' UserObjects.
 *
 * What subscribers are told is a debounced view of what the UserObjects report:
 * - online and away are reports with a TTL: a user whose UserObject stops refreshing them (it died
 *   without saying goodbye) goes offline from the alarm, last seen at their last report;
 * - offline waits out a grace period, so a flapping connection is never seen leaving;
 * - hidden (presence sharing turned off) reads as offline, last seen 0, at once, until the user is
 *   reported online or away again.
 * `published_status` is what subscribers were last told; a delta goes out only when the view
 * changes, and watch()/lookup() answer with that same view, so pulls and pushes agree.
 *
 * Presence is ephemeral: deltas are best effort (a failed call is logged and dropped), and a
 * subscriber that missed one is corrected by its next watch(), which returns current states.
 *
 * Bounded (issue 8): a user's subscribers get at most one delta per PRESENCE_MIN_INTERVAL_MS, the
 * latest state winning (a client flipping online/away 500 times fans out a handful of deltas, not
 * 500); each delta call has a deadline, so one slow subscriber delays nobody else; rows of users
 * offline longer than PRESENCE_RETENTION_MS are deleted; the UserObject stub cache is an LRU.
 */
import { DurableObject } from "cloudflare:workers";
import { DEADLINES, eachLimited, withDeadline } from "../../shared/deadline.js";
import { isUserId, parseId } from "../../shared/ids.js";
import { misplacement, Placement, refuseWhenMisplaced } from "../placement.js";
import { log } from "../../shared/log.js";
import { LruMap } from "../../shared/lru.js";
import { count } from "../../shared/metrics.js";
import { userStub } from "../../shared/routing.js";
import { migrate } from "../migrate.js";
import { PRESENCE_MIGRATIONS } from "./schema.js";
import { presenceTimingsFromEnv, type PresenceTimings } from "./settings.js";
import type { PresenceState } from "../../protocol/types.js";
import type { UserObject } from "../user/UserObject.js";
import { observe } from "../../shared/observability.js";

/** A user's status as their UserObject aggregates it over their devices. */
export type ReportedStatus = "online" | "away" | "offline" | "hidden";

/** Most user ids one watch() or lookup() considers; the rest of a longer list is ignored. */
export const MAX_PRESENCE_TARGETS = 1000;
/** Most live subscribers per user (DESIGN.md: above that, presence is pulled on demand). */
export const MAX_PRESENCE_SUBSCRIBERS = 1000;
/** Concurrent UserObject calls while publishing. */
const PUBLISH_CONCURRENCY = 32;
/** UserObject stubs kept for reuse; a shard talks to far more users than it should remember. */
const STUB_CACHE_MAX = 1000;
/** User ids per `IN (...)` list: SQL statements stay under 100 bound parameters. */
const IN_CHUNK = 90;

type PresenceRow = {
  user_id: string;
  status: ReportedStatus;
  last_seen: number;
  expires_at: number | null;
  offline_since: number | null;
  published_status: ReportedStatus;
};

const REPORTED: ReadonlySet<unknown> = new Set<ReportedStatus>(["online", "away", "offline", "hidden"]);

export class PresenceObject extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly timings: PresenceTimings;
  /** The alarm as last set by this object; null when none is pending. */
  private alarmAt: number | null = null;
  /** Users whose published view changed and whose subscribers have not been told yet. */
  private readonly changed = new Set<string>();
  private publishing = false;
  private readonly stubs = new LruMap<string, DurableObjectStub<UserObject>>(STUB_CACHE_MAX);

  /** Where this shard was reached: it holds only users of that jurisdiction. */
  private readonly placement: Placement;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    observe(env);
    this.sql = ctx.storage.sql;
    this.timings = presenceTimingsFromEnv(env);
    this.placement = new Placement(ctx, env, "presence");
    void ctx.blockConcurrencyWhile(async () => {
      migrate(this.sql, PRESENCE_MIGRATIONS);
      this.verifyPlacement();
      if (misplacement(this)) return;
      this.alarmAt = await ctx.storage.getAlarm();
      // Deadlines live in the rows: whatever a restart interrupted, the alarm picks up.
      const next = this.nextDeadline();
      if (next !== null) this.arm(next);
    });
  }

  /* ------------------------------------ RPC surface ------------------------------------ */

  /**
   * The user's aggregated status as its UserObject sees it: any device online → online; every
   * connected device away → away; no devices → offline; hidden = the user turned presence sharing
   * off. Called on every change, and as a keep-alive at least every TTL/3 while the user has
   * devices: an online/away report not refreshed within PRESENCE_TTL_MS (the lease, 10 minutes)
   * expires to offline. UserObjects report offline themselves on every close path they see
   * (docs/decisions/028); the lease is for objects that stopped without a word.
   *
   * A change to online, away or hidden is published at once. offline is published only if the
   * user is still offline PRESENCE_OFFLINE_GRACE_MS after `at` (from the alarm); coming back within
   * the grace publishes nothing. Hidden lasts until a later online or away report: a hidden user's
   * offline report changes nothing, so when their last device goes their last_seen stays private.
   *
   * `at` is the UserObject's clock (a future `at` counts as now). A report older than the last one
   * kept arrived late and is ignored; junk is ignored, never thrown on.
   */
  report(userId: string, status: ReportedStatus, at: number): void {
    if (!isUserId(userId) || !REPORTED.has(status) || !validTime(at)) return;
    this.requireHere([userId]);
    const t = Math.min(Math.floor(at), Date.now());
    const row = this.row(userId);
    if (row && t < row.last_seen) return;
    const published = row?.published_status ?? "offline";
    switch (status) {
      case "online":
      case "away": {
        const expiresAt = t + this.timings.ttlMs;
        this.write(userId, status, t, expiresAt, null, status);
        this.arm(expiresAt);
        if (published !== status) this.announce(userId);
        return;
      }
      case "offline": {
        // Already offline (or leaving): they left at the first report, not at this one. Hidden
        // users stay hidden: publishing offline would reveal when they left.
        if (row?.status === "offline" || row?.status === "hidden") return;
        this.write(userId, "offline", t, null, t, published);
        this.arm(t + this.timings.offlineGraceMs);
        return;
      }
      case "hidden": {
        if (row?.status === "hidden") return;
        this.write(userId, "hidden", t, null, null, "hidden");
        if (published !== "hidden") this.announce(userId);
        return;
      }
    }
  }

  /**
   * `subscriberId` watches `targets` (the caller passes only ids that hash to this shard) until
   * now + 2 × PRESENCE_TTL_MS; watching again extends it. Returns the targets' current states, in
   * the order given, without duplicates or junk. A target that has MAX_PRESENCE_SUBSCRIBERS live
   * subscribers already still gets its state returned but no new subscriber: the caller pulls it.
   * Nobody subscribes to their own presence.
   */
  watch(subscriberId: string, targets: string[]): PresenceState[] {
    if (!isUserId(subscriberId)) return [];
    const ids = cleanIds(targets);
    // Subscribers may live anywhere (only their id is kept); the watched users live here.
    this.requireHere(ids);
    const now = Date.now();
    const expiresAt = now + 2 * this.timings.ttlMs;
    for (const target of ids) {
      if (target === subscriberId) continue;
      // The cap counts the others: an existing subscriber may always renew.
      this.sql.exec(
        `INSERT INTO subscriptions (target_user_id, subscriber_user_id, expires_at)
         SELECT ?, ?, ? WHERE (
           SELECT count(*) FROM subscriptions WHERE target_user_id = ? AND subscriber_user_id != ? AND expires_at > ?
         ) < ?
         ON CONFLICT (target_user_id, subscriber_user_id) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)`,
        target, subscriberId, expiresAt, target, subscriberId, now, MAX_PRESENCE_SUBSCRIBERS,
      );
    }
    if (ids.some((id) => id !== subscriberId)) this.arm(expiresAt);
    return this.states(ids);
  }

  /** Drops every subscription `subscriberId` holds in this shard (its last device went away). */
  unwatch(subscriberId: string): void {
    if (!isUserId(subscriberId)) return;
    this.sql.exec("DELETE FROM subscriptions WHERE subscriber_user_id = ?", subscriberId);
  }

  /**
   * Erasure (docs/decisions/020): the user's row and every subscription to or from them in this
   * shard. Their contacts see them offline, never seen; nothing is published.
   */
  forget(userId: string): void {
    if (!isUserId(userId)) return;
    this.sql.exec("DELETE FROM presence WHERE user_id = ?", userId);
    this.sql.exec("DELETE FROM subscriptions WHERE target_user_id = ? OR subscriber_user_id = ?", userId, userId);
  }

  /**
   * Current states without subscribing (pull on demand: large groups, REST), in the order given,
   * without duplicates or junk. A user this shard never heard of is offline, last seen 0.
   */
  lookup(userIds: string[]): PresenceState[] {
    const ids = cleanIds(userIds);
    this.requireHere(ids);
    return this.states(ids);
  }

  /**
   * On wake: the jurisdiction this shard recorded when first reached, against where it was reached
   * now. A shard that cannot tell where it is (an id without a name) records nothing.
   */
  private verifyPlacement(): void {
    const row = this.sql.exec<{ jurisdiction: string }>("SELECT jurisdiction FROM placement WHERE id = 1").toArray()[0];
    if (row) {
      this.placement.verify(this, row.jurisdiction, "shard");
    } else if (this.placement.reached !== undefined) {
      this.sql.exec("INSERT INTO placement (id, jurisdiction) VALUES (1, ?)", this.placement.reached);
    }
  }

  /** Users this shard is asked to hold must belong to its jurisdiction (shared/routing.ts puts them there). */
  private requireHere(userIds: string[]): void {
    for (const id of userIds) this.placement.require(parseId(id)?.jurisdiction ?? "", id);
  }

  /**
   * The one alarm: expires stale online/away reports, publishes offline for those past their
   * grace, prunes expired subscriptions, then re-arms for the earliest deadline left in the rows.
   * Synchronous: every change is one turn; the deltas go out after, off this path.
   */
  override async alarm(): Promise<void> {
    this.alarmAt = null;
    const now = Date.now();
    // Zombies left at their last report; their offline goes through the grace like any other
    // (already over when the grace is shorter than the TTL).
    this.sql.exec(
      "UPDATE presence SET status = 'offline', expires_at = NULL, offline_since = last_seen WHERE expires_at IS NOT NULL AND expires_at <= ?",
      now,
    );
    const graceOver = now - this.timings.offlineGraceMs;
    this.sql.exec(
      "UPDATE presence SET offline_since = NULL WHERE offline_since IS NOT NULL AND offline_since <= ? AND published_status = 'offline'",
      graceOver,
    );
    const left = this.sql.exec<{ user_id: string }>(
      "UPDATE presence SET offline_since = NULL, published_status = 'offline' WHERE offline_since IS NOT NULL AND offline_since <= ? RETURNING user_id",
      graceOver,
    ).toArray();
    for (const { user_id } of left) this.announce(user_id);
    // Changes held back by the damping are due: their subscribers get the state as it is now.
    const due = this.sql.exec<{ user_id: string }>(
      "UPDATE presence SET push_after = NULL, pushed_at = ? WHERE push_after IS NOT NULL AND push_after <= ? RETURNING user_id",
      now, now,
    ).toArray();
    for (const { user_id } of due) this.publish(user_id);
    this.sql.exec("DELETE FROM subscriptions WHERE expires_at <= ?", now);
    // Users gone for longer than the retention are forgotten (they read as offline, never seen).
    const forgotten = this.sql.exec(
      "DELETE FROM presence WHERE expires_at IS NULL AND offline_since IS NULL AND push_after IS NULL AND last_seen <= ?",
      now - this.timings.retentionMs,
    ).rowsWritten;
    if (forgotten > 0) count("presence.rows_expired", forgotten);
    // The alarm that fired is spent (the runtime deletes it unless it is set again here).
    const next = this.nextDeadline();
    if (next !== null) this.arm(next);
  }

  /* ------------------------------------ state ------------------------------------ */

  private row(userId: string): PresenceRow | undefined {
    return this.sql.exec<PresenceRow>(
      "SELECT user_id, status, last_seen, expires_at, offline_since, published_status FROM presence WHERE user_id = ?",
      userId,
    ).toArray()[0];
  }

  private write(userId: string, status: ReportedStatus, lastSeen: number, expiresAt: number | null, offlineSince: number | null, published: ReportedStatus): void {
    this.sql.exec(
      `INSERT INTO presence (user_id, status, last_seen, expires_at, offline_since, published_status) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (user_id) DO UPDATE SET status = excluded.status, last_seen = excluded.last_seen, expires_at = excluded.expires_at,
         offline_since = excluded.offline_since, published_status = excluded.published_status`,
      userId, status, lastSeen, expiresAt, offlineSince, published,
    );
  }

  /** The published view of each id, in order. */
  private states(ids: string[]): PresenceState[] {
    const rows = new Map<string, PresenceRow>();
    for (let i = 0; i < ids.length; i += IN_CHUNK) {
      const chunk = ids.slice(i, i + IN_CHUNK);
      for (const r of this.sql.exec<PresenceRow>(
        `SELECT user_id, status, last_seen, expires_at, offline_since, published_status FROM presence WHERE user_id IN (${chunk.map(() => "?").join(",")})`,
        ...chunk,
      )) rows.set(r.user_id, r);
    }
    return ids.map((id) => publishedState(id, rows.get(id)));
  }

  /* ------------------------------------ alarm ------------------------------------ */

  /** The earliest deadline in storage: a TTL, the end of a grace, or a subscription's expiry. */
  private nextDeadline(): number | null {
    return this.sql.exec<{ next: number | null }>(
      `SELECT min(d) AS next FROM (
         SELECT min(expires_at) AS d FROM presence WHERE expires_at IS NOT NULL
         UNION ALL SELECT min(offline_since) + ? FROM presence WHERE offline_since IS NOT NULL
         UNION ALL SELECT min(expires_at) FROM subscriptions
         UNION ALL SELECT min(push_after) FROM presence WHERE push_after IS NOT NULL
         UNION ALL SELECT min(last_seen) + ? FROM presence WHERE expires_at IS NULL AND offline_since IS NULL
       )`,
      this.timings.offlineGraceMs, this.timings.retentionMs,
    ).one().next;
  }

  /** Makes sure the alarm fires no later than `deadline`. */
  private arm(deadline: number): void {
    if (this.alarmAt !== null && this.alarmAt <= deadline) return;
    this.alarmAt = deadline;
    void this.ctx.storage.setAlarm(deadline);
  }

  /* ------------------------------------ publishing ------------------------------------ */

  /**
   * `userId`'s published view changed: tell their subscribers now, or, if they were told less than
   * PRESENCE_MIN_INTERVAL_MS ago, once that interval is over (from the alarm, with the view as it
   * is then: the latest state wins, changes in between are never sent).
   */
  private announce(userId: string): void {
    const now = Date.now();
    const interval = this.timings.minIntervalMs;
    const r = this.sql.exec<{ pushed_at: number | null; push_after: number | null }>(
      "SELECT pushed_at, push_after FROM presence WHERE user_id = ?", userId,
    ).toArray()[0];
    if (interval > 0 && r?.pushed_at != null && now - r.pushed_at < interval) {
      if (r.push_after === null) {
        const at = r.pushed_at + interval;
        this.sql.exec("UPDATE presence SET push_after = ? WHERE user_id = ?", at, userId);
        this.arm(at);
      }
      count("presence.damped");
      return;
    }
    this.sql.exec("UPDATE presence SET pushed_at = ?, push_after = NULL WHERE user_id = ?", now, userId);
    this.publish(userId);
  }

  /**
   * Queues `userId`'s published view for its subscribers. One publisher runs at a time, in rounds:
   * changes made while a round is in flight go out together in the next one, each user once with
   * their latest view. So a subscriber never receives an older state after a newer one.
   */
  private publish(userId: string): void {
    this.changed.add(userId);
    if (this.publishing) return;
    this.publishing = true;
    this.ctx.waitUntil(this.runPublisher());
  }

  /**
   * Operator drain: each connected user's object sends GOAWAY to its sockets (user/drain.ts).
   * Returns how many users were asked, how many sockets they had, and how many objects failed.
   */
  async drain(windowMs: number): Promise<{ users: number; sockets: number; failed: number }> {
    const ids = this.sql.exec<{ user_id: string }>(
      "SELECT user_id FROM presence WHERE (status IN ('online', 'away') AND expires_at > ?) OR status = 'hidden'", Date.now(),
    ).toArray().map((r) => r.user_id);
    let sockets = 0, failed = 0;
    await eachLimited(ids, PUBLISH_CONCURRENCY, async (id) => {
      try {
        sockets += await withDeadline(this.userStub(id).drain(windowMs), DEADLINES.presenceDelta, "user.drain");
      } catch (err) {
        failed++;
        this.stubs.delete(id);
        log("warn", "drain.user_failed", { object: "presence", user_id: id }, err);
      }
    });
    return { users: ids.length, sockets, failed };
  }

  private async runPublisher(): Promise<void> {
    try {
      while (this.changed.size > 0) {
        const users = [...this.changed];
        this.changed.clear();
        await this.publishRound(users);
      }
    } catch (err) {
      console.warn("presence publishing stopped; watchers catch up on their next watch()", err);
      this.changed.clear();
    } finally {
      this.publishing = false;
    }
  }

  private async publishRound(userIds: string[]): Promise<void> {
    const now = Date.now();
    const calls: { to: string; state: PresenceState }[] = [];
    for (const userId of userIds) {
      const state = publishedState(userId, this.row(userId));
      for (const { subscriber_user_id: to } of this.sql.exec<{ subscriber_user_id: string }>(
        "SELECT subscriber_user_id FROM subscriptions WHERE target_user_id = ? AND expires_at > ? AND subscriber_user_id != ?",
        userId, now, userId,
      )) calls.push({ to, state });
    }
    let next = 0;
    const worker = async () => {
      while (next < calls.length) {
        const { to, state } = calls[next++]!;
        try {
          count("presence.delta");
          // A subscriber that does not answer in time is dropped for this round: the others are
          // not kept waiting, and its next watch() returns the current state anyway.
          await withDeadline(this.userStub(to).presence(state), DEADLINES.presenceDelta, "presence.delta");
        } catch (err) {
          this.stubs.delete(to); // a failed call can break the stub: take a fresh one next time
          log("warn", "presence.delta_dropped", { object: "presence", user_id: state.user_id, to }, err);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PUBLISH_CONCURRENCY, calls.length) }, worker));
  }

  private userStub(userId: string): DurableObjectStub<UserObject> {
    return this.stubs.getOrSet(userId, () => userStub(this.env, userId));
  }
}

/** What subscribers see: the last published status; hidden and unknown users are offline, last seen 0. */
function publishedState(userId: string, row: PresenceRow | undefined): PresenceState {
  if (!row || row.published_status === "hidden") return { user_id: userId, status: "offline", last_seen: 0 };
  return { user_id: userId, status: row.published_status, last_seen: row.last_seen };
}

/** Valid user ids from an untrusted list, first occurrence kept, at most MAX_PRESENCE_TARGETS. */
function cleanIds(input: unknown): string[] {
  if (!Array.isArray(input)) return [];
  const out = new Set<string>();
  for (const id of input) {
    if (out.size >= MAX_PRESENCE_TARGETS) break;
    if (isUserId(id)) out.add(id);
  }
  return [...out];
}

function validTime(at: unknown): at is number {
  return typeof at === "number" && Number.isFinite(at) && at > 0;
}

// Every call into a shard found stored for another jurisdiction is refused (durable-objects/placement.ts).
refuseWhenMisplaced(PresenceObject);
