/**
 * Accounting for one scenario run on one target: when each message was sent, acked and delivered
 * to which device, and whether anything was lost, delivered twice or out of order.
 *
 * Messages are recognised by client_msg_id; anything else a device receives (system messages,
 * late traffic from an earlier scenario) is counted as `foreign` and otherwise ignored.
 */
import type { edgechat } from "../../protocol/generated/chat.js";
import { summarize, type Summary } from "./percentiles.js";

type ChatMessage = edgechat.v1.IChatMessage;

interface Sent {
  channelId: string;
  sentAt: number;
  ackedAt: number | undefined;
  seq: number | undefined;
  failed: boolean;
  /** Devices that must receive it, and those that did. */
  expected: Set<string>;
  received: Set<string>;
  onSettled: (() => void) | undefined;
}

export interface Counts {
  sent: number;
  acked: number;
  /** Delivered at least once to a device that expected it. */
  delivered: number;
  expectedDeliveries: number;
  /** SENDs never answered, plus deliveries of stored messages that never arrived. */
  lost: number;
  duplicated: number;
  outOfOrder: number;
  /** ERROR frames received; a refused SEND counts here, not as lost. */
  errors: number;
  foreign: number;
}

export interface TrackerReport extends Counts {
  ack: Summary | undefined;
  deliver: Summary | undefined;
  /** acked / (last ack − first send). */
  msgsPerSec: number | undefined;
  /** deliveries / (last delivery − first send). */
  deliveriesPerSec: number | undefined;
  firstErrors: string[];
}

export class Tracker {
  private readonly messages = new Map<string, Sent>();
  private readonly ackSamples: number[] = [];
  private readonly deliverSamples: number[] = [];
  /** Highest seq seen per (device, channel), for the ordering check. */
  private readonly lastSeq = new Map<string, number>();
  private pendingAcks = 0;
  private pendingDeliveries = 0;
  private firstSendAt = Infinity;
  private lastAckAt = 0;
  private lastDeliverAt = 0;
  private readonly counts = { delivered: 0, expectedDeliveries: 0, duplicated: 0, outOfOrder: 0, errors: 0, foreign: 0, acked: 0 };
  private readonly firstErrors: string[] = [];
  private idleWaiters: (() => void)[] = [];
  /** Whether deliveries yield latency samples (false while a device catches up on old messages). */
  recordDeliveryLatency = true;

  /** Registers a SEND just written to the wire. `onSettled` runs once, on its ack or error. */
  sent(clientMsgId: string, channelId: string, recipients: readonly string[], onSettled?: () => void, at = performance.now()): void {
    this.messages.set(clientMsgId, {
      channelId, sentAt: at, ackedAt: undefined, seq: undefined, failed: false,
      expected: new Set(recipients), received: new Set(), onSettled,
    });
    this.firstSendAt = Math.min(this.firstSendAt, at);
    this.pendingAcks++;
    this.pendingDeliveries += recipients.length;
    this.counts.expectedDeliveries += recipients.length;
  }

  /** Adds a device that must receive already-sent messages (a device that catches up later). */
  expect(device: string, clientMsgIds: Iterable<string>): void {
    for (const id of clientMsgIds) {
      const m = this.messages.get(id);
      if (!m || m.failed || m.expected.has(device)) continue; // a refused message is never delivered
      m.expected.add(device);
      this.counts.expectedDeliveries++;
      if (!m.received.has(device)) this.pendingDeliveries++;
    }
  }

  /**
   * A SEND_ACK. `status` "duplicate" means the server took a first-time SEND for a retry of an
   * earlier one and stored nothing: counted as duplicated (and nothing will be delivered).
   */
  onAck(clientMsgId: string, seq: number, at: number, status = "stored"): void {
    const m = this.messages.get(clientMsgId);
    if (!m) { this.counts.foreign++; return; }
    if (m.ackedAt !== undefined || m.failed) { this.counts.duplicated++; return; }
    if (status === "duplicate") {
      this.counts.duplicated++;
      if (this.firstErrors.length < 5) this.firstErrors.push(`duplicate: ${clientMsgId} acked as a duplicate of an earlier message`);
    }
    m.ackedAt = at;
    m.seq = seq;
    this.counts.acked++;
    this.ackSamples.push(at - m.sentAt);
    this.lastAckAt = Math.max(this.lastAckAt, at);
    this.settle(m);
  }

  onError(clientMsgId: string, code: string, message: string): void {
    this.counts.errors++;
    if (this.firstErrors.length < 5) this.firstErrors.push(`${code}: ${message}`);
    const m = this.messages.get(clientMsgId);
    if (!m || m.ackedAt !== undefined || m.failed) return;
    m.failed = true;
    // A refused message is never delivered: stop waiting for it.
    for (const d of m.expected) if (!m.received.has(d)) this.pendingDeliveries--;
    this.settle(m);
  }

  onDeliver(device: string, msg: ChatMessage, at: number): void {
    const m = this.messages.get(msg.client_msg_id ?? "");
    if (!m) { this.counts.foreign++; return; }
    if (m.received.has(device)) { this.counts.duplicated++; return; }
    m.received.add(device);
    const key = `${device} ${m.channelId}`;
    const seq = Number(msg.seq ?? 0);
    if (seq <= (this.lastSeq.get(key) ?? 0)) this.counts.outOfOrder++;
    else this.lastSeq.set(key, seq);
    if (!m.expected.has(device)) { this.counts.foreign++; return; }
    this.counts.delivered++;
    this.pendingDeliveries--;
    if (this.recordDeliveryLatency) this.deliverSamples.push(at - m.sentAt);
    this.lastDeliverAt = Math.max(this.lastDeliverAt, at);
    this.wakeIfIdle();
  }

  /** Messages this tracker knows in one channel, by client_msg_id. */
  idsIn(channelId: string): string[] {
    return [...this.messages].filter(([, m]) => m.channelId === channelId).map(([id]) => id);
  }

  /** Arrival time (performance.now()) of the newest expected delivery so far; 0 before any. */
  get lastDeliveryAt(): number {
    return this.lastDeliverAt;
  }

  /** The highest seq `device` received in `channelId` among tracked messages (0 if none). */
  highestSeq(device: string, channelId: string): number {
    return this.lastSeq.get(`${device} ${channelId}`) ?? 0;
  }

  get outstanding(): { acks: number; deliveries: number } {
    return { acks: this.pendingAcks, deliveries: this.pendingDeliveries };
  }

  /** Resolves when every SEND is settled and every expected delivery arrived, or at the timeout. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.idle()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.idleWaiters = this.idleWaiters.filter((w) => w !== done); resolve(false); }, Math.max(0, timeoutMs));
      const done = () => { clearTimeout(timer); resolve(true); };
      this.idleWaiters.push(done);
    });
  }

  report(): TrackerReport {
    let lostDeliveries = 0;
    let unanswered = 0;
    for (const m of this.messages.values()) {
      if (m.failed) continue;
      if (m.ackedAt === undefined) unanswered++;
      for (const d of m.expected) if (!m.received.has(d)) lostDeliveries++;
    }
    const sent = this.messages.size;
    const span = (end: number) => (end > this.firstSendAt ? (end - this.firstSendAt) / 1000 : undefined);
    const ackSpan = span(this.lastAckAt);
    const deliverSpan = span(this.lastDeliverAt);
    return {
      sent, ...this.counts, lost: unanswered + lostDeliveries,
      ack: summarize(this.ackSamples), deliver: summarize(this.deliverSamples),
      msgsPerSec: ackSpan ? this.counts.acked / ackSpan : undefined,
      deliveriesPerSec: deliverSpan && this.counts.delivered > 0 ? this.counts.delivered / deliverSpan : undefined,
      firstErrors: this.firstErrors,
    };
  }

  private settle(m: Sent): void {
    this.pendingAcks--;
    const f = m.onSettled;
    m.onSettled = undefined;
    f?.();
    this.wakeIfIdle();
  }

  private idle(): boolean {
    return this.pendingAcks === 0 && this.pendingDeliveries === 0;
  }

  private wakeIfIdle(): void {
    if (!this.idle() || this.idleWaiters.length === 0) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }
}
