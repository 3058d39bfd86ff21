/**
 * Who belongs to a channel and with which role: the members table, and the current members in
 * memory (those who left keep their row, `left_at` set, so a former member is told so).
 */
import { fail, type Failure } from "../../shared/errors.js";
import type { Member, MemberProfile, MemberRole } from "./types.js";

type MemberRow = {
  user_id: string;
  username: string;
  display_name: string;
  role: MemberRole;
  joined_at: number;
  last_read_seq: number;
};

export class Membership {
  /** Current members only. */
  private readonly members = new Map<string, Member>();
  /** The read cursor each member has let others see (read receipts are opt-in). */
  private readonly sharedRead = new Map<string, number>();

  constructor(private readonly sql: SqlStorage) {}

  /** Reads the current members; called on every wake. */
  load(): void {
    this.members.clear();
    this.sharedRead.clear();
    for (const m of this.sql.exec<MemberRow & { shared_read_seq: number }>(
      "SELECT user_id, username, display_name, role, joined_at, last_read_seq, shared_read_seq FROM members WHERE left_at IS NULL",
    )) {
      const { shared_read_seq, ...member } = m;
      this.members.set(m.user_id, member);
      this.sharedRead.set(m.user_id, shared_read_seq);
    }
  }

  get size(): number {
    return this.members.size;
  }

  has(userId: string): boolean {
    return this.members.has(userId);
  }

  /** The member's live record (read cursor and role change in place). */
  get(userId: string): Member | undefined {
    return this.members.get(userId);
  }

  ids(): string[] {
    return [...this.members.keys()];
  }

  /** Copies of the current members, with roles and read cursors. */
  list(): Member[] {
    return [...this.members.values()].map((m) => ({ ...m }));
  }

  /** The current members as others may see them: each read cursor as its owner last shared it. */
  listShared(): Member[] {
    return [...this.members.values()].map((m) => ({ ...m, last_read_seq: this.sharedRead.get(m.user_id) ?? 0 }));
  }

  profiles(): MemberProfile[] {
    return [...this.members.values()].map(({ user_id, username, display_name }) => ({ user_id, username, display_name }));
  }

  /**
   * Someone who never belonged to the channel is told it does not exist: DM ids can be computed
   * from two user ids, and "not a member" would confirm that two other people talk.
   */
  require(userId: string): Failure | undefined {
    if (this.members.has(userId)) return undefined;
    const former = this.sql.exec("SELECT 1 FROM members WHERE user_id = ?", userId).toArray().length > 0;
    return former ? fail("not_member", "You are no longer a member of this channel.") : fail("not_found", "No such channel.");
  }

  isAdmin(userId: string): boolean {
    const role = this.members.get(userId)?.role;
    return role === "owner" || role === "admin";
  }

  /**
   * Adds `p` (or brings a former member back) as of `lastSeq`: their read cursor starts there, so
   * what was said before they joined is not unread for them.
   */
  add(p: MemberProfile, role: MemberRole, now: number, lastSeq: number): void {
    this.sql.exec(
      `INSERT INTO members (user_id, username, display_name, role, joined_at, joined_seq, left_at, last_read_seq)
       VALUES (?, ?, ?, ?, ?, ?, NULL, ?)
       ON CONFLICT (user_id) DO UPDATE SET username = excluded.username, display_name = excluded.display_name,
         role = excluded.role, joined_at = excluded.joined_at, joined_seq = excluded.joined_seq, left_at = NULL`,
      p.user_id, p.username, p.display_name, role, now, lastSeq + 1, lastSeq,
    );
    const read = this.sql.exec<{ last_read_seq: number; shared_read_seq: number }>("SELECT last_read_seq, shared_read_seq FROM members WHERE user_id = ?", p.user_id).one();
    this.members.set(p.user_id, { user_id: p.user_id, username: p.username, display_name: p.display_name, role, joined_at: now, last_read_seq: read.last_read_seq });
    this.sharedRead.set(p.user_id, read.shared_read_seq);
  }

  /** Marks `userId` as gone; an owner who leaves hands the group to the longest-standing member. */
  remove(userId: string, now: number): void {
    const target = this.members.get(userId);
    this.sql.exec("UPDATE members SET left_at = ? WHERE user_id = ?", now, userId);
    this.members.delete(userId);
    this.sharedRead.delete(userId);
    if (target?.role === "owner") this.handOverOwnership();
  }

  /** Moves the member's read cursor to `seq` if that is forward; returns whether it moved. */
  moveReadCursor(userId: string, seq: number): boolean {
    const member = this.members.get(userId);
    if (!member || seq <= member.last_read_seq) return false;
    member.last_read_seq = seq;
    this.sql.exec("UPDATE members SET last_read_seq = ? WHERE user_id = ?", seq, userId);
    return true;
  }

  /**
   * Lets others see the member's read cursor (their read receipts are on). Returns the cursor if
   * that shows them something new: a reader who turns receipts on shares where they already are.
   */
  shareReadCursor(userId: string): number | undefined {
    const member = this.members.get(userId);
    if (!member || member.last_read_seq <= (this.sharedRead.get(userId) ?? 0)) return undefined;
    this.sharedRead.set(userId, member.last_read_seq);
    this.sql.exec("UPDATE members SET shared_read_seq = ? WHERE user_id = ?", member.last_read_seq, userId);
    return member.last_read_seq;
  }

  /** The longest-standing member becomes owner when the owner leaves. */
  private handOverOwnership(): void {
    let next: Member | undefined;
    for (const m of this.members.values()) if (!next || m.joined_at < next.joined_at) next = m;
    if (!next) return;
    next.role = "owner";
    this.sql.exec("UPDATE members SET role = 'owner' WHERE user_id = ?", next.user_id);
  }
}

/** The first profile of each user id, in the order given. */
export function uniqueProfiles(profiles: MemberProfile[]): MemberProfile[] {
  const seen = new Map<string, MemberProfile>();
  for (const p of profiles) if (!seen.has(p.user_id)) seen.set(p.user_id, p);
  return [...seen.values()];
}
