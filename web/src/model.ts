/**
 * The conversation model, free of the DOM so it can be tested on its own: messages merged by seq
 * with the optimistic outbox entries, other members' read cursors, who is typing, and the
 * timeline the conversation view draws (day separators, bubble runs, the status line under the
 * user's own messages).
 */
import type { AttachmentBody, ChannelState, ChatMessage, HistoryPage, OutboxEntry, Reaction } from "../../client/index.js";
import { dayKey, dayLabel, joinNames } from "./format.js";

/** How long a TYPING without a follow-up keeps someone "typing". */
export const TYPING_TTL_MS = 6_000;
/** Messages of one sender closer than this share a bubble run. */
const RUN_GAP_MS = 5 * 60_000;

export interface Conversation {
  channelId: string;
  /** By seq. */
  messages: Map<number, ChatMessage>;
  /** The newest page has been fetched (live messages alone may not reach back far enough). */
  loaded: boolean;
  loadingOlder: boolean;
  /** The server said there is nothing older. */
  exhausted: boolean;
  /**
   * Where the next older page starts (the last page's next_cursor). Not simply the oldest message
   * held: a page may hold only changes (reactions, edits), which are not messages to show.
   */
  olderCursor: number | undefined;
  /** Other members' read cursors: user id → highest seq they have read. */
  readCursors: Map<string, number>;
  /** user id → when their typing indicator expires (ms). */
  typing: Map<string, number>;
}

export function newConversation(channelId: string): Conversation {
  return { channelId, messages: new Map(), loaded: false, loadingOlder: false, exhausted: false, olderCursor: undefined, readCursors: new Map(), typing: new Map() };
}

/** Adds or replaces messages (a newer copy of a seq wins: edits, deletes, reactions). */
export function addMessages(conv: Conversation, messages: Iterable<ChatMessage>): void {
  for (const m of messages) if (m.seq > 0) conv.messages.set(m.seq, m);
}

export function oldestSeq(conv: Conversation): number {
  let min = Infinity;
  for (const seq of conv.messages.keys()) if (seq < min) min = seq;
  return min;
}

export function newestSeq(conv: Conversation): number {
  let max = 0;
  for (const seq of conv.messages.keys()) if (seq > max) max = seq;
  return max;
}

/** Where scroll-back continues: before this seq. */
export function olderBefore(conv: Conversation): number {
  return Math.min(conv.olderCursor ?? Infinity, oldestSeq(conv));
}

/** Seqs start at 1 and have no holes, so anything above 1 has something older to page back to. */
export function hasOlder(conv: Conversation): boolean {
  if (conv.exhausted || !conv.loaded) return false;
  const before = olderBefore(conv);
  return before !== Infinity && before > 1;
}

/**
 * A changed message (edit, delete, reactions, delete-for-me) replaces the copy held; one not
 * held is left for its page to bring, so no stray message opens a hole in the timeline.
 */
export function applyUpdate(conv: Conversation, message: ChatMessage): boolean {
  if (!conv.messages.has(message.seq)) return false;
  conv.messages.set(message.seq, message);
  return true;
}

/** Merges a history page; a page with nothing before it ends scroll-back. */
export function applyPage(conv: Conversation, page: HistoryPage, kind: "newest" | "older"): void {
  addMessages(conv, page.messages);
  for (const u of page.updates) applyUpdate(conv, u.message);
  if (kind === "newest") conv.loaded = true;
  if (!page.has_more || page.next_cursor <= 0) conv.exhausted = true;
  else conv.olderCursor = Math.min(conv.olderCursor ?? Infinity, page.next_cursor);
}

/** Read cursors only move forward; true if this one did. */
export function moveReadCursor(conv: Conversation, userId: string, seq: number): boolean {
  if (seq <= (conv.readCursors.get(userId) ?? 0)) return false;
  conv.readCursors.set(userId, seq);
  return true;
}

export function setTyping(conv: Conversation, userId: string, isTyping: boolean, now: number): void {
  if (isTyping) conv.typing.set(userId, now + TYPING_TTL_MS);
  else conv.typing.delete(userId);
}

/** Who is typing now (expired entries are dropped). */
export function typingUsers(conv: Conversation, now: number): string[] {
  const out: string[] = [];
  for (const [user, until] of conv.typing) {
    if (until > now) out.push(user);
    else conv.typing.delete(user);
  }
  return out;
}

/** Channels for the list: left ones hidden, latest activity first (HLC hex sorts as time). */
export function sortChannels(states: Iterable<ChannelState>): ChannelState[] {
  return [...states]
    .filter((c) => !c.left)
    .sort((a, b) => (a.last_activity_hlc === b.last_activity_hlc ? a.name.localeCompare(b.name) : a.last_activity_hlc < b.last_activity_hlc ? 1 : -1));
}

export function messageText(m: { content: ChatMessage["content"] | OutboxEntry["content"] }): string {
  const c = m.content as ChatMessage["content"];
  if (c.text) return c.text.text;
  if (c.system) return c.system.text;
  if (c.attachment) return c.attachment.caption || c.attachment.file_name || "Attachment";
  if (c.encrypted) return "Encrypted message";
  return "";
}

export type MessageState = "sending" | "failed" | "sent";

export type TimelineItem =
  | { kind: "day"; key: string; label: string }
  | { kind: "system"; key: string; text: string; ts: number }
  | {
      kind: "message";
      key: string;
      seq: number | undefined;
      clientMsgId: string;
      senderId: string;
      mine: boolean;
      text: string;
      ts: number;
      state: MessageState;
      /** First / last bubble of a run of one sender's messages. */
      first: boolean;
      last: boolean;
      edited: boolean;
      deleted: boolean;
      reactions: Reaction[];
      /** A file the message carries (not for deleted messages). */
      attachment?: AttachmentBody | undefined;
      /** Under the user's own messages: "Sending…", "Not sent", "Sent", "Read by Bob". */
      status: string | undefined;
      error: string | undefined;
    };

export interface TimelineInput {
  conv: Conversation;
  /** Outbox entries of this channel (sending or failed). */
  pending: OutboxEntry[];
  me: string;
  /** Current members other than the user, for read receipts. */
  others: string[];
  nameOf: (userId: string) => string;
  now: number;
}

/**
 * The rows of the conversation: acknowledged messages by seq, then the user's pending ones in
 * the order they were written, with day separators and bubble runs. The user's last
 * acknowledged message carries "Sent" or "Read by …" once other members' cursors pass it.
 */
export function buildTimeline(input: TimelineInput): TimelineItem[] {
  const { conv, me, nameOf, now } = input;
  const stored = [...conv.messages.values()].sort((a, b) => a.seq - b.seq);
  const storedIds = new Set(stored.map((m) => m.client_msg_id).filter((id) => id !== ""));
  const pending = input.pending.filter((e) => !storedIds.has(e.client_msg_id)).sort((a, b) => a.created_at - b.created_at);

  let lastMineSeq = 0;
  for (const m of stored) if (m.sender_user_id === me && !m.content.system && m.seq > lastMineSeq) lastMineSeq = m.seq;

  type Row = Extract<TimelineItem, { kind: "message" }> | Extract<TimelineItem, { kind: "system" }>;
  const rows: Row[] = [];
  for (const m of stored) {
    if (m.hidden || m.content.update) continue; // deleted for me; a change (never stored here, but pages may carry one)
    if (m.content.system) {
      rows.push({ kind: "system", key: `sys:${m.seq}`, text: systemLine(m.content.system, nameOf), ts: m.server_ts });
      continue;
    }
    const mine = m.sender_user_id === me;
    let status: string | undefined;
    if (mine && m.seq === lastMineSeq) {
      const readers = input.others.filter((u) => (conv.readCursors.get(u) ?? 0) >= m.seq).map(nameOf);
      status = readers.length > 0 ? `Read by ${joinNames(readers)}` : "Sent";
    }
    rows.push({
      kind: "message", key: m.client_msg_id ? `m:${m.client_msg_id}` : `seq:${m.seq}`, seq: m.seq, clientMsgId: m.client_msg_id,
      senderId: m.sender_user_id, mine, text: m.deleted ? "" : messageText(m), ts: m.server_ts, state: "sent",
      first: true, last: true, edited: m.edited_at > 0, deleted: m.deleted, reactions: m.reactions, status, error: undefined,
      attachment: m.deleted ? undefined : m.content.attachment,
    });
  }
  for (const e of pending) {
    rows.push({
      kind: "message", key: `m:${e.client_msg_id}`, seq: undefined, clientMsgId: e.client_msg_id, senderId: me, mine: true,
      text: messageText(e), ts: e.created_at, state: e.state === "failed" ? "failed" : "sending", first: true, last: true,
      edited: false, deleted: false, reactions: [], status: e.state === "failed" ? "Not sent" : "Sending…", error: e.error?.message,
    });
  }

  const items: TimelineItem[] = [];
  let day = "";
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    const ts = row.ts || now;
    const d = dayKey(ts);
    if (d !== day) {
      day = d;
      items.push({ kind: "day", key: `day:${d}`, label: dayLabel(ts, now) });
    }
    if (row.kind === "message") {
      const prev = rows[i - 1];
      const next = rows[i + 1];
      row.first = !continues(prev, row);
      row.last = !continues(row, next);
    }
    items.push(row);
  }
  return items;
}

/** True if `b` continues `a`'s bubble run: same sender, same day, close in time. */
function continues(a: TimelineItem | undefined, b: TimelineItem | undefined): boolean {
  if (!a || !b || a.kind !== "message" || b.kind !== "message") return false;
  return a.senderId === b.senderId && dayKey(a.ts) === dayKey(b.ts) && b.ts - a.ts < RUN_GAP_MS;
}

/**
 * A membership notice as a sentence. Notices carry ids, not names (docs/protocol.md): the names
 * come from profiles, so renames show. `text` is a name-free fallback that follows the actor's
 * name; notices stored before that carry whole sentences with names and are shown as they are.
 */
export function systemLine(
  sys: { event?: string; actor_user_id?: string; target_user_ids?: string[]; text?: string },
  nameOf: (userId: string) => string,
): string {
  const text = sys.text ?? "";
  const actor = sys.actor_user_id ? nameOf(sys.actor_user_id) : "";
  const targets = sys.target_user_ids ?? [];
  const list = (ids: string[]): string => {
    const names = ids.map(nameOf);
    if (names.length <= 1) return names[0] ?? "nobody";
    if (names.length <= 3) return `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
    return `${names.slice(0, 2).join(", ")} and ${names.length - 2} others`;
  };
  const nameFree = /^(created |started |added |removed |left$|changed |renamed |set messages |turned off )/.test(text);
  if (!actor || !nameFree) return text || "Channel updated";
  switch (sys.event) {
    case "member_added": return `${actor} added ${list(targets)}`;
    case "member_removed": return `${actor} removed ${list(targets)}`;
    default: return `${actor} ${text}`;
  }
}
