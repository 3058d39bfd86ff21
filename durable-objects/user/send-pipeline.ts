/**
 * The send pipeline: SENDs from this user's sockets on their way to their channels.
 *
 * - Flow control: at most LIMITS.maxUnackedFrames SENDs per socket await their SEND_ACK (seed
 *   §4.1); past that the socket gets SLOWDOWN and the SEND an ERROR.
 * - Order: a connection numbers its SENDs (send_seq); the runtime may hand over frames that
 *   arrived together in another order, so they are restored to send_seq order first.
 * - One append in flight per channel: whatever queues meanwhile goes in the next
 *   `ChannelObject.appendBatch`, in queue order, so a device's messages keep their order and a
 *   burst costs one call and one commit.
 */
import { pb, type Encoding } from "../../protocol/codec.js";
import { LIMITS } from "../../protocol/limits.js";
import { fail, failureFromException, type Failure, type Result } from "../../shared/errors.js";
import { errorFrame, sendFrame } from "../../shared/frames.js";
import type { AppendInput, SendAck } from "../channel/types.js";
import { capId } from "./socket-protocol.js";

/** How long a client over its flow-control window is asked to pause. */
export const SLOWDOWN_MS = 250;

/** One SEND on its way to its channel. */
export interface SendJob {
  ws: WebSocket;
  encoding: Encoding;
  requestId: number;
  channelId: string;
  input: AppendInput;
  done: () => void;
}

/** Restores a connection's SEND order (SEND.send_seq) when frames are handed over out of order. */
interface SendOrder {
  next: number;
  held: Map<number, SendJob>;
}

/** The channel side of the pipeline: one ChannelObject's appendBatch, and a way to drop a broken stub. */
export interface AppendTarget {
  appendBatch(channelId: string, inputs: AppendInput[]): Promise<Result<{ ack: SendAck }>[]>;
  /** A failed call can break the stub: take a fresh one next time. */
  forget(channelId: string): void;
}

export class SendPipeline {
  /** SENDs each socket has in flight to channels: the flow-control window. */
  private readonly inflight = new Map<WebSocket, number>();
  private readonly sendOrder = new Map<WebSocket, SendOrder>();
  /** Per channel: SENDs waiting for the batch in flight to that channel to come back. */
  private readonly appendQueues = new Map<string, SendJob[]>();

  constructor(private readonly channels: AppendTarget) {}

  /** Past the window: SLOWDOWN to the socket, and the Failure to report for this SEND. */
  refuseOverWindow(ws: WebSocket, encoding: Encoding): Failure | undefined {
    if ((this.inflight.get(ws) ?? 0) < LIMITS.maxUnackedFrames) return undefined;
    sendFrame(ws, { type: pb.FrameType.SLOWDOWN, slowdown: { delay_ms: SLOWDOWN_MS, reason: `more than ${LIMITS.maxUnackedFrames} SENDs awaiting SEND_ACK` } }, encoding);
    return fail("rate_limited", `At most ${LIMITS.maxUnackedFrames} SENDs may await their SEND_ACK; wait for acks, then retry.`, SLOWDOWN_MS);
  }

  /**
   * Queues a SEND for its channel (the caller checked the window) and resolves once its SEND_ACK
   * or ERROR is written.
   */
  async submit(job: Omit<SendJob, "done">, sendSeq: number): Promise<void> {
    this.inflight.set(job.ws, (this.inflight.get(job.ws) ?? 0) + 1);
    await new Promise<void>((done) => this.admitInOrder({ ...job, done }, sendSeq));
  }

  /** SENDs of `ws` awaiting their reply. */
  inFlight(ws: WebSocket): number {
    return this.inflight.get(ws) ?? 0;
  }

  /**
   * The socket closed: forget its window, and store the SENDs it left held behind a send_seq that
   * never came, in order (their handlers must finish; a client retry with the same client_msg_id
   * dedups).
   */
  socketGone(ws: WebSocket): void {
    this.inflight.delete(ws);
    const order = this.sendOrder.get(ws);
    this.sendOrder.delete(ws);
    if (!order) return;
    for (const seq of [...order.held.keys()].sort((a, b) => a - b)) this.enqueueAppend(order.held.get(seq)!);
  }

  /**
   * Hands SENDs to their channel's queue in the connection's send_seq order. A number that never
   * comes (a client bug) stalls nothing for long: past a window's worth of held frames, the rest
   * go in order without it.
   */
  private admitInOrder(job: SendJob, sendSeq: number): void {
    if (sendSeq <= 0) return this.enqueueAppend(job);
    let order = this.sendOrder.get(job.ws);
    if (!order) this.sendOrder.set(job.ws, (order = { next: 1, held: new Map() }));
    if (sendSeq < order.next) return this.enqueueAppend(job); // a reused number: as it comes
    order.held.set(sendSeq, job);
    if (sendSeq > order.next && order.held.size < LIMITS.maxUnackedFrames) return;
    if (!order.held.has(order.next)) order.next = Math.min(...order.held.keys());
    for (let next = order.held.get(order.next); next; next = order.held.get(order.next)) {
      order.held.delete(order.next);
      order.next++;
      this.enqueueAppend(next);
    }
  }

  private enqueueAppend(job: SendJob): void {
    const queue = this.appendQueues.get(job.channelId);
    if (queue) { queue.push(job); return; }
    this.appendQueues.set(job.channelId, [job]);
    void this.runAppends(job.channelId);
  }

  private async runAppends(channelId: string): Promise<void> {
    const queue = this.appendQueues.get(channelId)!;
    while (queue.length > 0) {
      const jobs = queue.splice(0, LIMITS.maxUnackedFrames);
      let results: Result<{ ack: SendAck }>[];
      try {
        results = await this.channels.appendBatch(channelId, jobs.map((j) => j.input));
      } catch (err) {
        this.channels.forget(channelId);
        console.error("append failed", err);
        results = jobs.map(() => failureFromException(err));
      }
      jobs.forEach((job, i) => this.finishSend(job, results[i] ?? failureFromException(new Error("no result for a SEND"))));
    }
    this.appendQueues.delete(channelId);
  }

  private finishSend(job: SendJob, result: Result<{ ack: SendAck }>): void {
    const left = (this.inflight.get(job.ws) ?? 1) - 1;
    if (left > 0) this.inflight.set(job.ws, left); else this.inflight.delete(job.ws);
    const frame = result.ok
      ? { type: pb.FrameType.SEND_ACK, request_id: job.requestId, send_ack: result.ack }
      : errorFrame(job.requestId, result, { channel_id: capId(job.channelId), client_msg_id: capId(job.input.clientMsgId) });
    sendFrame(job.ws, frame, job.encoding);
    job.done();
  }
}
