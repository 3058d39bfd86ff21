/**
 * edgechat client SDK: realtime chat over one WebSocket per device, with an outbox that survives
 * disconnects, per-channel ordering and gap repair, and typed REST helpers. Runs in browsers,
 * Cloudflare Workers, Node ≥ 22, and Node 20 with the `ws` package installed.
 */
import { EdgechatClient } from "./client.js";
import type { ClientOptions } from "./types.js";

/**
 * Creates a client for one user on one device. Nothing touches the network until you call
 * `connect()` or a REST helper.
 *
 * @example
 * import { createClient } from "@edgechat/client";
 *
 * const client = createClient({
 *   url: "https://chat.example.com",
 *   deviceId: "web-7f3a",                       // stable per installation
 *   credentials: { username: "alice", password: "correct horse battery" },
 * });
 * client.on("message", (m) => console.log(m.channel_id, m.seq, m.content.text?.text));
 * await client.connect();
 * const ack = await client.send(channelId, "hello");
 */
export function createClient(options: ClientOptions): EdgechatClient {
  return new EdgechatClient(options);
}

export { EdgechatClient } from "./client.js";
export { EdgechatError, type ErrorCode, type EdgechatErrorInit } from "./errors.js";
export {
  attachmentContent, defaultUploadTransport, sha256Hex, UploadError,
  type UploadedAttachment, type UploadOptions, type UploadProgress, type UploadSource, type UploadTransport,
} from "./attachments.js";
export { Emitter, type Listener } from "./events.js";
export { backoffDelay, goAwayDelay, BACKOFF_BASE_MS, BACKOFF_CAP_MS } from "./backoff.js";
export { memoryStorage } from "./outbox.js";
export { indexedDbStorage, type IndexedDbStorageOptions } from "./storage-indexeddb.js";
export type {
  AttachmentBody, AuthSession, BulkAddResult, Channel, Invite, InvitePreview, ChannelEvent, ChannelMember, ChannelState, ChatMessage, ClientEvents, ClientOptions, ChannelPatch,
  Clock, ConnectionState, ConnectionStateChange, CreateChannelInput, Device, EncryptedBody, Encoding, FetchInit, FetchLike,
  FetchResponse, HelloInfo, HistoryOptions, HistoryPage, MemberPage, MessageContent, MessageUpdate, OutboxEntry, OutboxState,
  OutboxStorage, PendingSend, PresenceEvent, Reaction, ReadReceipt, Scheduler, SendAck, SendContent, SessionInfo, SocketEvent, UpdateBody,
  SlowdownEvent, SyncedEvent, SystemBody, TextBody, Truncation, TypingEvent, User, UserSettings, WebSocketConstructor, WebSocketLike,
} from "./types.js";
export type { PushConfig, PushPayload, PushProvider, PushSubscriptionInput, DevicePushState } from "../protocol/push.js";
