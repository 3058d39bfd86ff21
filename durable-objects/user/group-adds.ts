/**
 * Who may add this user to groups (the `group_adds` setting): everyone, or only people the user
 * already shares a conversation with. "Shares a conversation" = a channel in this user's list
 * that they have not left, among the adder's channels (the caller passes the adder's list).
 */
import type { GroupAdds } from "../../protocol/types.js";

/**
 * The adder's channel ids go in as one JSON array, not one `?` each: the runtime keeps every
 * distinct SQL text an object runs compiled for the object's lifetime (up to 1 MiB of SQL), so a
 * list of n ids must not make a statement of its own for each n (docs/decisions/026).
 */
const SHARES_A_CHANNEL = "SELECT 1 FROM channels WHERE left = 0 AND channel_id IN (SELECT value FROM json_each(?)) LIMIT 1";

export function mayBeAddedBy(sql: SqlStorage, policy: GroupAdds | undefined, adderChannelIds: string[]): boolean {
  if ((policy ?? "everyone") === "everyone") return true;
  const ids = [...new Set(adderChannelIds.filter((id) => typeof id === "string"))];
  if (ids.length === 0) return false;
  return sql.exec(SHARES_A_CHANNEL, JSON.stringify(ids)).toArray().length > 0;
}

/**
 * Keeps the account row's copy of the policy (docs/decisions/024) in step with this object, the
 * authority. The Worker asks only people whose row does not say "everyone", so the one state that
 * must never exist is "row: everyone, object: contacts". Every change goes through one queue and
 * writes in the order that keeps that true at every step, a crash between included:
 * - to "contacts": the row first, then the object (a failed row write changes nothing);
 * - to "everyone": the object first, then the row (a failed row write leaves "contacts" there,
 *   which only costs a call: the Worker asks, the object answers "everyone").
 * A row that disagrees (no value yet, or a write that failed) is rewritten when the Worker says so.
 */
export class GroupAddsRow {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: {
    /** Writes the policy into the account row; throws when D1 fails. */
    write: (policy: GroupAdds) => Promise<void>;
    current: () => GroupAdds;
    log: (event: string, err: unknown) => void;
  }) {}

  /**
   * Applies `save` (the settings change) around the row write for `next`: resolves to what `save`
   * returned, or to null when the row could not be marked "contacts" (nothing saved then).
   */
  change<T>(next: GroupAdds, save: () => T): Promise<T | null> {
    return this.serial(async () => {
      if (next === "contacts") {
        try {
          await this.deps.write("contacts");
        } catch (err) {
          this.deps.log("group_adds.row_write_failed", err);
          return null;
        }
        return save();
      }
      const saved = save();
      await this.writeCurrent();
      return saved;
    });
  }

  /** The row said `listed`: rewrite it with what applies here when they differ. */
  reconcile(listed: GroupAdds | null): void {
    if (listed === this.deps.current()) return;
    void this.serial(() => this.writeCurrent());
  }

  private async writeCurrent(): Promise<void> {
    try {
      await this.deps.write(this.deps.current());
    } catch (err) {
      // The row keeps the old value: "contacts" there at worst, so the Worker keeps asking here.
      this.deps.log("group_adds.row_write_failed", err);
    }
  }

  private serial<T>(step: () => Promise<T>): Promise<T> {
    const run = this.queue.then(step);
    this.queue = run.catch(() => {});
    return run;
  }
}
