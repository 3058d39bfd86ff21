/** Shapes that cross the ChannelObject's RPC boundary (structured-clone plain objects). */
import type { edgechat } from "../../protocol/generated/chat.js";
import type { ChangeKind, ChatMessage, HistoryPage, MemberProfile, MessageUpdate, Reaction, SendAck } from "../../protocol/types.js";

export type { ChangeKind, MemberProfile, Reaction, SendAck };

export type ContentInit = edgechat.v1.MessageContent.$Properties;
export type ChannelType = "dm" | "group";
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

export type HistoryPageData = HistoryPage<ChatMessageData>;

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
