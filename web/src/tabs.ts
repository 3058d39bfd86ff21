/**
 * One browser profile is one device, however many tabs are open.
 *
 * The server keeps one socket per device (a second one replaces the first, close 4409) and at
 * most 10 devices per account. So the tabs of a profile elect a leader with a Web Lock
 * (`edgechat-leader:<user>`): the tab holding it runs the one SDK client with the socket and the
 * outbox; every other tab is a follower that mirrors the leader over a BroadcastChannel. The
 * leader relays every client event (with the channel states it changed) and answers requests
 * from followers: sends, reads, typing, presence, reactions, edits, deletes, new channels —
 * everything that goes over the socket or must reach the one outbox. Plain REST reads (history,
 * profiles, devices, settings) run in each tab with its own socketless client, and so do file
 * uploads: they are REST calls and PUTs that need neither the socket nor the outbox, so the tab
 * the file was dropped in sends the bytes and sees their progress itself, and a change of leader
 * does not interrupt them. Only the message that carries the finished upload goes through the
 * leader, like any send.
 *
 * When the leader tab closes or crashes the browser releases its lock and the next waiting tab
 * takes over: it opens the socket with the same device id (RESUME picks up where the device left
 * off) and restores the outbox from IndexedDB. Followers then send their unanswered requests
 * again; each is idempotent (a send carries its client_msg_id, reads and reactions converge).
 *
 * Presence is the profile's: online while any tab is visible, away otherwise. The leader folds
 * the tabs' reports together and forgets tabs that are gone (each tab holds a lock named after
 * itself for its lifetime, which `locks.query()` shows).
 *
 * Without Web Locks or BroadcastChannel (browsers before 2022) a tab leads alone; main.ts then
 * gives it a device of its own so tabs do not replace each other.
 */
import {
  EdgechatError, Emitter, type Channel, type Invite, type InvitePreview, type MemberPage, type ChannelState, type ClientEvents, type ConnectionState, type CreateChannelInput, type Device, type EdgechatClient,
  type HistoryOptions, type HistoryPage, type Listener, type MessageUpdate, type OutboxEntry, type PushConfig, type PushSubscriptionInput, type SendAck,
  type SendContent, type SessionInfo, type UploadedAttachment, type UploadOptions, type User, type UserSettings,
} from "../../client/index.js";
import { uuid } from "../../client/scheduler.js";
import type { ChatClient, ChatEvents } from "./chat-client.js";

/** The slice of `navigator.locks` used here. */
export interface TabLocks {
  request(name: string, options: { signal?: AbortSignal; ifAvailable?: boolean }, callback: (lock: unknown) => Promise<void> | void): Promise<unknown>;
  query?(): Promise<{ held?: { name?: string }[] }>;
}

/** The slice of `BroadcastChannel` used here. */
export interface TabChannel {
  postMessage(message: unknown): void;
  close(): void;
  addEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
}

export interface TabClientOptions {
  deviceId: string;
  userId: string;
  /** This tab's own client for REST; it never opens a socket. */
  rest: EdgechatClient;
  /** Makes the client that holds the socket, when this tab starts leading. */
  createSocketClient(): EdgechatClient;
  /** `navigator.locks` and `(name) => new BroadcastChannel(name)`; without both the tab leads alone. */
  locks?: TabLocks;
  openChannel?: (name: string) => TabChannel;
  tabId?: string;
}

type Op = "connect" | "reconnectNow" | "send" | "retry" | "discard" | "markRead" | "typing" | "presence" | "react" | "edit" | "delete" | "create";

interface ErrorData {
  code: string;
  message: string;
  retryable: boolean;
  backoffHintMs?: number;
  status?: number;
  channelId?: string;
  clientMsgId?: string;
}

/** The events a leader relays to followers ("session" carries tokens and stays in the tab). */
const RELAYED = ["message", "messageUpdated", "profileUpdated", "accountDeleted", "read", "typing", "presence", "channel", "connectionState", "error", "ack", "outbox", "synced", "discarded", "slowdown"] as const;
type Relayed = (typeof RELAYED)[number];
/** Errors that end the connection until someone acts (sign in again, remove a device, reconnect). */
const FATAL = new Set(["replaced", "too_many_devices", "unauthorized", "token_expired", "session_revoked"]);

type Wire =
  | { t: "hello"; from: string }
  | { t: "snapshot"; leader: string; to?: string; state: ConnectionState; states: ChannelState[]; outbox: OutboxEntry[]; synced: boolean }
  | { t: "event"; name: Relayed; payload: unknown; states: ChannelState[] }
  | { t: "states"; states: ChannelState[] }
  | { t: "req"; from: string; id: number; op: Op; args: unknown[] }
  | { t: "res"; to: string; id: number; ok: boolean; value?: unknown; error?: ErrorData }
  | { t: "bye"; from: string };

interface PendingRequest {
  op: Op;
  args: unknown[];
  resolve(value: unknown): void;
  reject(err: EdgechatError): void;
}

/**
 * The web app's client for one tab: the leader's socket client, or a mirror of it (see the
 * module comment). Create one per signed-in tab, `start()` it, `close()` it on sign-out.
 */
export class TabClient implements ChatClient {
  readonly deviceId: string;
  readonly tabId: string;
  private readonly events = new Emitter<ChatEvents>();
  private readonly rest: EdgechatClient;
  private readonly channelName: string;
  private channel: TabChannel | undefined;
  private socket: EdgechatClient | undefined;
  private readonly offSocket: (() => void)[] = [];
  private readonly stopLocks = new AbortController();
  private releaseLeadership: (() => void) | undefined;
  private releaseTab: (() => void) | undefined;
  private closed = false;

  // Follower: the leader's state as last heard.
  private leaderId: string | undefined;
  private mirrorState: ConnectionState = "connecting";
  private readonly mirrorStates = new Map<string, ChannelState>();
  private readonly mirrorOutbox = new Map<string, OutboxEntry>();
  private nextId = 0;
  private readonly requests = new Map<number, PendingRequest>();
  private lastPresence: "online" | "away" | undefined;

  // Leader: what the tabs reported, and which channel states to tell followers about.
  private readonly tabPresence = new Map<string, "online" | "away">();
  private presenceSent: "online" | "away" | undefined;
  private synced = false;
  private readonly dirty = new Set<string>();
  private flushQueued = false;

  private connectWaiters: { resolve(): void; reject(err: EdgechatError): void }[] = [];

  constructor(private readonly options: TabClientOptions) {
    this.deviceId = options.deviceId;
    this.tabId = options.tabId ?? `tab-${uuid()}`;
    this.rest = options.rest;
    this.channelName = `edgechat-tabs:${options.userId}`;
  }

  /** Joins the profile's tabs: leads at once if no other tab does, else follows. */
  start(): void {
    // The session was signed out (seen by this tab's REST client): the app shows the sign-in screen.
    this.offSocket.push(this.rest.on("signedOut", (err) => this.emitLocal("error", err)));
    const { locks, openChannel } = this.options;
    if (!locks || !openChannel) {
      this.lead();
      return;
    }
    this.channel = openChannel(this.channelName);
    this.channel.addEventListener("message", (event) => this.onWire(event.data as Wire));
    const signal = this.stopLocks.signal;
    locks.request(`edgechat-tab:${this.tabId}`, { signal }, () => new Promise<void>((resolve) => (this.releaseTab = resolve))).catch(() => {});
    locks.request(`edgechat-leader:${this.options.userId}`, { signal }, () => {
      if (this.closed) return;
      this.lead();
      return new Promise<void>((resolve) => (this.releaseLeadership = resolve));
    }).catch(() => {});
    this.post({ t: "hello", from: this.tabId });
  }

  /** Leaves: closes the socket if this tab led (another tab takes over), stops following. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.post({ t: "bye", from: this.tabId });
    for (const off of this.offSocket.splice(0)) off();
    this.socket?.disconnect();
    this.socket = undefined;
    this.stopLocks.abort();
    this.releaseLeadership?.();
    this.releaseTab?.();
    this.channel?.close();
    this.channel = undefined;
    const gone = new EdgechatError({ code: "disconnected", message: "This tab signed out." });
    for (const r of this.requests.values()) r.reject(gone);
    this.requests.clear();
    this.settleConnect(gone);
  }

  /** True while this tab holds the socket. */
  get leading(): boolean {
    return this.socket !== undefined;
  }

  // ---- ChatClient: state and events --------------------------------------------------------------

  get state(): ConnectionState {
    return this.socket ? this.socket.state : this.mirrorState;
  }

  on<K extends keyof ChatEvents>(type: K, listener: Listener<ChatEvents[K]>): () => void {
    return this.events.on(type, listener);
  }

  channelStates(): ChannelState[] {
    if (this.socket) return this.socket.channelStates();
    return [...this.mirrorStates.values()].map((s) => ({ ...s, member_user_ids: [...s.member_user_ids] }));
  }

  readonly outbox = {
    list: (): OutboxEntry[] => (this.socket ? this.socket.outbox.list() : [...this.mirrorOutbox.values()]),
    retry: (clientMsgId: string) => this.run("retry", [clientMsgId]) as Promise<SendAck>,
    discard: (clientMsgId: string): boolean => {
      void this.run("discard", [clientMsgId]).catch(() => {});
      return true;
    },
  };

  // ---- ChatClient: connection --------------------------------------------------------------------

  /** Resolves once the profile's socket is ready; rejects if it stopped for good. */
  connect(): Promise<void> {
    if (this.state === "ready") return Promise.resolve();
    const ready = new Promise<void>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
    ready.catch(() => {});
    void this.run("connect", []).catch(() => {});
    return ready;
  }

  reconnectNow(): void {
    void this.run("reconnectNow", []).catch(() => {});
  }


  async logout(): Promise<void> {
    this.close();
    await this.rest.logout();
  }

  // ---- ChatClient: realtime actions (the leader runs them) ---------------------------------------

  send(channelId: string, content: string | SendContent): Promise<SendAck> {
    // Structured clone carries an attachment's thumbnail bytes to the leader as they are.
    return this.run("send", [channelId, content, uuid()]) as Promise<SendAck>;
  }

  markRead(channelId: string, seq: number): Promise<void> {
    return this.run("markRead", [channelId, seq]) as Promise<void>;
  }

  typing(channelId: string, isTyping = true): Promise<void> {
    return this.run("typing", [channelId, isTyping]) as Promise<void>;
  }

  setPresence(status: "online" | "away"): Promise<void> {
    this.lastPresence = status;
    return this.run("presence", [this.tabId, status]) as Promise<void>;
  }

  react(channelId: string, seq: number, emoji: string, op: "add" | "remove" = "add"): Promise<MessageUpdate> {
    return this.run("react", [channelId, seq, emoji, op]) as Promise<MessageUpdate>;
  }

  editMessage(channelId: string, seq: number, text: string): Promise<MessageUpdate> {
    return this.run("edit", [channelId, seq, text]) as Promise<MessageUpdate>;
  }

  deleteMessage(channelId: string, seq: number, options: { forEveryone?: boolean } = {}): Promise<MessageUpdate> {
    return this.run("delete", [channelId, seq, options.forEveryone === true]) as Promise<MessageUpdate>;
  }

  history(channelId: string, options?: HistoryOptions): Promise<HistoryPage> {
    return (this.socket ?? this.rest).history(channelId, options);
  }

  // ---- ChatClient: REST ---------------------------------------------------------------------------

  me(): Promise<User> {
    return this.rest.me();
  }

  readonly users = { get: (userId: string): Promise<User> => this.rest.users.get(userId) };

  readonly channels = {
    // Through the leader: its client anchors a new channel at seq 0, so the first messages keep their order.
    create: (input: CreateChannelInput): Promise<Channel> => this.run("create", [input]) as Promise<Channel>,
    get: (channelId: string): Promise<Channel> => this.rest.channels.get(channelId),
    addMembers: (channelId: string, members: string[]): Promise<Channel> => this.rest.channels.addMembers(channelId, members),
    setRetention: (channelId: string, ms: number | null): Promise<Channel> => this.rest.channels.setRetention(channelId, ms),
    mute: (channelId: string, muted: boolean): Promise<ChannelState> => this.rest.channels.mute(channelId, muted),
    members: (channelId: string, options: { cursor?: string; limit?: number } = {}): Promise<MemberPage> => this.rest.channels.members(channelId, options),
  };

  readonly invites = {
    create: (channelId: string, options: { max_uses?: number; expires_in_s?: number } = {}): Promise<Invite> => this.rest.invites.create(channelId, options),
    preview: (code: string): Promise<InvitePreview> => this.rest.invites.preview(code),
    join: (code: string): Promise<{ channel: Channel; joined: boolean }> => this.rest.invites.join(code),
  };

  readonly devices = {
    list: (): Promise<Device[]> => this.rest.devices.list(),
    register: (input: { device_id?: string; name?: string; platform?: string; push?: PushSubscriptionInput | null } = {}): Promise<Device> =>
      this.rest.devices.register({ ...input, device_id: input.device_id ?? this.deviceId }),
    pushConfig: (): Promise<PushConfig> => this.rest.devices.pushConfig(),
    remove: (deviceId: string): Promise<void> => this.rest.devices.remove(deviceId),
  };

  // In this tab, on its own client (see the module comment): progress stays here, and an upload
  // outlives the leader that was leading when it started.
  readonly attachments = {
    upload: (file: Blob, options: UploadOptions): Promise<UploadedAttachment> => this.rest.attachments.upload(file, options),
    resume: (attachmentId: string, file: Blob, options?: Pick<UploadOptions, "onProgress" | "signal" | "concurrency">): Promise<UploadedAttachment> =>
      this.rest.attachments.resume(attachmentId, file, options),
    cancel: (attachmentId: string): Promise<void> => this.rest.attachments.cancel(attachmentId),
    url: (attachmentId: string) => this.rest.attachments.url(attachmentId),
  };

  readonly sessions = {
    list: (): Promise<SessionInfo[]> => this.rest.sessions.list(),
    signOut: (sessionId: string): Promise<void> => this.rest.sessions.signOut(sessionId),
    signOutOthers: (): Promise<number> => this.rest.sessions.signOutOthers(),
  };

  readonly settings = {
    get: (): Promise<UserSettings> => this.rest.settings.get(),
    update: (patch: Partial<UserSettings>): Promise<UserSettings> => this.rest.settings.update(patch),
  };

  readonly account = {
    export: (): Promise<Record<string, unknown>> => this.rest.account.export(),
    rename: (displayName: string): Promise<User> => this.rest.account.rename(displayName),
    setAvatar: (data: Uint8Array, contentType: string): Promise<User> => this.rest.account.setAvatar(data, contentType),
    removeAvatar: (): Promise<User> => this.rest.account.removeAvatar(),
    avatar: (avatarUrl: string): Promise<{ bytes: Uint8Array; type: string }> => this.rest.account.avatar(avatarUrl),
    changePassword: (currentPassword: string, newPassword: string): Promise<number> => this.rest.account.changePassword(currentPassword, newPassword),
    delete: (password: string): Promise<{ started_at: number }> => this.rest.account.delete(password),
  };

  // ---- Requests ------------------------------------------------------------------------------------

  /** Runs an operation here if this tab leads, else asks the leader (again, if it changes). */
  private run(op: Op, args: unknown[]): Promise<unknown> {
    if (this.closed) return Promise.reject(new EdgechatError({ code: "disconnected", message: "This tab signed out." }));
    if (this.socket) return this.perform(this.tabId, op, args);
    const id = ++this.nextId;
    const done = new Promise<unknown>((resolve, reject) => this.requests.set(id, { op, args, resolve, reject }));
    done.catch(() => {});
    // Until a leader is known the request waits; the leader's snapshot sends it.
    if (this.leaderId !== undefined) this.post({ t: "req", from: this.tabId, id, op, args });
    return done;
  }

  /** The leader's side of every operation, for its own tab and for followers. */
  private async perform(from: string, op: Op, args: unknown[]): Promise<unknown> {
    const socket = this.socket;
    if (!socket) throw new EdgechatError({ code: "network_error", message: "This tab no longer holds the connection.", retryable: true });
    const channelId = typeof args[0] === "string" ? args[0] : "";
    switch (op) {
      case "connect":
        socket.connect().catch(() => {});
        return undefined;
      case "reconnectNow":
        socket.disconnect();
        socket.connect().catch(() => {});
        return undefined;
      case "send": {
        const [, content, clientMsgId] = args as [string, string | SendContent, string];
        return socket.send(channelId, content, { clientMsgId });
      }
      case "retry":
        return socket.outbox.retry(channelId);
      case "discard": {
        const found = socket.outbox.discard(channelId);
        if (found) this.emitLocal("discarded", { client_msg_id: channelId });
        return found;
      }
      case "markRead":
        try {
          return await socket.markRead(channelId, args[1] as number);
        } finally {
          this.touch(channelId);
        }
      case "typing":
        return socket.typing(channelId, args[1] as boolean);
      case "presence":
        this.tabPresence.set(from, args[1] === "away" ? "away" : "online");
        return this.publishPresence();
      case "react":
        return socket.react(channelId, args[1] as number, args[2] as string, args[3] === "remove" ? "remove" : "add");
      case "edit":
        return socket.editMessage(channelId, args[1] as number, args[2] as string);
      case "delete":
        return socket.deleteMessage(channelId, args[1] as number, { forEveryone: args[2] === true });
      case "create":
        return socket.channels.create(args[0] as CreateChannelInput);
    }
  }

  // ---- Leading ---------------------------------------------------------------------------------------

  private lead(): void {
    if (this.closed || this.socket) return;
    const socket = this.options.createSocketClient();
    this.socket = socket;
    this.leaderId = this.tabId;
    this.synced = false;
    this.presenceSent = undefined;
    this.tabPresence.clear();
    if (this.lastPresence) this.tabPresence.set(this.tabId, this.lastPresence);
    for (const name of RELAYED) {
      if (name === "discarded") continue;
      this.offSocket.push(socket.on(name as keyof ClientEvents, (payload: unknown) => this.fromSocket(name, payload)));
    }
    // Signed out (close 4410): every tab hears it as a final error.
    this.offSocket.push(socket.on("signedOut", (err) => this.fromSocket("error", err)));
    // Connect first, so the snapshot followers get says "connecting" rather than the idle "offline".
    socket.connect().catch(() => {});
    this.post(this.snapshot());
    // Requests this tab made while following go to its own socket now.
    const waiting = [...this.requests.values()];
    this.requests.clear();
    for (const r of waiting) this.perform(this.tabId, r.op, r.args).then(r.resolve, (err: unknown) => r.reject(asError(err)));
  }

  private snapshot(to?: string): Wire {
    const socket = this.socket!;
    return { t: "snapshot", leader: this.tabId, ...(to ? { to } : {}), state: socket.state, states: socket.channelStates(), outbox: socket.outbox.list(), synced: this.synced };
  }

  /** A socket client event: to this tab's app, and to the followers with the states it changed. */
  private fromSocket(name: Relayed, payload: unknown): void {
    if (name === "synced") this.synced = true;
    if (name === "connectionState" && (payload as { state: ConnectionState }).state !== "ready") this.presenceSent = undefined;
    this.emitLocal(name, payload as never);
    const channelId = channelOf(name, payload);
    const states = channelId ? this.statesOf([channelId]) : [];
    if (channelId) this.dirty.delete(channelId);
    this.post({ t: "event", name, payload: name === "error" ? errorData(payload) : payload, states });
  }

  /** Tells followers about a channel state the client changed without an event (a read sent). */
  private touch(channelId: string): void {
    if (!this.channel) return;
    this.dirty.add(channelId);
    if (this.flushQueued) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      const ids = [...this.dirty];
      this.dirty.clear();
      if (ids.length > 0) this.post({ t: "states", states: this.statesOf(ids) });
    });
  }

  private statesOf(ids: string[]): ChannelState[] {
    if (!this.socket) return [];
    const wanted = new Set(ids);
    return this.socket.channelStates().filter((s) => wanted.has(s.channel_id));
  }

  /** The profile is online while any of its tabs is visible. */
  private async publishPresence(): Promise<void> {
    await this.forgetClosedTabs();
    const socket = this.socket;
    if (!socket || socket.state !== "ready" || this.tabPresence.size === 0) return;
    const status = [...this.tabPresence.values()].includes("online") ? "online" : "away";
    if (status === this.presenceSent) return;
    this.presenceSent = status;
    try {
      await socket.setPresence(status);
    } catch (err) {
      this.presenceSent = undefined;
      throw err;
    }
  }

  private async forgetClosedTabs(): Promise<void> {
    const query = this.options.locks?.query;
    if (!query) return;
    try {
      const { held = [] } = await query.call(this.options.locks);
      const alive = new Set(held.map((l) => l.name ?? ""));
      for (const tab of this.tabPresence.keys()) if (tab !== this.tabId && !alive.has(`edgechat-tab:${tab}`)) this.tabPresence.delete(tab);
    } catch {
      // Keep what is known.
    }
  }

  // ---- The wire ----------------------------------------------------------------------------------------

  private post(message: Wire): void {
    try {
      this.channel?.postMessage(message);
    } catch (err) {
      console.warn("edgechat: could not reach the other tabs", err);
    }
  }

  private onWire(m: Wire): void {
    if (this.closed || typeof m !== "object" || m === null) return;
    switch (m.t) {
      case "hello":
        if (this.socket) this.post(this.snapshot(m.from));
        return;
      case "bye":
        if (this.socket && this.tabPresence.delete(m.from)) void this.publishPresence().catch(() => {});
        // The leader left: hold requests until the next one introduces itself.
        if (!this.socket && m.from === this.leaderId) this.leaderId = undefined;
        return;
      case "req":
        if (!this.socket) return;
        this.perform(m.from, m.op, m.args).then(
          (value) => this.post({ t: "res", to: m.from, id: m.id, ok: true, value }),
          (err: unknown) => this.post({ t: "res", to: m.from, id: m.id, ok: false, error: errorData(err) }),
        );
        return;
      case "res": {
        if (m.to !== this.tabId) return;
        const r = this.requests.get(m.id);
        if (!r) return;
        this.requests.delete(m.id);
        if (m.ok) r.resolve(m.value);
        else r.reject(fromErrorData(m.error));
        return;
      }
      case "snapshot":
        if (this.socket || (m.to !== undefined && m.to !== this.tabId)) return;
        this.followSnapshot(m);
        return;
      case "states":
        if (this.socket) return;
        for (const s of m.states) this.mirrorStates.set(s.channel_id, s);
        return;
      case "event":
        if (this.socket) return;
        this.followEvent(m.name, m.payload, m.states);
        return;
    }
  }

  private followSnapshot(m: Extract<Wire, { t: "snapshot" }>): void {
    const newLeader = m.leader !== this.leaderId;
    this.leaderId = m.leader;
    this.mirrorStates.clear();
    for (const s of m.states) this.mirrorStates.set(s.channel_id, s);
    this.mirrorOutbox.clear();
    for (const e of m.outbox) this.mirrorOutbox.set(e.client_msg_id, e);
    if (m.state !== this.mirrorState) {
      const previous = this.mirrorState;
      this.mirrorState = m.state;
      this.emitLocal("connectionState", { state: m.state, previous });
    }
    // Follower tabs get the state after RESUME; "jump to latest" markers stay with the leader.
    if (m.synced) this.emitLocal("synced", { channels: this.channelStates(), truncated: [] });
    if (newLeader) {
      // Whatever the last leader did not answer goes to this one; every operation is idempotent.
      for (const [id, r] of this.requests) this.post({ t: "req", from: this.tabId, id, op: r.op, args: r.args });
      if (this.lastPresence && ![...this.requests.values()].some((r) => r.op === "presence")) void this.setPresence(this.lastPresence).catch(() => {});
    }
  }

  private followEvent(name: Relayed, payload: unknown, states: ChannelState[]): void {
    for (const s of states) this.mirrorStates.set(s.channel_id, s);
    switch (name) {
      case "outbox": {
        const entry = payload as OutboxEntry;
        if (entry.state === "sent") this.mirrorOutbox.delete(entry.client_msg_id);
        else this.mirrorOutbox.set(entry.client_msg_id, entry);
        break;
      }
      case "discarded":
        this.mirrorOutbox.delete((payload as { client_msg_id: string }).client_msg_id);
        break;
      case "channel": {
        const s = (payload as { channel: ChannelState }).channel;
        this.mirrorStates.set(s.channel_id, s);
        break;
      }
      case "synced":
        this.mirrorStates.clear();
        for (const s of (payload as { channels: ChannelState[] }).channels) this.mirrorStates.set(s.channel_id, s);
        break;
      case "connectionState":
        this.mirrorState = (payload as { state: ConnectionState }).state;
        break;
      case "error":
        this.emitLocal("error", fromErrorData(payload as ErrorData));
        return;
    }
    this.emitLocal(name, payload as never);
  }

  /** Hands an event to this tab's app, settling connect() on "ready" and on a final error. */
  private emitLocal<K extends keyof ChatEvents>(name: K, payload: ChatEvents[K]): void {
    if (name === "connectionState" && (payload as { state: ConnectionState }).state === "ready") this.settleConnect();
    if (name === "error" && FATAL.has((payload as EdgechatError).code)) this.settleConnect(payload as EdgechatError);
    if (name === "discarded" && this.socket) this.post({ t: "event", name: "discarded", payload, states: [] });
    this.events.emit(name, payload);
  }

  private settleConnect(err?: EdgechatError): void {
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) {
      if (err) w.reject(err);
      else w.resolve();
    }
  }
}

/** The channel an event is about, whose state followers should refresh with it. */
function channelOf(name: Relayed, payload: unknown): string | undefined {
  const p = payload as Record<string, unknown> | undefined;
  if (!p) return undefined;
  if (name === "message" || name === "read") return typeof p.channel_id === "string" ? p.channel_id : undefined;
  if (name === "messageUpdated") return (p.message as { channel_id?: string } | undefined)?.channel_id;
  return undefined;
}

function asError(err: unknown): EdgechatError {
  return err instanceof EdgechatError ? err : new EdgechatError({ code: "internal", message: err instanceof Error ? err.message : String(err) });
}

function errorData(err: unknown): ErrorData {
  const e = asError(err);
  return {
    code: e.code, message: e.message, retryable: e.retryable,
    ...(e.backoffHintMs !== undefined ? { backoffHintMs: e.backoffHintMs } : {}),
    ...(e.status !== undefined ? { status: e.status } : {}),
    ...(e.channelId !== undefined ? { channelId: e.channelId } : {}),
    ...(e.clientMsgId !== undefined ? { clientMsgId: e.clientMsgId } : {}),
  };
}

function fromErrorData(data: ErrorData | undefined): EdgechatError {
  return new EdgechatError(data ?? { code: "internal", message: "The tab holding the connection failed without saying why." });
}
