/**
 * The user's channel list (seed §5.2 inbox): one row per channel they are or were in, with the
 * newest seq, their read cursor and unread count, kept current by every delivery. Also the
 * ChannelState shape clients receive for a row.
 */
import { toWellFormed, wellFormedDeep } from "../../protocol/text.js";
import type { ChannelState, MemberProfile } from "../../protocol/types.js";
import type { DeliveryBatch } from "../channel/types.js";

export type { ChannelState };

export type ChannelRow = {
  channel_id: string;
  type: string;
  name: string;
  member_count: number;
  members: string;
  last_seq: number;
  last_activity_hlc: string;
  last_activity_at: number;
  last_read_seq: number;
  unread_count: number;
  muted: number;
  left: number;
};

/** What a delivery changed beyond the counters. */
export interface Applied {
  /** The channel is new to the list, or its name, size or the user's membership changed. */
  membershipChanged: boolean;
  /** The user is no longer a member. */
  left: boolean;
}

export class ChannelList {
  constructor(private readonly sql: SqlStorage) {}

  row(channelId: string): ChannelRow | undefined {
    return this.sql.exec<ChannelRow>("SELECT * FROM channels WHERE channel_id = ?", channelId).toArray()[0];
  }

  /** The channels the user is in, most recently active first. */
  states(me: string | undefined): ChannelState[] {
    return this.sql.exec<ChannelRow>("SELECT * FROM channels WHERE left = 0 ORDER BY last_activity_at DESC")
      .toArray().map((r) => channelState(r, me));
  }

  state(channelId: string, me: string | undefined): ChannelState | undefined {
    const row = this.row(channelId);
    return row ? channelState(row, me) : undefined;
  }

  /**
   * Folds one fan-out batch into the channel's row: the newest seq and activity, the unread count
   * (messages from others past the read cursor; the user's own message means they have read up
   * to it), and whether a membership notice about the user made them leave or come back. A
   * batch delivered twice counts once.
   */
  apply(batch: DeliveryBatch, me: string | undefined): Applied {
    const c = batch.channel;
    const row = this.row(c.channel_id);
    let lastSeq = row?.last_seq ?? 0;
    let lastRead = row?.last_read_seq ?? 0;
    let unread = row?.unread_count ?? 0;
    let left = row?.left ?? 0;
    let lastHlc = row?.last_activity_hlc ?? "";
    let lastAt = row?.last_activity_at ?? 0;
    for (const m of batch.messages) {
      const sys = m.content.system;
      if (sys && me && sys.target_user_ids?.includes(me)) {
        left = sys.event === "member_removed" || sys.event === "member_left" ? 1 : 0;
      }
      if (m.seq <= lastSeq) continue; // a retried batch: counted already
      lastSeq = m.seq;
      const update = m.content.update;
      if (update) {
        // A change to an earlier message is not news; an unread message deleted for everyone is no longer unread.
        const target = update.target;
        if (update.kind === "deleted" && target && target.sender_user_id !== me && Number(update.target_seq) > lastRead) unread = Math.max(0, unread - 1);
        continue;
      }
      lastHlc = m.hlc;
      lastAt = m.server_ts;
      if (m.sender_user_id === me) {
        // Sending from any device means the user has seen the conversation up to here.
        lastRead = Math.max(lastRead, m.seq);
        unread = 0;
      } else if (!sys && m.seq > lastRead) {
        unread++;
      }
    }
    const membershipChanged = !row || left !== row.left || c.member_count !== row.member_count || c.name !== row.name;
    this.sql.exec(
      `INSERT INTO channels (channel_id, type, name, member_count, members, last_seq, last_activity_hlc, last_activity_at, last_read_seq, unread_count, left)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (channel_id) DO UPDATE SET type = excluded.type, name = excluded.name, member_count = excluded.member_count,
         members = excluded.members, last_seq = excluded.last_seq, last_activity_hlc = excluded.last_activity_hlc,
         last_activity_at = excluded.last_activity_at, last_read_seq = excluded.last_read_seq,
         unread_count = excluded.unread_count, left = excluded.left`,
      c.channel_id, c.type, c.name, c.member_count, JSON.stringify(c.members), lastSeq, lastHlc, lastAt, lastRead, unread, left,
    );
    return { membershipChanged, left: left === 1 };
  }

  /** Mutes or unmutes a channel (no push); true if that changed anything. */
  setMuted(channelId: string, muted: boolean): boolean {
    return this.sql.exec("UPDATE channels SET muted = ? WHERE channel_id = ? AND muted != ?", muted ? 1 : 0, channelId, muted ? 1 : 0).rowsWritten > 0;
  }

  /** Mirrors the read cursor the channel keeps (never backwards) and its unread count. */
  mirrorRead(channelId: string, lastReadSeq: number, unreadCount: number): void {
    this.sql.exec("UPDATE channels SET last_read_seq = max(last_read_seq, ?), unread_count = ? WHERE channel_id = ?",
      lastReadSeq, unreadCount, channelId);
  }

  /** Every channel in the list, left ones included. */
  ids(): Set<string> {
    return new Set(this.sql.exec<{ channel_id: string }>("SELECT channel_id FROM channels").toArray().map((r) => r.channel_id));
  }

  /** The channels the user is in, with their newest seq. */
  heads(): { channel_id: string; last_seq: number }[] {
    return this.sql.exec<{ channel_id: string; last_seq: number }>("SELECT channel_id, last_seq FROM channels WHERE left = 0").toArray();
  }

  /** People the user shares a DM or small group with, most recently active channels first, at most `max`. */
  contacts(me: string | undefined, max: number): string[] {
    const ids = new Set<string>();
    for (const row of this.sql.exec<{ members: string }>("SELECT members FROM channels WHERE left = 0 ORDER BY last_activity_at DESC")) {
      for (const m of parseMembers(row.members)) if (m.user_id !== me) ids.add(m.user_id);
      if (ids.size >= max) break;
    }
    return [...ids];
  }
}

/**
 * A DM has no name of its own: each side sees the other person's name. Names stored before the
 * edges checked text are repaired here, where the list is read (docs/protocol.md, "Text").
 */
export function channelState(row: ChannelRow, me: string | undefined): ChannelState {
  const members = parseMembers(row.members);
  const name = row.type === "dm" ? (members.find((m) => m.user_id !== me)?.display_name ?? toWellFormed(row.name)) : toWellFormed(row.name);
  return {
    channel_id: row.channel_id, type: row.type, name, last_seq: row.last_seq, last_activity_hlc: row.last_activity_hlc,
    last_activity_at: row.last_activity_at, last_read_seq: row.last_read_seq, unread_count: row.unread_count,
    muted: row.muted === 1, member_count: row.member_count, left: row.left === 1,
    member_user_ids: members.map((m) => m.user_id), members,
  };
}

export function parseMembers(json: string): MemberProfile[] {
  try {
    const v: unknown = JSON.parse(json);
    // Profiles stored before the edges checked text are repaired here (docs/protocol.md, "Text").
    return Array.isArray(v) ? wellFormedDeep(v as MemberProfile[]) : [];
  } catch {
    return [];
  }
}
