/**
 * Who belongs to a channel and with which role, in SQL: no object holds its member list in
 * memory (only a bounded few ids between changes), and none returns it whole (reads are paged). Those who left keep their row (`left_at`
 * set), so a former member is told so. Rows hold ids, never profiles (names come from the
 * account directory, so renames show everywhere and erasure has one place to go).
 *
 * Each change (joined, left, removed) takes the channel's next membership version and marks the
 * member's row `notified = 0`: the notice pump (notices.ts) tells their UserObject.
 */
import { fail, type Failure } from "../../shared/errors.js";
import type { ChannelType, Member, MemberProfile, MemberRole } from "./types.js";

type MemberRow = { user_id: string; role: MemberRole; joined_at: number; joined_seq: number; last_read_seq: number };

/** One page of members, in the order they first joined. */
export interface MemberPage {
  members: Member[];
  /** Pass as `cursor` for the next page; "" = the last page. */
  next_cursor: string;
}

export const DEFAULT_MEMBER_PAGE = 100;
export const MAX_MEMBER_PAGE = 500;

/** What a broadcast channel's subscriber hears when they try to post or react. */
export const postersOnly = () => fail("forbidden", "Only the channel's owner and admins can post in a broadcast channel.");

/** Current members remembered as such between membership changes (every SEND asks). */
const KNOWN_MEMBERS_MAX = 1024;

export class Membership {
  private count = 0;
  private version = 0;
  /**
   * What every message asks and no message changes, as of membership version `at`: who is a
   * current member (a bounded few), and the first ids that small channels' summaries carry.
   */
  private remembered: { at: number; members: Set<string>; first?: { limit: number; ids: string[] } } = { at: -1, members: new Set() };

  constructor(private readonly sql: SqlStorage) {}

  /** Reads the counters from the channel row; called on every wake and after rows were deleted. */
  load(): void {
    const row = this.sql.exec<{ member_count: number; membership_version: number }>("SELECT member_count, membership_version FROM channel WHERE id = 1").toArray()[0];
    this.count = row?.member_count ?? 0;
    this.version = row?.membership_version ?? 0;
    this.remembered = { at: -1, members: new Set() };
  }

  /** What is remembered, as of the current membership version (every change starts afresh). */
  private memory(): Membership["remembered"] {
    if (this.remembered.at !== this.version) this.remembered = { at: this.version, members: new Set() };
    return this.remembered;
  }

  get size(): number {
    return this.count;
  }

  has(userId: string): boolean {
    return this.sql.exec("SELECT 1 FROM members WHERE user_id = ? AND left_at IS NULL", userId).toArray().length > 0;
  }

  /** A current member. */
  get(userId: string): (Member & { joined_seq: number }) | undefined {
    return this.sql.exec<MemberRow>(
      "SELECT user_id, role, joined_at, joined_seq, last_read_seq FROM members WHERE user_id = ? AND left_at IS NULL", userId,
    ).toArray()[0];
  }

  /** A former member's row (left_at set), for telling them they left. */
  former(userId: string): { joined_seq: number; last_read_seq: number; version: number } | undefined {
    return this.sql.exec<{ joined_seq: number; last_read_seq: number; version: number }>(
      "SELECT joined_seq, last_read_seq, version FROM members WHERE user_id = ? AND left_at IS NOT NULL", userId,
    ).toArray()[0];
  }

  /** The version of the member's last membership change (0 for rows from before notices). */
  versionOf(userId: string): number {
    return this.sql.exec<{ version: number }>("SELECT version FROM members WHERE user_id = ?", userId).toArray()[0]?.version ?? 0;
  }

  /**
   * Someone who never belonged to the channel is told it does not exist: DM ids can be computed
   * from two user ids, and "not a member" would confirm that two other people talk.
   */
  require(userId: string): Failure | undefined {
    const known = this.memory().members;
    if (known.has(userId)) return undefined;
    const row = this.sql.exec<{ left_at: number | null }>("SELECT left_at FROM members WHERE user_id = ?", userId).toArray()[0];
    if (row && row.left_at === null) {
      if (known.size >= KNOWN_MEMBERS_MAX) known.clear();
      known.add(userId);
      return undefined;
    }
    return row ? fail("not_member", "You are no longer a member of this channel.") : fail("not_found", "No such channel.");
  }

  isAdmin(userId: string): boolean {
    const role = this.get(userId)?.role;
    return role === "owner" || role === "admin";
  }

  /** In a broadcast channel only the owner and admins post (and react); everyone else reads. */
  requirePoster(type: ChannelType, userId: string): Failure | undefined {
    if (type !== "broadcast" || this.isAdmin(userId)) return undefined;
    return postersOnly();
  }

  /** The first `limit` member ids, in joined order (small channels list them all). */
  firstIds(limit: number): string[] {
    const memory = this.memory();
    if (memory.first?.limit !== limit) {
      const ids = this.sql.exec<{ user_id: string }>("SELECT user_id FROM members WHERE left_at IS NULL ORDER BY rowid LIMIT ?", limit)
        .toArray().map((r) => r.user_id);
      memory.first = { limit, ids };
    }
    return [...memory.first.ids];
  }

  /** A page of current members after `cursor`, in the order they first joined. */
  page(cursor: string, limit: number): MemberPage {
    const after = /^\d{1,15}$/.test(cursor) ? Number(cursor) : 0;
    const n = Math.min(Math.max(1, Math.floor(limit) || DEFAULT_MEMBER_PAGE), MAX_MEMBER_PAGE);
    const rows = this.sql.exec<MemberRow & { rowid: number }>(
      // Read cursors as their owners share them (read receipts are opt-in).
      "SELECT rowid, user_id, role, joined_at, shared_read_seq AS last_read_seq FROM members WHERE left_at IS NULL AND rowid > ? ORDER BY rowid LIMIT ?", after, n + 1,
    ).toArray();
    const more = rows.length > n;
    const members = rows.slice(0, n).map(({ user_id, role, joined_at, last_read_seq }) => ({ user_id, role, joined_at, last_read_seq }));
    return { members, next_cursor: more ? String(rows[n - 1]!.rowid) : "" };
  }

  /**
   * Adds `userId` (or brings a former member back) as of `lastSeq`: their read cursor starts
   * there, so what was said before they joined is not unread for them. Returns false if they
   * are a member already.
   */
  add(userId: string, role: MemberRole, now: number, lastSeq: number): boolean {
    if (this.has(userId)) return false;
    this.upsert(userId, role, now, lastSeq, this.nextVersion());
    this.setCount(this.count + 1);
    return true;
  }

  /**
   * Adds many users in one turn (a bulk join): one membership version for the whole batch, one
   * count update. Each new row waits for the notice pump (`notified = 0`), which pages through
   * them off the caller's path. Returns the ids added and those who were members already.
   */
  addMany(userIds: readonly string[], role: MemberRole, now: number, lastSeq: number): { added: string[]; already: string[] } {
    const added: string[] = [];
    const already: string[] = [];
    let version = 0;
    for (const userId of uniqueIds(userIds)) {
      if (this.has(userId)) {
        already.push(userId);
        continue;
      }
      if (version === 0) version = this.nextVersion();
      this.upsert(userId, role, now, lastSeq, version);
      added.push(userId);
    }
    if (added.length > 0) this.setCount(this.count + added.length);
    return { added, already };
  }

  /** Changes a current member's role (never to or from owner: see ChannelObject.setRole). */
  setRole(userId: string, role: MemberRole): boolean {
    return this.sql.exec("UPDATE members SET role = ? WHERE user_id = ? AND left_at IS NULL AND role != ?", role, userId, role).rowsWritten > 0;
  }

  /** Marks `userId` as gone; an owner who leaves hands the channel on (an admin first, see handOverOwnership). */
  remove(userId: string, now: number): void {
    const target = this.get(userId);
    if (!target) return;
    const version = this.nextVersion();
    this.sql.exec(
      "UPDATE members SET left_at = ?, version = ?, notified = 0, notice_at = ?, notice_attempts = 0 WHERE user_id = ?",
      now, version, now, userId,
    );
    this.setCount(this.count - 1);
    if (target.role === "owner") this.handOverOwnership();
  }

  /** Moves the member's read cursor to `seq` if that is forward; returns whether it moved. */
  moveReadCursor(userId: string, seq: number): boolean {
    return this.sql.exec("UPDATE members SET last_read_seq = ? WHERE user_id = ? AND left_at IS NULL AND last_read_seq < ?", seq, userId, seq).rowsWritten > 0;
  }

  /**
   * Lets others see the member's read cursor (their read receipts are on). Returns the cursor if
   * that shows them something new: a reader who turns receipts on shares where they already are.
   */
  shareReadCursor(userId: string): number | undefined {
    const row = this.sql.exec<{ last_read_seq: number; shared_read_seq: number }>(
      "SELECT last_read_seq, shared_read_seq FROM members WHERE user_id = ? AND left_at IS NULL", userId,
    ).toArray()[0];
    if (!row || row.last_read_seq <= row.shared_read_seq) return undefined;
    this.sql.exec("UPDATE members SET shared_read_seq = ? WHERE user_id = ?", row.last_read_seq, userId);
    return row.last_read_seq;
  }

  readCursor(userId: string): number {
    return this.sql.exec<{ last_read_seq: number }>("SELECT last_read_seq FROM members WHERE user_id = ?", userId).toArray()[0]?.last_read_seq ?? 0;
  }

  /**
   * Writes a member row as of `lastSeq` (or brings a former member back): their read cursor starts
   * there and never moves back; the row waits for the notice pump (`notified = 0`).
   */
  private upsert(userId: string, role: MemberRole, now: number, lastSeq: number, version: number): void {
    this.sql.exec(
      `INSERT INTO members (user_id, username, display_name, role, joined_at, joined_seq, left_at, last_read_seq, version, notified, notice_at, notice_attempts)
       VALUES (?, '', '', ?, ?, ?, NULL, ?, ?, 0, ?, 0)
       ON CONFLICT (user_id) DO UPDATE SET role = excluded.role, joined_at = excluded.joined_at, joined_seq = excluded.joined_seq,
         left_at = NULL, last_read_seq = max(last_read_seq, excluded.last_read_seq), version = excluded.version, notified = 0,
         notice_at = excluded.notice_at, notice_attempts = 0`,
      userId, role, now, lastSeq + 1, lastSeq, version, now,
    );
  }

  /**
   * When the owner leaves, the longest-standing admin becomes owner, or, with no admin left, the
   * longest-standing member: a broadcast channel passes to someone who already posts in it rather
   * than to its oldest subscriber. A rare event, so one scan of the current members is fine.
   */
  private handOverOwnership(): void {
    const next = this.sql.exec<{ user_id: string }>(
      "SELECT user_id FROM members WHERE left_at IS NULL ORDER BY role = 'admin' DESC, joined_at, rowid LIMIT 1",
    ).toArray()[0];
    if (next) this.sql.exec("UPDATE members SET role = 'owner' WHERE user_id = ?", next.user_id);
  }

  private nextVersion(): number {
    this.version++;
    this.sql.exec("UPDATE channel SET membership_version = ? WHERE id = 1", this.version);
    return this.version;
  }

  private setCount(n: number): void {
    this.count = n;
    this.sql.exec("UPDATE channel SET member_count = ? WHERE id = 1", n);
  }
}

/** Each user id once, in the order given. */
export function uniqueIds(ids: Iterable<string>): string[] {
  return [...new Set(ids)];
}

/** The first profile of each user id, in the order given. */
export function uniqueProfiles(profiles: MemberProfile[]): MemberProfile[] {
  const seen = new Map<string, MemberProfile>();
  for (const p of profiles) if (!seen.has(p.user_id)) seen.set(p.user_id, p);
  return [...seen.values()];
}
