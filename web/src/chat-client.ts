/**
 * The client as the app sees it: the SDK's surface that the app uses, for a browser profile whose
 * tabs share one device and one socket. `TabClient` (tabs.ts) implements it over the SDK.
 */
import type {
  Channel, Invite, InvitePreview, MemberPage, ChannelState, ClientEvents, ConnectionState, CreateChannelInput, Device, HistoryOptions, HistoryPage, Listener, MessageUpdate,
  OutboxEntry, PushConfig, PushSubscriptionInput, SendAck, SendContent, SessionInfo, UploadedAttachment, UploadOptions, User, UserSettings,
} from "../../client/index.js";

/** The SDK's events, plus one of the app's own: an outbox entry was discarded (in any tab). */
export interface ChatEvents extends ClientEvents {
  discarded: { client_msg_id: string };
}

export interface ChatClient {
  readonly deviceId: string;
  readonly state: ConnectionState;
  on<K extends keyof ChatEvents>(type: K, listener: Listener<ChatEvents[K]>): () => void;
  channelStates(): ChannelState[];
  readonly outbox: {
    list(): OutboxEntry[];
    retry(clientMsgId: string): Promise<SendAck>;
    discard(clientMsgId: string): boolean;
  };

  /** Resolves once the socket is ready; rejects if it stopped for good (signed out, device refused). */
  connect(): Promise<void>;
  /** Drops the socket and connects at once, skipping the backoff wait. */
  reconnectNow(): void;
  /** This tab is done (signed out): it stops taking part. */
  close(): void;
  /** Ends the session on the server, then closes. */
  logout(): Promise<void>;

  /** Text, or an uploaded file (`attachmentContent()`). */
  send(channelId: string, content: string | SendContent): Promise<SendAck>;
  markRead(channelId: string, seq: number): Promise<void>;
  typing(channelId: string, isTyping?: boolean): Promise<void>;
  setPresence(status: "online" | "away"): Promise<void>;
  react(channelId: string, seq: number, emoji: string, op?: "add" | "remove"): Promise<MessageUpdate>;
  editMessage(channelId: string, seq: number, text: string): Promise<MessageUpdate>;
  deleteMessage(channelId: string, seq: number, options?: { forEveryone?: boolean }): Promise<MessageUpdate>;
  history(channelId: string, options?: HistoryOptions): Promise<HistoryPage>;

  me(): Promise<User>;
  readonly users: { get(userId: string): Promise<User> };
  readonly channels: {
    create(input: CreateChannelInput): Promise<Channel>;
    get(channelId: string): Promise<Channel>;
    addMembers(channelId: string, members: string[]): Promise<Channel>;
    /** Disappearing messages: a lifetime in ms, or null for the server default. */
    setRetention(channelId: string, ms: number | null): Promise<Channel>;
    /** Mute (no push notifications) or unmute, on all of the user's devices. */
    mute(channelId: string, muted: boolean): Promise<ChannelState>;
    /** A page of members after `cursor`, in the order they joined. */
    members(channelId: string, options?: { cursor?: string; limit?: number }): Promise<MemberPage>;
  };
  /** Invite links: made by owners and admins, previewed and used by anyone signed in. */
  readonly invites: {
    create(channelId: string, options?: { max_uses?: number; expires_in_s?: number }): Promise<Invite>;
    preview(code: string): Promise<InvitePreview>;
    join(code: string): Promise<{ channel: Channel; joined: boolean }>;
  };
  readonly devices: {
    list(): Promise<Device[]>;
    register(input?: { device_id?: string; name?: string; platform?: string; push?: PushSubscriptionInput | null }): Promise<Device>;
    pushConfig(): Promise<PushConfig>;
    remove(deviceId: string): Promise<void>;
  };
  /** Files: upload (progress, abort, resume), then `send()` the result; download URLs. */
  readonly attachments: {
    upload(file: Blob, options: UploadOptions): Promise<UploadedAttachment>;
    resume(attachmentId: string, file: Blob, options?: Pick<UploadOptions, "onProgress" | "signal" | "concurrency">): Promise<UploadedAttachment>;
    cancel(attachmentId: string): Promise<void>;
    url(attachmentId: string): Promise<{ url: string; expires_at: number; attachment: UploadedAttachment }>;
  };
  readonly sessions: {
    list(): Promise<SessionInfo[]>;
    signOut(sessionId: string): Promise<void>;
    signOutOthers(): Promise<number>;
  };
  readonly settings: {
    get(): Promise<UserSettings>;
    update(patch: Partial<UserSettings>): Promise<UserSettings>;
  };
  readonly account: {
    /** Everything the server holds about the user, as GET /v1/me/export returns it. */
    export(): Promise<Record<string, unknown>>;
    rename(displayName: string): Promise<User>;
    setAvatar(data: Uint8Array, contentType: string): Promise<User>;
    removeAvatar(): Promise<User>;
    avatar(avatarUrl: string): Promise<{ bytes: Uint8Array; type: string }>;
    /** Resolves with how many other sessions were signed out. */
    changePassword(currentPassword: string, newPassword: string): Promise<number>;
    /** Starts the account's erasure; every session ends, this one too. */
    delete(password: string): Promise<{ started_at: number }>;
  };
}
