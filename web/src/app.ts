/**
 * The signed-in app: owns the SDK client, keeps what the views draw (channels, conversations,
 * names, presence, the connection) and turns SDK events and user actions into state changes.
 * Views read the state and call the action methods; one batched render per animation frame.
 */
import {
  EdgechatError, type Channel, type ChannelState, type ChatMessage, type ConnectionState, type EdgechatClient, type OutboxEntry,
  type PresenceEvent, type User,
} from "../../client/index.js";
import { h } from "./dom.js";
import { joinNames, previewText } from "./format.js";
import {
  addMessages, applyPage, applyUpdate, hasOlder, messageText, moveReadCursor, newConversation, newestSeq, olderBefore, setTyping, sortChannels,
  type Conversation,
} from "./model.js";
import { ConversationView } from "./views/conversation.js";
import { Sidebar } from "./views/sidebar.js";
import { toast } from "./views/toast.js";
import { Banner } from "./views/banner.js";
import { offerNotifications, syncNotifications } from "./push.js";

const PAGE_SIZE = 50;
/** Send TYPING at most this often while the user keeps typing. */
const TYPING_RESEND_MS = 3_000;
/** Channels whose last message is fetched for the list's preview line after a sync. */
const PREVIEW_FETCHES = 30;
const PREVIEW_PAGE = 10;
/** Pages tried per preview before the line stays empty. */
const PREVIEW_PAGES = 3;

export type Capability = "typing" | "presence" | "reactions" | "edit" | "delete";

export interface ConnectionView {
  state: ConnectionState;
  /** Reached "ready" at least once. */
  everReady: boolean;
  /** Why the connection stopped for good (state "closed"). */
  fatal: EdgechatError | undefined;
  retryAt: number | undefined;
}

export interface AppHooks {
  /** The session ended (sign-out here or in another tab, or the server revoked it). */
  signedOut(reason?: string): void;
}

export class App {
  readonly channels = new Map<string, ChannelState>();
  readonly conversations = new Map<string, Conversation>();
  readonly users = new Map<string, User>();
  readonly presence = new Map<string, PresenceEvent>();
  /** Outbox entries still sending or failed, by client_msg_id. */
  readonly pending = new Map<string, OutboxEntry>();
  /** Newest message known per channel, for the list's preview. */
  readonly lastMessage = new Map<string, ChatMessage>();
  /** Current members per channel (user ids), from channel states and channel details. */
  readonly members = new Map<string, string[]>();
  /** The user's role per group (from the channel's details): owners and admins moderate. */
  private readonly roles = new Map<string, string>();
  /** Features the server answered `not_implemented` for; absent = not known yet. */
  readonly unsupported = new Set<Capability>();
  activeId: string | undefined;
  connection: ConnectionView = { state: "connecting", everReady: false, fatal: undefined, retryAt: undefined };

  private readonly root: HTMLElement;
  private readonly sidebar: Sidebar;
  private readonly conversation: ConversationView;
  private readonly banner: Banner;
  private renderQueued = false;
  private typingTimer: ReturnType<typeof setTimeout> | undefined;
  private lastTypingSent = 0;
  private typingChannel: string | undefined;
  private readonly lookups = new Set<string>();
  private readonly detailsFetched = new Set<string>();
  private previewsFetched = false;
  private readonly unsubscribe: (() => void)[] = [];
  private stopped = false;

  constructor(
    container: HTMLElement,
    readonly client: EdgechatClient,
    public me: User,
    private readonly hooks: AppHooks,
  ) {
    this.users.set(me.user_id, me);
    this.sidebar = new Sidebar(this);
    this.conversation = new ConversationView(this);
    this.banner = new Banner(this);
    this.root = h("div", { class: "shell", "data-view": "list" }, this.banner.el, h("div", { class: "app" }, this.sidebar.el, h("main", { class: "main" }, this.conversation.el)));
    container.replaceChildren(this.root, h("div", { id: "announcer", class: "sr-only", "aria-live": "polite" }));
  }

  // ---- Lifecycle -------------------------------------------------------------------------------

  start(): void {
    const c = this.client;
    void syncNotifications(c);
    this.unsubscribe.push(
      c.on("message", (m) => this.onMessage(m)),
      c.on("messageUpdated", ({ message }) => {
        const held = applyUpdate(this.conv(message.channel_id), message);
        const last = this.lastMessage.get(message.channel_id);
        if (last?.seq === message.seq) this.lastMessage.set(message.channel_id, message);
        if (held || last?.seq === message.seq) this.render();
      }),
      c.on("outbox", (entry) => {
        if (entry.state === "sent") this.pending.delete(entry.client_msg_id);
        else this.pending.set(entry.client_msg_id, entry);
        this.render();
      }),
      c.on("read", (r) => {
        if (r.user_id !== "" && r.user_id !== this.me.user_id) moveReadCursor(this.conv(r.channel_id), r.user_id, r.up_to_seq);
        this.syncChannelStates();
        this.render();
      }),
      c.on("typing", (t) => {
        if (t.user_id === this.me.user_id) return;
        setTyping(this.conv(t.channel_id), t.user_id, t.is_typing, Date.now());
        this.knowUser(t.user_id);
        this.render();
        // Expire the indicator even if no further event arrives.
        setTimeout(() => this.render(), 6_100);
      }),
      c.on("presence", (p) => {
        this.presence.set(p.user_id, p);
        this.render();
      }),
      c.on("channel", ({ channel }) => {
        this.adoptState(channel);
        if (channel.channel_id === this.activeId) this.detailsFetched.delete(channel.channel_id);
        this.render();
      }),
      c.on("synced", ({ channels }) => {
        this.channels.clear();
        for (const ch of channels) this.adoptState(ch);
        if (this.activeId) void this.openActiveDetails(this.activeId);
        this.markVisibleRead();
        void this.fetchPreviews();
        this.render();
      }),
      c.on("connectionState", (change) => {
        this.connection.state = change.state;
        this.connection.retryAt = change.retryInMs !== undefined ? Date.now() + change.retryInMs : undefined;
        if (change.state === "ready") {
          this.connection.everReady = true;
          this.connection.fatal = undefined;
          this.sendPresence();
        }
        this.render();
      }),
      c.on("error", (err) => {
        if (err.code === "replaced" || err.code === "too_many_devices" || err.code === "unauthorized" || err.code === "token_expired") {
          this.connection.fatal = err;
          this.render();
        } else {
          console.warn("edgechat:", err.code, err.message);
        }
      }),
    );
    for (const entry of c.outbox.list()) this.pending.set(entry.client_msg_id, entry);

    const onHash = (): void => this.routeFromHash();
    const onVisibility = (): void => {
      this.markVisibleRead();
      this.sendPresence();
    };
    const onResize = (): void => this.render();
    window.addEventListener("hashchange", onHash);
    document.addEventListener("visibilitychange", onVisibility);
    window.addEventListener("resize", onResize);
    this.unsubscribe.push(
      () => window.removeEventListener("hashchange", onHash),
      () => document.removeEventListener("visibilitychange", onVisibility),
      () => window.removeEventListener("resize", onResize),
    );

    this.connect();
    this.routeFromHash();
    this.render();
    void this.client.me().then((me) => {
      this.me = me;
      this.users.set(me.user_id, me);
      this.render();
    }, () => {});
  }

  /** Starts (or restarts) the realtime connection. */
  connect(): void {
    this.connection.fatal = undefined;
    this.client.connect().then(
      () => void this.registerDevice(),
      (err: unknown) => {
        if (this.stopped) return;
        const e = err instanceof EdgechatError ? err : new EdgechatError({ code: "internal", message: String(err) });
        if (e.code === "unauthorized" || e.code === "token_expired") {
          this.hooks.signedOut("Your session has ended. Please sign in again.");
          return;
        }
        if (e.code !== "disconnected") this.connection.fatal = e;
        this.render();
      },
    );
  }

  /** Drops the socket and connects at once, skipping the backoff wait. */
  reconnectNow(): void {
    this.client.disconnect();
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    for (const off of this.unsubscribe.splice(0)) off();
    this.client.disconnect();
  }

  async signOut(): Promise<void> {
    this.stopped = true;
    try {
      await this.client.logout();
    } catch {
      // Offline or already revoked: the local session is gone either way.
    }
    this.hooks.signedOut();
  }

  private async registerDevice(): Promise<void> {
    try {
      await this.client.devices.register({ name: browserName(), platform: "web" });
    } catch {
      // Naming the device is cosmetic.
    }
  }

  // ---- Rendering -------------------------------------------------------------------------------

  /** Schedules one render of everything on the next frame. */
  render(): void {
    if (this.renderQueued || this.stopped) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      if (this.stopped) return;
      this.root.dataset.view = this.activeId ? "conversation" : "list";
      this.sidebar.render();
      this.conversation.render();
      this.banner.render();
      const unread = this.sortedChannels().reduce((n, c) => n + (c.muted ? 0 : c.unread_count), 0);
      document.title = unread > 0 ? `(${unread}) edgechat` : "edgechat";
    });
  }

  sortedChannels(): ChannelState[] {
    return sortChannels(this.channels.values());
  }

  // ---- Names -----------------------------------------------------------------------------------

  /** Display name of a user; looks unknown ones up in the background. */
  nameOf(userId: string): string {
    if (userId === this.me.user_id) return this.me.display_name || this.me.username;
    const u = this.users.get(userId);
    if (u) return u.display_name || u.username;
    this.knowUser(userId);
    return "Someone";
  }

  private knowUser(userId: string): void {
    if (userId === "" || this.users.has(userId) || this.lookups.has(userId)) return;
    this.lookups.add(userId);
    this.client.users.get(userId).then((u) => {
      this.users.set(u.user_id, u);
      this.render();
    }, () => {});
  }

  /** The other person of a DM, if known. */
  dmPartner(channelId: string): string | undefined {
    return (this.members.get(channelId) ?? []).find((u) => u !== this.me.user_id);
  }

  channelTitle(c: ChannelState): string {
    if (c.name) return c.name;
    if (c.type === "dm") {
      const other = this.dmPartner(c.channel_id);
      return other ? this.nameOf(other) : "Direct message";
    }
    return "Untitled group";
  }

  /** The list's second line: the last message, prefixed "You: " for the user's own. */
  previewOf(channelId: string): string {
    const pendingHere = [...this.pending.values()].filter((e) => e.channel_id === channelId);
    const last = pendingHere.at(-1);
    if (last) return `You: ${previewText(messageText(last))}`;
    const m = this.lastMessage.get(channelId);
    if (!m) return "";
    if (m.deleted) return "Message deleted";
    if (m.hidden) return "";
    if (m.content.system) return previewText(m.content.system.text);
    const text = previewText(messageText(m));
    const ch = this.channels.get(channelId);
    if (m.sender_user_id === this.me.user_id) return `You: ${text}`;
    return ch?.type === "dm" ? text : `${this.nameOf(m.sender_user_id)}: ${text}`;
  }

  // ---- Conversations ---------------------------------------------------------------------------

  conv(channelId: string): Conversation {
    let c = this.conversations.get(channelId);
    if (!c) this.conversations.set(channelId, (c = newConversation(channelId)));
    return c;
  }

  /** Opens a conversation (and records it in the URL so a reload comes back to it). */
  open(channelId: string): void {
    if (location.hash !== `#c/${channelId}`) location.hash = `c/${channelId}`;
    else this.routeFromHash();
  }

  /** Back to the list (phone layout). */
  closeConversation(): void {
    if (location.hash !== "") history.pushState(null, "", location.pathname + location.search);
    this.select(undefined);
  }

  private routeFromHash(): void {
    const m = /^#c\/([A-Za-z0-9_.:-]+)$/.exec(location.hash);
    this.select(m?.[1]);
  }

  private select(channelId: string | undefined): void {
    if (this.activeId === channelId) return;
    this.stopTyping();
    this.activeId = channelId;
    if (channelId) {
      void this.loadNewest(channelId);
      void this.openActiveDetails(channelId);
    }
    this.render();
  }

  private async openActiveDetails(channelId: string): Promise<void> {
    if (this.detailsFetched.has(channelId)) return;
    this.detailsFetched.add(channelId);
    let channel: Channel;
    try {
      channel = await this.client.channels.get(channelId);
    } catch (err) {
      this.detailsFetched.delete(channelId);
      if (err instanceof EdgechatError && (err.code === "not_found" || err.code === "not_member" || err.code === "forbidden")) {
        toast("That conversation is not available.", "error");
        if (this.activeId === channelId) this.closeConversation();
      }
      return;
    }
    this.adoptChannel(channel);
  }

  /** Names, members and (when the server sends them) read cursors from a channel's details. */
  private adoptChannel(channel: Channel): void {
    const conv = this.conv(channel.channel_id);
    if (channel.members) {
      this.members.set(channel.channel_id, channel.members.map((m) => m.user_id));
      const role = channel.members.find((m) => m.user_id === this.me.user_id)?.role;
      if (role) this.roles.set(channel.channel_id, role);
      for (const m of channel.members) {
        if (!this.users.has(m.user_id)) this.users.set(m.user_id, { user_id: m.user_id, username: m.username, display_name: m.display_name });
        if (m.user_id !== this.me.user_id && m.last_read_seq !== undefined) moveReadCursor(conv, m.user_id, m.last_read_seq);
      }
    }
    const known = this.channels.get(channel.channel_id);
    if (known && channel.members) {
      // Details are newer than the list entry after adding people.
      known.member_count = channel.member_count ?? channel.members.length;
      known.member_user_ids = channel.members.map((m) => m.user_id);
    }
    if (!known) {
      this.channels.set(channel.channel_id, {
        channel_id: channel.channel_id, type: channel.type, name: channel.name, last_seq: channel.last_seq ?? 0,
        last_activity_hlc: Date.now().toString(16).padStart(12, "0") + "0000", last_activity_at: Date.now(), last_read_seq: channel.last_seq ?? 0,
        unread_count: 0, muted: false, member_count: channel.member_count ?? channel.members?.length ?? 0, left: false,
        member_user_ids: channel.members?.map((m) => m.user_id) ?? [],
        members: channel.members?.map(({ user_id, username, display_name }) => ({ user_id, username, display_name })) ?? [],
      });
    }
    this.render();
  }

  async loadNewest(channelId: string): Promise<void> {
    const conv = this.conv(channelId);
    if (conv.loaded) {
      this.markVisibleRead();
      return;
    }
    try {
      const page = await this.client.history(channelId, { limit: PAGE_SIZE });
      applyPage(conv, page, "newest");
      this.noteLast(page.messages.at(-1));
    } catch (err) {
      // A session that ended is about to show the sign-in screen: no toast for that.
      if (this.activeId === channelId && !isAuthError(err)) toast(`Could not load messages: ${errorText(err)}`, "error");
      return;
    }
    this.markVisibleRead();
    this.render();
  }

  /** Scroll-back: the page before the oldest loaded message. */
  async loadOlder(channelId: string): Promise<void> {
    const conv = this.conv(channelId);
    if (conv.loadingOlder || !hasOlder(conv)) return;
    conv.loadingOlder = true;
    this.render();
    try {
      const page = await this.client.history(channelId, { before: olderBefore(conv), limit: PAGE_SIZE });
      applyPage(conv, page, "older");
    } catch (err) {
      toast(`Could not load older messages: ${errorText(err)}`, "error");
    } finally {
      conv.loadingOlder = false;
      this.render();
    }
  }

  private onMessage(m: ChatMessage): void {
    const conv = this.conv(m.channel_id);
    addMessages(conv, [m]);
    this.noteLast(m);
    conv.typing.delete(m.sender_user_id);
    if (!this.channels.has(m.channel_id)) void this.openActiveDetails(m.channel_id);
    this.syncChannelStates();
    if (m.channel_id === this.activeId) this.markVisibleRead();
    this.render();
  }

  private noteLast(m: ChatMessage | undefined): void {
    if (!m) return;
    const known = this.lastMessage.get(m.channel_id);
    if (!known || known.seq <= m.seq) this.lastMessage.set(m.channel_id, m);
  }

  /** Pulls the SDK's channel states (unread counts, last seq) into the list. */
  private syncChannelStates(): void {
    for (const s of this.client.channelStates()) this.adoptState(s);
  }

  /** One channel state: the list entry, its members and their names (small channels carry them). */
  private adoptState(s: ChannelState): void {
    this.channels.set(s.channel_id, s);
    if (s.member_user_ids.length > 0) this.members.set(s.channel_id, s.member_user_ids);
    for (const m of s.members) {
      if (m.user_id !== this.me.user_id) this.users.set(m.user_id, { user_id: m.user_id, username: m.username, display_name: m.display_name });
    }
  }

  /** The last message of each channel for the list, fetched once after the first sync. */
  private async fetchPreviews(): Promise<void> {
    if (this.previewsFetched) return;
    this.previewsFetched = true;
    const missing = this.sortedChannels().filter((c) => c.last_seq > 0 && !this.lastMessage.has(c.channel_id)).slice(0, PREVIEW_FETCHES);
    for (const c of missing) {
      try {
        // The newest seqs may be changes (reactions, edits), which pages leave out: page back a little.
        let before: number | undefined;
        let shown: ChatMessage[] = [];
        for (let tries = 0; tries < PREVIEW_PAGES && shown.length === 0; tries++) {
          const page = await this.client.history(c.channel_id, before === undefined ? { limit: PREVIEW_PAGE } : { before, limit: PREVIEW_PAGE });
          shown = page.messages.filter((m) => !m.hidden);
          if (!page.has_more) break;
          before = page.next_cursor;
        }
        addMessages(this.conv(c.channel_id), shown.slice(-1));
        this.noteLast(shown.at(-1));
        this.render();
      } catch {
        // The preview line stays empty.
      }
    }
  }

  /** Marks the open conversation read while the page is visible. */
  markVisibleRead(): void {
    const id = this.activeId;
    if (!id || document.visibilityState !== "visible") return;
    const conv = this.conv(id);
    const state = this.channels.get(id);
    const seq = Math.max(state?.last_seq ?? 0, newestSeq(conv));
    if (seq <= 0 || (state && state.last_read_seq >= seq && state.unread_count === 0)) return;
    this.client.markRead(id, seq).then(() => {
      this.syncChannelStates();
      this.render();
    }, () => {});
    this.syncChannelStates();
  }

  // ---- Actions ---------------------------------------------------------------------------------

  send(channelId: string, text: string): void {
    const body = text.trim();
    if (body === "") return;
    this.stopTyping();
    const pending = this.client.send(channelId, body);
    offerNotifications(this.client);
    pending.catch((err: unknown) => {
      // The outbox entry shows "Not sent" with a retry; say why once.
      toast(`Message not sent: ${errorText(err)}`, "error");
    });
  }

  retry(clientMsgId: string): void {
    this.client.outbox.retry(clientMsgId).catch((err: unknown) => toast(`Message not sent: ${errorText(err)}`, "error"));
  }

  discard(clientMsgId: string): void {
    this.client.outbox.discard(clientMsgId);
    this.pending.delete(clientMsgId);
    this.render();
  }

  /** The composer changed: TYPING at most every few seconds, "stopped" when it empties. */
  composing(channelId: string, text: string): void {
    if (this.unsupported.has("typing")) return;
    if (text.trim() === "") {
      this.stopTyping();
      return;
    }
    const now = Date.now();
    if (this.typingChannel === channelId && now - this.lastTypingSent < TYPING_RESEND_MS) return;
    this.typingChannel = channelId;
    this.lastTypingSent = now;
    this.client.typing(channelId, true).catch((err: unknown) => this.capabilityFailed("typing", err));
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.stopTyping(), 5_000);
  }

  stopTyping(): void {
    clearTimeout(this.typingTimer);
    const channelId = this.typingChannel;
    if (channelId === undefined) return;
    this.typingChannel = undefined;
    this.lastTypingSent = 0;
    if (!this.unsupported.has("typing")) this.client.typing(channelId, false).catch((err: unknown) => this.capabilityFailed("typing", err));
  }

  private sendPresence(): void {
    if (this.unsupported.has("presence") || this.client.state !== "ready") return;
    this.client.setPresence(document.visibilityState === "visible" ? "online" : "away").catch((err: unknown) => this.capabilityFailed("presence", err));
  }

  /**
   * Reactions, edits and deletes are drawn whatever the server supports; one that answers
   * `not_implemented` gets a toast, and later attempts are answered locally.
   */
  async mutate(kind: "reactions" | "edit" | "delete", run: () => Promise<unknown>): Promise<boolean> {
    const label = kind === "reactions" ? "Reactions" : kind === "edit" ? "Editing messages" : "Deleting messages";
    if (this.unsupported.has(kind)) {
      toast(`${label} isn't available on this server yet.`.replace("Reactions isn't", "Reactions aren't"));
      return false;
    }
    try {
      await run();
      return true;
    } catch (err) {
      if (err instanceof EdgechatError && err.code === "not_implemented") {
        this.unsupported.add(kind);
        toast(`${label} isn't available on this server yet.`.replace("Reactions isn't", "Reactions aren't"));
      } else {
        toast(`${label.replace(/s$/, "")} failed: ${errorText(err)}`, "error");
      }
      return false;
    }
  }

  /** Group owners and admins may delete anyone's message for everyone. */
  canModerate(channelId: string): boolean {
    const role = this.roles.get(channelId);
    return this.channels.get(channelId)?.type === "group" && (role === "owner" || role === "admin");
  }

  react(channelId: string, seq: number, emoji: string): void {
    const m = this.conv(channelId).messages.get(seq);
    const mine = m?.reactions.some((r) => r.emoji === emoji && r.user_ids.includes(this.me.user_id)) ?? false;
    void this.mutate("reactions", () => this.client.react(channelId, seq, emoji, mine ? "remove" : "add"));
  }

  private capabilityFailed(kind: Capability, err: unknown): void {
    if (err instanceof EdgechatError && err.code === "not_implemented") this.unsupported.add(kind);
  }

  /** Creates a DM or group and opens it. Resolves to an error message for the dialog, if any. */
  async createChannel(input: { type: "dm"; member: string } | { type: "group"; name: string; members: string[] }): Promise<string | void> {
    try {
      const channel = await this.client.channels.create(input);
      if (input.type === "dm" && channel.name === "") {
        const other = channel.members?.find((m) => m.user_id !== this.me.user_id);
        channel.name = other ? other.display_name || other.username : input.member;
      }
      this.adoptChannel(channel);
      this.detailsFetched.add(channel.channel_id);
      this.open(channel.channel_id);
    } catch (err) {
      return errorText(err);
    }
  }

  async addMembers(channelId: string, usernames: string[]): Promise<string | void> {
    try {
      const channel = await this.client.channels.addMembers(channelId, usernames);
      this.adoptChannel(channel);
      const wanted = new Set(usernames.map((u) => u.toLowerCase()));
      const added = (channel.members ?? []).filter((m) => wanted.has(m.username.toLowerCase()) || wanted.has(m.user_id.toLowerCase()));
      toast(`Added ${joinNames(added.length > 0 ? added.map((m) => m.display_name || m.username) : usernames)}`);
    } catch (err) {
      return errorText(err);
    }
  }
}

function isAuthError(err: unknown): boolean {
  return err instanceof EdgechatError && (err.code === "unauthorized" || err.code === "token_expired");
}

/** An SDK or network error as a sentence for the UI. */
export function errorText(err: unknown): string {
  if (err instanceof EdgechatError) {
    if (err.code === "network_error") return "You're offline or the server can't be reached.";
    if (err.code === "username_taken") return err.message;
    if (err.code === "not_found" && /user/i.test(err.message)) return err.message;
    return err.message || err.code;
  }
  return err instanceof Error ? err.message : String(err);
}

function browserName(): string {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox" : /Chrom(e|ium)\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : "Browser";
  const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Mac OS X/.test(ua) ? "macOS" : /Windows/.test(ua) ? "Windows" : /Linux/.test(ua) ? "Linux" : "";
  return os ? `${browser} on ${os}` : browser;
}
