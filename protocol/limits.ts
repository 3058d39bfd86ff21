/** Protocol limits shared by the server and the client SDK. Changing one is a protocol change. */
export const LIMITS = {
  /** Largest WebSocket frame the server decodes; bigger frames get ERROR frame_too_large. */
  maxFrameBytes: 128 * 1024,
  /** Largest message content (UTF-8 bytes of the text, or ciphertext bytes). */
  maxContentBytes: 64 * 1024,
  /** Flow control window: frames a connection may have in flight before SLOWDOWN. */
  maxUnackedFrames: 64,
  /** History pages. */
  defaultPageSize: 50,
  maxPageSize: 200,
  /** Devices per user (seed Q8). */
  maxDevicesPerUser: 10,
  /** Members per group channel; broadcast channels have their own tier (DESIGN.md fan-out). */
  maxGroupMembers: 1000,
  /** Subscribers per broadcast channel (one-way: only its owner and admins post). */
  maxBroadcastSubscribers: 100_000,
  /** User ids per bulk add (POST /v1/channels/{id}/members/bulk). */
  maxBulkAdd: 1000,
  /** client_msg_id and device_id lengths. */
  maxClientMsgIdLength: 64,
  maxDeviceIdLength: 64,
  maxChannelNameLength: 100,
  maxEmojiLength: 32,
  /** Distinct emoji on one message; a new one past this is refused (existing ones can still be added to). */
  maxReactionsPerMessage: 50,
  /** A sender may edit their text messages this long after sending. */
  editWindowMs: 24 * 3600 * 1000,
  /** A sender may delete a message for everyone this long after sending; group owners and admins always may. */
  deleteWindowMs: 48 * 3600 * 1000,
  /**
   * A connection that sends nothing, not even the text `ping`, for this long is taken for dead (a
   * phone that lost its network without closing) and closed with 4408; clients ping every 30 s.
   */
  idleTimeoutMs: 90_000,
  /** A RESUME sends at most this many messages per channel; the client pages further back itself. */
  maxResumeMessagesPerChannel: 1000,
  /**
   * A channel's message lifetime (PATCH /v1/channels/{id} retention_ms) lies between these unless
   * the operator sets RETENTION_MIN_MS / RETENTION_MAX_MS (docs/decisions/019).
   */
  retentionMinMs: 3600 * 1000,
  retentionMaxMs: 365 * 24 * 3600 * 1000,
  /** Expired messages deleted per alarm tick; the alarm re-arms while more remain. */
  retentionBatch: 500,
} as const;

export const SUBPROTOCOL_PROTO = "edgechat.v1.proto";
export const SUBPROTOCOL_JSON = "edgechat.v1.json";
/** Wire encoding of a connection's frames, chosen by the subprotocol: binary protobuf or JSON text. */
export type Encoding = "proto" | "json";
/** Text heartbeat answered by the runtime without waking the UserObject (auto-response). */
export const PING = "ping";
export const PONG = "pong";
