/**
 * Shapes that both sides of the wire share: the server builds them, REST returns them as JSON,
 * frames carry them, the SDK hands them to apps. snake_case, like the proto field names.
 */

export interface MemberProfile {
  user_id: string;
  username: string;
  display_name: string;
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
}

/** One user's presence as others see it (PRESENCE frames, GET /v1/presence). */
export interface PresenceState {
  user_id: string;
  /** `offline` also for users who hide their presence (then last_seen is 0). */
  status: "online" | "away" | "offline";
  /** ms since the epoch when the user was last online; 0 = unknown or hidden. */
  last_seen: number;
}
