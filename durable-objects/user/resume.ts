/**
 * RESUME: a reconnecting device gets every message it lacks, channel by channel, then RESUMED.
 * Deliveries that arrive meanwhile are held and sent after the gap, minus what the gap already
 * covered, so the device sees each message once and in order (DESIGN.md invariant 4).
 */
import type { Encoding } from "../../protocol/codec.js";
import { LIMITS } from "../../protocol/limits.js";
import type { Result } from "../../shared/errors.js";
import type { ChatMessageData, HistoryPageData, HistoryQuery } from "../channel/types.js";
import type { ChannelList } from "./channel-list.js";
import type { Devices } from "./devices.js";

/** Channels whose gaps are paged at the same time. */
export const RESUME_CONCURRENCY = 4;

export interface Gap {
  channel_id: string;
  /** The device holds everything up to here. */
  from: number;
  /** The channel's newest seq. */
  last_seq: number;
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
  channels: Pick<ChannelList, "ids" | "heads">;
  devices: Pick<Devices, "recordDelivered" | "deliveredCursors">;
  /** A page of a channel's history as this user sees it. */
  history(channelId: string, query: HistoryQuery): Promise<Result<HistoryPageData>>;
  /** Writes messages to the resuming socket as DELIVER frames. */
  send(ws: WebSocket, encoding: Encoding, messages: ChatMessageData[]): void;
}

export class Resume {
  /** Sockets between RESUME and RESUMED, with the live deliveries held for them. */
  private readonly resuming = new Map<WebSocket, ChatMessageData[]>();

  constructor(private readonly deps: ResumeDeps) {}

  /** The list to hold live deliveries in while `ws` resumes; undefined when it is not resuming. */
  held(ws: WebSocket): ChatMessageData[] | undefined {
    return this.resuming.get(ws);
  }

  /** The socket closed: nothing more is held for it. */
  socketGone(ws: WebSocket): void {
    this.resuming.delete(ws);
  }

  /** Sends `ws` its gap in every channel, then what was held meanwhile; the caller sends RESUMED. */
  async run(ws: WebSocket, device: { deviceId: string; encoding: Encoding }, clientCursors: ReadonlyMap<string, number>): Promise<void> {
    const { deviceId, encoding } = device;
    const held: ChatMessageData[] = [];
    this.resuming.set(ws, held);
    const sentUpTo = new Map<string, number>();
    try {
      // The device's own cursors are the best record of what it holds: DELIVER_ACKs lost with
      // the last socket would otherwise leave the server's record behind.
      const known = this.deps.channels.ids();
      for (const [channelId, seq] of clientCursors) if (seq > 0 && known.has(channelId)) this.deps.devices.recordDelivered(deviceId, channelId, seq);
      const gaps = resumeGaps(this.deps.channels.heads(), clientCursors, this.deps.devices.deliveredCursors(deviceId));
      let next = 0;
      const worker = async () => {
        while (next < gaps.length) {
          const gap = gaps[next++]!;
          sentUpTo.set(gap.channel_id, await this.sendGap(ws, encoding, gap.channel_id, gap.from));
        }
      };
      await Promise.all(Array.from({ length: Math.min(RESUME_CONCURRENCY, gaps.length) }, worker));
    } finally {
      this.resuming.delete(ws);
    }
    const late = held.filter((m) => m.seq > (sentUpTo.get(m.channel_id) ?? 0));
    if (late.length > 0) this.deps.send(ws, encoding, late);
  }

  /** Pages one channel's messages after `fromSeq` to the socket; returns the last seq sent. */
  private async sendGap(ws: WebSocket, encoding: Encoding, channelId: string, fromSeq: number): Promise<number> {
    let after = fromSeq;
    let sent = 0;
    while (sent < LIMITS.maxResumeMessagesPerChannel) {
      const limit = Math.min(LIMITS.maxPageSize, LIMITS.maxResumeMessagesPerChannel - sent);
      const page = await this.deps.history(channelId, { after, limit });
      if (!page.ok || page.messages.length === 0) break;
      this.deps.send(ws, encoding, page.messages);
      sent += page.messages.length;
      after = page.messages.at(-1)!.seq;
      if (!page.has_more) break;
    }
    return after;
  }
}
