/**
 * Erasure of one member from a channel (docs/decisions/020): the content of their messages is
 * tombstoned in bounded batches (the log keeps seq, sender id and time, so order, unread counts
 * and RESUME stay exact), the files they uploaded here are deleted from R2, and their member row
 * goes. Nothing else in a channel names a person: members, notices and reactions hold ids only,
 * and clients render an id without a profile as "Deleted account".
 *
 * Every call is idempotent: a batch tombstones only rows not yet tombstoned, and the membership
 * step finds nothing to do once it ran. The caller (the user's erasure job) calls again until
 * `done`.
 */
import type { Attachments } from "./attachments.js";
import type { Membership } from "./membership.js";
import type { Watchers } from "./watchers.js";

export interface ErasureProgress {
  /** True once every message is tombstoned, every upload deleted and the membership removed. */
  done: boolean;
  /** Messages tombstoned by this call. */
  tombstoned: number;
  /** Uploaded files deleted from R2 by this call. */
  attachments: number;
}

export interface ErasureDeps {
  sql: SqlStorage;
  attachments: Attachments;
  members: Membership;
  watchers: Watchers;
  /** Appends the "account_deleted" notice that tells the other members' clients to blank what they cached. */
  appendNotice(userId: string): void;
  /** Watchers left in a relay tier: the fan-out pump tells their shards (ChannelObject.tellRelays). */
  tellRelays(): void;
  /** Whether the user's relay shard, if any, forgot them within `ms` (fanout.ts `leaveTold`). */
  leaveTold(userId: string, ms: number): Promise<boolean>;
}

/** How long one erasure step waits for the erased user's relay shard to forget them (else: not done yet). */
export const ERASURE_RELAY_WAIT_MS = 10_000;

/** At most this many messages are tombstoned per call, whatever the caller asks. */
export const MAX_ERASURE_BATCH = 500;

/**
 * One bounded piece of `userId`'s erasure in this channel. The tombstones of a batch are written
 * in one synchronous turn; the blob deletions that follow await R2 and may be retried.
 */
export async function eraseMember(deps: ErasureDeps, userId: string, limit: number): Promise<ErasureProgress> {
  const { sql } = deps;
  const n = Math.max(1, Math.min(MAX_ERASURE_BATCH, Math.floor(limit) || 1));
  const seqs = sql.exec<{ seq: number }>(
    "SELECT seq FROM messages WHERE sender_user_id = ? AND deleted = 0 AND kind NOT IN ('system', 'update') ORDER BY seq LIMIT ?", userId, n,
  ).toArray().map((r) => r.seq);
  for (let i = 0; i < seqs.length; i += 90) {
    const chunk = seqs.slice(i, i + 90);
    const marks = chunk.map(() => "?").join(",");
    // The same tombstone as a delete for everyone (message-changes.ts), plus the device id, which
    // is a name the user chose.
    sql.exec(`UPDATE messages SET deleted = 1, content = ?, reactions = '[]', sender_device_id = '' WHERE seq IN (${marks})`, new ArrayBuffer(0), ...chunk);
    sql.exec(`DELETE FROM reactions WHERE seq IN (${marks})`, ...chunk);
  }
  // Their uploads, sent or not: marked now (durable with the tombstones), deleted below.
  sql.exec("UPDATE attachments SET state = 'deleting' WHERE uploader_user_id = ? AND state != 'deleting'", userId);
  if (seqs.length === n) return { done: false, tombstoned: seqs.length, attachments: 0 };

  // Notices and change records they wrote keep their ids only.
  sql.exec("UPDATE messages SET sender_device_id = '' WHERE sender_user_id = ? AND sender_device_id != ''", userId);
  const deleting = () => sql.exec<{ n: number }>("SELECT count(*) AS n FROM attachments WHERE uploader_user_id = ? AND state = 'deleting'", userId).one().n;
  let attachments = 0;
  for (let before = deleting(); before > 0;) {
    await deps.attachments.sweep();
    const left = deleting();
    attachments += before - left;
    // R2 refused them all: the job calls again later rather than spinning here.
    if (left >= before) return { done: false, tombstoned: seqs.length, attachments };
    before = left;
  }
  removeMember(deps, userId);
  // Done only once no relay shard holds an entry for them: else the job calls again.
  if (!(await deps.leaveTold(userId, ERASURE_RELAY_WAIT_MS))) return { done: false, tombstoned: seqs.length, attachments };
  return { done: true, tombstoned: seqs.length, attachments };
}

/**
 * The erased member goes: removed (ownership handed over, watcher dropped, "account_deleted"
 * appended) if still a member, then every row naming them. False if they were not in the table.
 */
function removeMember(deps: ErasureDeps, userId: string): boolean {
  const { sql } = deps;
  const row = sql.exec<{ left_at: number | null }>("SELECT left_at FROM members WHERE user_id = ?", userId).toArray()[0];
  if (!row) return false;
  if (row.left_at === null) {
    deps.members.remove(userId, Date.now());
    deps.watchers.remove(userId);
    deps.appendNotice(userId);
  }
  // Their relay shard, if any, deletes its rows naming them (told by the pump, below).
  deps.watchers.forget(userId);
  // No notice to their UserObject (it is being wiped), no trace of them in the tables.
  sql.exec("DELETE FROM members WHERE user_id = ?", userId);
  sql.exec("DELETE FROM watchers WHERE user_id = ?", userId);
  sql.exec("DELETE FROM delivery_retry WHERE target = ?", userId);
  deps.members.load();
  deps.watchers.load();
  deps.tellRelays();
  return true;
}
