/**
 * Offline push for one user, inside their UserObject: which missed messages become pushes, the
 * per-channel coalescing windows (table push_windows, decisions in push-coalesce.ts), and the jobs
 * handed to the push queue. Nothing here awaits: the UserObject passes `dispatch`, which sends the
 * jobs off the delivery path (ctx.waitUntil), and wakes its alarm by the time `missed` returns.
 *
 * The delivery path calls one function, `missed()`, for messages that reached the user while no
 * device took them; everything else (reads, the alarm, muting) is wired through the UserObject.
 */
import { PUSH_PREVIEW_MAX, type PushPayload } from "../../protocol/push.js";
import type { PushJob } from "../../queues/push-jobs.js";
import type { ChatMessageData, DeliveryBatch } from "../channel/types.js";
import { dueAt, onMissed, onRead, onWindowEnd, type Decision, type MissedMessage, type PushWindow } from "./push-coalesce.js";
import type { PushSubscriptions } from "./push-subscriptions.js";
import { traced } from "../../shared/trace.js";

export type { MissedMessage };

export interface PushNotifierOptions {
  /** The coalescing window (PUSH_WINDOW_MS, default 30 s). */
  windowMs: number;
  now: () => number;
  /** Hands jobs to the push queue without waiting (the UserObject wraps it in ctx.waitUntil). */
  dispatch: (jobs: PushJob[]) => void;
  /**
   * The user's channel-list row as it stands (rows change in memory and are flushed coalesced,
   * docs/decisions/013, so the table may be a moment behind). Defaults to reading the table.
   */
  row?: (channelId: string) => { last_read_seq: number; muted: number; left: number } | undefined;
}

type WindowRow = {
  channel_id: string; ends_at: number; pushed_seq: number; count: number; pending: number;
  last_seq: number; channel_name: string; channel_type: string; sender_user_id: string; sender_name: string;
  preview: string | null; sent_at: number;
};

/** Rows of channels read long ago that nobody cleared (the user never came back): forgotten after this. */
const WINDOW_RETENTION_MS = 14 * 24 * 3600 * 1000;

export class PushNotifier {
  /**
   * The earliest pending window's end as last read from the table (null: none pending; undefined:
   * read it again). Every window is written through this class, which forgets the value then, so
   * the alarm, which asks on every wake, reads the table only when something may be due. (Rows
   * deleted elsewhere, by erasure, can only make it early: the read then finds nothing due.)
   */
  private earliest: number | null | undefined;
  /**
   * The channels that have a row in push_windows, read once and then kept by this class, which
   * writes every row: a read of a channel without a window (every message the user sends
   * themselves reads its channel) then costs no statement. Rows deleted elsewhere (erasure) only
   * leave an id here that the next read finds gone.
   */
  private windowed: Set<string> | undefined;

  constructor(
    private readonly sql: SqlStorage,
    private readonly subscriptions: PushSubscriptions,
    private readonly userId: () => string | undefined,
    private readonly opts: PushNotifierOptions,
  ) {}

  /**
   * Messages that reached the user while none of their devices took them. Pushes the first at
   * once, merges the rest per channel window; skips muted channels, the user's own messages,
   * system notices and changes. Returns when the alarm must wake to send a merged update, if ever.
   */
  missed(messages: MissedMessage[]): number | undefined {
    if (messages.length === 0 || !this.subscriptions.any()) return undefined;
    let wake: number | undefined;
    for (const m of messages) {
      if (this.silenced(m.channelId)) continue;
      const before = this.window(m.channelId);
      const d = onMissed(before, m, this.opts.now(), this.opts.windowMs);
      if (d.window === before) continue;
      this.apply(m.channelId, d);
      const due = d.window && dueAt(d.window);
      if (due !== undefined) wake = Math.min(wake ?? due, due);
    }
    return wake;
  }

  /** The user read `channelId` up to `readSeq` on some device: drop what is pending, clear what stands. */
  read(channelId: string, readSeq: number): void {
    const w = this.window(channelId);
    if (w) this.apply(channelId, onRead(w, readSeq), readSeq);
  }

  /** The alarm: sends every merged update that is due; returns when the next one is. */
  flushDue(): number | undefined {
    const now = this.opts.now();
    if (this.earliest === null || (this.earliest !== undefined && this.earliest > now)) return this.earliest ?? undefined;
    if (this.sql.exec("DELETE FROM push_windows WHERE pending = 0 AND ends_at < ?", now - WINDOW_RETENTION_MS).rowsWritten > 0) this.windowed = undefined;
    const due = this.sql.exec<WindowRow>("SELECT * FROM push_windows WHERE pending > 0 AND ends_at <= ?", now).toArray();
    for (const row of due) {
      // Muted or left meanwhile: the update is dropped.
      const d = this.silenced(row.channel_id) ? { window: { ...toWindow(row), pending: 0 }, push: false, clear: false } : onWindowEnd(toWindow(row), now, this.opts.windowMs);
      this.apply(row.channel_id, d);
    }
    return this.nextDue();
  }

  /** The earliest pending window's end, for the alarm. */
  nextDue(): number | undefined {
    if (this.earliest === undefined) {
      this.earliest = this.sql.exec<{ at: number | null }>("SELECT min(ends_at) AS at FROM push_windows WHERE pending > 0").one().at;
    }
    return this.earliest ?? undefined;
  }

  /**
   * Whether a message push for `seq` is still worth showing: false once the user read that far
   * (a retried job must not raise a notification that a clear already took down).
   */
  stillUnread(channelId: string, seq: number): boolean {
    const row = this.row(channelId);
    return !row || row.last_read_seq < seq;
  }

  private row(channelId: string): { last_read_seq: number; muted: number; left: number } | undefined {
    if (this.opts.row) return this.opts.row(channelId);
    return this.sql.exec<{ last_read_seq: number; muted: number; left: number }>(
      "SELECT last_read_seq, muted, left FROM channels WHERE channel_id = ?", channelId,
    ).toArray()[0];
  }

  private apply(channelId: string, d: Decision, readSeq = 0): void {
    this.earliest = undefined;
    if (d.window) this.store(d.window);
    else {
      this.sql.exec("DELETE FROM push_windows WHERE channel_id = ?", channelId);
      this.windowedChannels().delete(channelId);
    }
    const userId = this.userId();
    if (!userId) return;
    let payload: PushPayload | undefined;
    if (d.push && d.window) payload = messagePayload(d.window);
    else if (d.clear) payload = { v: 1, type: "clear", channel_id: channelId, read_seq: readSeq };
    if (!payload) return;
    const now = this.opts.now();
    const trace = traced(d.push ? d.window?.last.traceId : undefined);
    const jobs = this.subscriptions.all().map(({ deviceId, subscription }): PushJob => ({
      v: 1, user_id: userId, device_id: deviceId, subscription, payload: payload!, created_at: now, ...trace,
    }));
    if (jobs.length > 0) this.opts.dispatch(jobs);
  }

  /** Muted by the user, or a channel they left: no pushes. */
  private silenced(channelId: string): boolean {
    const row = this.row(channelId);
    return row !== undefined && (row.muted === 1 || row.left === 1);
  }

  private window(channelId: string): PushWindow | undefined {
    if (!this.windowedChannels().has(channelId)) return undefined;
    const row = this.sql.exec<WindowRow>("SELECT * FROM push_windows WHERE channel_id = ?", channelId).toArray()[0];
    return row && toWindow(row);
  }

  private store(w: PushWindow): void {
    const m = w.last;
    this.sql.exec(
      `INSERT INTO push_windows (channel_id, ends_at, pushed_seq, count, pending, last_seq, channel_name, channel_type, sender_user_id, sender_name, preview, sent_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (channel_id) DO UPDATE SET ends_at = excluded.ends_at, pushed_seq = excluded.pushed_seq, count = excluded.count,
         pending = excluded.pending, last_seq = excluded.last_seq, channel_name = excluded.channel_name, channel_type = excluded.channel_type,
         sender_user_id = excluded.sender_user_id, sender_name = excluded.sender_name, preview = excluded.preview, sent_at = excluded.sent_at`,
      w.channelId, w.endsAt, w.pushedSeq, w.count, w.pending, m.seq, m.channelName, m.channelType, m.senderUserId, m.senderName, m.preview, m.sentAt,
    );
    this.windowedChannels().add(w.channelId);
  }

  private windowedChannels(): Set<string> {
    this.windowed ??= new Set(this.sql.exec<{ channel_id: string }>("SELECT channel_id FROM push_windows").toArray().map((r) => r.channel_id));
    return this.windowed;
  }
}

function toWindow(r: WindowRow): PushWindow {
  return {
    channelId: r.channel_id, endsAt: r.ends_at, pushedSeq: r.pushed_seq, count: r.count, pending: r.pending,
    last: {
      channelId: r.channel_id, channelName: r.channel_name, channelType: r.channel_type, seq: r.last_seq,
      senderUserId: r.sender_user_id, senderName: r.sender_name, preview: r.preview, sentAt: r.sent_at,
    },
  };
}

function messagePayload(w: PushWindow): PushPayload {
  const m = w.last;
  return {
    v: 1, type: "message", channel_id: m.channelId, channel_name: m.channelName, channel_type: m.channelType, seq: m.seq, count: w.count,
    sender_user_id: m.senderUserId, sender_name: m.senderName, sent_at: m.sentAt, ...(m.preview !== null ? { preview: m.preview } : {}),
  };
}

/**
 * The messages of a delivery batch a push can be about, as `me` would see them: other people's
 * messages with content (not system notices, not changes to earlier messages). `previews` false
 * (the user's setting) leaves every preview out; encrypted and non-text content never has one.
 */
export function missedMessages(batch: DeliveryBatch, me: string, previews: boolean): MissedMessage[] {
  const c = batch.channel;
  const out: MissedMessage[] = [];
  for (const m of batch.messages) {
    if (m.sender_user_id === me || m.content.system || m.content.update || m.deleted || m.hidden) continue;
    const sender = c.members.find((p) => p.user_id === m.sender_user_id);
    const senderName = sender?.display_name || sender?.username || "";
    out.push({
      channelId: c.channel_id,
      channelName: c.type === "dm" ? senderName || c.name : c.name,
      channelType: c.type,
      seq: m.seq,
      senderUserId: m.sender_user_id,
      senderName,
      preview: previews ? previewOf(m) : null,
      sentAt: m.server_ts,
      ...(m.trace_id ? { traceId: m.trace_id } : {}),
    });
  }
  return out;
}

function previewOf(m: ChatMessageData): string | null {
  const text = m.content.text?.text;
  if (typeof text !== "string" || m.content.encrypted) return null;
  const flat = text.replace(/\s+/g, " ").trim();
  if (flat.length <= PUSH_PREVIEW_MAX) return flat;
  // Cut on a code point, never inside a surrogate pair.
  return `${Array.from(flat.slice(0, PUSH_PREVIEW_MAX)).slice(0, -1).join("")}…`;
}
