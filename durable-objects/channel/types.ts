/** Shapes that cross the ChannelObject's RPC boundary (structured-clone plain objects). */
import type { edgechat } from "../../protocol/generated/chat.js";
import type { MemberProfile, SendAck } from "../../protocol/types.js";

export type { MemberProfile, SendAck };

export type ContentInit = edgechat.v1.MessageContent.$Properties;
export type ChannelType = "dm" | "group";
export type MemberRole = "owner" | "admin" | "member";

/** A message as stored and delivered: the plain form of protocol ChatMessage. */
export interface ChatMessageData {
  channel_id: string;
  server_msg_id: string;
  hlc: string;
  seq: number;
  client_msg_id: string;
  sender_user_id: string;
  sender_device_id: string;
  server_ts: number;
  content: ContentInit;
  reactions?: Reaction[];
  edited_at?: number;
  deleted?: boolean;
  /** Deleted for me: set by the reader's UserObject, never stored in the channel. */
  hidden?: boolean;
}

export interface Reaction {
  emoji: string;
  user_ids: string[];
}

export type ChangeKind = "edited" | "deleted" | "reactions";

/** The answer to a react, edit or delete: the message as it is now. */
export interface MessageChange {
  message: ChatMessageData;
  kind: ChangeKind | "hidden";
  /** false: it was so already (a retry, or nothing to do); nothing was written. */
  changed: boolean;
}

export interface Member extends MemberProfile {
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
  /** Profiles of every member while the channel is small (≤ SMALL_CHANNEL_MEMBERS), else empty. */
  members: MemberProfile[];
  last_seq: number;
  last_hlc: string;
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
}

export interface HistoryQuery {
  before?: number;
  after?: number;
  limit?: number;
}

export interface HistoryPageData {
  channel_id: string;
  messages: ChatMessageData[];
  next_cursor: number;
  has_more: boolean;
  last_seq: number;
}

export interface ChannelDetails extends ChannelSummary {
  created_at: number;
  created_by: string;
  member_list: Member[];
}

/**
 * Ephemeral news a channel passes to its other members' devices: not stored as messages, not
 * retried. Read cursors are also stored (members.last_read_seq), so a device that missed a
 * receipt reads it from GET /v1/channels/{id}.
 */
export type ChannelSignal =
  | { kind: "typing"; channel_id: string; user_id: string; device_id: string; is_typing: boolean }
  | { kind: "read"; channel_id: string; user_id: string; up_to_seq: number };

export const SMALL_CHANNEL_MEMBERS = 50;
/** Typing indicators and read receipts are pushed in channels up to this size; larger ones pull. */
export const SIGNAL_MAX_MEMBERS = 100;
