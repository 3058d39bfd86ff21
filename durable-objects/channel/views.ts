/**
 * The channel row and what callers are shown of the channel: the summary every delivery carries,
 * the details a member (or admin) asks for, a member's exact state (the answer to watch, state and
 * membership notices), and a member's reads of them: details, member pages, history, state, each
 * refused to anyone who is not a member. The row is created here; a rename (channel-settings.ts) and the tier
 * (tiers.ts enterTier) change it in place.
 * Names stored before the edges checked text leave here repaired (docs/protocol.md, "Text").
 */
import { toWellFormed, wellFormedDeep } from "../../protocol/text.js";
import { fail, type Failure, type Result } from "../../shared/errors.js";
import { hlcToHex } from "./hlc.js";
import { DEFAULT_MEMBER_PAGE, type MemberPage, type Membership } from "./membership.js";
import type { Retention } from "./retention.js";
import type { Sequencer } from "./sequencer.js";
import {
  SMALL_CHANNEL_MEMBERS, type ChannelDetails, type ChannelSummary, type ChannelType, type HistoryPageData, type HistoryQuery,
  type MemberChannelState, type MembershipNotice,
} from "./types.js";

export type ChannelRow = {
  channel_id: string;
  type: ChannelType;
  name: string;
  created_by: string;
  created_at: number;
  last_seq: number;
  hlc_ms: number;
  hlc_logical: number;
  fanout_seq: number;
  /** 0: direct tier; else the relay shards its watchers are spread over (tiers.ts). */
  relay_shards: number;
};

export function readChannelRow(sql: SqlStorage): ChannelRow | undefined {
  return sql.exec<ChannelRow>(
    "SELECT channel_id, type, name, created_by, created_at, last_seq, hlc_ms, hlc_logical, fanout_seq, relay_shards FROM channel WHERE id = 1",
  ).toArray()[0];
}

/** The row of a channel being created: no message yet, the direct tier. */
export function createChannelRow(
  sql: SqlStorage, c: { channelId: string; type: ChannelType; name: string; createdBy: string; jurisdiction: string; description?: string }, now: number,
): ChannelRow {
  sql.exec(
    "INSERT INTO channel (id, channel_id, type, name, created_by, created_at, jurisdiction, settings) VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
    c.channelId, c.type, c.name, c.createdBy, now, c.jurisdiction, JSON.stringify(c.description ? { description: c.description } : {}),
  );
  return {
    channel_id: c.channelId, type: c.type, name: c.name, created_by: c.createdBy,
    created_at: now, last_seq: 0, hlc_ms: 0, hlc_logical: 0, fanout_seq: 0, relay_shards: 0,
  };
}

/** The jurisdiction the row was created for (checked against where the instance runs on every wake). */
export function storedJurisdiction(sql: SqlStorage): string {
  return sql.exec<{ jurisdiction: string }>("SELECT jurisdiction FROM channel WHERE id = 1").one().jurisdiction;
}

/** The newest stored message that is not a change: the channel's "last activity" after a wake. */
export function lastActivity(sql: SqlStorage): { hlc: string; at: number } | undefined {
  const last = sql.exec<{ hlc_ms: number; hlc_logical: number; server_ts: number }>(
    "SELECT hlc_ms, hlc_logical, server_ts FROM messages WHERE kind != 'update' ORDER BY seq DESC LIMIT 1",
  ).toArray()[0];
  return last && { hlc: hlcToHex({ ms: last.hlc_ms, logical: last.hlc_logical }), at: last.server_ts };
}

export interface ViewsHost {
  sql: SqlStorage;
  members: Membership;
  log: Sequencer;
  retention: Retention;
  /** The channel row (only asked for once the channel exists). */
  row(): ChannelRow;
  /** The newest message that is not a change. */
  activity(): { hlc: string; at: number };
  /** A DM the locality policy no longer names: the one it continues in (docs/decisions/021). */
  supersededBy(): string | undefined;
  /** not_found before the channel exists and for strangers, not_member for former members. */
  requireMember(userId: string): Failure | undefined;
}

export class ChannelViews {
  constructor(private readonly host: ViewsHost) {}

  /** The channel for a member: summary and the first page of members (page on with `memberPage`). */
  describe(userId: string): Result<{ channel: ChannelDetails }> {
    return this.host.requireMember(userId) ?? { ok: true, channel: this.details(userId) };
  }

  /** A page of members (roles, read cursors) after `cursor`, in the order they joined; a broadcast channel's only for its admins. */
  memberPage(userId: string, cursor: string, limit: number): Result<MemberPage> {
    const denied = this.host.requireMember(userId);
    if (denied) return denied;
    if (this.host.row().type === "broadcast" && !this.host.members.isAdmin(userId)) {
      return fail("forbidden", "A broadcast channel's subscribers are listed to its owner and admins only.");
    }
    return { ok: true, ...this.host.members.page(cursor, limit) };
  }

  /** A page of history for a member, with the low-water mark below which messages expired. */
  history(userId: string, query: HistoryQuery): Result<HistoryPageData> {
    const denied = this.host.requireMember(userId);
    if (denied) return denied;
    const page = this.host.log.history(query);
    return page.ok ? { ...page, min_seq: this.host.retention.minSeq } : page;
  }

  /** The member's exact state, as a watch answers it. */
  state(userId: string): Result<{ state: MemberChannelState }> {
    return this.host.requireMember(userId) ?? { ok: true, state: this.memberState(userId) };
  }

  /** What every delivery batch carries. */

  summary(): ChannelSummary {
    const c = this.host.row();
    return wellFormedDeep({
      channel_id: c.channel_id, type: c.type, name: c.name, member_count: this.host.members.size,
      member_user_ids: this.smallMemberIds(), members: [],
      last_seq: this.host.log.lastSeq, last_hlc: hlcToHex(this.host.log.lastHlc),
    });
  }

  /** The channel as `viewer` sees it: a broadcast channel's subscribers list only for its admins. */
  details(viewer: string): ChannelDetails {
    const { members, retention } = this.host;
    const c = this.host.row();
    const role = members.get(viewer)?.role;
    const listed = c.type !== "broadcast" || role === "owner" || role === "admin";
    const first = listed ? members.page("", DEFAULT_MEMBER_PAGE) : { members: [], next_cursor: "" };
    const supersededBy = this.host.supersededBy();
    // Read cursors as their owners share them (read receipts are opt-in).
    return wellFormedDeep({
      ...this.summary(), created_at: c.created_at, created_by: c.created_by,
      ...(supersededBy ? { superseded_by: supersededBy } : {}),
      member_list: first.members, members_next_cursor: first.next_cursor, ...(role ? { my_role: role } : {}),
      ...(c.type === "broadcast" ? { description: this.description() } : {}),
      retention_ms: retention.ttlMs, retention_setting: retention.setting, min_seq: retention.minSeq,
    });
  }

  /** The member's view of the channel now; for someone who left, `member: false`. */
  memberState(userId: string): MemberChannelState {
    const { members, log } = this.host;
    const c = this.host.row();
    const current = members.get(userId);
    const former = current ? undefined : members.former(userId);
    const lastRead = current?.last_read_seq ?? former?.last_read_seq ?? 0;
    const activity = this.host.activity();
    return {
      channel_id: c.channel_id, type: c.type, name: toWellFormed(c.name), member_count: members.size,
      member_user_ids: this.smallMemberIds(), last_seq: log.lastSeq, last_activity_hlc: activity.hlc,
      last_activity_at: activity.at, last_read_seq: lastRead, unread_count: current ? this.unread(userId, lastRead) : 0,
      joined_seq: current?.joined_seq ?? former?.joined_seq ?? 0, member: current !== undefined,
    };
  }

  /** The notice telling `userId` where they stand (joined or left), with its membership version. */
  noticeFor(userId: string): MembershipNotice {
    return { state: this.memberState(userId), membership_seq: this.host.members.versionOf(userId) };
  }

  /** Unread for a member whose cursor is at `lastRead`: messages from others after it, never below the low-water mark. */
  unread(userId: string, lastRead: number): number {
    const { log, retention } = this.host;
    // Expired seqs are gone: below the low-water mark nothing counts.
    if (this.host.row().type === "broadcast") return Math.max(0, log.lastSeq - Math.max(lastRead, retention.minSeq - 1));
    return log.unreadCount(userId, lastRead);
  }

  private smallMemberIds(): string[] {
    // Subscribers of a broadcast channel are not shown to each other (nor their presence).
    if (this.host.row().type === "broadcast") return [];
    const { members } = this.host;
    return members.size <= SMALL_CHANNEL_MEMBERS ? members.firstIds(SMALL_CHANNEL_MEMBERS) : [];
  }

  private description(): string {
    const row = this.host.sql.exec<{ settings: string }>("SELECT settings FROM channel WHERE id = 1").toArray()[0];
    try {
      const d = (JSON.parse(row?.settings ?? "{}") as { description?: unknown }).description;
      return typeof d === "string" ? d : "";
    } catch {
      return "";
    }
  }
}
