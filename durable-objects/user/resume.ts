/**
 * RESUME and the order of a connection (DESIGN.md invariant 4, docs/protocol.md): on one
 * connection a device receives each channel's messages in strictly increasing seq, never one seq
 * twice, RESUME replay included.
 *
 * A socket goes through three phases, kept in its attachment (SocketInfo.phase) because the
 * object may hibernate between any two frames and lose its memory:
 * - `awaiting` (from HELLO): live deliveries are neither sent nor kept; RESUME reads the log
 *   later and covers them. If no RESUME comes within RESUME_DEADLINE_MS, the server runs one
 *   itself (as if RESUME {} had come) from the alarm.
 * - `resuming` (an event is pending, so the object cannot hibernate): the gap goes out page by
 *   page; live deliveries are held in memory and sent after it, minus what the gap covered.
 * - `live`: live deliveries go out as they come. A repeated RESUME on a live socket starts each
 *   channel no lower than what was written to the user's sockets already (the channel row's
 *   sent_seq), so it never repeats a seq on the connection.
 * RESUME runs on one socket never overlap: a second waits for the first.
 */
import { pb, type Encoding } from "../../protocol/codec.js";
import { LIMITS } from "../../protocol/limits.js";
import { log } from "../../shared/log.js";
import type { Result } from "../../shared/errors.js";
import { sendFrame } from "../../shared/frames.js";
import type { ChatMessageData, HistoryPageData, HistoryQuery } from "../channel/types.js";
import type { ChannelRow, ChannelState } from "./channel-list.js";
import type { Devices } from "./devices.js";
import { patchSocketInfo, sendMessages, socketInfo } from "./socket-protocol.js";
import { count } from "../../shared/metrics.js";

/** Channels whose gaps are paged at the same time. */
export const RESUME_CONCURRENCY = 4;
/** A socket that has not sent RESUME this long after HELLO is resumed by the server. */
export const RESUME_DEADLINE_MS = 5000;
/** Broadcast channels: a RESUME sends at most the newest this many, then a "jump to latest" marker. */
export const BROADCAST_RESUME_NEWEST = 50;

export type SocketPhase = "awaiting" | "resuming" | "live";

export interface Gap {
  channel_id: string;
  /** The device holds everything up to here. */
  from: number;
  /** The channel's newest seq as the row knows it. */
  last_seq: number;
}

/** A gap RESUME did not send in full: the client shows "jump to latest" instead of pulling it. */
export interface Truncation {
  channel_id: string;
  /** First and last seq left out. */
  from_seq: number;
  to_seq: number;
}

/**
 * What the device lacks per channel: after its own cursor for the channel if it sent one, else
 * after what it last acknowledged (DELIVER_ACK), else everything.
 */
export function resumeGaps(
  heads: { channel_id: string; last_seq: number }[], clientCursors: ReadonlyMap<string, number>, deviceCursors: ReadonlyMap<string, number>,
): Gap[] {
  return heads
    .map((c) => ({ ...c, from: clientCursors.get(c.channel_id) ?? deviceCursors.get(c.channel_id) ?? 0 }))
    .filter((c) => c.last_seq > c.from);
}

export interface ResumeDeps {
  /** The channels the user is in. */
  rows(): ChannelRow[];
  devices: Pick<Devices, "recordDelivered" | "deliveredCursors">;
  /** Resolves once watches in progress have settled (rows hold exact last_seqs). */
  ready(): Promise<void>;
  /** Whether the row's numbers are exact (watched or re-read); others are paged to the end. */
  synced(channelId: string): boolean;
  /** A page of a channel's history as this user sees it. */
  history(channelId: string, query: HistoryQuery): Promise<Result<HistoryPageData>>;
  /** The socket now holds a channel up to `seq`: later live deliveries start above it. */
  raiseSent(channelId: string, seq: number): void;
  /** The channel list as RESUMED carries it. */
  states(): ChannelState[];
  /** RESUMED went out: what follows it (contacts' presence). */
  resumed(ws: WebSocket): void;
}

interface Run {
  held: ChatMessageData[];
  /** The run has read the rows it resumes: a channel watched from now on is not in its gap. */
  listed: boolean;
}

export class Resume {
  /** Sockets in the `resuming` phase, with the live deliveries held for them. */
  private readonly runs = new Map<WebSocket, Run>();
  /** Per socket, the RESUME queued or running (runs never overlap on one socket). */
  private readonly chains = new Map<WebSocket, Promise<void>>();

  constructor(private readonly deps: ResumeDeps) {}

  /** Where a live delivery for `ws` goes: sent, held (resuming), or nowhere (awaiting RESUME). */
  route(ws: WebSocket): "send" | "hold" | "skip" {
    const phase = socketInfo(ws).phase;
    if (phase === "live") return "send";
    // "resuming" without a run in memory: the run died with its instance; the deadline redoes it.
    if (phase === "resuming" && this.runs.has(ws)) return "hold";
    return "skip";
  }

  /**
   * Whether a channel watched now must be caught up on `ws` from the log (live-channels.ts): yes
   * for a live socket, and for a resuming one whose run has read its rows already. A run still
   * waiting for the watches (RESUME right after HELLO, the usual connect) reads the channel's gap
   * itself, from exact rows: catching it up as well would read the same messages twice.
   */
  needsCatchUp(ws: WebSocket): boolean {
    const how = this.route(ws);
    return how === "send" || (how === "hold" && this.runs.get(ws)?.listed === true);
  }

  hold(ws: WebSocket, messages: ChatMessageData[]): void {
    this.runs.get(ws)?.held.push(...messages);
  }

  /** The socket closed: nothing more is held for it. */
  socketGone(ws: WebSocket): void {
    this.runs.delete(ws);
    this.chains.delete(ws);
  }

  /** Sends `ws` its gap in every channel, then what was held meanwhile, then RESUMED. */
  run(ws: WebSocket, device: { deviceId: string; encoding: Encoding }, clientCursors: ReadonlyMap<string, number>, requestId: number): Promise<void> {
    const previous = this.chains.get(ws) ?? Promise.resolve();
    const next = previous.then(() => this.runOnce(ws, device, clientCursors, requestId));
    const tracked = next.finally(() => { if (this.chains.get(ws) === tracked) this.chains.delete(ws); });
    this.chains.set(ws, tracked);
    return tracked;
  }

  /**
   * Sockets that sent no RESUME within RESUME_DEADLINE_MS of HELLO: the server resumes them from
   * their delivered cursors. Returns when the earliest remaining deadline falls, if any.
   */
  overdue(sockets: WebSocket[], helloAt: (ws: WebSocket) => number, device: (ws: WebSocket) => { deviceId: string; encoding: Encoding }, now: number): number | undefined {
    let next: number | undefined;
    for (const ws of sockets) {
      const phase = socketInfo(ws).phase;
      const stale = phase === "resuming" && !this.runs.has(ws) && !this.chains.has(ws);
      if (phase !== "awaiting" && !stale) continue;
      const due = helloAt(ws) + RESUME_DEADLINE_MS;
      if (due <= now) {
        log("info", "resume.deadline", { object: "user", device_id: device(ws).deviceId });
        void this.run(ws, device(ws), new Map(), 0).catch((err: unknown) => log("error", "resume.failed", { object: "user" }, err));
      } else {
        next = next === undefined ? due : Math.min(next, due);
      }
    }
    return next;
  }

  private async runOnce(ws: WebSocket, device: { deviceId: string; encoding: Encoding }, clientCursors: ReadonlyMap<string, number>, requestId: number): Promise<void> {
    if (ws.readyState !== WebSocket.OPEN) return;
    const { deviceId, encoding } = device;
    const wasLive = socketInfo(ws).phase === "live";
    const run: Run = { held: [], listed: false };
    this.runs.set(ws, run);
    patchSocketInfo(ws, { phase: "resuming" });
    /** Per channel: what this socket holds once the gap is out. */
    const position = new Map<string, number>();
    const truncated: Truncation[] = [];
    const expired: Truncation[] = [];
    try {
      await this.deps.ready();
      const rows = this.deps.rows();
      run.listed = true;
      // The device's own cursors are the best record of what it holds: DELIVER_ACKs lost with
      // the last socket would otherwise leave the server's record behind.
      const known = new Set(rows.map((r) => r.channel_id));
      for (const [channelId, seq] of clientCursors) if (seq > 0 && known.has(channelId)) this.deps.devices.recordDelivered(deviceId, channelId, seq);
      const acked = this.deps.devices.deliveredCursors(deviceId);
      const gaps: { row: ChannelRow; from: number }[] = [];
      for (const row of rows) {
        let from = clientCursors.get(row.channel_id) ?? acked.get(row.channel_id) ?? 0;
        // Live already: everything up to sent_seq may have been written to this connection.
        if (wasLive) from = Math.max(from, row.sent_seq);
        const synced = this.deps.synced(row.channel_id);
        // A cursor past the channel's end holds nothing beyond it (a bogus one must not silence the channel).
        if (synced) position.set(row.channel_id, Math.min(from, row.last_seq));
        if (row.last_seq > from || !synced) gaps.push({ row, from });
      }
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < gaps.length) {
          const { row, from } = gaps[next++]!;
          try {
            const { sent, last } = await this.sendGap(ws, encoding, row, from, truncated, expired);
            position.set(row.channel_id, Math.min(Math.max(from, sent), last));
          } catch (err) {
            // One channel that cannot be read does not stop the others; the device pulls it later.
            log("warn", "resume.channel_failed", { object: "user", channel_id: row.channel_id, device_id: deviceId }, err);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(RESUME_CONCURRENCY, gaps.length) }, worker));
    } finally {
      this.runs.delete(ws);
    }
    const late = run.held.filter((m) => m.seq > (position.get(m.channel_id) ?? 0));
    if (late.length > 0) sendMessages(ws, encoding, late);
    for (const m of late) position.set(m.channel_id, Math.max(position.get(m.channel_id) ?? 0, m.seq));
    for (const [channelId, seq] of position) if (seq > 0) this.deps.raiseSent(channelId, seq);
    if (ws.readyState !== WebSocket.OPEN) return;
    patchSocketInfo(ws, { phase: "live" });
    count("resume.runs", 1, { server_run: requestId === 0 ? "yes" : "no" });
    // RESUMED echoes the request id (0 for a server-run RESUME). `expired`: seqs the device lacked
    // that expired under the channel's retention (below its low-water mark).
    sendFrame(ws, { type: pb.FrameType.RESUMED, request_id: requestId, resumed: { channels: this.deps.states(), truncated, expired } }, encoding);
    this.deps.resumed(ws);
  }

  /**
   * Pages one channel's messages after `fromSeq` to the socket. Returns the last seq sent (or
   * skipped as "too long") and the channel's last seq as the pages said.
   */
  private async sendGap(
    ws: WebSocket, encoding: Encoding, row: ChannelRow, fromSeq: number, truncated: Truncation[], expired: Truncation[],
  ): Promise<{ sent: number; last: number }> {
    const channelId = row.channel_id;
    if (row.type === "broadcast" && row.last_seq - fromSeq > BROADCAST_RESUME_NEWEST) {
      // A long gap in a broadcast channel is not replayed: the newest page and a marker.
      const page = await this.deps.history(channelId, { limit: BROADCAST_RESUME_NEWEST });
      count("resume.pages");
      if (!page.ok) return { sent: fromSeq, last: row.last_seq };
      const newest = page.messages.filter((m) => m.seq > fromSeq);
      const first = newest[0]?.seq ?? page.last_seq + 1;
      if (first - 1 > fromSeq) truncated.push({ channel_id: channelId, from_seq: fromSeq + 1, to_seq: first - 1 });
      if (newest.length > 0) sendMessages(ws, encoding, newest);
      count("resume.messages", newest.length, { truncated: "yes" });
      return { sent: newest.at(-1)?.seq ?? Math.max(fromSeq, first - 1), last: page.last_seq };
    }
    let after = fromSeq;
    let sent = 0;
    let last = row.last_seq;
    while (sent < LIMITS.maxResumeMessagesPerChannel) {
      const limit = Math.min(LIMITS.maxPageSize, LIMITS.maxResumeMessagesPerChannel - sent);
      const page = await this.deps.history(channelId, { after, limit });
      count("resume.pages");
      if (!page.ok) break;
      last = page.last_seq;
      // Below the channel's low-water mark the device's gap has expired: said, then skipped.
      const mark = page.min_seq ?? 0;
      if (mark - 1 > after) {
        expired.push({ channel_id: channelId, from_seq: after + 1, to_seq: mark - 1 });
        after = mark - 1;
      }
      if (page.messages.length === 0) break;
      sendMessages(ws, encoding, page.messages);
      count("resume.messages", page.messages.length);
      sent += page.messages.length;
      after = page.messages.at(-1)!.seq;
      if (!page.has_more) break;
    }
    return { sent: after, last };
  }
}
