/**
 * The signed-in app: owns the client, writes the state the views draw (state.ts) from client
 * events and user actions, and implements the intents the views call (intents.ts). Only
 * main.ts imports this module; views see a ViewModel, never the App. One batched render per
 * animation frame.
 */
import { EdgechatError, type Channel, type InvitePreview, type ChannelState, type ChatMessage, type Device, type User, type UserSettings } from "../../client/index.js";
import type { ChatClient } from "./chat-client.js";
import { h } from "./dom.js";
import { ACCOUNT_DELETED_TEXT, errorText, isAuthError, signedOutText } from "./errors.js";
import { joinNames } from "./format.js";
import type { Intents, NewChannel, ViewModel } from "./intents.js";
import { addMessages, applyPage, newConversation, applyUpdate, hasOlder, moveReadCursor, newestSeq, olderBefore, setTyping } from "./model.js";
import { ChatState, type Capability } from "./state.js";
import { Uploads } from "./uploads.js";
import { Banner } from "./views/banner.js";
import { ConversationView } from "./views/conversation.js";
import { joinDialog } from "./views/dialogs.js";

/** Members per page in the member list (the server allows up to 500). */
const MEMBER_PAGE = 50;
import { Sidebar } from "./views/sidebar.js";
import { toast } from "./views/toast.js";
import { offerNotifications } from "./views/notifications.js";
import { disableNotifications, enableNotifications, notificationOfferDue, notificationState, syncNotifications, type NotificationState } from "./push.js";

const PAGE_SIZE = 50;
/** Send TYPING at most this often while the user keeps typing. */
const TYPING_RESEND_MS = 3_000;
/** Channels whose last message is fetched for the list's preview line after a sync. */
const PREVIEW_FETCHES = 30;
const PREVIEW_PAGE = 10;
/** Pages tried per preview before the line stays empty. */
const PREVIEW_PAGES = 3;

export interface AppHooks {
  /** The session ended (sign-out here or in another tab, or the server revoked it). */
  signedOut(reason?: string): void;
}

export class App implements Intents {
  readonly state: ChatState;
  readonly files: Uploads;
  private readonly model: ViewModel;
  private readonly root: HTMLElement;
  private readonly sidebar: Sidebar;
  private readonly conversation: ConversationView;
  private readonly banner: Banner;
  private renderQueued = false;
  private typingTimer: ReturnType<typeof setTimeout> | undefined;
  private lastTypingSent = 0;
  private typingChannel: string | undefined;
  private readonly lookups = new Set<string>();
  /** Avatars by user id: the profile's avatar_url they were read from and, once read, an object URL. */
  private readonly avatars = new Map<string, { source: string; objectUrl?: string }>();
  private readonly detailsFetched = new Set<string>();
  private previewsFetched = false;
  private readonly unsubscribe: (() => void)[] = [];
  private stopped = false;

  constructor(
    container: HTMLElement,
    private readonly client: ChatClient,
    me: User,
    private readonly hooks: AppHooks,
  ) {
    this.state = new ChatState(me, client.deviceId, (userId) => this.knowUser(userId));
    this.files = new Uploads(client, this.state, () => this.requestRender(), (message) => toast(message, "error"));
    this.model = { state: this.state, intents: this };
    this.sidebar = new Sidebar(this.model);
    this.conversation = new ConversationView(this.model);
    this.banner = new Banner(this.model);
    this.root = h("div", { class: "shell", "data-view": "list" }, this.banner.el, h("div", { class: "app" }, this.sidebar.el, h("main", { class: "main" }, this.conversation.el)));
    container.replaceChildren(this.root, h("div", { id: "announcer", class: "sr-only", "aria-live": "polite" }));
  }

  // ---- Lifecycle -------------------------------------------------------------------------------

  start(): void {
    const c = this.client;
    const s = this.state;
    void syncNotifications(c);
    this.unsubscribe.push(
      c.on("message", (m) => this.onMessage(m)),
      c.on("messageUpdated", ({ message }) => {
        const held = applyUpdate(s.conv(message.channel_id), message);
        const last = s.lastMessage.get(message.channel_id);
        if (last?.seq === message.seq) s.lastMessage.set(message.channel_id, message);
        if (held || last?.seq === message.seq) this.requestRender();
      }),
      c.on("profileUpdated", ({ user_id }) => this.profileChanged(user_id)),
      c.on("accountDeleted", ({ channel_id, user_id }) => {
        // Every message they sent here is a tombstone now: blank what is shown.
        for (const m of s.conv(channel_id).messages.values()) {
          if (m.sender_user_id === user_id && !m.content.system) applyUpdate(s.conv(channel_id), { ...m, deleted: true, content: {} });
        }
        const last = s.lastMessage.get(channel_id);
        if (last?.sender_user_id === user_id && !last.content.system) s.lastMessage.set(channel_id, { ...last, deleted: true, content: {} });
        this.profileChanged(user_id);
      }),
      c.on("outbox", (entry) => {
        if (entry.state === "sent") s.pending.delete(entry.client_msg_id);
        else s.pending.set(entry.client_msg_id, entry);
        this.requestRender();
      }),
      c.on("discarded", ({ client_msg_id }) => {
        s.pending.delete(client_msg_id);
        this.requestRender();
      }),
      c.on("read", (r) => {
        if (r.user_id !== "" && r.user_id !== s.me.user_id) moveReadCursor(s.conv(r.channel_id), r.user_id, r.up_to_seq);
        this.syncChannelStates();
        this.requestRender();
      }),
      c.on("typing", (t) => {
        if (t.user_id === s.me.user_id) return;
        setTyping(s.conv(t.channel_id), t.user_id, t.is_typing, Date.now());
        this.knowUser(t.user_id);
        this.requestRender();
        // Expire the indicator even if no further event arrives.
        setTimeout(() => this.requestRender(), 6_100);
      }),
      c.on("presence", (p) => {
        s.presence.set(p.user_id, p);
        this.requestRender();
      }),
      c.on("channel", ({ channel }) => {
        this.adoptState(channel);
        if (channel.channel_id === s.activeId) this.detailsFetched.delete(channel.channel_id);
        this.requestRender();
      }),
      c.on("synced", ({ channels, truncated }) => {
        s.channels.clear();
        for (const ch of channels) this.adoptState(ch);
        // "Too long, jump to latest": what was loaded of such a channel is forgotten, so the
        // conversation opens at its newest page (older ones still page in on scroll).
        for (const t of truncated) {
          s.conversations.set(t.channel_id, newConversation(t.channel_id));
          s.jumped.add(t.channel_id);
          if (t.channel_id === s.activeId) void this.loadNewest(t.channel_id);
        }
        // The outbox as the connection holder has it (another tab may have led before).
        s.pending.clear();
        for (const entry of c.outbox.list()) s.pending.set(entry.client_msg_id, entry);
        if (s.activeId) void this.openActiveDetails(s.activeId);
        this.markVisibleRead();
        void this.fetchPreviews();
        this.requestRender();
      }),
      c.on("slowdown", ({ sending_slowly }) => {
        s.connection.sendingSlowly = sending_slowly;
        this.requestRender();
      }),
      c.on("connectionState", (change) => {
        s.connection.state = change.state;
        s.connection.retryAt = change.retryInMs !== undefined ? Date.now() + change.retryInMs : undefined;
        if (change.state === "ready") {
          s.connection.everReady = true;
          s.connection.fatal = undefined;
          this.sendPresence();
        }
        this.requestRender();
      }),
      c.on("error", (err) => {
        if (err.code === "session_revoked") {
          if (this.stopped) return;
          this.hooks.signedOut(signedOutText(err));
          return;
        }
        if (err.code === "replaced" || err.code === "too_many_devices" || err.code === "unauthorized" || err.code === "token_expired") {
          s.connection.fatal = err;
          this.requestRender();
        } else {
          console.warn("edgechat:", err.code, err.message);
        }
      }),
    );
    for (const entry of c.outbox.list()) s.pending.set(entry.client_msg_id, entry);

    const onHash = (): void => this.routeFromHash();
    const onVisibility = (): void => {
      this.markVisibleRead();
      this.sendPresence();
    };
    const onResize = (): void => this.requestRender();
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
    this.requestRender();
    void this.client.me().then((me) => {
      s.me = me;
      s.users.set(me.user_id, me);
      this.requestRender();
    }, () => {});
  }

  connect(): void {
    this.state.connection.fatal = undefined;
    this.client.connect().then(
      () => void this.registerDevice(),
      (err: unknown) => {
        if (this.stopped) return;
        const e = err instanceof EdgechatError ? err : new EdgechatError({ code: "internal", message: String(err) });
        if (isAuthError(e)) {
          this.hooks.signedOut(signedOutText(e));
          return;
        }
        if (e.code !== "disconnected") this.state.connection.fatal = e;
        this.requestRender();
      },
    );
  }

  reconnectNow(): void {
    this.state.connection.fatal = undefined;
    this.client.reconnectNow();
  }

  stop(): void {
    this.stopped = true;
    for (const off of this.unsubscribe.splice(0)) off();
    this.files.stop();
    this.client.close();
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

  requestRender(): void {
    if (this.renderQueued || this.stopped) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      if (this.stopped) return;
      this.root.dataset.view = this.state.activeId ? "conversation" : "list";
      this.sidebar.render();
      this.conversation.render();
      this.banner.render();
      const unread = this.state.unreadTotal();
      document.title = unread > 0 ? `(${unread}) edgechat` : "edgechat";
    });
  }

  // ---- Names -----------------------------------------------------------------------------------

  private knowUser(userId: string): void {
    const s = this.state;
    if (userId === "" || s.users.has(userId) || this.lookups.has(userId)) return;
    this.lookups.add(userId);
    this.client.users.get(userId).then((u) => {
      s.users.set(u.user_id, u);
      this.loadAvatar(u);
      this.requestRender();
    }, (err: unknown) => {
      // No profile: the account was deleted (its messages are tombstones, its id stays in the log).
      if (err instanceof EdgechatError && err.code === "not_found") {
        s.users.set(userId, { user_id: userId, username: "", display_name: "Deleted account" });
        this.requestRender();
      }
    });
  }

  /** A profile changed (PROFILE_UPDATE, or the user's own settings): read it again and redraw. */
  private profileChanged(userId: string): void {
    const s = this.state;
    this.lookups.delete(userId);
    this.avatars.delete(userId);
    if (userId === s.me.user_id) {
      this.client.me().then((me) => {
        s.me = me;
        s.users.set(me.user_id, me);
        this.loadAvatar(me);
        this.requestRender();
      }, () => {});
      return;
    }
    s.users.delete(userId);
    this.knowUser(userId);
    this.requestRender();
  }

  private loadAvatar(user: User): void {
    const url = user.avatar_url;
    if (!url) return;
    const known = this.avatars.get(user.user_id);
    if (known?.source === url) return;
    if (known?.objectUrl) URL.revokeObjectURL(known.objectUrl);
    this.avatars.set(user.user_id, { source: url });
    this.client.account.avatar(url).then(({ bytes, type }) => {
      if (this.avatars.get(user.user_id)?.source !== url) return;
      const data = new Uint8Array(bytes.byteLength);
      data.set(bytes);
      this.avatars.set(user.user_id, { source: url, objectUrl: URL.createObjectURL(new Blob([data], { type })) });
      this.requestRender();
    }, () => {});
  }

  avatarUrl(userId: string): string | undefined {
    const user = userId === this.state.me.user_id ? this.state.me : this.state.users.get(userId);
    if (!user?.avatar_url) return undefined;
    const known = this.avatars.get(userId);
    if (!known) this.loadAvatar(user);
    return known?.source === user.avatar_url ? known.objectUrl : undefined;
  }

  // ---- Account settings ------------------------------------------------------------------------

  async rename(displayName: string): Promise<void> {
    const me = await this.client.account.rename(displayName);
    this.state.me = me;
    this.state.users.set(me.user_id, me);
    this.requestRender();
  }

  async setAvatar(file: Blob): Promise<void> {
    const { bytes, type } = await avatarImage(file);
    const me = await this.client.account.setAvatar(bytes, type);
    this.state.me = me;
    this.loadAvatar(me);
    this.requestRender();
  }

  async removeAvatar(): Promise<void> {
    const me = await this.client.account.removeAvatar();
    this.state.me = me;
    this.avatars.delete(me.user_id);
    this.requestRender();
  }

  changePassword(currentPassword: string, newPassword: string): Promise<number> {
    return this.client.account.changePassword(currentPassword, newPassword);
  }

  async deleteAccount(password: string): Promise<void> {
    await this.client.account.delete(password);
    this.stopped = true;
    this.hooks.signedOut(ACCOUNT_DELETED_TEXT);
  }

  // ---- Conversations ---------------------------------------------------------------------------

  open(channelId: string): void {
    if (location.hash !== `#c/${channelId}`) location.hash = `c/${channelId}`;
    else this.routeFromHash();
  }

  closeConversation(): void {
    if (location.hash !== "") history.pushState(null, "", location.pathname + location.search);
    this.select(undefined);
  }

  private routeFromHash(): void {
    // An invite link (/#/join/<code>): preview and Join; the hash is not kept (a reload would ask again).
    const join = /^#\/?join\/([A-Za-z0-9_.-]+)$/.exec(location.hash);
    if (join) {
      history.replaceState(null, "", location.pathname + location.search);
      joinDialog(this.model, join[1]!);
      return;
    }
    const m = /^#c\/([A-Za-z0-9_.:-]+)$/.exec(location.hash);
    this.select(m?.[1]);
  }

  private select(channelId: string | undefined): void {
    if (this.state.activeId === channelId) return;
    this.stopTyping();
    this.state.activeId = channelId;
    if (channelId) {
      void this.loadNewest(channelId);
      void this.openActiveDetails(channelId);
    }
    this.requestRender();
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
        if (this.state.activeId === channelId) this.closeConversation();
      }
      return;
    }
    this.adoptChannel(channel);
  }

  /** Names, members and (when the server sends them) read cursors from a channel's details. */
  private adoptChannel(channel: Channel): void {
    const s = this.state;
    const conv = s.conv(channel.channel_id);
    if (channel.my_role) s.roles.set(channel.channel_id, channel.my_role);
    if (channel.retention_ms !== undefined) s.noteRetention(channel.channel_id, { ms: channel.retention_ms, minSeq: channel.min_seq });
    if (channel.members) {
      s.members.set(channel.channel_id, channel.members.map((m) => m.user_id));
      const role = channel.members.find((m) => m.user_id === s.me.user_id)?.role;
      if (role) s.roles.set(channel.channel_id, role);
      for (const m of channel.members) {
        // Member lists carry ids (names come from profiles): an id alone is looked up when shown.
        if (!s.users.has(m.user_id) && m.username) s.users.set(m.user_id, { user_id: m.user_id, username: m.username, display_name: m.display_name });
        if (m.user_id !== s.me.user_id && m.last_read_seq !== undefined) moveReadCursor(conv, m.user_id, m.last_read_seq);
      }
    }
    const known = s.channels.get(channel.channel_id);
    if (known && channel.members) {
      // Details are newer than the list entry after adding people.
      known.member_count = channel.member_count ?? channel.members.length;
      known.member_user_ids = channel.members.map((m) => m.user_id);
    }
    if (!known) {
      s.channels.set(channel.channel_id, {
        channel_id: channel.channel_id, type: channel.type, name: channel.name, last_seq: channel.last_seq ?? 0,
        last_activity_hlc: Date.now().toString(16).padStart(12, "0") + "0000", last_activity_at: Date.now(), last_read_seq: channel.last_seq ?? 0,
        unread_count: 0, muted: false, member_count: channel.member_count ?? channel.members?.length ?? 0, left: false,
        member_user_ids: channel.members?.map((m) => m.user_id) ?? [],
        members: channel.members?.map(({ user_id, username, display_name }) => ({ user_id, username, display_name })) ?? [],
      });
    }
    this.requestRender();
  }

  private async loadNewest(channelId: string): Promise<void> {
    const conv = this.state.conv(channelId);
    if (conv.loaded) {
      this.markVisibleRead();
      return;
    }
    try {
      const page = await this.client.history(channelId, { limit: PAGE_SIZE });
      applyPage(conv, page, "newest");
      this.state.noteRetention(channelId, { minSeq: page.min_seq });
      this.noteLast(page.messages.at(-1));
    } catch (err) {
      // A session that ended is about to show the sign-in screen: no toast for that.
      if (this.state.activeId === channelId && !isAuthError(err)) toast(`Could not load messages: ${errorText(err)}`, "error");
      return;
    }
    this.markVisibleRead();
    this.requestRender();
  }

  async loadOlder(channelId: string): Promise<void> {
    const conv = this.state.conv(channelId);
    if (conv.loadingOlder || !hasOlder(conv)) return;
    conv.loadingOlder = true;
    this.requestRender();
    try {
      const page = await this.client.history(channelId, { before: olderBefore(conv), limit: PAGE_SIZE });
      applyPage(conv, page, "older");
      this.state.noteRetention(channelId, { minSeq: page.min_seq });
    } catch (err) {
      toast(`Could not load older messages: ${errorText(err)}`, "error");
    } finally {
      conv.loadingOlder = false;
      this.requestRender();
    }
  }

  private onMessage(m: ChatMessage): void {
    const s = this.state;
    const conv = s.conv(m.channel_id);
    addMessages(conv, [m]);
    this.noteLast(m);
    const sys = m.content.system;
    if (sys?.event === "retention_set") s.noteRetention(m.channel_id, { ms: sys.retention_ms ?? 0 });
    conv.typing.delete(m.sender_user_id);
    if (!s.channels.has(m.channel_id)) void this.openActiveDetails(m.channel_id);
    this.syncChannelStates();
    if (m.channel_id === s.activeId) this.markVisibleRead();
    this.requestRender();
  }

  private noteLast(m: ChatMessage | undefined): void {
    if (!m) return;
    const known = this.state.lastMessage.get(m.channel_id);
    if (!known || known.seq <= m.seq) this.state.lastMessage.set(m.channel_id, m);
  }

  /** Pulls the client's channel states (unread counts, last seq) into the list. */
  private syncChannelStates(): void {
    for (const s of this.client.channelStates()) this.adoptState(s);
  }

  /** One channel state: the list entry, its members and their names (small channels carry them). */
  private adoptState(c: ChannelState): void {
    const s = this.state;
    s.channels.set(c.channel_id, c);
    if (c.member_user_ids.length > 0) s.members.set(c.channel_id, c.member_user_ids);
    for (const m of c.members) {
      if (m.user_id !== s.me.user_id && m.username) s.users.set(m.user_id, { user_id: m.user_id, username: m.username, display_name: m.display_name });
    }
  }

  /** The last message of each channel for the list, fetched once after the first sync. */
  private async fetchPreviews(): Promise<void> {
    if (this.previewsFetched) return;
    this.previewsFetched = true;
    const s = this.state;
    const missing = s.sortedChannels().filter((c) => c.last_seq > 0 && !s.lastMessage.has(c.channel_id)).slice(0, PREVIEW_FETCHES);
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
        addMessages(s.conv(c.channel_id), shown.slice(-1));
        this.noteLast(shown.at(-1));
        this.requestRender();
      } catch {
        // The preview line stays empty.
      }
    }
  }

  /** Marks the open conversation read while the page is visible. */
  private markVisibleRead(): void {
    const s = this.state;
    const id = s.activeId;
    if (!id || document.visibilityState !== "visible") return;
    const conv = s.conv(id);
    const state = s.channels.get(id);
    const seq = Math.max(state?.last_seq ?? 0, newestSeq(conv));
    if (seq <= 0 || (state && state.last_read_seq >= seq && state.unread_count === 0)) return;
    this.client.markRead(id, seq).then(() => {
      this.syncChannelStates();
      this.requestRender();
    }, () => {});
    this.syncChannelStates();
  }

  // ---- Actions ---------------------------------------------------------------------------------

  send(channelId: string, text: string): void {
    const body = text.trim();
    if (body === "") return;
    this.stopTyping();
    const pending = this.client.send(channelId, body);
    if (notificationOfferDue()) offerNotifications(this);
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
    this.state.pending.delete(clientMsgId);
    this.requestRender();
  }

  composing(channelId: string, text: string): void {
    if (this.state.unsupported.has("typing")) return;
    if (text.trim() === "") {
      this.stopTyping();
      return;
    }
    // Not connected: nothing would go out, so do not start the resend pause either.
    if (this.client.state !== "ready") return;
    const now = Date.now();
    if (this.typingChannel === channelId && now - this.lastTypingSent < TYPING_RESEND_MS) return;
    this.typingChannel = channelId;
    this.lastTypingSent = now;
    this.client.typing(channelId, true).catch((err: unknown) => this.capabilityFailed("typing", err));
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.stopTyping(), 5_000);
  }

  private stopTyping(): void {
    clearTimeout(this.typingTimer);
    const channelId = this.typingChannel;
    if (channelId === undefined) return;
    this.typingChannel = undefined;
    this.lastTypingSent = 0;
    if (!this.state.unsupported.has("typing")) this.client.typing(channelId, false).catch((err: unknown) => this.capabilityFailed("typing", err));
  }

  private sendPresence(): void {
    if (this.state.unsupported.has("presence") || this.client.state !== "ready") return;
    this.client.setPresence(document.visibilityState === "visible" ? "online" : "away").catch((err: unknown) => this.capabilityFailed("presence", err));
  }

  /**
   * Reactions, edits and deletes are drawn whatever the server supports; one that answers
   * `not_implemented` gets a toast, and later attempts are answered locally.
   */
  private async mutate(kind: "reactions" | "edit" | "delete", run: () => Promise<unknown>): Promise<boolean> {
    const label = kind === "reactions" ? "Reactions" : kind === "edit" ? "Editing messages" : "Deleting messages";
    const unavailable = `${label} isn't available on this server yet.`.replace("Reactions isn't", "Reactions aren't");
    if (this.state.unsupported.has(kind)) {
      toast(unavailable);
      return false;
    }
    try {
      await run();
      return true;
    } catch (err) {
      if (err instanceof EdgechatError && err.code === "not_implemented") {
        this.state.unsupported.add(kind);
        toast(unavailable);
      } else {
        toast(`${label.replace(/s$/, "")} failed: ${errorText(err)}`, "error");
      }
      return false;
    }
  }

  react(channelId: string, seq: number, emoji: string): void {
    const mine = this.state.reacted(channelId, seq, emoji);
    void this.mutate("reactions", () => this.client.react(channelId, seq, emoji, mine ? "remove" : "add"));
  }

  editMessage(channelId: string, seq: number, text: string): Promise<boolean> {
    return this.mutate("edit", () => this.client.editMessage(channelId, seq, text));
  }

  deleteMessage(channelId: string, seq: number, forEveryone: boolean): Promise<boolean> {
    return this.mutate("delete", () => this.client.deleteMessage(channelId, seq, { forEveryone }));
  }

  private capabilityFailed(kind: Capability, err: unknown): void {
    if (err instanceof EdgechatError && err.code === "not_implemented") this.state.unsupported.add(kind);
  }

  async createChannel(input: NewChannel): Promise<string | void> {
    try {
      const channel = await this.client.channels.create(input);
      if (input.type === "dm" && channel.name === "") {
        const other = channel.members?.find((m) => m.user_id !== this.state.me.user_id);
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
      // Member lists carry ids only: the names for the toast come from the profiles (which the
      // conversation will want anyway).
      const added = await Promise.all(usernames.map((u) => this.client.users.get(u).catch(() => undefined)));
      for (const u of added) if (u) this.state.users.set(u.user_id, u);
      toast(`Added ${joinNames(added.map((u, i) => (u ? u.display_name || u.username : usernames[i]!)))}`);
      this.requestRender();
    } catch (err) {
      return errorText(err);
    }
  }

  async createInvite(channelId: string): Promise<{ ok: true; url: string } | { ok: false; error: string }> {
    try {
      const invite = await this.client.invites.create(channelId);
      // The server names its own origin; the app's join page is on the page's origin.
      return { ok: true, url: `${location.origin}/#/join/${invite.code}` };
    } catch (err) {
      return { ok: false, error: errorText(err) };
    }
  }

  async memberPage(channelId: string, cursor: string): Promise<{ ok: true; members: { user_id: string; role: string }[]; next_cursor: string } | { ok: false; error: string }> {
    try {
      const page = await this.client.channels.members(channelId, { cursor, limit: MEMBER_PAGE });
      const s = this.state;
      // Names before the page shows (ids only on the wire): one lookup per unknown member.
      await Promise.allSettled(page.members.filter((m) => !s.users.has(m.user_id)).map(async (m) => {
        const u = await this.client.users.get(m.user_id);
        s.users.set(u.user_id, u);
      }));
      return { ok: true, members: page.members.map((m) => ({ user_id: m.user_id, role: m.role ?? "member" })), next_cursor: page.next_cursor };
    } catch (err) {
      return { ok: false, error: errorText(err) };
    }
  }

  async previewInvite(code: string): Promise<{ ok: true; preview: InvitePreview } | { ok: false; error: string }> {
    try {
      return { ok: true, preview: await this.client.invites.preview(code) };
    } catch (err) {
      return { ok: false, error: errorText(err) };
    }
  }

  async joinInvite(code: string): Promise<string | void> {
    try {
      const { channel } = await this.client.invites.join(code);
      this.adoptChannel(channel);
      this.detailsFetched.add(channel.channel_id);
      this.open(channel.channel_id);
    } catch (err) {
      return errorText(err);
    }
  }

  listDevices(): Promise<Device[]> {
    return this.client.devices.list();
  }

  removeDevice(deviceId: string): Promise<void> {
    return this.client.devices.remove(deviceId);
  }

  signOutSession(sessionId: string): Promise<void> {
    return this.client.sessions.signOut(sessionId);
  }

  signOutOthers(): Promise<number> {
    return this.client.sessions.signOutOthers();
  }

  settings(): Promise<UserSettings> {
    return this.client.settings.get();
  }

  async exportData(): Promise<void> {
    const archive = await this.client.account.export();
    const url = URL.createObjectURL(new Blob([JSON.stringify(archive, null, 2)], { type: "application/json" }));
    const link = Object.assign(document.createElement("a"), { href: url, download: "edgechat-export.json" });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }

  updateSettings(patch: Partial<UserSettings>): Promise<UserSettings> {
    return this.client.settings.update(patch);
  }

  async setRetention(channelId: string, ms: number | null): Promise<void> {
    this.adoptChannel(await this.client.channels.setRetention(channelId, ms));
  }

  async mute(channelId: string, muted: boolean): Promise<void> {
    // Every device (this one included) gets CHANNEL_UPDATE with the new state.
    await this.client.channels.mute(channelId, muted);
  }

  notificationState(): Promise<NotificationState> {
    return notificationState();
  }

  enableNotifications(): Promise<NotificationState> {
    return enableNotifications(this.client);
  }

  disableNotifications(): Promise<void> {
    return disableNotifications(this.client);
  }
}

/** The longest side of an avatar, in pixels: small enough for the server's cap at any content. */
const AVATAR_PIXELS = 256;

/** Scales a picture down (centre crop to a square) and encodes it as WebP, or JPEG where WebP is not made. */
async function avatarImage(file: Blob): Promise<{ bytes: Uint8Array; type: string }> {
  const bitmap = await createImageBitmap(file);
  const side = Math.min(bitmap.width, bitmap.height);
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = Math.min(AVATAR_PIXELS, side);
  canvas.getContext("2d")!.drawImage(bitmap, (bitmap.width - side) / 2, (bitmap.height - side) / 2, side, side, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  for (const type of ["image/webp", "image/jpeg"]) {
    const blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, type, 0.85));
    if (blob && blob.type === type) return { bytes: new Uint8Array(await blob.arrayBuffer()), type };
  }
  throw new Error("This browser could not encode the picture.");
}

function browserName(): string {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox" : /Chrom(e|ium)\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : "Browser";
  const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Mac OS X/.test(ua) ? "macOS" : /Windows/.test(ua) ? "Windows" : /Linux/.test(ua) ? "Linux" : "";
  return os ? `${browser} on ${os}` : browser;
}
