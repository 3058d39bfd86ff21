/**
 * What the views draw: channels, conversations, names, presence, the connection. The app
 * (app.ts) writes it from SDK events and user actions; views only read it, through the queries
 * below, and ask for changes through `Intents` (intents.ts). No SDK client and no DOM here.
 */
import type { ChannelState, ChatMessage, ConnectionState, EdgechatError, OutboxEntry, PresenceEvent, User } from "../../client/index.js";
import { previewText } from "./format.js";
import { messageText, newConversation, sortChannels, systemLine, type Conversation } from "./model.js";

export type Capability = "typing" | "presence" | "reactions" | "edit" | "delete";

export interface ConnectionView {
  state: ConnectionState;
  /** Reached "ready" at least once. */
  everReady: boolean;
  /** Why the connection stopped for good (state "closed"). */
  fatal: EdgechatError | undefined;
  retryAt: number | undefined;
  /** The server asked this device to pause its sends (SLOWDOWN); they go out when it ends. */
  sendingSlowly?: boolean;
}

export type UploadState = "preparing" | "uploading" | "sending" | "failed";

/** A file on its way into a conversation, as the upload tray draws it (uploads.ts writes it). */
export interface UploadView {
  /** Names the upload in `Intents.files` (cancel, retry). */
  key: string;
  channelId: string;
  fileName: string;
  state: UploadState;
  loaded: number;
  total: number;
  /** Why it failed (state "failed"). */
  error: string | undefined;
  /** For images: a data: URL of the thumbnail, shown while the file goes up. */
  preview: string | undefined;
}

export class ChatState {
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
  readonly roles = new Map<string, string>();
  /**
   * Channels whose RESUME left a long gap out on purpose (a broadcast channel after a long time
   * away): the conversation restarts at the newest messages and says so ("Jump to latest").
   */
  readonly jumped = new Set<string>();
  /**
   * Disappearing messages per channel: the lifetime in effect (ms, 0 = kept for ever) and the
   * low-water mark (every seq below it has expired), from details, history pages and notices.
   */
  readonly retention = new Map<string, { ms: number; minSeq: number }>();
  /** Files going up, by key, oldest first. */
  readonly uploads = new Map<string, UploadView>();
  /** Features the server answered `not_implemented` for; absent = not known yet. */
  readonly unsupported = new Set<Capability>();
  activeId: string | undefined;
  connection: ConnectionView = { state: "connecting", everReady: false, fatal: undefined, retryAt: undefined };

  constructor(
    public me: User,
    /** This browser profile's device (every tab shares it). */
    readonly deviceId: string,
    /** Called for a user id nobody has named yet; the app looks it up in the background. */
    private readonly unknownUser: (userId: string) => void = () => {},
  ) {
    this.users.set(me.user_id, me);
  }

  sortedChannels(): ChannelState[] {
    return sortChannels(this.channels.values());
  }

  /** Unread messages over every channel that is not muted (the page title's count). */
  unreadTotal(): number {
    return this.sortedChannels().reduce((n, c) => n + (c.muted ? 0 : c.unread_count), 0);
  }

  conv(channelId: string): Conversation {
    let c = this.conversations.get(channelId);
    if (!c) this.conversations.set(channelId, (c = newConversation(channelId)));
    return c;
  }

  /** Display name of a user; an unknown one reads "Someone" until the lookup answers. */
  nameOf(userId: string): string {
    if (userId === this.me.user_id) return this.me.display_name || this.me.username;
    const u = this.users.get(userId);
    if (u) return u.display_name || u.username;
    this.unknownUser(userId);
    return "Someone";
  }

  /** The other person of a DM, if known. */
  dmPartner(channelId: string): string | undefined {
    return (this.members.get(channelId) ?? []).find((u) => u !== this.me.user_id);
  }

  channelTitle(c: ChannelState): string {
    if (c.name) return c.name;
    if (c.type === "dm") {
      const other = this.dmPartner(c.channel_id);
      if (other) return this.nameOf(other);
      // A DM's members are fixed: one that lists only me lost the other to an account deletion.
      const members = this.members.get(c.channel_id);
      return members && members.length === 1 && members[0] === this.me.user_id ? "Deleted account" : "Direct message";
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
    if (m.content.system) return previewText(systemLine(m.content.system, (id) => this.nameOf(id)));
    const text = previewText(messageText(m));
    const ch = this.channels.get(channelId);
    if (m.sender_user_id === this.me.user_id) return `You: ${text}`;
    return ch?.type === "dm" ? text : `${this.nameOf(m.sender_user_id)}: ${text}`;
  }

  /** Outbox entries of one channel, oldest first. */
  pendingIn(channelId: string): OutboxEntry[] {
    return [...this.pending.values()].filter((e) => e.channel_id === channelId);
  }

  /** Files going up in one channel, oldest first. */
  uploadsIn(channelId: string): UploadView[] {
    return [...this.uploads.values()].filter((u) => u.channelId === channelId);
  }

  /** How long a channel keeps messages, ms; 0 = for ever (or not known yet). */
  retentionOf(channelId: string): number {
    return this.retention.get(channelId)?.ms ?? 0;
  }

  /** Records what the server said about a channel's retention; absent fields keep what is known. */
  noteRetention(channelId: string, news: { ms?: number | undefined; minSeq?: number | undefined }): void {
    const known = this.retention.get(channelId) ?? { ms: 0, minSeq: 1 };
    this.retention.set(channelId, { ms: news.ms ?? known.ms, minSeq: Math.max(known.minSeq, news.minSeq ?? 0) });
  }

  /** True when history before the oldest loaded message expired ("Older messages have expired"). */
  olderExpired(channelId: string): boolean {
    return (this.retention.get(channelId)?.minSeq ?? 1) > 1;
  }

  /** Group owners and admins may delete anyone's message for everyone. */
  canModerate(channelId: string): boolean {
    const role = this.roles.get(channelId);
    return this.channels.get(channelId)?.type === "group" && (role === "owner" || role === "admin");
  }

  /** Owners and admins of a group or broadcast channel (they add people and share invite links). */
  isAdmin(channelId: string): boolean {
    const role = this.roles.get(channelId);
    return role === "owner" || role === "admin";
  }

  /** Everyone posts, but in a broadcast channel only its owner and admins. */
  canPost(channelId: string): boolean {
    return this.channels.get(channelId)?.type !== "broadcast" || this.isAdmin(channelId);
  }

  /** True if the user has reacted to message `seq` with `emoji`. */
  reacted(channelId: string, seq: number, emoji: string): boolean {
    const m = this.conv(channelId).messages.get(seq);
    return m?.reactions.some((r) => r.emoji === emoji && r.user_ids.includes(this.me.user_id)) ?? false;
  }
}
