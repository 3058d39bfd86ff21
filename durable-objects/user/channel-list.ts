/**
 * The user's channel list (seed §5.2 inbox): one row per channel they are or were in, with the
 * newest seq, their read cursor and unread count, and the ChannelState shape clients receive.
 *
 * Nothing is committed per delivered message (docs/decisions/013). A delivery changes the row in
 * memory; changed rows are flushed together once the deliveries stop (MARK_LINGER_MS after the
 * newest change, and at least every FLUSH_MAX_MS while they go on; decision 034). The first change
 * after MARK_LINGER_MS of quiet is written through instead (decision 031). Before the first change
 * of a burst of deliveries, one durable "dirty" mark is written; an object that wakes up and finds
 * the mark knows its rows may be behind (a crash between delivery and flush) and re-syncs them
 * from the channels before it answers RESUME or lists channels. The flush that comes once the
 * deliveries stop takes the mark away in the same commit: a busy user's deliveries write nothing,
 * and a burst costs the mark, one flush, and an alarm every MARK_LINGER_MS that finds more came
 * and looks again later. The flush and the mark's removal come MARK_LINGER_MS after the last
 * delivery, before the object could hibernate (~10 s without events), so hibernation loses
 * nothing and wakes without a re-sync.
 *
 * While one of the user's devices is connected (the durable epoch says live), the sockets cover
 * the rows instead of the mark (decision 035): a delivery changes the row in memory and writes
 * nothing at all, not the mark, not the row after a quiet spell; each socket's attachment says
 * the rows are ahead until the flush. An instance that wakes with the epoch live and either no
 * socket (a crash or restart lost them) or a socket that says "ahead" (it hibernated before its
 * flush) writes the mark itself and re-syncs, as after a crash; going offline flushes first.
 *
 * Unread counts stay exact without per-message writes: a row's numbers come from the channel
 * (watch/state: last_seq, the read cursor and the exact count, computed there in SQL) and are
 * carried forward by the deliveries that follow, message by message, as the channel counts.
 */
import { toWellFormed } from "../../protocol/text.js";
import type { ChannelState } from "../../protocol/types.js";
import type { ChatMessageData, DeliveryBatch, MemberChannelState } from "../channel/types.js";

export type { ChannelState };

/**
 * Changed rows and the durable mark stay until this long after the newest change; then one flush
 * writes the rows and clears the mark. Writing the mark is a commit in the delivery's own turn
 * (its reply and socket writes wait for it): a group that posts every few seconds would pay it on
 * every post if it went with each flush (a 1,000-member group posting every 2 s wrote it in
 * ~1,000 objects per post), and a flush every few seconds during a burst put ~1,000 commits on
 * the one thread in the middle of every other post (decision 034). Kept under the ~10 s after
 * which an idle object hibernates, with room for a late alarm: a mark still set then only costs a
 * re-sync on wake.
 */
export const MARK_LINGER_MS = 5000;
/**
 * While deliveries keep coming, changed rows are still written this long after their first
 * change (the mark stays): what a crash during a long burst leaves to re-sync from the channels.
 */
export const FLUSH_MAX_MS = 30_000;
/** Member ids kept per row (small channels only): whose presence the user watches. */
export const LISTED_MEMBER_IDS = 50;

export type ChannelRow = {
  channel_id: string;
  type: string;
  name: string;
  member_count: number;
  /** JSON: member user ids of a small channel (older rows: profiles). */
  members: string;
  last_seq: number;
  last_activity_hlc: string;
  last_activity_at: number;
  last_read_seq: number;
  unread_count: number;
  muted: number;
  left: number;
  /** 1 while the channel lists this user as a watcher (as far as this object knows). */
  subscribed: number;
  /** Highest seq written live to any of the user's sockets: nothing at or below goes out live again. */
  sent_seq: number;
  /** The seq of the membership change this row last took from a notice (older notices are ignored). */
  membership_seq: number;
};

const COLUMNS = "channel_id, type, name, member_count, members, last_seq, last_activity_hlc, last_activity_at, last_read_seq, unread_count, muted, left, subscribed, sent_seq, membership_seq";

/** What a delivery changed beyond the counters. */
export interface Applied {
  /** The channel is new to the list, or its name, size or the user's membership changed. */
  membershipChanged: boolean;
  /** The user is no longer a member. */
  left: boolean;
  /** The batch starts past the row's last seq: the counts are not exact any more; re-sync. */
  gap: boolean;
}

export function emptyRow(channelId: string): ChannelRow {
  return {
    channel_id: channelId, type: "group", name: "", member_count: 0, members: "[]", last_seq: 0, last_activity_hlc: "",
    last_activity_at: 0, last_read_seq: 0, unread_count: 0, muted: 0, left: 0, subscribed: 0, sent_seq: 0, membership_seq: 0,
  };
}

/**
 * Folds delivered messages into a row, as the channel counts unread: messages from others after
 * the read cursor, not notices, not changes, not deleted ones; the user's own message means they
 * have read up to it; an unread message deleted for everyone stops counting. Broadcast channels
 * count last_seq − read cursor. Messages at or below the row's last seq were counted already.
 */
export function foldMessages(row: ChannelRow, messages: ChatMessageData[], me: string | undefined): Applied {
  const wasLeft = row.left;
  const gap = messages.length > 0 && messages[0]!.seq > row.last_seq + 1;
  for (const m of messages) {
    const sys = m.content.system;
    if (sys && me && sys.target_user_ids?.includes(me)) {
      row.left = sys.event === "member_removed" || sys.event === "member_left" ? 1 : 0;
    }
    if (m.seq <= row.last_seq) continue;
    row.last_seq = m.seq;
    const update = m.content.update;
    if (update) {
      const target = update.target;
      if (update.kind === "deleted" && target && target.sender_user_id !== me && Number(update.target_seq) > row.last_read_seq && row.unread_count > 0) {
        row.unread_count--;
      }
      continue;
    }
    row.last_activity_hlc = m.hlc;
    row.last_activity_at = m.server_ts;
    if (m.sender_user_id === me && !sys) {
      row.last_read_seq = Math.max(row.last_read_seq, m.seq);
      row.unread_count = 0;
    } else if (!sys && m.seq > row.last_read_seq) {
      row.unread_count++;
    }
  }
  if (row.type === "broadcast") row.unread_count = Math.max(0, row.last_seq - row.last_read_seq);
  return { membershipChanged: row.left !== wasLeft, left: row.left === 1, gap };
}

/** Takes the channel's exact numbers (watch/state); the row's own later knowledge is kept. */
export function applySnapshot(row: ChannelRow, s: MemberChannelState): void {
  row.type = s.type;
  row.name = s.name;
  row.member_count = s.member_count;
  row.members = JSON.stringify(s.member_user_ids.slice(0, LISTED_MEMBER_IDS));
  row.left = s.member ? 0 : 1;
  if (s.last_seq >= row.last_seq) {
    row.last_seq = s.last_seq;
    row.last_activity_hlc = s.last_activity_hlc || row.last_activity_hlc;
    row.last_activity_at = s.last_activity_at || row.last_activity_at;
    row.unread_count = s.unread_count;
    row.last_read_seq = Math.max(row.last_read_seq, s.last_read_seq);
  }
}

/** What covers rows held in memory while the user is live (decision 035). */
export interface ListCover {
  /** The durable state says a device is connected: its sockets cover the rows in memory. */
  active(): boolean;
  /** Rows in memory are ahead of the table (true) or written (false): say so on every socket. */
  ahead(ahead: boolean): void;
  /**
   * Asks for a flush by `at` without a storage write: an alarm set in the delivery's turn is a
   * write its reply and frames would wait for. A timer will do (it also keeps the object from
   * hibernating before the flush; if the instance goes anyway, the sockets say the rows were ahead).
   */
  flushBy(at: number): void;
}

export class ChannelList {
  /** Rows changed since the last flush (they win over the table). */
  private readonly dirty = new Map<string, ChannelRow>();
  /** The durable mark is written: rows in memory may be ahead of the table. */
  private marked: boolean;
  private firstDirtyAt: number | undefined;
  /** The newest change (its time decides when the flush comes and whether it takes the mark away). */
  private lastChangeAt = -Infinity;
  /** When to look again whether the mark can go (a flush kept it: deliveries were still coming). */
  private settleAt: number | undefined;
  /** The sockets were told that rows in memory are ahead of the table. */
  private coverAhead = false;

  /**
   * @param onDirty asks the host to flush by the given time (its alarm)
   * @param cover the user's live sockets, which cover rows in memory instead of the mark
   */
  constructor(
    private readonly sql: SqlStorage,
    private readonly onDirty: (flushBy: number) => void = () => {},
    private readonly cover?: ListCover,
  ) {
    this.marked = sql.exec<{ dirty: number }>("SELECT dirty FROM live_state WHERE id = 1").toArray()[0]?.dirty === 1;
  }

  /**
   * On wake: the rows may be behind their channels though no mark says so (the sockets that
   * covered them were lost, or hibernated before the flush). Writes the mark, so that the re-sync
   * it starts (`wokeDirty`) survives another restart, and the sockets need say nothing more.
   */
  markBehind(): void {
    if (!this.marked) {
      this.sql.exec("UPDATE live_state SET dirty = 1 WHERE id = 1");
      this.marked = true;
    }
    this.cover?.ahead(false);
  }

  /** Rows in memory are ahead of the table under the sockets' cover (a new socket is told so too). */
  get aheadUnderCover(): boolean {
    return this.coverAhead;
  }

  /** The mark was found on wake: rows may be behind what their channels delivered. */
  get wokeDirty(): boolean {
    return this.marked && this.dirty.size === 0;
  }

  /**
   * When the pending flush (or the look at whether the mark can go) is due, if any. It only moves
   * later as changes come, so an alarm set for it at the first change is never late; one that
   * fires early finds it not due and is set again.
   */
  flushDue(): number | undefined {
    if (this.firstDirtyAt === undefined) return this.settleAt;
    return Math.min(this.lastChangeAt + MARK_LINGER_MS, this.firstDirtyAt + FLUSH_MAX_MS);
  }

  row(channelId: string): ChannelRow | undefined {
    const d = this.dirty.get(channelId);
    if (d) return { ...d };
    return this.sql.exec<ChannelRow>(`SELECT ${COLUMNS} FROM channels WHERE channel_id = ?`, channelId).toArray()[0];
  }

  /** Every row, memory over table. */
  all(): ChannelRow[] {
    const rows = new Map(this.sql.exec<ChannelRow>(`SELECT ${COLUMNS} FROM channels`).toArray().map((r) => [r.channel_id, r]));
    for (const [id, r] of this.dirty) rows.set(id, { ...r });
    return [...rows.values()];
  }

  /** Rows of channels the user is in. */
  current(): ChannelRow[] {
    return this.all().filter((r) => r.left === 0);
  }

  /**
   * Changes a row in memory; it reaches the table with the next flush. The first change while no
   * mark is set writes the durable mark (in the caller's turn, so the output gate holds the caller's
   * reply until the mark is on disk). A change after MARK_LINGER_MS of quiet, with nothing
   * waiting, is written through instead: the same one write in the caller's turn, and no mark,
   * no flush and no alarm after it. While the user is live, neither: the sockets cover the rows
   * (decision 035) and the change writes nothing until the flush.
   */
  put(row: ChannelRow, now = Date.now()): void {
    // Covered by the live sockets (decision 035): nothing is written in the delivery's turn.
    const cover = !this.marked && this.cover?.active() ? this.cover : undefined;
    const quiet = !this.marked && this.dirty.size === 0 && now - this.lastChangeAt >= MARK_LINGER_MS;
    this.lastChangeAt = now;
    if (quiet && !cover) {
      upsert(this.sql, row);
      return;
    }
    this.dirty.set(row.channel_id, { ...row });
    if (cover && !this.coverAhead) {
      this.coverAhead = true;
      cover.ahead(true);
    } else if (!cover && !this.marked) {
      this.sql.exec("UPDATE live_state SET dirty = 1 WHERE id = 1");
      this.marked = true;
    }
    if (this.firstDirtyAt === undefined) {
      this.firstDirtyAt = now;
      if (cover) cover.flushBy(this.flushDue()!);
      else this.onDirty(this.flushDue()!);
    }
  }

  /** Mutes or unmutes a channel (no push), written at once; true if that changed anything. */
  setMuted(channelId: string, muted: boolean): boolean {
    const row = this.row(channelId);
    if (!row || row.muted === (muted ? 1 : 0)) return false;
    row.muted = muted ? 1 : 0;
    this.write(row);
    return true;
  }

  /** Writes a row now (membership notices, subscribed = 0 before a reply leaves). */
  write(row: ChannelRow): void {
    this.dirty.delete(row.channel_id);
    upsert(this.sql, row);
  }

  /**
   * Writes every changed row, in one turn (one commit). The mark goes too, unless a change came
   * within the last MARK_LINGER_MS (a flush forced by FLUSH_MAX_MS, or an early one): then more
   * are likely, and the mark stays until a look MARK_LINGER_MS after the newest change (flushDue)
   * finds none since.
   */
  flush(now = Date.now()): number {
    const n = this.dirty.size;
    for (const row of this.dirty.values()) upsert(this.sql, row);
    this.dirty.clear();
    this.firstDirtyAt = undefined;
    this.settleAt = undefined;
    if (this.coverAhead) {
      this.coverAhead = false;
      this.cover?.ahead(false);
    }
    if (!this.marked) return n;
    if (now - this.lastChangeAt < MARK_LINGER_MS) {
      this.settleAt = this.lastChangeAt + MARK_LINGER_MS;
    } else {
      this.sql.exec("UPDATE live_state SET dirty = 0 WHERE id = 1");
      this.marked = false;
    }
    return n;
  }

  /** The channels the user is in, most recently active first. */
  states(): ChannelState[] {
    return this.current().sort((a, b) => b.last_activity_at - a.last_activity_at).map((r) => channelState(r));
  }

  state(channelId: string): ChannelState | undefined {
    const row = this.row(channelId);
    return row ? channelState(row) : undefined;
  }

  /** Every channel in the list, left ones included. */
  ids(): Set<string> {
    return new Set(this.all().map((r) => r.channel_id));
  }

  /** People the user shares a DM or small group with, most recently active channels first, at most `max`. */
  contacts(me: string | undefined, max: number): string[] {
    const ids = new Set<string>();
    for (const row of this.current().sort((a, b) => b.last_activity_at - a.last_activity_at)) {
      for (const id of memberIds(row.members)) if (id !== me) ids.add(id);
      if (ids.size >= max) break;
    }
    return [...ids];
  }
}

function upsert(sql: SqlStorage, r: ChannelRow): void {
  sql.exec(
    `INSERT INTO channels (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
     ON CONFLICT (channel_id) DO UPDATE SET type = excluded.type, name = excluded.name, member_count = excluded.member_count,
       members = excluded.members, last_seq = excluded.last_seq, last_activity_hlc = excluded.last_activity_hlc,
       last_activity_at = excluded.last_activity_at, last_read_seq = excluded.last_read_seq, unread_count = excluded.unread_count,
       muted = excluded.muted, left = excluded.left, subscribed = excluded.subscribed, sent_seq = excluded.sent_seq,
       membership_seq = excluded.membership_seq`,
    r.channel_id, r.type, r.name, r.member_count, r.members, r.last_seq, r.last_activity_hlc, r.last_activity_at,
    r.last_read_seq, r.unread_count, r.muted, r.left, r.subscribed, r.sent_seq, r.membership_seq,
  );
}

/** Takes the channel summary a delivery carries (name, size, member ids) into the row. */
export function applySummary(row: ChannelRow, c: DeliveryBatch["channel"]): boolean {
  const ids = c.member_user_ids ?? (c.members ?? []).map((m) => m.user_id);
  const members = JSON.stringify(ids.slice(0, LISTED_MEMBER_IDS));
  const changed = row.name !== c.name || row.member_count !== c.member_count || row.type !== c.type;
  row.type = c.type;
  row.name = c.name;
  row.member_count = c.member_count;
  row.members = members;
  return changed;
}

/**
 * A row as clients see it. Names are not copied into the list (ids, not names): a DM's title is
 * the other person's profile, which clients look up (GET /v1/users?ids=).
 */
export function channelState(row: ChannelRow): ChannelState {
  const ids = memberIds(row.members);
  return {
    channel_id: row.channel_id, type: row.type, name: row.type === "dm" ? "" : toWellFormed(row.name), last_seq: row.last_seq,
    last_activity_hlc: row.last_activity_hlc, last_activity_at: row.last_activity_at, last_read_seq: row.last_read_seq,
    unread_count: row.unread_count, muted: row.muted === 1, member_count: row.member_count, left: row.left === 1,
    member_user_ids: ids, members: [],
  };
}

/** Member ids from the row's JSON: a list of ids, or (rows written before ids-not-names) of profiles. */
export function memberIds(json: string): string[] {
  try {
    const v: unknown = JSON.parse(json);
    if (!Array.isArray(v)) return [];
    return v.map((x: unknown) => (typeof x === "string" ? x : typeof x === "object" && x && typeof (x as { user_id?: unknown }).user_id === "string" ? (x as { user_id: string }).user_id : ""))
      .filter((id) => id !== "");
  } catch {
    return [];
  }
}
