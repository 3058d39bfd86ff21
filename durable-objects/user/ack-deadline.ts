/**
 * Push for deliveries no connected device confirmed (issue 10, "enqueue, never block"): a message
 * written to a live user's sockets that no device DELIVER_ACKs within PUSH_ACK_DEADLINE_MS goes
 * to push exactly as a message that found no socket does (push-notifier.ts `missed`, coalesced
 * per channel window). A device that is connected but asleep (a phone whose socket has not timed
 * out yet, a backgrounded tab) must not make its user miss the notification.
 *
 * Cost: nothing is kept unless the user has a push subscription; then one entry per channel with
 * an unconfirmed message, in memory, and the object's one alarm. An ack (any device, cumulative
 * seq) or a read that covers the entry drops it. Memory only, on purpose (persisting it would cost
 * a write per delivery for every user with push), so the deadline must come before the object can
 * hibernate: a UserObject with sockets open but no events is put to sleep after about 10 s, and
 * sleeping drops memory. The deadline is therefore 5 s by default and never more than 8 s
 * (MAX_PUSH_ACK_DEADLINE_MS): the delivery and the channel-list flush two seconds later are events,
 * so the alarm fires while the entry is still held. Only an eviction for memory pressure inside
 * those seconds loses an entry, which costs one notification of a message the devices were sent.
 */
import type { MissedMessage } from "./push-coalesce.js";

/** Default for PUSH_ACK_DEADLINE_MS. */
export const DEFAULT_PUSH_ACK_DEADLINE_MS = 5_000;
/** Longest deadline honoured: well inside the ~10 s after which an idle object may hibernate. */
export const MAX_PUSH_ACK_DEADLINE_MS = 8_000;
/** Messages kept per channel while waiting: the notification shows the newest and a count. */
const KEPT_PER_CHANNEL = 20;

/** PUSH_ACK_DEADLINE_MS from the Worker's vars, at most MAX_PUSH_ACK_DEADLINE_MS; "0" turns it off (returns 0). */
export function pushAckDeadlineFromEnv(env: { PUSH_ACK_DEADLINE_MS?: string }): number {
  const raw = env.PUSH_ACK_DEADLINE_MS ?? String(DEFAULT_PUSH_ACK_DEADLINE_MS);
  const ms = Number(raw);
  return Number.isSafeInteger(ms) && ms >= 0 ? Math.min(ms, MAX_PUSH_ACK_DEADLINE_MS) : DEFAULT_PUSH_ACK_DEADLINE_MS;
}

interface Waiting {
  /** When the first unconfirmed message of this entry was written to the sockets. */
  since: number;
  /** Highest seq waiting for an ack. */
  seq: number;
  messages: MissedMessage[];
}

export class AckDeadlines {
  private readonly waiting = new Map<string, Waiting>();
  /** Highest seq some device confirmed (or the user read), per channel: late redeliveries of older messages open nothing. */
  private readonly confirmed = new Map<string, number>();

  constructor(private readonly deadlineMs: number, private readonly now: () => number = Date.now) {}

  get enabled(): boolean {
    return this.deadlineMs > 0;
  }

  /**
   * Messages were written to the user's sockets. Returns when the alarm must check them, if a
   * new entry was opened.
   */
  delivered(messages: MissedMessage[]): number | undefined {
    if (!this.enabled) return undefined;
    let wake: number | undefined;
    for (const m of messages) {
      if (m.seq <= (this.confirmed.get(m.channelId) ?? 0)) continue;
      let w = this.waiting.get(m.channelId);
      if (!w) {
        w = { since: this.now(), seq: 0, messages: [] };
        this.waiting.set(m.channelId, w);
        wake ??= w.since + this.deadlineMs;
      }
      w.seq = Math.max(w.seq, m.seq);
      w.messages.push(m);
      if (w.messages.length > KEPT_PER_CHANNEL) w.messages.shift();
    }
    return wake;
  }

  /** A device confirmed holding `channelId` up to `seq` (DELIVER_ACK), or the user read that far. */
  confirm(channelId: string, seq: number): void {
    if (!this.enabled) return;
    if (seq > (this.confirmed.get(channelId) ?? 0)) this.confirmed.set(channelId, seq);
    const w = this.waiting.get(channelId);
    if (!w) return;
    if (seq >= w.seq) { this.waiting.delete(channelId); return; }
    w.messages = w.messages.filter((m) => m.seq > seq);
  }

  /** The alarm: the messages whose deadline passed unconfirmed, per channel; their entries are dropped. */
  due(): MissedMessage[] {
    const now = this.now();
    const out: MissedMessage[] = [];
    for (const [channelId, w] of this.waiting) {
      if (w.since + this.deadlineMs > now) continue;
      this.waiting.delete(channelId);
      out.push(...w.messages);
    }
    return out;
  }

  /** When the alarm next has an entry to check. */
  nextDue(): number | undefined {
    let at: number | undefined;
    for (const w of this.waiting.values()) at = Math.min(at ?? Infinity, w.since + this.deadlineMs);
    return at;
  }

  /** Channels with a message waiting for an ack (tests, logs). */
  get size(): number {
    return this.waiting.size;
  }
}
