/**
 * Per-channel delivery state: dedup, seq order and gap detection.
 *
 * Invariant: for each channel the client holds every message with seq ≤ `contiguous`, and has
 * emitted them in seq order exactly once. Messages above contiguous + 1 wait in a buffer until the
 * hole below them is filled (by a DELIVER still in flight, or by PULL_HISTORY). Since seq is
 * contiguous from 1 per channel (server_msg_id ends with it), seq alone is the dedup key.
 *
 * A channel has no starting point until the client learns one: the first message it receives
 * (everything older is history, loaded on demand), or the RESUMED snapshot (the server sent every
 * gap before it). Until then it is left out of RESUME, so the server starts from the device's
 * delivered cursor, which DELIVER_ACK keeps current.
 */
import type { ChatMessage } from "./types.js";

/** Pulls that bring nothing new before the client skips a hole instead of waiting forever. */
export const MAX_PULL_STALLS = 3;

interface Held {
  message: ChatMessage;
  /** Already emitted: this device's own send, shown before the channel had a starting point. */
  emitted: boolean;
}

interface ChannelCursor {
  contiguous: number | undefined;
  buffer: Map<number, Held>;
  /** Highest seq known to exist; the client pulls while contiguous < target. */
  target: number;
  pulling: boolean;
  stalls: number;
  /** Last DELIVER_ACK sent. */
  acked: number;
}

export interface PullOutcome {
  /** The hole could not be filled and was skipped. */
  gaveUp: boolean;
  /** Messages released by skipping the hole, in order; emit them. */
  released: ChatMessage[];
}

/**
 * @example
 * const store = new ChannelStore();
 * store.anchor("c1", 0);
 * store.add(msg(2)); // [] — buffered, 1 is missing
 * store.needsPull("c1"); // true: PULL_HISTORY {after_seq: store.contiguous("c1")}
 * store.add(msg(1)); // [msg 1, msg 2]
 */
export class ChannelStore {
  private readonly channels = new Map<string, ChannelCursor>();

  private cursor(channelId: string): ChannelCursor {
    let c = this.channels.get(channelId);
    if (!c) {
      c = { contiguous: undefined, buffer: new Map(), target: 0, pulling: false, stalls: 0, acked: 0 };
      this.channels.set(channelId, c);
    }
    return c;
  }

  /** Highest contiguous seq held, or undefined when the channel has no starting point yet. */
  contiguous(channelId: string): number | undefined {
    return this.channels.get(channelId)?.contiguous;
  }

  /** RESUME cursors: every channel with a starting point. */
  cursors(): { channel_id: string; last_seq: number }[] {
    const out: { channel_id: string; last_seq: number }[] = [];
    for (const [channel_id, c] of this.channels) {
      if (c.contiguous !== undefined) out.push({ channel_id, last_seq: c.contiguous });
    }
    return out;
  }

  /** Gives a channel without a starting point one: everything ≤ seq counts as history. */
  anchor(channelId: string, seq: number): ChatMessage[] {
    const c = this.cursor(channelId);
    if (c.contiguous !== undefined) return [];
    c.contiguous = Math.max(0, seq);
    c.acked = c.contiguous;
    for (const s of c.buffer.keys()) if (s <= c.contiguous) c.buffer.delete(s);
    return this.drain(c);
  }

  isAnchored(channelId: string): boolean {
    return this.channels.get(channelId)?.contiguous !== undefined;
  }

  /** Records that messages up to seq exist (RESUMED, a history page's last_seq). */
  expect(channelId: string, seq: number): void {
    const c = this.cursor(channelId);
    if (seq > c.target) c.target = seq;
  }

  /**
   * Adds one message. Returns the messages that became contiguous, in seq order: empty for a
   * duplicate or for a message that has to wait for a hole below it.
   *
   * `own`: this device's message, built from its SEND_ACK. In a channel without a starting point
   * it is emitted at once but does not become the starting point: a DELIVER of an older message
   * may still be on its way (acks and fan-out travel different paths), and anchoring above it
   * would drop it as history.
   */
  add(message: ChatMessage, own = false): ChatMessage[] {
    if (!Number.isInteger(message.seq) || message.seq < 1) return [];
    const c = this.cursor(message.channel_id);
    if (c.contiguous === undefined) {
      if (own) {
        if (c.buffer.has(message.seq)) return [];
        c.buffer.set(message.seq, { message, emitted: true });
        if (message.seq > c.target) c.target = message.seq;
        return [message];
      }
      c.contiguous = Math.min(message.seq, ...c.buffer.keys()) - 1;
      c.acked = c.contiguous;
    }
    if (message.seq <= c.contiguous || c.buffer.has(message.seq)) return [];
    if (message.seq > c.target) c.target = message.seq;
    c.buffer.set(message.seq, { message, emitted: false });
    return this.drain(c);
  }

  private drain(c: ChannelCursor): ChatMessage[] {
    const out: ChatMessage[] = [];
    if (c.contiguous === undefined) return out;
    const start = c.contiguous;
    for (;;) {
      const next = c.buffer.get(c.contiguous + 1);
      if (!next) break;
      c.buffer.delete(c.contiguous + 1);
      c.contiguous += 1;
      if (!next.emitted) out.push(next.message);
    }
    if (c.contiguous > start) c.stalls = 0;
    return out;
  }

  /** True when a hole is known and no pull for it is in flight. */
  needsPull(channelId: string): boolean {
    const c = this.channels.get(channelId);
    return c !== undefined && c.contiguous !== undefined && !c.pulling && c.target > c.contiguous;
  }

  channelsNeedingPull(): string[] {
    return [...this.channels.keys()].filter((id) => this.needsPull(id));
  }

  /** Marks a pull in flight; returns its after_seq. */
  beginPull(channelId: string): number {
    const c = this.cursor(channelId);
    c.pulling = true;
    return c.contiguous ?? 0;
  }

  /**
   * Ends a pull that started at `fromSeq`. A pull that brought nothing counts as a stall; after
   * MAX_PULL_STALLS the hole is skipped so one lost message cannot wedge a channel forever.
   */
  endPull(channelId: string, fromSeq: number): PullOutcome {
    const c = this.cursor(channelId);
    c.pulling = false;
    if (c.contiguous === undefined || c.contiguous > fromSeq) return { gaveUp: false, released: [] };
    c.stalls += 1;
    if (c.stalls < MAX_PULL_STALLS) return { gaveUp: false, released: [] };
    c.stalls = 0;
    const lowest = Math.min(...c.buffer.keys());
    if (Number.isFinite(lowest)) {
      c.contiguous = lowest - 1;
      return { gaveUp: true, released: this.drain(c) };
    }
    c.target = c.contiguous;
    return { gaveUp: true, released: [] };
  }

  /**
   * The server left `toSeq` and everything before it out on purpose (RESUMED `truncated`: a
   * broadcast channel's "jump to latest"): the channel continues after it without pulling the
   * hole. Returns the messages that became contiguous.
   */
  skipTo(channelId: string, toSeq: number): ChatMessage[] {
    const c = this.cursor(channelId);
    if (c.contiguous !== undefined && c.contiguous >= toSeq) return [];
    c.contiguous = toSeq;
    if (c.acked > toSeq) c.acked = toSeq;
    for (const s of c.buffer.keys()) if (s <= toSeq) c.buffer.delete(s);
    return this.drain(c);
  }

  /** A pull that will be retried later (timeout, retryable error): not a stall. */
  cancelPull(channelId: string): void {
    const c = this.channels.get(channelId);
    if (c) c.pulling = false;
  }

  /** A pull that failed for good (e.g. not_member): stop expecting more for now. */
  abandonPull(channelId: string): void {
    const c = this.cursor(channelId);
    c.pulling = false;
    if (c.buffer.size === 0 && c.contiguous !== undefined) c.target = c.contiguous;
  }

  /** The socket dropped: pulls in flight are lost (RESUME covers the holes). */
  resetPulls(): void {
    for (const c of this.channels.values()) c.pulling = false;
  }

  /** Cumulative DELIVER_ACKs owed since the last call; marks them sent. */
  takeAcks(): { channel_id: string; seq: number }[] {
    const out: { channel_id: string; seq: number }[] = [];
    for (const [channel_id, c] of this.channels) {
      if (c.contiguous !== undefined && c.contiguous > c.acked) {
        c.acked = c.contiguous;
        out.push({ channel_id, seq: c.contiguous });
      }
    }
    return out;
  }

  /** Messages waiting above a hole, for diagnostics and tests. */
  buffered(channelId: string): number[] {
    return [...(this.channels.get(channelId)?.buffer.keys() ?? [])].sort((a, b) => a - b);
  }

  forget(channelId: string): void {
    this.channels.delete(channelId);
  }
}
