/**
 * The client: wires the connection, the outbox, the per-channel store and the REST API together
 * and speaks the protocol conversation of docs/protocol.md (HELLO → RESUME → DELIVERs → RESUMED,
 * then live traffic).
 */
import { pb, utf8Length, type Frame, type FrameInit } from "../protocol/codec.js";
import { LIMITS } from "../protocol/limits.js";
import type { PushConfig, PushSubscriptionInput } from "../protocol/push.js";
import { Attachments, defaultUploadTransport, type UploadedAttachment, type UploadOptions, type UploadSource } from "./attachments.js";
import { Auth, jwtExpiry } from "./auth.js";
import { backoffDelay } from "./backoff.js";
import { ChannelStore } from "./channel-store.js";
import { Connection, type ConnectionConfig } from "./connection.js";
import { EdgechatError, isAuthCode, isSignedOutCode } from "./errors.js";
import { Emitter, type Listener } from "./events.js";
import { memoryStorage, Outbox } from "./outbox.js";
import { ProfileCache } from "./profiles.js";
import { Requests } from "./requests.js";
import { endpoints, Http, RestApi } from "./rest.js";
import { systemClock, systemScheduler, uuid } from "./scheduler.js";
import { loadWsPackage, NO_WEBSOCKET_MESSAGE, platformWebSocket } from "./websocket.js";
import type {
  AuthSession, BulkAddResult, Channel, Invite, InvitePreview, ChannelState, ChatMessage, ClientEvents, ClientOptions, Clock, ConnectionState, CreateChannelInput, ChannelPatch,
  Device, FetchLike, HelloInfo, HistoryOptions, HistoryPage, MemberPage, MessageUpdate, OutboxEntry, PendingSend, PresenceEvent, Scheduler, SendAck, SendContent,
  SessionInfo, User, UserSettings,
} from "./types.js";
import {
  contentInit, sentContent, toChannelState, toChatMessage, toHello, toHistoryPage, toMessageUpdate, toPresence, updateOf, withUpdatesApart,
  toReadReceipt, toSendAck, toTyping,
} from "./wire.js";

const T = pb.FrameType;
const DEFAULT_HEARTBEAT_MS = 30_000;
const DEFAULT_HEARTBEAT_TIMEOUT_MS = 10_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
/**
 * TYPING, READ and PRESENCE_HEARTBEAT have no success reply; an ERROR (e.g. not_implemented)
 * comes back within a round trip. Silence for this long counts as success.
 */
const NOTIFY_GRACE_MS = 5_000;
const GAP_PAGE_SIZE = LIMITS.maxPageSize;
const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Inline thumbnails of attachment messages (the server's limit, durable-objects/channel/content.ts). */
const MAX_THUMBNAIL_BYTES = 16 * 1024;

type RequestInit = Omit<FrameInit, "request_id">;

interface RequestOptions {
  timeoutMs: number;
  /** Silence until the timeout means success (fire-and-forget frames). */
  silenceIsSuccess?: boolean;
  matches?: (frame: Frame) => boolean;
}

/**
 * An edgechat client: one user on one device. Create it with `createClient()`.
 *
 * @example
 * const client = createClient({ url: "https://chat.example.com", deviceId: "laptop-1", credentials: { username, password } });
 * client.on("message", (m) => render(m));
 * await client.connect();
 * await client.send(channelId, "hello");
 */
/** A resume token this close to its expiry is not worth trying. */
const RESUME_TOKEN_MARGIN_MS = 30_000;

export class EdgechatClient {
  readonly deviceId: string;
  private readonly events = new Emitter<ClientEvents>();
  private readonly clock: Clock;
  /** From the server's RESUME_HINT: reopens this device's socket while the access token is stale. */
  private resumeToken: { token: string; expiresAt: number } | undefined;
  private readonly scheduler: Scheduler;
  private readonly random: () => number;
  private readonly requestTimeoutMs: number;
  private readonly connectionConfig: ConnectionConfig;
  private readonly socketBase: string;
  private readonly auth: Auth;
  private readonly api: RestApi;
  private readonly files: Attachments;
  private readonly profileCache: ProfileCache;
  private readonly conn: Connection;
  private readonly requests: Requests;
  private readonly queue: Outbox;
  private readonly restored: Promise<void>;
  private store = new ChannelStore();
  private readonly states = new Map<string, ChannelState>();
  private readonly readSent = new Map<string, number>();
  /** SENDs written on the current connection (SEND.send_seq). */
  private sendSeq = 0;
  private hello: HelloInfo | undefined;
  private connectWaiters: { resolve(): void; reject(err: EdgechatError): void }[] = [];
  private ackTimer: unknown;
  private pumpTimer: unknown;
  private pumpAt = Infinity;
  /** The end of the longest SLOWDOWN pause asked for; its timer announces the end. */
  private slowedUntil = 0;
  private slowdownTimer: unknown;

  constructor(options: ClientOptions) {
    if (!DEVICE_ID.test(options.deviceId)) {
      throw new EdgechatError({ code: "invalid_argument", message: "deviceId must be 1–64 characters of [A-Za-z0-9_-]." });
    }
    this.deviceId = options.deviceId;
    this.clock = options.clock ?? systemClock;
    this.scheduler = options.scheduler ?? systemScheduler;
    this.random = options.random ?? Math.random;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const urls = endpoints(options.url);
    this.socketBase = urls.socket;
    const http = new Http(urls.rest, options.fetch ?? defaultFetch());
    const authOptions: { token?: string; refreshToken?: string; credentials?: { username: string; password: string } } = {};
    if (options.token !== undefined) authOptions.token = options.token;
    if (options.refreshToken !== undefined) authOptions.refreshToken = options.refreshToken;
    if (options.credentials !== undefined) authOptions.credentials = options.credentials;
    this.auth = new Auth(http, this.clock, authOptions, (session) => this.events.emit("session", session), (err) => this.onSignedOut(err));
    this.api = new RestApi(http, this.auth);
    this.files = new Attachments({ call: (method, path, body) => this.api.request(method, path, body) }, options.uploadTransport ?? defaultUploadTransport());
    this.profileCache = new ProfileCache((ids) => this.api.profiles(ids));
    this.requests = new Requests(this.scheduler);
    this.queue = new Outbox(options.storage ?? memoryStorage(), this.clock, {
      changed: (entry) => this.events.emit("outbox", entry),
      storageFailed: (err) => this.events.emit("error", new EdgechatError({ code: "storage_error", message: `Outbox storage failed: ${err instanceof Error ? err.message : String(err)}` })),
    });
    this.restored = this.queue.restore();
    this.connectionConfig = {
      encoding: options.encoding ?? "proto",
      // Undefined on Node 20 without the option: connect() loads the `ws` package first.
      WebSocket: options.WebSocket ?? platformWebSocket(),
      clock: this.clock,
      scheduler: this.scheduler,
      random: this.random,
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? DEFAULT_HEARTBEAT_MS,
      heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    };
    this.conn = new Connection(
      this.connectionConfig,
      {
        socketUrl: () => this.socketUrl(),
        renewAuth: async () => {
          this.resumeToken = undefined; // refused, or about to be: renew the access token instead
          if (!this.auth.canRenew()) {
            throw new EdgechatError({ code: "unauthorized", message: "The server rejected the access token and there is no refresh token or credentials to renew it." });
          }
          this.auth.invalidate();
          await this.auth.refresh();
        },
        opened: () => {},
        frame: (frame) => this.onFrame(frame),
        down: () => this.onDown(),
        state: (change) => this.events.emit("connectionState", change),
        warn: (err) => this.events.emit("error", err),
        fatal: (err) => {
          if (isSignedOutCode(err.code)) this.auth.sessionEnded(err);
          else this.events.emit("error", err);
          this.settleConnect(err);
        },
      },
    );
  }

  // ---- Events and state ------------------------------------------------------------------------

  /**
   * Subscribes to an event; returns the unsubscribe function.
   *
   * @example
   * const off = client.on("connectionState", ({ state }) => setBanner(state));
   */
  on<K extends keyof ClientEvents>(type: K, listener: Listener<ClientEvents[K]>): () => void {
    return this.events.on(type, listener);
  }

  /** Like `on`, for the next event only. */
  once<K extends keyof ClientEvents>(type: K, listener: Listener<ClientEvents[K]>): () => void {
    return this.events.once(type, listener);
  }

  off<K extends keyof ClientEvents>(type: K, listener: Listener<ClientEvents[K]>): void {
    this.events.off(type, listener);
  }

  get state(): ConnectionState {
    return this.conn.state;
  }

  /** The server's HELLO on the current (or last) connection: user id, limits. */
  get helloInfo(): HelloInfo | undefined {
    return this.hello ? { ...this.hello } : undefined;
  }

  /** The signed-in user's id, once known (login or HELLO). */
  get userId(): string | undefined {
    return this.hello?.user_id ?? (this.auth.session()?.user_id || undefined);
  }

  /** The current tokens, if this client logged in, registered or refreshed. */
  session(): AuthSession | undefined {
    return this.auth.session();
  }

  /**
   * Every channel's state from the last RESUMED, kept current by CHANNEL_UPDATE, READ and new
   * messages.
   *
   * @example
   * const unread = client.channelStates().reduce((n, c) => n + c.unread_count, 0);
   */
  channelStates(): ChannelState[] {
    return [...this.states.values()].map((s) => ({ ...s, member_user_ids: [...s.member_user_ids] }));
  }

  /** Highest seq of a channel this client holds without holes (its RESUME cursor). */
  cursor(channelId: string): number | undefined {
    return this.store.contiguous(channelId);
  }

  // ---- Connection ------------------------------------------------------------------------------

  /**
   * Connects (logging in first if only credentials were given) and resolves once the client is
   * `ready`: RESUME finished and every missed message was emitted. It keeps reconnecting in the
   * background; it rejects only if the connection stops for good (authentication failed, device
   * replaced or refused) or `disconnect()` is called first.
   *
   * @example
   * await client.connect();
   */
  connect(): Promise<void> {
    if (this.conn.state === "ready") return Promise.resolve();
    const ready = handled(new Promise<void>((resolve, reject) => this.connectWaiters.push({ resolve, reject })));
    if (this.connectionConfig.WebSocket) this.conn.start();
    else void this.startWithWsPackage();
    return ready;
  }

  /** Node 20 has no WebSocket of its own: load the optional `ws` package, then start. */
  private async startWithWsPackage(): Promise<void> {
    const WebSocketImpl = await loadWsPackage();
    if (this.connectWaiters.length === 0) return; // disconnect() came first
    if (!WebSocketImpl) {
      this.settleConnect(new EdgechatError({ code: "invalid_argument", message: NO_WEBSOCKET_MESSAGE }));
      return;
    }
    this.connectionConfig.WebSocket ??= WebSocketImpl;
    this.conn.start();
  }

  /**
   * Closes the connection and stops reconnecting. Unsent messages stay in the outbox and go out
   * on the next `connect()`.
   */
  disconnect(): void {
    this.conn.stop();
    if (this.slowdownTimer !== undefined) this.scheduler.clearTimeout(this.slowdownTimer);
    this.slowdownTimer = undefined;
    this.settleConnect(new EdgechatError({ code: "disconnected", message: "disconnect() was called before the connection was ready." }));
  }

  private settleConnect(err?: EdgechatError): void {
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) {
      if (err) w.reject(err);
      else w.resolve();
    }
  }

  private async socketUrl(): Promise<string> {
    await this.restored;
    const device = `${this.socketBase}?device_id=${encodeURIComponent(this.deviceId)}`;
    // Reconnecting after the access token expired (a laptop waking up): the last connection's
    // resume token opens the socket at once, without a refresh round trip first.
    const resume = this.resumeToken;
    if (resume && resume.expiresAt - RESUME_TOKEN_MARGIN_MS > this.clock.now() && !this.auth.hasFreshAccessToken()) {
      return `${device}&resume_token=${encodeURIComponent(resume.token)}`;
    }
    return `${device}&access_token=${encodeURIComponent(await this.auth.accessToken())}`;
  }

  private onDown(): void {
    this.requests.dropAll();
    this.queue.requeueAll();
    this.store.resetPulls();
    this.clearPumpTimer();
  }

  // ---- Incoming frames -------------------------------------------------------------------------

  private onFrame(frame: Frame): void {
    switch (frame.type) {
      case T.HELLO:
        return this.onHello(frame);
      case T.RESUMED:
        return this.onResumed(frame);
      case T.DELIVER:
        for (const m of frame.deliver?.messages ?? []) this.ingest(toChatMessage(m));
        this.scheduleAckFlush();
        return;
      case T.SEND_ACK:
        return this.onSendAck(frame);
      case T.ERROR:
        return this.onError(frame);
      case T.HISTORY_PAGE:
        this.requests.answer(frame);
        return;
      case T.READ:
        return this.onRead(frame);
      case T.CHANNEL_UPDATE: {
        this.requests.answer(frame);
        const channel = toChannelState(frame.channel_update?.channel ?? {});
        if (channel.channel_id === "") return;
        this.states.set(channel.channel_id, channel);
        this.events.emit("channel", { channel: { ...channel }, source: "update" });
        return;
      }
      case T.TYPING:
        this.requests.answer(frame);
        this.events.emit("typing", toTyping(frame.typing ?? {}));
        return;
      case T.PRESENCE:
        this.requests.answer(frame);
        this.events.emit("presence", toPresence(frame.presence ?? {}));
        return;
      case T.MESSAGE_UPDATE:
        this.requests.answer(frame);
        this.events.emit("messageUpdated", toMessageUpdate(frame.message_update ?? {}));
        return;
      case T.PROFILE_UPDATE: {
        const userId = frame.profile_update?.user_id ?? "";
        if (userId === "") return;
        this.profileCache.invalidate(userId);
        this.events.emit("profileUpdated", { user_id: userId });
        return;
      }
      case T.SLOWDOWN:
        return this.onSlowdown(frame.slowdown?.delay_ms ?? 0, frame.slowdown?.reason ?? "");
      case T.GOAWAY:
        this.conn.goAway(frame.goaway?.reconnect_after_ms ?? 0);
        return;
      case T.CONFLICT:
        this.conn.markReplaced(frame.conflict?.reason ?? "");
        return;
      case T.RESUME_HINT: {
        // The token to reconnect this device with (docs/protocol.md, "Reconnecting"). Gateway
        // pinning (seed §7.3) has no meaning on Workers: every edge reaches the same objects.
        const token = frame.resume_hint?.session_token ?? "";
        this.resumeToken = token ? { token, expiresAt: jwtExpiry(token) ?? 0 } : undefined;
        return;
      }
      default:
        this.events.emit("error", new EdgechatError({ code: "unexpected_frame", message: `The server sent a ${pb.FrameType[frame.type] ?? frame.type} frame, which only clients send.` }));
    }
  }

  private onHello(frame: Frame): void {
    const hello = toHello(frame.hello ?? {});
    if (this.hello && hello.user_id !== "" && this.hello.user_id !== hello.user_id) {
      // Another account on the same client: nothing this client holds applies to it.
      this.store = new ChannelStore();
      this.states.clear();
      this.readSent.clear();
    }
    this.hello = hello;
    this.sendSeq = 0; // per connection: the server orders this connection's SENDs by it
    if (hello.user_id !== "") this.queue.setUser(hello.user_id);
    this.conn.send({ type: T.RESUME, resume: { cursors: this.store.cursors(), full: false } });
    this.conn.markResuming();
  }

  private onResumed(frame: Frame): void {
    const channels = (frame.resumed?.channels ?? []).map(toChannelState).filter((c) => c.channel_id !== "");
    const truncated = (frame.resumed?.truncated ?? [])
      .map((t) => ({ channel_id: t.channel_id ?? "", from_seq: Number(t.from_seq ?? 0), to_seq: Number(t.to_seq ?? 0) }))
      .filter((t) => t.channel_id !== "" && t.to_seq >= t.from_seq);
    const expired = (frame.resumed?.expired ?? [])
      .map((t) => ({ channel_id: t.channel_id ?? "", from_seq: Number(t.from_seq ?? 0), to_seq: Number(t.to_seq ?? 0) }))
      .filter((t) => t.channel_id !== "" && t.to_seq >= t.from_seq);
    // Left out on purpose ("jump to latest") or gone (expired): continue after the hole instead of pulling it.
    for (const t of [...truncated, ...expired]) for (const m of this.store.skipTo(t.channel_id, t.to_seq)) this.emitMessage(m);
    this.states.clear();
    for (const c of channels) {
      this.states.set(c.channel_id, c);
      if (c.left) continue;
      // The server sent every missing message before RESUMED: a channel that still has no
      // starting point is fully caught up at last_seq.
      if (this.store.isAnchored(c.channel_id)) this.store.expect(c.channel_id, c.last_seq);
      else for (const m of this.store.anchor(c.channel_id, c.last_seq)) this.emitMessage(m);
    }
    this.conn.markReady();
    for (const c of channels) this.events.emit("channel", { channel: { ...c }, source: "resumed" });
    this.events.emit("synced", { channels: this.channelStates(), truncated, expired });
    this.settleConnect();
    for (const id of this.store.channelsNeedingPull()) this.pullGap(id);
    this.scheduleAckFlush();
    this.pump();
  }

  /** Every incoming message goes through here: dedup, order, gaps, outbox resolution. */
  private ingest(message: ChatMessage, own = false): void {
    if (message.channel_id === "" || message.seq < 1) return;
    const me = this.hello?.user_id;
    if (!own && message.client_msg_id !== "" && me !== undefined && message.sender_user_id === me && this.queue.isPending(message.client_msg_id)) {
      // Our own message came back (RESUME after a lost SEND_ACK, or from history): it is stored.
      this.acknowledge({
        channel_id: message.channel_id, client_msg_id: message.client_msg_id, server_msg_id: message.server_msg_id,
        hlc: message.hlc, seq: message.seq, server_ts: message.server_ts, status: "duplicate",
      });
    }
    for (const m of this.store.add(message, own)) this.emitMessage(m);
    if (this.store.needsPull(message.channel_id)) this.pullGap(message.channel_id);
  }

  private emitMessage(message: ChatMessage): void {
    const state = this.states.get(message.channel_id);
    const update = message.content.update;
    if (update) {
      // A change to an earlier message: it moves the cursor, not the channel's activity or unread count.
      if (state && message.seq > state.last_seq) {
        state.last_seq = message.seq;
        const target = update.target;
        const unreadGone = update.kind === "deleted" && target !== undefined && target.sender_user_id !== this.hello?.user_id && update.target_seq > state.last_read_seq;
        if (unreadGone) state.unread_count = Math.max(0, state.unread_count - 1);
      }
      const change = updateOf(message);
      if (change) this.events.emit("messageUpdated", change);
      return;
    }
    const system = message.content.system;
    if (system?.event === "account_deleted") {
      for (const userId of system.target_user_ids ?? []) {
        this.profileCache.invalidate(userId);
        this.events.emit("accountDeleted", { channel_id: message.channel_id, user_id: userId, seq: message.seq });
      }
    }
    if (state && message.seq > state.last_seq) {
      state.last_seq = message.seq;
      state.last_activity_hlc = message.hlc || state.last_activity_hlc;
      state.last_activity_at = message.server_ts || state.last_activity_at;
      // As the server counts (user/channel-list.ts foldMessages): writing means having read up to
      // there, on every device of the writer (the channel moves their cursor); messages from
      // others count, system notices ("alice added bob") do not. Messages come here in seq
      // order, so nothing after this one is counted yet.
      const mine = message.sender_user_id === this.hello?.user_id;
      if (mine && !message.content.system) {
        state.last_read_seq = Math.max(state.last_read_seq, message.seq);
        state.unread_count = 0;
      } else if (!mine && !message.content.system && message.seq > state.last_read_seq) {
        state.unread_count += 1;
      }
      // A broadcast channel counts every seq after the cursor (decision 018).
      if (state.type === "broadcast") state.unread_count = Math.max(0, state.last_seq - state.last_read_seq);
    }
    this.events.emit("message", message);
  }

  private onSendAck(frame: Frame): void {
    const ack = toSendAck(frame.send_ack ?? {});
    if (frame.request_id !== 0) this.requests.cancel(frame.request_id);
    const entry = this.acknowledge(ack);
    if (entry) {
      const me = this.hello?.user_id ?? entry.user_id ?? "";
      this.ingest({
        channel_id: ack.channel_id || entry.channel_id, server_msg_id: ack.server_msg_id, hlc: ack.hlc, seq: ack.seq,
        client_msg_id: ack.client_msg_id, sender_user_id: me, sender_device_id: this.deviceId, server_ts: ack.server_ts,
        content: sentContent(entry.content), reactions: [], edited_at: 0, deleted: false, hidden: false,
      }, true);
      this.scheduleAckFlush();
    }
    this.pump();
  }

  private acknowledge(ack: SendAck): OutboxEntry | undefined {
    const pending = this.queue.get(ack.client_msg_id);
    if (!pending) return undefined;
    const full: SendAck = { ...ack, channel_id: ack.channel_id || pending.channel_id };
    const requestId = this.queue.byClientMsgId(ack.client_msg_id);
    if (requestId !== undefined) this.requests.cancel(requestId);
    const entry = this.queue.acknowledge(full);
    if (entry) this.events.emit("ack", full);
    return entry;
  }

  private onError(frame: Frame): void {
    const e = frame.error ?? {};
    const requestId = frame.request_id || (e.request_id ?? 0);
    const err = new EdgechatError({
      code: e.code || "internal",
      message: e.message || `The server answered ERROR ${e.code ?? ""}`.trim(),
      retryable: e.retryable === true,
      ...(e.backoff_hint_ms ? { backoffHintMs: e.backoff_hint_ms } : {}),
      ...(requestId ? { requestId } : {}),
      ...(e.channel_id ? { channelId: e.channel_id } : {}),
      ...(e.client_msg_id ? { clientMsgId: e.client_msg_id } : {}),
      ...(e.trace_id ? { traceId: e.trace_id } : {}),
    });
    if (requestId !== 0 && this.requests.fail(requestId, err)) return;
    if (e.client_msg_id && this.queue.isPending(e.client_msg_id)) {
      this.sendFailed(e.client_msg_id, err);
      return;
    }
    // Not tied to a request: about the connection itself.
    if (err.backoffHintMs !== undefined) this.conn.hint(err.backoffHintMs);
    // These announce a close (4401 / 4410 / 4009) that the connection handles and reports.
    if (isAuthCode(err.code) || isSignedOutCode(err.code) || err.code === "too_many_devices") return;
    this.events.emit("error", err);
  }

  private onRead(frame: Frame): void {
    this.requests.answer(frame);
    const read = toReadReceipt(frame.read ?? {});
    const state = this.states.get(read.channel_id);
    if (state && read.user_id !== "" && read.user_id === this.hello?.user_id) {
      if (read.up_to_seq >= state.last_read_seq) {
        state.last_read_seq = read.up_to_seq;
        state.unread_count = read.unread_count;
      }
    }
    this.events.emit("read", read);
  }

  // ---- Gap filling and delivery acks -----------------------------------------------------------

  private pullGap(channelId: string): void {
    if (this.conn.state !== "ready" || !this.store.needsPull(channelId)) return;
    const from = this.store.beginPull(channelId);
    const requestId = this.requests.nextId();
    const retryLater = (ms: number): void => {
      this.store.cancelPull(channelId);
      this.scheduler.setTimeout(() => this.pullGap(channelId), ms);
    };
    this.requests.track(requestId, this.requestTimeoutMs, {
      answer: (frame) => {
        const page = toHistoryPage(frame.history_page ?? {});
        if (page.last_seq > 0) this.store.expect(channelId, page.last_seq);
        // Below the low-water mark the gap has expired: nothing to pull there.
        if ((page.min_seq ?? 0) - 1 > from) for (const m of this.store.skipTo(channelId, page.min_seq! - 1)) this.emitMessage(m);
        for (const m of page.messages) this.ingest({ ...m, channel_id: m.channel_id || channelId });
        const outcome = this.store.endPull(channelId, from);
        if (outcome.gaveUp) {
          this.events.emit("error", new EdgechatError({ code: "gap_unfillable", message: `Messages after seq ${from} of ${channelId} could not be fetched; they were skipped.`, channelId }));
        }
        for (const m of outcome.released) this.emitMessage(m);
        this.scheduleAckFlush();
        if (this.store.needsPull(channelId)) this.pullGap(channelId);
      },
      error: (err) => {
        if (err.retryable || isAuthCode(err.code)) retryLater(Math.max(err.backoffHintMs ?? 0, backoffDelay(0, this.random)));
        else {
          this.store.abandonPull(channelId);
          this.events.emit("error", err);
        }
      },
      timeout: () => retryLater(0),
      dropped: () => {},
    });
    if (!this.conn.send({ type: T.PULL_HISTORY, request_id: requestId, pull_history: { channel_id: channelId, after_seq: from, limit: GAP_PAGE_SIZE } })) {
      this.requests.cancel(requestId);
      this.store.cancelPull(channelId);
    }
  }

  /** DELIVER_ACK is cumulative: one per channel per batch of frames is enough. */
  private scheduleAckFlush(): void {
    if (this.ackTimer !== undefined) return;
    this.ackTimer = this.scheduler.setTimeout(() => {
      this.ackTimer = undefined;
      if (!this.conn.canSend) return;
      for (const a of this.store.takeAcks()) this.conn.send({ type: T.DELIVER_ACK, deliver_ack: a });
    }, 0);
  }

  // ---- Outbox ----------------------------------------------------------------------------------

  /**
   * Sends a message. It is queued at once (an optimistic `outbox` entry in state "sending") and
   * retried across reconnects with the same client_msg_id until the server acknowledges it. The
   * result is a promise of the SEND_ACK carrying the entry's `clientMsgId`; it rejects only for
   * failures that retrying cannot fix (not_member, content_too_large, ...).
   *
   * @example
   * const pending = client.send(channelId, "hello");
   * showOptimistic(pending.clientMsgId);
   * const ack = await pending; // { seq, server_msg_id, status, ... }
   *
   * `options.clientMsgId` names the entry yourself (1–64 printable ASCII characters), for a
   * caller that may hand the same message over twice (e.g. several browser tabs sharing one
   * client): a send whose id is still in the outbox joins that entry instead of adding another,
   * and one already acknowledged is stored once by the server.
   */
  send(channelId: string, content: string | SendContent, options: { clientMsgId?: string } = {}): PendingSend {
    const clientMsgId = options.clientMsgId ?? uuid();
    const body: SendContent = typeof content === "string" ? { text: { text: content } } : content;
    const invalid = this.validateSend(channelId, body);
    if (invalid) return Object.assign(handled(Promise.reject<SendAck>(invalid)), { clientMsgId, channelId });
    const { ack } = this.queue.add(clientMsgId, channelId, body);
    this.pump();
    return Object.assign(ack, { clientMsgId, channelId });
  }

  private validateSend(channelId: string, content: SendContent): EdgechatError | undefined {
    if (typeof channelId !== "string" || channelId === "") return new EdgechatError({ code: "invalid_argument", message: "send() needs a channel id." });
    const max = this.hello?.max_content_bytes || LIMITS.maxContentBytes;
    let size = 0;
    if ("text" in content) {
      if (typeof content.text?.text !== "string" || content.text.text === "") return new EdgechatError({ code: "invalid_argument", message: "A text message cannot be empty." });
      size = utf8Length(content.text.text);
    } else if ("encrypted" in content) {
      size = content.encrypted.ciphertext.byteLength;
    } else if ("attachment" in content) {
      if (typeof content.attachment?.attachment_id !== "string") return new EdgechatError({ code: "invalid_argument", message: "An attachment message needs the attachment_id of a finished upload." });
      const thumb = content.attachment.thumbnail?.byteLength ?? 0;
      if (thumb > MAX_THUMBNAIL_BYTES) return new EdgechatError({ code: "content_too_large", message: `The thumbnail is ${thumb} bytes; the limit is ${MAX_THUMBNAIL_BYTES}.` });
      size = utf8Length(content.attachment.caption ?? "");
    }
    if (size > max) return new EdgechatError({ code: "content_too_large", message: `The message is ${size} bytes; the limit is ${max}.` });
    return undefined;
  }

  /** Writes due outbox entries, at most the flow-control window in flight. */
  /**
   * SLOWDOWN: the outbox sends nothing new until the pause ends (SENDs already out still get
   * their answers), then picks up where it stopped. The app hears of both ends ("slowdown").
   */
  private onSlowdown(delayMs: number, reason: string): void {
    const until = this.clock.now() + Math.max(0, delayMs);
    this.queue.pause(until);
    if (until > this.slowedUntil) {
      this.slowedUntil = until;
      if (this.slowdownTimer !== undefined) this.scheduler.clearTimeout(this.slowdownTimer);
      this.slowdownTimer = this.scheduler.setTimeout(() => {
        this.slowdownTimer = undefined;
        this.events.emit("slowdown", { sending_slowly: false, until: this.slowedUntil, delay_ms: 0, reason: "" });
        this.pump();
      }, until - this.clock.now());
    }
    this.events.emit("slowdown", { sending_slowly: true, until: this.slowedUntil, delay_ms: delayMs, reason });
    this.pump();
  }

  /** Whether a SLOWDOWN's pause is running now. */
  get sendingSlowly(): boolean {
    return this.clock.now() < this.slowedUntil;
  }

  private pump(): void {
    if (this.conn.state !== "ready") return;
    const window = Math.min(LIMITS.maxUnackedFrames, this.hello?.max_unacked_frames || LIMITS.maxUnackedFrames);
    const { entries, wakeAt } = this.queue.due(window);
    for (const entry of entries) this.sendEntry(entry);
    if (wakeAt !== undefined) this.schedulePump(wakeAt);
  }

  private sendEntry(entry: OutboxEntry): void {
    const requestId = this.requests.nextId();
    const sent = this.conn.send({
      type: T.SEND,
      request_id: requestId,
      send: { channel_id: entry.channel_id, client_msg_id: entry.client_msg_id, content: contentInit(entry.content), send_seq: this.sendSeq + 1 },
    });
    if (sent) this.sendSeq++;
    if (!sent) return;
    this.queue.markSent(entry.client_msg_id, requestId);
    this.requests.track(requestId, this.requestTimeoutMs, {
      answer: () => {},
      error: (err) => this.sendFailed(entry.client_msg_id, err),
      // Unanswered: send again. Same client_msg_id, so the server stores it once.
      timeout: () => {
        this.queue.requeue(entry.client_msg_id);
        this.pump();
      },
      dropped: () => {},
    });
  }

  private sendFailed(clientMsgId: string, err: EdgechatError): void {
    if (isAuthCode(err.code)) {
      // A 4401 close follows; the entry goes out again after the token is renewed.
      this.queue.requeue(clientMsgId);
      return;
    }
    this.queue.fail(clientMsgId, err, (retries) => backoffDelay(retries, this.random));
    this.pump();
  }

  private schedulePump(at: number): void {
    if (at >= this.pumpAt) return;
    this.clearPumpTimer();
    this.pumpAt = at;
    this.pumpTimer = this.scheduler.setTimeout(() => {
      this.pumpTimer = undefined;
      this.pumpAt = Infinity;
      this.pump();
    }, Math.max(0, at - this.clock.now()));
  }

  private clearPumpTimer(): void {
    if (this.pumpTimer !== undefined) this.scheduler.clearTimeout(this.pumpTimer);
    this.pumpTimer = undefined;
    this.pumpAt = Infinity;
  }

  /**
   * The outbox: messages not yet acknowledged, and failed ones.
   *
   * @example
   * for (const e of client.outbox.list()) if (e.state === "failed") showRetryButton(e.client_msg_id);
   * await client.outbox.retry(id);
   */
  readonly outbox = {
    /** Entries still sending or failed, oldest first. */
    list: (): OutboxEntry[] => this.queue.list(),
    get: (clientMsgId: string): OutboxEntry | undefined => this.queue.get(clientMsgId),
    /** Queues a failed entry again (same client_msg_id). Rejects if there is no such entry. */
    retry: (clientMsgId: string): Promise<SendAck> => {
      const ack = this.queue.retry(clientMsgId);
      if (!ack) return handled(Promise.reject(new EdgechatError({ code: "not_found", message: `No outbox entry ${clientMsgId}.`, clientMsgId })));
      this.pump();
      return ack;
    },
    /** Drops an entry; its send promise rejects with `discarded`. */
    discard: (clientMsgId: string): boolean => this.queue.discard(clientMsgId),
  };

  // ---- Other realtime actions ------------------------------------------------------------------

  /**
   * Marks everything up to `seq` read. Cursors only move forward; a lower seq is a no-op. Uses the
   * socket when ready, REST otherwise.
   *
   * @example
   * client.on("message", (m) => { if (visible(m.channel_id)) void client.markRead(m.channel_id, m.seq); });
   */
  markRead(channelId: string, seq: number): Promise<void> {
    return handled(this.doMarkRead(channelId, seq));
  }

  private async doMarkRead(channelId: string, seq: number): Promise<void> {
    const state = this.states.get(channelId);
    const previous = this.readSent.get(channelId) ?? state?.last_read_seq ?? 0;
    if (!Number.isInteger(seq) || seq <= previous) return;
    this.readSent.set(channelId, seq);
    if (state && seq > state.last_read_seq) {
      state.last_read_seq = seq;
      state.unread_count = Math.max(0, state.last_seq - seq);
    }
    const me = this.hello?.user_id;
    try {
      if (this.conn.state === "ready") {
        try {
          await this.request({ type: T.READ, read: { channel_id: channelId, up_to_seq: seq } }, {
            timeoutMs: NOTIFY_GRACE_MS,
            silenceIsSuccess: true,
            matches: (f) => f.type === T.READ && f.read?.channel_id === channelId && f.read.user_id === me && (f.read.up_to_seq ?? 0) >= seq,
          });
          return;
        } catch (err) {
          if (!(err instanceof EdgechatError) || err.code !== "network_error") throw err;
        }
      }
      const result = await this.api.markRead(channelId, seq);
      const s = this.states.get(channelId);
      if (s && result.last_read_seq >= s.last_read_seq) {
        s.last_read_seq = result.last_read_seq;
        s.unread_count = result.unread_count;
      }
    } catch (err) {
      if (this.readSent.get(channelId) === seq) this.readSent.delete(channelId);
      throw err;
    }
  }

  /**
   * Tells the channel this user is (not) typing. Ephemeral: dropped when not connected.
   *
   * @example
   * input.addEventListener("input", () => void client.typing(channelId).catch(() => {}));
   */
  typing(channelId: string, isTyping = true): Promise<void> {
    return this.notify({ type: T.TYPING, typing: { channel_id: channelId, is_typing: isTyping } });
  }

  /**
   * Sets this device's presence (PRESENCE_HEARTBEAT). Ephemeral: dropped when not connected.
   *
   * @example
   * document.addEventListener("visibilitychange", () => void client.setPresence(document.hidden ? "away" : "online"));
   */
  setPresence(status: "online" | "away"): Promise<void> {
    return this.notify({ type: T.PRESENCE_HEARTBEAT, presence_heartbeat: { status } });
  }

  /** Ephemeral frames: dropped when not connected, silence counts as success. */
  private notify(frame: RequestInit): Promise<void> {
    if (this.conn.state !== "ready") return Promise.resolve();
    return handled(this.request(frame, { timeoutMs: NOTIFY_GRACE_MS, silenceIsSuccess: true }).then(() => undefined));
  }

  /**
   * Adds or removes this user's reaction. Resolves with the message as it is now; every member's
   * devices get a `messageUpdated` event. Adding a reaction one has already (a retry) is harmless.
   *
   * @example
   * await client.react(channelId, message.seq, "👍");
   */
  react(channelId: string, seq: number, emoji: string, op: "add" | "remove" = "add"): Promise<MessageUpdate> {
    return this.mutation({ type: T.REACT, react: { channel_id: channelId, seq, emoji, op } });
  }

  /**
   * Replaces the text of one of this user's messages (the server allows it for 24 hours).
   * Resolves with the message as it is now.
   *
   * @example
   * await client.editMessage(channelId, message.seq, "fixed typo");
   */
  editMessage(channelId: string, seq: number, content: string | SendContent): Promise<MessageUpdate> {
    const body: SendContent = typeof content === "string" ? { text: { text: content } } : content;
    const invalid = this.validateSend(channelId, body);
    if (invalid) return handled(Promise.reject(invalid));
    return this.mutation({ type: T.EDIT, edit: { channel_id: channelId, seq, content: contentInit(body) } });
  }

  /**
   * Deletes a message for everyone (a tombstone: its sender within 48 hours, a group's admins
   * always) or, by default, only for this user, on all of their devices.
   *
   * @example
   * await client.deleteMessage(channelId, message.seq, { forEveryone: true });
   */
  deleteMessage(channelId: string, seq: number, options: { forEveryone?: boolean } = {}): Promise<MessageUpdate> {
    return this.mutation({ type: T.DELETE, delete: { channel_id: channelId, seq, for_everyone: options.forEveryone === true } });
  }

  /** REACT, EDIT, DELETE: answered by a MESSAGE_UPDATE with the same request_id (or an ERROR). */
  private mutation(frame: RequestInit): Promise<MessageUpdate> {
    if (this.conn.state !== "ready") return handled(Promise.reject(notConnected()));
    return handled(this.request(frame, { timeoutMs: this.requestTimeoutMs }).then((answer) => {
      if (!answer?.message_update) throw new EdgechatError({ code: "bad_response", message: `${pb.FrameType[frame.type ?? 0]} was answered without a MESSAGE_UPDATE.` });
      return toMessageUpdate(answer.message_update);
    }));
  }

  /** Sends a request frame and waits for its answer (echoed request_id or a matching frame). */
  private request(frame: RequestInit, options: RequestOptions): Promise<Frame | undefined> {
    return new Promise<Frame | undefined>((resolve, reject) => {
      const requestId = this.requests.nextId();
      this.requests.track(requestId, options.timeoutMs, {
        answer: resolve,
        error: reject,
        timeout: () => {
          if (options.silenceIsSuccess) resolve(undefined);
          else reject(new EdgechatError({ code: "timeout", message: `No answer to ${pb.FrameType[frame.type ?? 0]} within ${options.timeoutMs} ms.`, retryable: true, requestId }));
        },
        dropped: () => reject(notConnected()),
        ...(options.matches ? { matches: options.matches } : {}),
      });
      if (!this.conn.send({ ...frame, request_id: requestId })) {
        this.requests.cancel(requestId);
        reject(notConnected());
      }
    });
  }

  // ---- History ---------------------------------------------------------------------------------

  /**
   * A page of a channel's messages, ascending: the newest page by default, older with `before`,
   * newer with `after`. Over the socket (PULL_HISTORY) when ready, REST otherwise. Pages are for
   * scrollback and are not re-emitted as `message` events; they may overlap messages already
   * emitted, so merge by seq.
   *
   * @example
   * let page = await client.history(channelId, { limit: 50 });
   * while (page.has_more) page = await client.history(channelId, { before: page.next_cursor });
   */
  async history(channelId: string, options: HistoryOptions = {}): Promise<HistoryPage> {
    if (options.before !== undefined && options.after !== undefined) {
      throw new EdgechatError({ code: "invalid_argument", message: "history() takes before or after, not both." });
    }
    if (this.conn.state === "ready") {
      const pull: { channel_id: string; before_seq?: number; after_seq?: number; limit?: number } = { channel_id: channelId };
      if (options.before !== undefined) pull.before_seq = options.before;
      if (options.after !== undefined) pull.after_seq = options.after;
      if (options.limit !== undefined) pull.limit = options.limit;
      try {
        const answer = await this.request({ type: T.PULL_HISTORY, pull_history: pull }, { timeoutMs: this.requestTimeoutMs });
        if (!answer?.history_page) throw new EdgechatError({ code: "bad_response", message: "PULL_HISTORY was answered without a HISTORY_PAGE." });
        const page = toHistoryPage(answer.history_page);
        if (page.channel_id === "") page.channel_id = channelId;
        return withUpdatesApart(page);
      } catch (err) {
        // The socket dropped or stalled mid-request: REST gets the same page.
        if (!(err instanceof EdgechatError) || (err.code !== "network_error" && err.code !== "timeout")) throw err;
      }
    }
    return withUpdatesApart(await this.api.history(channelId, options));
  }

  // ---- REST ------------------------------------------------------------------------------------

  /**
   * Creates an account and signs in.
   *
   * @example
   * const session = await client.register({ username: "alice", password: "correct horse battery" });
   */
  register(input: { username: string; password: string; display_name?: string }): Promise<AuthSession> {
    return this.auth.register(input);
  }

  /**
   * Signs in with these credentials, or those given to createClient.
   *
   * @example
   * await client.login({ username: "alice", password });
   */
  login(credentials?: { username: string; password: string }): Promise<AuthSession> {
    return this.auth.login(credentials);
  }

  /**
   * Renews the access token with the refresh token (rotating it). The client also does this
   * on its own when a request or the socket is rejected with 401/4401.
   */
  refresh(): Promise<AuthSession> {
    return this.auth.refresh();
  }

  /** The session was signed out elsewhere: stop connecting and tell the app (once). */
  private onSignedOut(err: EdgechatError): void {
    this.conn.stop();
    this.settleConnect(err);
    this.events.emit("signedOut", err);
  }

  /** Ends the session on the server and forgets the tokens; also disconnects. */
  async logout(): Promise<void> {
    this.disconnect();
    this.resumeToken = undefined;
    await this.auth.logout();
  }

  /** The signed-in user. */
  me(): Promise<User> {
    return this.api.me();
  }

  /**
   * Channels (REST).
   *
   * @example
   * const dm = await client.channels.create({ type: "dm", member: "bob" });
   * const group = await client.channels.create({ type: "group", name: "team", members: ["bob", "carol"] });
   */
  readonly channels = {
    /** The user's channels, newest activity first, with unread counts. */
    list: (): Promise<ChannelState[]> => this.api.listChannels(),
    create: async (input: CreateChannelInput): Promise<Channel> => {
      const { channel, created } = await this.api.createChannel(input);
      // A brand-new channel is new from seq 1 on: its "created" message and a first send
      // acked before that message's DELIVER then still come out in order.
      if (created) for (const m of this.store.anchor(channel.channel_id, 0)) this.emitMessage(m);
      return channel;
    },
    /** The channel with the first page of its members (ids, roles, read cursors). */
    get: (channelId: string): Promise<Channel> => this.api.getChannel(channelId),
    /**
     * A page of members after `cursor`, in the order they joined (a group of 1,000 is read page by
     * page, never at once). Names come from `users.profiles()`.
     *
     * @example
     * for (let cursor = ""; ; ) { const page = await client.channels.members(id, { cursor }); ...; if (!(cursor = page.next_cursor)) break; }
     */
    members: (channelId: string, options: { cursor?: string; limit?: number } = {}): Promise<MemberPage> => this.api.members(channelId, options),
    /**
     * Changes a channel's settings: disappearing messages (`retention_ms`, null = the server
     * default; owners and admins, either member of a DM) and a group's name. Members see a notice.
     *
     * @example
     * await client.channels.update(id, { retention_ms: 7 * 24 * 3600_000 }); // messages disappear after 7 days
     */
    update: (channelId: string, patch: ChannelPatch): Promise<Channel> => this.api.updateChannel(channelId, patch),
    /** Disappearing messages: `ms` lifetime, or null for the server default. */
    setRetention: (channelId: string, ms: number | null): Promise<Channel> => this.api.updateChannel(channelId, { retention_ms: ms }),
    /** Owners and admins only. Members are user ids or usernames. */
    addMembers: (channelId: string, members: string[]): Promise<Channel> => this.api.addMembers(channelId, members),
    /** Yourself = leave; others: owners and admins only. */
    removeMember: (channelId: string, userId: string): Promise<Channel> => this.api.removeMember(channelId, userId),
    /** Mute (no push notifications) or unmute a channel for this user, on all of their devices. */
    mute: (channelId: string, muted: boolean): Promise<ChannelState> => this.api.muteChannel(channelId, muted),
    /**
     * Up to 1,000 user ids into a broadcast channel at once (owners and admins). Idempotent: ids
     * that are members already come back counted in `already`.
     *
     * @example
     * for (let i = 0; i < ids.length; i += 1000) await client.channels.bulkAdd(id, ids.slice(i, i + 1000));
     */
    bulkAdd: (channelId: string, userIds: string[]): Promise<BulkAddResult> => this.api.bulkAdd(channelId, userIds),
    /** The owner makes a member an admin (who may post in a broadcast channel), or an admin a member. */
    setRole: (channelId: string, userId: string, role: "admin" | "member"): Promise<void> => this.api.setRole(channelId, userId, role),
  };

  /**
   * Invite links of groups and broadcast channels (REST). Owners and admins create, list and
   * revoke them; anyone signed in who holds a code can preview the channel and join it.
   *
   * @example
   * const { url, code } = await client.invites.create(channelId, { max_uses: 50, expires_in_s: 86_400 });
   * const { channel } = await client.invites.preview(code); // name, type, member count
   * await client.invites.join(code);
   */
  readonly invites = {
    create: (channelId: string, options: { max_uses?: number; expires_in_s?: number } = {}): Promise<Invite> => this.api.createInvite(channelId, options),
    list: (channelId: string): Promise<Invite[]> => this.api.listInvites(channelId),
    revoke: (channelId: string, code: string): Promise<void> => this.api.revokeInvite(channelId, code),
    preview: (code: string): Promise<InvitePreview> => this.api.previewInvite(code),
    join: (code: string): Promise<{ channel: Channel; joined: boolean }> => this.api.joinInvite(code),
  };

  /**
   * The account's privacy settings (REST): read receipts and presence sharing.
   *
   * @example
   * await client.settings.update({ share_presence: false }); // appear offline to everyone
   */
  readonly settings = {
    get: (): Promise<UserSettings> => this.api.settings(),
    update: (patch: Partial<UserSettings>): Promise<UserSettings> => this.api.settings(patch),
  };

  /**
   * The account itself (REST): export, name, avatar, password, deletion.
   *
   * @example
   * const archive = await client.account.export(); // profile, devices, channels, own messages
   * await client.account.rename("Alice Liddell");
   * await client.account.setAvatar(pngBytes, "image/png");
   * await client.account.changePassword("old one", "a new passphrase"); // other sessions end
   * await client.account.delete("my password"); // then the client is signed out
   */
  readonly account = {
    export: (): Promise<Record<string, unknown>> => this.api.exportData(),
    rename: async (displayName: string): Promise<User> => this.ownProfile(await this.api.updateProfile({ display_name: displayName })),
    setAvatar: async (data: Uint8Array, contentType: string): Promise<User> => this.ownProfile(await this.api.setAvatar(data, contentType)),
    removeAvatar: async (): Promise<User> => this.ownProfile(await this.api.updateProfile({ avatar: null })),
    /** The picture at a profile's `avatar_url` (it needs the bearer token, so an <img> cannot load it directly). */
    avatar: (avatarUrl: string): Promise<{ bytes: Uint8Array; type: string }> => this.api.avatar(avatarUrl),
    /** Resolves with how many other sessions were signed out. */
    changePassword: (currentPassword: string, newPassword: string): Promise<number> => this.api.changePassword(currentPassword, newPassword),
    /**
     * Deletes the account (irreversible): every session ends at once, this client's too (a
     * `signedOut` event follows when its socket closes); the server erases the rest in the background.
     */
    delete: (password: string): Promise<{ started_at: number }> => this.api.deleteAccount(password),
  };

  /**
   * Files (REST and direct uploads). Upload first, then send the returned attachment as a
   * message; the server accepts it only once the upload is complete and checked.
   *
   * @example
   * const uploaded = await client.attachments.upload(file, { channelId, onProgress: (p) => show(p.loaded / p.total) });
   * await client.send(channelId, attachmentContent(uploaded, { caption: "the plan" }));
   * const { url } = await client.attachments.url(uploaded.attachment_id); // short-lived, supports Range
   */
  readonly attachments = {
    /** Uploads a Blob, File or bytes to a channel (one PUT, or parts for large files). */
    upload: (file: UploadSource, options: UploadOptions): Promise<UploadedAttachment> => this.files.upload(file, options),
    /** Continues a stopped upload (UploadError.attachmentId) with the same file. */
    resume: (attachmentId: string, file: UploadSource, options?: Omit<UploadOptions, "channelId" | "filename" | "contentType" | "sha256">): Promise<UploadedAttachment> =>
      this.files.resume(attachmentId, file, options),
    /** Gives up an upload nobody sent. */
    cancel: (attachmentId: string): Promise<void> => this.files.cancel(attachmentId),
    /** A short-lived download URL (members of the channel). */
    url: (attachmentId: string) => this.files.url(attachmentId),
  };

  /**
   * Devices of this account (REST). At most 10; remove one to make room.
   *
   * @example
   * await client.devices.register({ name: "Alice's laptop", platform: "web" });
   */
  readonly devices = {
    list: (): Promise<Device[]> => this.api.listDevices(),
    /** Registers this client's device (or `device_id`). */
    register: (input: { device_id?: string; name?: string; platform?: string; push?: PushSubscriptionInput | null } = {}): Promise<Device> =>
      this.api.registerDevice({ ...input, device_id: input.device_id ?? this.deviceId }),
    /** Replaces a device's name, platform or push subscription (`push: null` removes it). */
    update: (deviceId: string, patch: { name?: string; platform?: string; push?: PushSubscriptionInput | null }): Promise<Device> =>
      this.api.updateDevice(deviceId, patch),
    /** What push subscriptions need: the server's VAPID public key and the providers it is set up for. */
    pushConfig: (): Promise<PushConfig> => this.api.pushConfig(),
    /** Removes a device; its socket is closed. */
    remove: (deviceId: string): Promise<void> => this.api.removeDevice(deviceId),
  };

  /**
   * Sign-in sessions of this account (REST): one per login, each used by a device. Signing one out
   * closes its device's socket at once (that client gets a `signedOut` event) and its tokens stop
   * working.
   *
   * @example
   * const others = (await client.sessions.list()).filter((s) => !s.current);
   * await client.sessions.signOut(others[0].session_id); // "sign out this device"
   * await client.sessions.signOutOthers();               // "sign out everywhere else"
   */
  readonly sessions = {
    list: (): Promise<SessionInfo[]> => this.api.listSessions(),
    signOut: (sessionId: string): Promise<void> => this.api.endSession(sessionId),
    /** Every session but this client's; resolves with how many were signed out. */
    signOutOthers: (): Promise<number> => this.api.endOtherSessions(),
  };


  private ownProfile(user: User): User {
    this.profileCache.put(user);
    this.events.emit("profileUpdated", { user_id: user.user_id });
    return user;
  }

  /**
   * User directory (REST).
   *
   * @example
   * const bob = await client.users.lookup("bob");
   */
  readonly users = {
    lookup: (username: string): Promise<User> => this.api.lookupUser(username),
    get: (userId: string): Promise<User> => this.api.getUser(userId),
    /**
     * Profiles by id, cached (5 min) and batched: messages, notices, member lists and channel
     * states carry user ids only, so render names from these. Unknown ids are left out.
     */
    profiles: (userIds: Iterable<string>): Promise<Map<string, User>> => this.profileCache.get(userIds),
    /** A profile already in the cache, without a request (undefined if not read yet). */
    cached: (userId: string): User | undefined => this.profileCache.peek(userId),
    /**
     * Current presence of up to 200 users, pulled (REST). Contacts in DMs and small groups are
     * pushed as `presence` events already; use this for members of big groups.
     */
    presence: (userIds: string[]): Promise<PresenceEvent[]> => this.api.presence(userIds),
  };
}

/** Marks a promise as handled (callers may ignore it) without hiding the rejection from awaiters. */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

function notConnected(): EdgechatError {
  return new EdgechatError({ code: "network_error", message: "Not connected; try again once the client is ready.", retryable: true });
}

function defaultFetch(): FetchLike {
  return (url, init) => {
    const f = (globalThis as { fetch?: FetchLike }).fetch;
    if (typeof f !== "function") {
      return Promise.reject(new EdgechatError({ code: "invalid_argument", message: "No fetch implementation: pass createClient({ fetch })." }));
    }
    return f(url, init);
  };
}
