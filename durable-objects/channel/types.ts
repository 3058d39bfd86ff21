/** Shapes that cross the ChannelObject's RPC boundary (structured-clone plain objects). */
import type { edgechat } from "../../protocol/generated/chat.js";
import type { ChangeKind, ChatMessage, HistoryPage, MemberProfile, MessageUpdate, Reaction, SendAck } from "../../protocol/types.js";

export type { ChangeKind, MemberProfile, Reaction, SendAck };

export type ContentInit = edgechat.v1.MessageContent.$Properties;
export type ChannelType = "dm" | "group" | "broadcast";
export type MemberRole = "owner" | "admin" | "member";

/** Fields the server leaves out at their default, as proto3 JSON does ([], 0, false). */
type Defaulted = "reactions" | "edited_at" | "deleted" | "hidden";

/**
 * A message as the server stores and delivers it: protocol ChatMessage with the defaulted fields
 * left out, and content in the shape the codec encodes.
 */
export type ChatMessageData = Omit<ChatMessage, Defaulted | "content"> & Partial<Pick<ChatMessage, Defaulted>> & { content: ContentInit };

/** The answer to a react, edit or delete: the message as it is now. */
export interface MessageChange extends MessageUpdate<ChatMessageData> {
  kind: ChangeKind | "hidden";
  /** false: it was so already (a retry, or nothing to do); nothing was written. */
  changed: boolean;
}

/** A member as the channel keeps them: ids and numbers, never a profile (ids, not names). */
export interface Member {
  user_id: string;
  role: MemberRole;
  joined_at: number;
  last_read_seq: number;
}

/** What a member's UserObject needs to keep its channel list current. */
export interface ChannelSummary {
  channel_id: string;
  type: ChannelType;
  name: string;
  member_count: number;
  /** Ids of every member while the channel is small (≤ SMALL_CHANNEL_MEMBERS), else empty. */
  member_user_ids: string[];
  /** Always empty: profiles are not copied (ids, not names). Kept for objects of the previous release. */
  members: MemberProfile[];
  last_seq: number;
  last_hlc: string;
}

/**
 * A member's view of a channel, exact when it was read: the answer to watch() and state(), and
 * what a UserObject's channel row is re-synced from. Unread is counted by the channel in SQL.
 */
export interface MemberChannelState {
  channel_id: string;
  type: ChannelType;
  name: string;
  member_count: number;
  /** Small channels only (≤ SMALL_CHANNEL_MEMBERS). */
  member_user_ids: string[];
  last_seq: number;
  last_activity_hlc: string;
  last_activity_at: number;
  last_read_seq: number;
  unread_count: number;
  /** The first seq of the user's current membership (the notice that added them). */
  joined_seq: number;
  /** false: the user was a member and is no longer (not_member). */
  member: boolean;
}

/** A channel tells a member's UserObject that their membership changed (joined, removed). */
export interface MembershipNotice {
  state: MemberChannelState;
  /** The seq of the membership change; a UserObject ignores notices older than the one it took. */
  membership_seq: number;
}

/** What a UserObject answers a delivery. */
export interface DeliveryOutcome {
  /** false: no device is connected; the channel (or relay) drops this user as a watcher. */
  live: boolean;
  /** The user's watch epoch when it answered. */
  epoch: number;
}

/** One fan-out call to one member's UserObject. */
export interface DeliveryBatch {
  channel: ChannelSummary;
  /** Ascending seq, contiguous within the batch. */
  messages: ChatMessageData[];
  /** Users this batch removed from the channel: their UserObject marks the channel as left. */
  removed_user_ids: string[];
}

export interface AppendInput {
  userId: string;
  deviceId: string;
  clientMsgId: string;
  content: ContentInit;
  /** The SEND frame's trace id (shared/trace.ts): carried by the stored message's live deliveries and log lines. */
  traceId?: string;
  /**
   * The sender's UserObject applies this message itself from the answer (decision 033): the
   * answer carries the stored message, and a round holding only such messages of this sender
   * leaves the sender out.
   */
  selfApplied?: boolean;
}

/** One append's answer: the ack, the channel's SLOWDOWN when its fan-out lags, the stored message when `selfApplied`. */
export type AppendAnswer = { ack: SendAck; slowdownMs?: number; message?: ChatMessageData };

export interface HistoryQuery {
  before?: number;
  after?: number;
  limit?: number;
}

export type HistoryPageData = HistoryPage<ChatMessageData>;

export interface ChannelDetails extends ChannelSummary {
  created_at: number;
  created_by: string;
  /** The first page of members, in the order they joined; GET /v1/channels/{id}/members pages on. */
  member_list: Member[];
  /** Cursor for the next page of members; "" when member_list holds them all. */
  members_next_cursor: string;
  /** A DM from before the locality policy: read-only; the DM that continues it (docs/decisions/021). */
  superseded_by?: string;
  /** The caller's role (absent for one who is not a member). */
  my_role?: MemberRole;
  /** Broadcast channels: what the channel is about ("" for none). */
  description?: string;
  /** The lifetime of messages in effect, ms (the channel's own or the server default); 0 = kept for ever. */
  retention_ms: number;
  /** The channel's own lifetime; null while the server default applies. */
  retention_setting: number | null;
  /** The low-water mark: every seq below it has expired (1 = nothing has). */
  min_seq: number;
}

/**
 * Ephemeral news a channel passes to its other members' devices: not stored as messages, not
 * retried. Read cursors are also stored (members.last_read_seq), so a device that missed a
 * receipt reads it from GET /v1/channels/{id}.
 */
export type ChannelSignal =
  | { kind: "typing"; channel_id: string; user_id: string; device_id: string; is_typing: boolean }
  | { kind: "read"; channel_id: string; user_id: string; up_to_seq: number }
  /** Messages expired (retention): every seq below `min_seq` is gone; live lists re-read their counts. */
  | { kind: "expired"; channel_id: string; min_seq: number };

export const SMALL_CHANNEL_MEMBERS = 50;
/** Typing indicators and read receipts are pushed in channels up to this size; larger ones pull. */
export const SIGNAL_MAX_MEMBERS = 100;
