/**
 * A channel's watchers (docs/decisions/013): the members whose UserObject has a device connected
 * and asked for live delivery. Fan-out goes to watchers only, so a post costs O(online members).
 *
 * Every row keeps the epoch of the user's last watch or unwatch: a call with an older epoch than
 * the row's is stale (it was overtaken by a newer transition of that user) and changes nothing.
 * Rows of users who stopped watching stay (active = 0) to keep their epoch.
 *
 * In relay tiers a watcher is delivered through its relay shard once registered there
 * (`at_relay = 1`); until then the channel delivers to it directly, so a watcher is never
 * without a path while its registration is on the way.
 *
 * A watcher that stops watching in a relay tier (unwatch, removal, erasure) is queued in
 * `relay_leaves`, in the same turn, and the pump tells its shard once the rounds sent before the
 * leave went out (fanout.ts): the relay stops delivering to it and keeps no entry for it.
 */
import { relayShardOf } from "../../shared/routing.js";

type WatcherRow = { user_id: string; epoch: number; active: number; at_relay: number };

/** A watcher who stopped watching, to be told to its relay shard; `forget`: their account is erased. */
export interface RelayLeave {
  user_id: string;
  epoch: number;
  forget: boolean;
}

export class Watchers {
  /** Active watchers the channel delivers to itself (not yet, or never, at a relay). */
  private readonly direct = new Set<string>();
  private activeCount = 0;
  /** Relay shards of the channel (0: direct tier) and, per shard, its active watchers registered there. */
  private shards = 0;
  private perShard: number[] = [];
  /** The lowest after_seq of the leaves not yet told to relays (undefined: none). */
  private leavesFrom: number | undefined;

  constructor(private readonly sql: SqlStorage) {}

  /** Reads the active watchers; called on every wake and when the channel enters a relay tier. */
  load(shards = this.shards): void {
    this.shards = shards;
    this.perShard = new Array<number>(shards).fill(0);
    this.direct.clear();
    for (const r of this.sql.exec<{ user_id: string }>("SELECT user_id FROM watchers WHERE active = 1 AND at_relay = 0")) this.direct.add(r.user_id);
    if (shards > 0) {
      for (const r of this.sql.exec<{ user_id: string }>("SELECT user_id FROM watchers WHERE active = 1 AND at_relay = 1")) this.perShard[relayShardOf(r.user_id, shards)]!++;
    }
    this.activeCount = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM watchers WHERE active = 1").one().n;
    this.readLeavesFrom();
  }

  /** The channel's relay shards (0: direct tier). */
  get relayShards(): number {
    return this.shards;
  }

  /** Relay shards holding at least one active watcher: the channel sends each batch once to each. */
  shardsWithWatchers(): number[] {
    const out: number[] = [];
    this.perShard.forEach((n, shard) => { if (n > 0) out.push(shard); });
    return out;
  }

  /** Active watchers registered at `shard`. */
  atShard(shard: number): number {
    return this.perShard[shard] ?? 0;
  }

  isAtRelay(userId: string): boolean {
    const row = this.row(userId);
    return row?.active === 1 && row.at_relay === 1;
  }

  private leftRelay(row: WatcherRow | undefined): void {
    if (row?.active === 1 && row.at_relay === 1 && this.shards > 0) this.perShard[relayShardOf(row.user_id, this.shards)]!--;
  }

  /** Active watchers, all tiers. */
  get size(): number {
    return this.activeCount;
  }

  /** Watchers the channel delivers to itself. */
  directTargets(): ReadonlySet<string> {
    return this.direct;
  }

  isActive(userId: string): boolean {
    return this.row(userId)?.active === 1;
  }

  /**
   * Registers `userId` as of `epoch`; false when the call is stale. `viaRelay`: the channel is in
   * a relay tier, so the watcher is delivered directly only until `atRelay()` confirms it.
   */
  watch(userId: string, epoch: number, viaRelay: boolean): boolean {
    const row = this.row(userId);
    if (row && epoch < row.epoch) return false;
    const atRelay = viaRelay && row?.active === 1 && row.at_relay === 1 && row.epoch === epoch ? 1 : 0;
    this.sql.exec(
      `INSERT INTO watchers (user_id, epoch, active, at_relay) VALUES (?, ?, 1, ?)
       ON CONFLICT (user_id) DO UPDATE SET epoch = excluded.epoch, active = 1, at_relay = excluded.at_relay`,
      userId, epoch, atRelay,
    );
    if (row?.active !== 1) this.activeCount++;
    if (!atRelay) this.leftRelay(row);
    if (atRelay) this.direct.delete(userId); else this.direct.add(userId);
    return true;
  }

  /**
   * Stops watching as of `epoch` (the user went offline, or had no socket); false when stale.
   * `tellRelay: false` when the relay itself dropped the watcher (it needs no telling).
   */
  unwatch(userId: string, epoch: number, tellRelay = true): boolean {
    const row = this.row(userId);
    if (!row || epoch < row.epoch) return false;
    this.sql.exec("UPDATE watchers SET epoch = ?, active = 0, at_relay = 0 WHERE user_id = ?", epoch, userId);
    this.leftRelay(row);
    if (tellRelay && row.active === 1) this.leave(userId, epoch, false);
    if (row.active === 1) this.activeCount--;
    this.direct.delete(userId);
    return row.active === 1;
  }

  /** The user is no longer a member: whatever the epoch, they stop watching. Returns whether they were. */
  remove(userId: string): boolean {
    const row = this.row(userId);
    if (!row || row.active !== 1) return false;
    this.sql.exec("UPDATE watchers SET active = 0, at_relay = 0 WHERE user_id = ?", userId);
    this.leftRelay(row);
    this.activeCount--;
    this.direct.delete(userId);
    this.leave(userId, row.epoch, false);
    return true;
  }

  /**
   * The user's account is erased: their relay shard must forget them entirely (its row and retry
   * row), whether or not they were watching. Call before the watchers row is deleted.
   */
  forget(userId: string): void {
    const row = this.row(userId);
    if (row) this.leave(userId, row.epoch, true);
  }

  /**
   * Queues telling `userId`'s relay shard that they stopped watching as of `epoch` (relay tiers
   * only; a registration that was on its way is overtaken too, since the pump tells in order).
   */
  private leave(userId: string, epoch: number, forget: boolean): void {
    if (this.shards === 0) return;
    const afterSeq = this.sql.exec<{ last_seq: number }>("SELECT last_seq FROM channel WHERE id = 1").toArray()[0]?.last_seq ?? 0;
    this.sql.exec(
      `INSERT INTO relay_leaves (user_id, epoch, after_seq, forget) VALUES (?, ?, ?, ?)
       ON CONFLICT (user_id) DO UPDATE SET epoch = max(epoch, excluded.epoch), after_seq = excluded.after_seq, forget = max(forget, excluded.forget)`,
      userId, epoch, afterSeq, forget ? 1 : 0,
    );
    this.leavesFrom = Math.min(this.leavesFrom ?? afterSeq, afterSeq);
  }

  /** Some leave queued before the rounds up to `deliveredSeq` went out is still to be told. */
  hasLeavesDue(deliveredSeq: number): boolean {
    return this.leavesFrom !== undefined && this.leavesFrom <= deliveredSeq;
  }

  /** Up to `limit` leaves to tell relays now (queued before the rounds up to `deliveredSeq`). */
  leavesDue(deliveredSeq: number, limit: number): RelayLeave[] {
    return this.sql.exec<{ user_id: string; epoch: number; forget: number }>(
      "SELECT user_id, epoch, forget FROM relay_leaves WHERE after_seq <= ? LIMIT ?", deliveredSeq, limit,
    ).toArray().map((r) => ({ user_id: r.user_id, epoch: r.epoch, forget: r.forget === 1 }));
  }

  /** Relays confirmed these leaves; a newer leave of the same user queued meanwhile stays. */
  leavesTold(leaves: RelayLeave[]): void {
    for (const l of leaves) this.sql.exec("DELETE FROM relay_leaves WHERE user_id = ? AND epoch = ? AND forget = ?", l.user_id, l.epoch, l.forget ? 1 : 0);
    this.readLeavesFrom();
  }

  /** A leave of `userId` is still to be told to their relay shard. */
  leavePending(userId: string): boolean {
    return this.sql.exec("SELECT 1 FROM relay_leaves WHERE user_id = ?", userId).toArray().length > 0;
  }

  private readLeavesFrom(): void {
    this.leavesFrom = this.sql.exec<{ s: number | null }>("SELECT min(after_seq) AS s FROM relay_leaves").one().s ?? undefined;
  }

  /** The watcher's relay shard confirmed it (as of `epoch`): the relay delivers to it from now on. */
  atRelay(userId: string, epoch: number): boolean {
    if (this.shards === 0) return false;
    const changed = this.sql.exec("UPDATE watchers SET at_relay = 1 WHERE user_id = ? AND epoch = ? AND active = 1 AND at_relay = 0", userId, epoch).rowsWritten;
    if (changed === 0) return false;
    this.direct.delete(userId);
    this.perShard[relayShardOf(userId, this.shards)]!++;
    return true;
  }

  /** Active watchers not yet registered at their relay, with their epochs (a tier change re-registers them). */
  unregistered(limit: number): { user_id: string; epoch: number }[] {
    return this.sql.exec<{ user_id: string; epoch: number }>(
      "SELECT user_id, epoch FROM watchers WHERE active = 1 AND at_relay = 0 LIMIT ?", limit,
    ).toArray();
  }

  epochOf(userId: string): number | undefined {
    return this.row(userId)?.epoch;
  }

  private row(userId: string): WatcherRow | undefined {
    return this.sql.exec<WatcherRow>("SELECT user_id, epoch, active, at_relay FROM watchers WHERE user_id = ?", userId).toArray()[0];
  }
}
