/**
 * Public types of the edgechat client SDK.
 *
 * Data that comes from the server (messages, channel states, acks) keeps the protocol's field
 * names (`channel_id`, `server_msg_id`, ...), so a message looks the same whether it arrived over
 * the WebSocket, from a REST call or from `JSON.stringify` in the devtools. SDK options and
 * methods are camelCase.
 */
import type { UploadTransport } from "./attachments.js";
import type { EdgechatError } from "./errors.js";
import type { Encoding } from "../protocol/limits.js";
import type {
  AttachmentBody, ChangeKind, ChannelState, ChatMessage, Device, EncryptedBody, HistoryPage as WireHistoryPage, MemberProfile,
  MessageContent, MessageUpdate, Reaction, SendAck, SessionInfo, SystemBody, TextBody, UpdateBody, UserSettings,
} from "../protocol/types.js";

// The wire shapes are defined once, in protocol/types.ts; the SDK hands them to apps as they are.
export type {
  AttachmentBody, ChangeKind, ChannelState, ChatMessage, Device, EncryptedBody, MemberProfile, MessageContent, MessageUpdate, Reaction,
  SendAck, SessionInfo, SystemBody, TextBody, UpdateBody, UserSettings,
};

/** Wire encoding of WebSocket frames: binary protobuf (default) or JSON text frames. */
export type { Encoding };

/**
 * Lifecycle of the realtime connection.
 *
 * - `offline`: not connected and not trying yet (before `connect()`), or the browser reports no
 *   network between reconnect attempts.
 * - `connecting`: opening the socket (and fetching a token first if needed).
 * - `open`: socket open, waiting for the server's HELLO.
 * - `resuming`: RESUME sent; missed messages are arriving; waiting for RESUMED.
 * - `ready`: in sync; sends flow.
 * - `reconnecting`: the socket dropped; waiting for the backoff timer.
 * - `closed`: stopped for good: `disconnect()`, or the server ended the session (replaced by another
 *   connection of this device, too many devices, authentication failed). Call `connect()` again.
 */
export type ConnectionState = "connecting" | "open" | "resuming" | "ready" | "reconnecting" | "offline" | "closed";

/**
 * What a client may send: text, or an uploaded file (`attachments.upload()`, then
 * `attachmentContent()`). Encrypted bodies answer `not_implemented` for now.
 */
export type SendContent =
  | { text: TextBody }
  | { attachment: Partial<AttachmentBody> & { attachment_id: string } }
  | { encrypted: Partial<EncryptedBody> & { ciphertext: Uint8Array } };

/**
 * A member of a channel. The server sends ids, roles and read cursors only (ids, not names):
 * `username` and `display_name` are empty unless you fill them from `client.users.profiles()`.
 */
export interface ChannelMember {
  user_id: string;
  username: string;
  display_name: string;
  role?: "owner" | "admin" | "member" | (string & {});
  joined_at?: number;
  last_read_seq?: number;
}

/** One page of a channel's members (`client.channels.members()`), in the order they joined. */
export interface MemberPage {
  members: ChannelMember[];
  /** Pass as `cursor` for the next page; "" on the last page. */
  next_cursor: string;
}

/** A gap the server did not send in full on RESUME (a broadcast channel's "jump to latest"). */
export interface Truncation {
  channel_id: string;
  from_seq: number;
  to_seq: number;
}

/** A channel as returned by the REST API (`POST /v1/channels`, `GET /v1/channels/{id}`). */
export interface Channel {
  channel_id: string;
  type: "dm" | "group" | "broadcast" | (string & {});
  name: string;
  member_count?: number;
  last_seq?: number;
  /** The first page of members (GET /v1/channels/{id}); page on with `client.channels.members()`. */
  members?: ChannelMember[];
  /** Cursor for the next page of members; "" or absent when `members` holds them all. */
  members_next_cursor?: string;
  /** The caller's role: "owner", "admin" or "member" (in a broadcast channel only owners and admins post). */
  my_role?: string;
  /** A broadcast channel's description. */
  description?: string;
  /**
   * How long messages are kept, ms: the channel's own lifetime or the server default; 0 = for
   * ever. Above 0, show "Messages older than 7 days disappear" (and a timer) in the header.
   */
  retention_ms?: number;
  /** The channel's own lifetime; null while the server default applies. */
  retention_setting?: number | null;
  /** The low-water mark: every seq below it has expired (1 = nothing has). */
  min_seq?: number;
}

/** PATCH /v1/channels/{id}: what to change; absent fields stay. */
export interface ChannelPatch {
  /** Disappearing messages: a lifetime in ms, or null for the server default. Owners and admins; either member of a DM. */
  retention_ms?: number | null;
  /** A group's or broadcast channel's name (owners and admins). */
  name?: string;
}

export interface HistoryPage extends WireHistoryPage {
  /**
   * Changes (edits, deletes, reactions) the page's range holds, oldest first, each with its
   * target as it is now. Messages in `messages` already show them; apply them to messages you
   * hold from elsewhere.
   */
  updates: MessageUpdate[];
}

export interface HistoryOptions {
  /** Older messages: seq < before. */
  before?: number;
  /** Newer messages: seq > after. */
  after?: number;
  /** 1..200, default 50. */
  limit?: number;
}

/** A read cursor moved: `user_id` has read everything up to `up_to_seq`. */
export interface ReadReceipt {
  channel_id: string;
  user_id: string;
  up_to_seq: number;
  /** Set on the reader's own devices. */
  unread_count: number;
}

export interface TypingEvent {
  channel_id: string;
  user_id: string;
  device_id: string;
  is_typing: boolean;
}

export interface PresenceEvent {
  user_id: string;
  status: "online" | "away" | "offline" | (string & {});
  last_seen: number;
}

/** The server's HELLO: who this connection is, and the limits it enforces. */
export interface HelloInfo {
  user_id: string;
  username: string;
  device_id: string;
  max_frame_bytes: number;
  max_content_bytes: number;
  max_unacked_frames: number;
  server_ts: number;
  protocol: string;
}

/** A person (`GET /v1/me`, `/v1/users`). */
export type User = MemberProfile;

/** What register, login and refresh return. Persist `refresh_token` to stay signed in. */
export interface AuthSession {
  user_id: string;
  username: string;
  display_name: string;
  access_token: string;
  refresh_token: string;
  /** Seconds until the access token expires. */
  expires_in: number;
  session_id: string;
}

export type CreateChannelInput =
  | { type: "dm"; /** user id or username */ member: string }
  | { type: "group"; name: string; /** user ids or usernames */ members: string[] }
  | { type: "broadcast"; name: string; description?: string };

/** POST /v1/channels/{id}/members/bulk: what happened to the ids given. */
export interface BulkAddResult {
  added: number;
  /** Members already (the call is idempotent). */
  already: number;
  /** Ids of no account; the first 100 are in `unknown_user_ids`. */
  unknown: number;
  /** Users whose data must stay in another jurisdiction. */
  refused: number;
  member_count: number;
  unknown_user_ids: string[];
}

/** An invite link of a group or broadcast channel. */
export interface Invite {
  code: string;
  /** The web app's join page for the code. */
  url: string;
  created_by: string;
  created_at: number;
  /** 0 = never. */
  expires_at: number;
  /** 0 = unlimited. */
  max_uses: number;
  uses: number;
}

/** What an invite link leads to (GET /v1/invites/{code}): never the members. */
export interface InvitePreview {
  channel: { channel_id: string; name: string; type: Channel["type"]; member_count: number };
  /** The caller belongs already. */
  member: boolean;
}

/** Lifecycle of one outgoing message. */
export type OutboxState = "sending" | "sent" | "failed";

/** An outgoing message: shown optimistically while `sending`, replaced by the server's ids once `sent`. */
export interface OutboxEntry {
  client_msg_id: string;
  channel_id: string;
  content: SendContent;
  /** Local clock, ms. */
  created_at: number;
  state: OutboxState;
  /** SEND frames written so far (retries reuse the same client_msg_id, so the server stores one). */
  attempts: number;
  /** Set once `sent`. */
  ack?: SendAck;
  /** Set once `failed`. */
  error?: { code: string; message: string };
  /** The account that queued it; entries of another account stay untouched in storage. */
  user_id?: string;
}

/**
 * Where the outbox keeps unsent messages so they survive a reload. The memory adapter is the
 * default; `indexedDbStorage()` persists in browsers. Methods may reject; the SDK reports that as
 * an `error` event and keeps working from memory.
 */
export interface OutboxStorage {
  /** Every stored entry, any order. */
  load(): Promise<OutboxEntry[]>;
  /** Insert or replace by `client_msg_id`. */
  put(entry: OutboxEntry): Promise<void>;
  delete(clientMsgId: string): Promise<void>;
}

/** A wall clock; injectable for tests. */
export interface Clock {
  now(): number;
}

/** Timers; injectable for tests. Handles are opaque. */
export interface Scheduler {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The event a socket listener receives: `data` for messages, `code`/`reason` for closes. */
export interface SocketEvent {
  data?: unknown;
  code?: number;
  reason?: string;
  type?: string;
}

/**
 * The part of the WHATWG WebSocket the SDK uses. Browsers', workerd's and the `ws` package's
 * WebSocket all satisfy it.
 */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "open" | "message" | "close" | "error", listener: (event: SocketEvent) => void): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export type { UploadTransport };

export interface FetchInit {
  method?: string;
  headers?: Record<string, string>;
  /** JSON text, or bytes (an avatar). */
  body?: string | Uint8Array<ArrayBuffer>;
}

export interface FetchResponse {
  readonly status: number;
  readonly ok: boolean;
  text(): Promise<string>;
  /** Binary answers (an avatar); every fetch has it. */
  arrayBuffer?(): Promise<ArrayBuffer>;
  readonly headers?: { get(name: string): string | null };
}

/** `globalThis.fetch` or anything shaped like it. */
export type FetchLike = (url: string, init?: FetchInit) => Promise<FetchResponse>;

export interface ClientOptions {
  /** The server's base URL, e.g. `https://chat.example.com` or `http://127.0.0.1:8787`. */
  url: string;
  /** Stable per installation: 1–64 of `[A-Za-z0-9_-]`. A user has at most 10 devices. */
  deviceId: string;
  /** An access token, if you already have one. */
  token?: string;
  /** A refresh token from an earlier session (see the `session` event). */
  refreshToken?: string;
  /** Used to log in when there is no token, and again if the refresh token stops working. */
  credentials?: { username: string; password: string };
  /** Default `"proto"`. */
  encoding?: Encoding;
  /** Default `globalThis.WebSocket`, or where there is none (Node 20) the `ws` package, loaded on connect(). */
  WebSocket?: WebSocketConstructor;
  /** Default `globalThis.fetch`. */
  fetch?: FetchLike;
  /** How uploads PUT their bytes; default XMLHttpRequest in browsers (progress), fetch elsewhere. */
  uploadTransport?: UploadTransport;
  clock?: Clock;
  scheduler?: Scheduler;
  /** Uniform in [0, 1); jitter for backoff. Default `Math.random`. */
  random?: () => number;
  /** Outbox persistence; default in memory. */
  storage?: OutboxStorage;
  /** Text `ping` interval. Default 30 000. */
  heartbeatIntervalMs?: number;
  /**
   * The socket is declared dead (and replaced) when nothing arrives this long after a ping.
   * Browsers also ping at once when the network goes offline or comes back. Default 10 000.
   */
  heartbeatTimeoutMs?: number;
  /** How long a request (history page, edit, ...) waits for its answer. Default 30 000. */
  requestTimeoutMs?: number;
  /** Socket open timeout. Default 15 000. */
  connectTimeoutMs?: number;
}

export interface ConnectionStateChange {
  state: ConnectionState;
  previous: ConnectionState;
  /** Why, when it is not obvious: a close code and reason, "goaway", "heartbeat timeout", ... */
  reason?: string;
  /** For `reconnecting`: when the next attempt starts. */
  retryInMs?: number;
}

export interface ChannelEvent {
  channel: ChannelState;
  /** `resumed`: from the RESUMED snapshot; `update`: a live CHANNEL_UPDATE. */
  source: "resumed" | "update";
}

export interface SyncedEvent {
  channels: ChannelState[];
  /**
   * Gaps RESUME left out on purpose: show "jump to latest" (or "older messages not loaded") at
   * `from_seq`; the client does not pull them. Page back with `history()` if the user asks.
   */
  truncated: Truncation[];
  /**
   * Seqs this device lacked that expired under the channel's retention before it could have them:
   * show "Older messages have expired" there; they cannot be pulled.
   */
  expired?: Truncation[];
}

/**
 * The server asked this client to slow down (SLOWDOWN: its user's or a channel's pending work is
 * past a threshold, docs/protocol.md "Overload"). New SENDs wait until `until`; nothing is lost.
 * Emitted with `sending_slowly: true` on each SLOWDOWN and once with `false` when the pause ends,
 * so an app can show "Sending slowly…" in between.
 */
export interface SlowdownEvent {
  sending_slowly: boolean;
  /** When sending resumes (ms since the epoch, by the client's clock). */
  until: number;
  /** The delay this SLOWDOWN asked for (0 on the event that ends the pause). */
  delay_ms: number;
  reason: string;
}

/** Every event the client emits, with its payload. */
export interface ClientEvents {
  /** A new message, once, in seq order per channel (including this device's own sends once acked). */
  message: ChatMessage;
  messageUpdated: MessageUpdate;
  /**
   * A user's profile (name, avatar) changed: the SDK dropped its cached copy; read it again with
   * `users.profiles([user_id])` and re-render. Sent for the user themself and their contacts.
   */
  profileUpdated: { user_id: string };
  /**
   * A member deleted their account: every message they sent in `channel_id` is now a tombstone
   * (re-read history, or blank what you show), and they have no profile any more: show "Deleted account".
   */
  accountDeleted: { channel_id: string; user_id: string; seq: number };
  read: ReadReceipt;
  typing: TypingEvent;
  presence: PresenceEvent;
  channel: ChannelEvent;
  connectionState: ConnectionStateChange;
  error: EdgechatError;
  /** A SEND was acknowledged (the message is durable). */
  ack: SendAck;
  /** An outbox entry was added or changed state. */
  outbox: OutboxEntry;
  /** A RESUME finished: every missed message has been emitted. */
  synced: SyncedEvent;
  /** SLOWDOWN began (or grew), or the pause ended. */
  slowdown: SlowdownEvent;
  /** Tokens changed (login, refresh): persist `refresh_token` if you want to stay signed in. */
  session: AuthSession;
  /**
   * The session was signed out elsewhere (a logout, "sign out this device" or "everywhere else"
   * from another device, or its refresh token was used twice). The client has forgotten its tokens
   * and credentials and stopped connecting: show the sign-in screen.
   */
  signedOut: EdgechatError;
}

/** `send()`'s result: a promise of the ack that also carries the id of the optimistic entry. */
export type PendingSend = Promise<SendAck> & {
  readonly clientMsgId: string;
  readonly channelId: string;
};
