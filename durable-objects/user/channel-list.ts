/** The user's channel list: rows as stored, and the ChannelState shape clients receive. */
import type { ChannelState, MemberProfile } from "../../protocol/types.js";

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


/**
 * A DM has no name of its own: each side sees the other person's name.
 */
export function channelState(row: ChannelRow, me: string | undefined): ChannelState {
  const members = parseMembers(row.members);
  const name = row.type === "dm" ? (members.find((m) => m.user_id !== me)?.display_name ?? row.name) : row.name;
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
    return Array.isArray(v) ? (v as MemberProfile[]) : [];
  } catch {
    return [];
  }
}
