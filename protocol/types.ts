/**
 * Shapes that both sides of the wire share: the server builds them, REST returns them as JSON,
 * frames carry them, the SDK hands them to apps. snake_case, like the proto field names.
 */
import type { DevicePushState } from "./push.js";

export interface MemberProfile {
  user_id: string;
  username: string;
  display_name: string;
  /** Where the user's avatar is served (GET, same origin, with a bearer token); absent: no avatar. */
  avatar_url?: string;
}

/** The server's answer to a SEND: the message is durable. */
export interface SendAck {
  channel_id: string;
  client_msg_id: string;
  /** 32 hex digits: hlc ‖ seq. */
  server_msg_id: string;
  /** 16 hex digits; string order is clock order. */
  hlc: string;
  seq: number;
  /** Server wall clock at append, ms since the epoch. */
  server_ts: number;
  /** `duplicate`: a retry of a message the server had already stored; the ids are the originals. */
  status: "stored" | "duplicate";
  /** This SEND's trace id (server logs carry it); absent where the server did not say. */
  trace_id?: string;
}

/** A channel as it appears in a user's channel list (REST GET /v1/channels, RESUMED, CHANNEL_UPDATE). */
export interface ChannelState {
  channel_id: string;
  type: "dm" | "group" | "broadcast" | (string & {});
  /** A DM has no name of its own: each side sees the other person's display name. */
  name: string;
  last_seq: number;
  last_activity_hlc: string;
  /** ms since the epoch of the newest message. */
  last_activity_at: number;
  last_read_seq: number;
  unread_count: number;
  muted: boolean;
  member_count: number;
  left: boolean;
  /** Small channels only (≤ 50 members); empty otherwise. */
  member_user_ids: string[];
  members: MemberProfile[];
}

/** One of a user's devices (≤ 10). */
export interface Device {
  device_id: string;
  name: string;
  platform: string;
  created_at: number;
  last_seen_at: number;
  connected: boolean;
  /** The device's push subscription (its type and failure count), or null without one. */
  push?: DevicePushState | null;
  /** The sign-in session the device last connected with (`DELETE /v1/sessions/{id}` signs it out). */
  session_id?: string;
}

/** A sign-in session (one login, renewed by its refresh token) as `GET /v1/sessions` lists it. */
export interface SessionInfo {
  session_id: string;
  created_at: number;
  /** Last refresh or connect with this session. */
  last_used_at: number;
  expires_at: number;
  /** The device that last connected with it, if any did. */
  device_id?: string;
  /** The session of the token that asked. */
  current: boolean;
}

/** One user's presence as others see it (PRESENCE frames, GET /v1/presence). */
export interface PresenceState {
  user_id: string;
  /** `offline` also for users who hide their presence (then last_seen is 0). */
  status: "online" | "away" | "offline";
  /** ms since the epoch when the user was last online; 0 = unknown or hidden. */
  last_seen: number;
}

/** What a change did to its target (MESSAGE_UPDATE.kind and UpdateBody.kind); `hidden` is delete for me. */
export type ChangeKind = "edited" | "deleted" | "reactions";

export interface TextBody {
  text: string;
}

/** A file sent as a message (docs/protocol.md "Attachments"). */
export interface AttachmentBody {
  attachment_id: string;
  content_type: string;
  size_bytes: number;
  file_name: string;
  /** 64 hex digits, checked by the server. */
  sha256: string;
  /** Unused: thumbnails travel inline (`thumbnail`). */
  thumbnail_url: string;
  caption: string;
  /** Pixels (images, video); 0 = unknown. */
  width: number;
  height: number;
  /** Audio and video; 0 = unknown. */
  duration_ms: number;
  /** A small preview made by the sender (≤ 16 KiB); empty when there is none. */
  thumbnail: Uint8Array;
  /** image/webp, image/jpeg or image/png. */
  thumbnail_type: string;
}

/** Written by the server only ("alice added bob"). */
export interface SystemBody {
  event: string;
  actor_user_id: string;
  target_user_ids: string[];
  text: string;
  /** `retention_set`: the lifetime of the channel's messages now in effect, ms; 0 = kept for ever. */
  retention_ms?: number;
}

export interface EncryptedBody {
  ciphertext: Uint8Array;
  key_ref: string;
  algorithm: string;
}

/**
 * A change to an earlier message, logged by the server as the channel's next seq. The SDK turns
 * it into a `messageUpdated` event (and keeps it out of `message` events and history pages).
 */
export interface UpdateBody {
  target_seq: number;
  kind: ChangeKind | (string & {});
  /** The target as it was when this change was read: content, reactions and flags. */
  target?: ChatMessage;
}

/** Exactly one body is set; none for a deleted message's tombstone. */
export interface MessageContent {
  text?: TextBody;
  attachment?: AttachmentBody;
  system?: SystemBody;
  encrypted?: EncryptedBody;
  update?: UpdateBody;
}

export interface Reaction {
  emoji: string;
  user_ids: string[];
}

/**
 * One message of a channel. `seq` is contiguous from 1 per channel and is the display order.
 * On the wire a field at its default (`[]`, `0`, `false`) may be left out; the SDK fills it in.
 */
export interface ChatMessage {
  channel_id: string;
  /** 32 hex digits: hlc ‖ seq. */
  server_msg_id: string;
  /** 16 hex digits; string order is clock order. */
  hlc: string;
  seq: number;
  client_msg_id: string;
  sender_user_id: string;
  sender_device_id: string;
  /** Server wall clock at append, ms since the epoch. */
  server_ts: number;
  content: MessageContent;
  reactions: Reaction[];
  /** 0 = never edited. */
  edited_at: number;
  /** Deleted for everyone: a tombstone with no content. */
  deleted: boolean;
  /** Deleted for me (this user, all their devices; set by the user's object, never stored in the channel): apps leave it out of the timeline. */
  hidden: boolean;
  /** Live deliveries only: the trace id of the SEND that stored it (docs/operations.md). */
  trace_id?: string;
}

/** A message changed (MESSAGE_UPDATE): `message` is the message as it is now; replace yours by (channel_id, seq). */
export interface MessageUpdate<M = ChatMessage> {
  message: M;
  /** `hidden`: this user deleted it for themselves (on any of their devices). */
  kind: ChangeKind | "hidden" | (string & {});
}

/** A page of a channel's history (HISTORY_PAGE, GET /v1/channels/{id}/messages). */
export interface HistoryPage<M = ChatMessage> {
  channel_id: string;
  /** Ascending seq. */
  messages: M[];
  /** Pass as `before` (paging back) or `after` (paging forward); 0 = the end. */
  next_cursor: number;
  has_more: boolean;
  /** The channel's newest seq. */
  last_seq: number;
  /**
   * The low-water mark: the lowest seq still stored; every seq below it has expired under the
   * channel's retention. 1 (0 from older servers) = nothing ever expired. Show "Older messages
   * have expired" at the top of history when it is above 1 and no older page remains.
   */
  min_seq?: number;
}

/** The account's privacy settings (`GET/PATCH /v1/me/settings`); both default to on. */
export interface UserSettings {
  /** Others see how far you have read ("Read by …"). */
  read_receipts: boolean;
  /** Others see when you are online and when you were last seen; off, you appear offline. */
  share_presence: boolean;
  /** Push notifications show the message's text (default on); off, only who wrote where. Absent from servers before push. */
  push_previews?: boolean;
  /**
   * Who may add you to groups: `everyone` (default), or `contacts`: only people you already share
   * a conversation with (a DM or a group). Absent from servers before it existed.
   */
  group_adds?: GroupAdds;
}

export type GroupAdds = "everyone" | "contacts";
