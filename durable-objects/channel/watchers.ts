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
 */
import { relayShardOf } from "../../shared/routing.js";

type WatcherRow = { user_id: string; epoch: number; active: number; at_relay: number };

export class Watchers {
  /** Active watchers the channel delivers to itself (not yet, or never, at a relay). */
  private readonly direct = new Set<string>();
  private activeCount = 0;
  /** Relay shards of the channel (0: direct tier) and, per shard, its active watchers registered there. */
  private shards = 0;
  private perShard: number[] = [];

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

  /** Stops watching as of `epoch` (the user went offline, or had no socket); false when stale. */
  unwatch(userId: string, epoch: number): boolean {
    const row = this.row(userId);
    if (!row || epoch < row.epoch) return false;
    this.sql.exec("UPDATE watchers SET epoch = ?, active = 0, at_relay = 0 WHERE user_id = ?", epoch, userId);
    this.leftRelay(row);
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
    return true;
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
