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
type WatcherRow = { user_id: string; epoch: number; active: number; at_relay: number };

export class Watchers {
  /** Active watchers the channel delivers to itself (not yet, or never, at a relay). */
  private readonly direct = new Set<string>();
  private activeCount = 0;

  constructor(private readonly sql: SqlStorage) {}

  /** Reads the active watchers; called on every wake. */
  load(): void {
    this.direct.clear();
    for (const r of this.sql.exec<{ user_id: string }>("SELECT user_id FROM watchers WHERE active = 1 AND at_relay = 0")) this.direct.add(r.user_id);
    this.activeCount = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM watchers WHERE active = 1").one().n;
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
    if (atRelay) this.direct.delete(userId); else this.direct.add(userId);
    return true;
  }

  /** Stops watching as of `epoch` (the user went offline, or had no socket); false when stale. */
  unwatch(userId: string, epoch: number): boolean {
    const row = this.row(userId);
    if (!row || epoch < row.epoch) return false;
    this.sql.exec("UPDATE watchers SET epoch = ?, active = 0, at_relay = 0 WHERE user_id = ?", epoch, userId);
    if (row.active === 1) this.activeCount--;
    this.direct.delete(userId);
    return row.active === 1;
  }

  /** The user is no longer a member: whatever the epoch, they stop watching. Returns whether they were. */
  remove(userId: string): boolean {
    const row = this.row(userId);
    if (!row || row.active !== 1) return false;
    this.sql.exec("UPDATE watchers SET active = 0, at_relay = 0 WHERE user_id = ?", userId);
    this.activeCount--;
    this.direct.delete(userId);
    return true;
  }

  /** The watcher's relay shard confirmed it (as of `epoch`): the relay delivers to it from now on. */
  atRelay(userId: string, epoch: number): void {
    const changed = this.sql.exec("UPDATE watchers SET at_relay = 1 WHERE user_id = ? AND epoch = ? AND active = 1", userId, epoch).rowsWritten;
    if (changed > 0) this.direct.delete(userId);
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
