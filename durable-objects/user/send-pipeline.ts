/**
 * The send pipeline: SENDs from this user's sockets on their way to their channels.
 *
 * - Flow control: at most LIMITS.maxUnackedFrames SENDs per socket await their SEND_ACK (seed
 *   §4.1); past that the socket gets SLOWDOWN and the SEND an ERROR.
 * - Order: a connection numbers its SENDs (send_seq) and they are stored in that order. The next
 *   number a socket expects lives in the socket's attachment, so it survives the object
 *   hibernating between two SENDs; a SEND refused before ordering still consumes its number; and
 *   SENDs held behind a number that never comes go on without it after GAP_MS.
 * - One append in flight per channel: whatever queues meanwhile goes in the next
 *   `ChannelObject.appendBatch`, in queue order, so a device's messages keep their order and a
 *   burst costs one call and one commit.
 * - Overload (docs/decisions/022): past `overload.userPendingSends` unanswered SENDs over all the
 *   user's sockets, each socket that adds one is sent SLOWDOWN with a delay proportional to the
 *   excess (at most once per delay), so clients pause before any of them fills its window; a
 *   channel that answers with `slowdownMs` (its fan-out lags) gets its sender the same. While
 *   under pressure at most `callsUnderPressure` appendBatch calls are in flight, and the next
 *   channel served is the highest ranked: DMs, then groups, then broadcasts.
 * - Nothing waits for ever: a SEND not answered within the deadline gets a retryable
 *   `unavailable` ERROR and frees its place in the window (the client retries with the same
 *   client_msg_id, which the channel dedups). Deadlines and gaps are checked from the object's
 *   alarm (`tick()`), never from timers, which would keep a hibernatable object awake.
 */
import { pb, type Encoding } from "../../protocol/codec.js";
import { LIMITS } from "../../protocol/limits.js";
import { fail, failureFromException, isRetryablePlatformError, type Failure, type Result } from "../../shared/errors.js";
import { errorFrame, sendFrame } from "../../shared/frames.js";
import { log } from "../../shared/log.js";
import { count } from "../../shared/metrics.js";
import { channelRank, DEFAULT_OVERLOAD, slowdownDelay, type OverloadConfig } from "../../shared/overload.js";
import type { AppendAnswer, AppendInput, ChatMessageData } from "../channel/types.js";
import { capId, patchSocketInfo, socketInfo } from "./socket-protocol.js";

/** How long a client over its flow-control window is asked to pause. */
export const SLOWDOWN_MS = 250;
/** SENDs held behind a missing send_seq wait at most this long before going on without it. */
export const GAP_MS = 2000;
/** Default for SEND_DEADLINE_MS: a SEND unanswered this long gets ERROR unavailable. */
export const DEFAULT_SEND_DEADLINE_MS = 10_000;
/** How long a client told `unavailable` by the deadline is asked to wait before retrying. */
export const DEADLINE_BACKOFF_MS = 1000;

/** One SEND on its way to its channel. */
export interface SendJob {
  ws: WebSocket;
  encoding: Encoding;
  requestId: number;
  channelId: string;
  input: AppendInput;
  /** The SEND frame's trace id (shared/trace.ts), returned in its SEND_ACK or ERROR. */
  traceId?: string;
}

interface Pending extends SendJob {
  submittedAt: number;
  answered: boolean;
  done: () => void;
}

/** A SEND waiting for the numbers before it; `job` is absent for a number consumed by a refusal. */
interface Held {
  job: Pending | undefined;
  at: number;
}

/** The appendBatch in flight to one channel. */
interface Call {
  startedAt: number;
  abandon: () => void;
}

/** One SEND's answer from its channel; `slowdownMs` when the channel is under pressure, `message` when self-applied. */
export type AppendResult = Result<AppendAnswer>;

/** The channel side of the pipeline: one ChannelObject's appendBatch, and a way to drop a broken stub. */
export interface AppendTarget {
  appendBatch(channelId: string, inputs: AppendInput[]): Promise<AppendResult[]>;
  /** A failed call can break the stub: take a fresh one next time. */
  forget(channelId: string): void;
  /** The channel's type as the user's list knows it ("dm", "group", "broadcast"), for the serving order. */
  typeOf?(channelId: string): string | undefined;
}

export interface SendPipelineOptions {
  /** A SEND not answered within this many ms gets ERROR unavailable. */
  deadlineMs?: number;
  /** Asks the host to call `tick()` no later than `at` (the object's alarm). */
  wakeAt?: (at: number) => void;
  now?: () => number;
  /** Thresholds and delays (shared/overload.ts). */
  overload?: OverloadConfig;
  /**
   * Messages a channel stored for `selfApplied` SENDs, in seq order, as each batch comes back
   * (also for SENDs already answered at their deadline): the user's object applies them itself.
   */
  stored?: (channelId: string, messages: ChatMessageData[]) => void;
}

/** SEND_DEADLINE_MS from the Worker's vars, or the default for anything unusable. */
export function sendDeadlineFromEnv(env: { SEND_DEADLINE_MS?: string }): number {
  const ms = Number(env.SEND_DEADLINE_MS ?? DEFAULT_SEND_DEADLINE_MS);
  return Number.isSafeInteger(ms) && ms > 0 ? ms : DEFAULT_SEND_DEADLINE_MS;
}

export class SendPipeline {
  readonly deadlineMs: number;
  /**
   * An appendBatch that has not come back after this long is given up on: the stub is dropped
   * and the channel's queue moves on. Its SENDs were answered at the deadline already.
   */
  readonly abandonMs: number;
  private readonly wakeAt: (at: number) => void;
  private readonly stored: (channelId: string, messages: ChatMessageData[]) => void;
  private readonly now: () => number;
  /** SENDs each socket has unanswered: the flow-control window. */
  private readonly inflight = new Map<WebSocket, number>();
  /** Every unanswered SEND, oldest first (a Set keeps insertion order). */
  private readonly pending = new Set<Pending>();
  /** Per socket: SENDs waiting for a lower send_seq. */
  private readonly held = new Map<WebSocket, Map<number, Held>>();
  /** Per channel: SENDs waiting for the batch in flight to that channel to come back. */
  private readonly appendQueues = new Map<string, Pending[]>();
  private readonly calls = new Map<string, Call>();
  /** The earliest tick() asked of the host and not yet run. */
  private wakeRequested: number | undefined;
  /** Channels with queued SENDs and no call in flight, waiting for a call slot (in arrival order). */
  private readonly ready = new Set<string>();
  /** Channels with a batch being sent and answered: one at a time per channel, which keeps the order. */
  private readonly running = new Set<string>();
  /** Per socket: until when its last SLOWDOWN asked it to pause (one SLOWDOWN per pause). */
  private readonly slowedUntil = new WeakMap<WebSocket, number>();
  readonly overload: OverloadConfig;

  constructor(private readonly channels: AppendTarget, options: SendPipelineOptions = {}) {
    this.deadlineMs = options.deadlineMs ?? DEFAULT_SEND_DEADLINE_MS;
    this.abandonMs = 3 * this.deadlineMs;
    this.wakeAt = options.wakeAt ?? (() => {});
    this.stored = options.stored ?? (() => {});
    this.now = options.now ?? Date.now;
    this.overload = options.overload ?? DEFAULT_OVERLOAD;
  }

  /** Unanswered SENDs over all sockets: this object's pending work. */
  get pendingCount(): number {
    return this.pending.size;
  }

  /** Past the threshold: ephemeral signals are dropped, DMs are served first, clients are slowed. */
  underPressure(): boolean {
    return this.pending.size > this.overload.userPendingSends;
  }

  /**
   * SLOWDOWN {delay_ms} to `ws`, unless a pause it was asked for is still running and at least
   * as long. Returns whether one was sent.
   */
  slowDown(ws: WebSocket, encoding: Encoding, delayMs: number, reason: string): boolean {
    const now = this.now();
    if ((this.slowedUntil.get(ws) ?? 0) >= now + delayMs / 2) return false;
    this.slowedUntil.set(ws, now + delayMs);
    count("overload.slowdown", 1, { object: "user" });
    sendFrame(ws, { type: pb.FrameType.SLOWDOWN, slowdown: { delay_ms: delayMs, reason } }, encoding);
    return true;
  }

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
  submit(job: SendJob, sendSeq: number): Promise<void> {
    return new Promise<void>((done) => {
      const pending: Pending = { ...job, submittedAt: this.now(), answered: false, done };
      this.inflight.set(job.ws, (this.inflight.get(job.ws) ?? 0) + 1);
      this.pending.add(pending);
      this.requestWake(pending.submittedAt + this.deadlineMs);
      const delay = slowdownDelay(this.pending.size, this.overload.userPendingSends, this.overload);
      if (delay !== undefined) this.slowDown(job.ws, job.encoding, delay, `${this.pending.size} SENDs pending for this user`);
      this.admit(job.ws, sendSeq, pending);
    });
  }

  /**
   * A SEND refused before it was queued (bad channel id, window full, ...): its send_seq is used
   * up all the same, so the SENDs numbered after it do not wait for it.
   */
  skip(ws: WebSocket, sendSeq: number | null | undefined): void {
    this.admit(ws, Number(sendSeq ?? 0), undefined);
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
    while (this.held.has(ws)) this.release(ws, true);
  }

  /**
   * Called from the object's alarm: releases SENDs held longer than GAP_MS behind a missing
   * send_seq, answers SENDs past the deadline with `unavailable`, gives up on appendBatch calls
   * older than `abandonMs`, then asks for the next tick it needs.
   */
  tick(): void {
    const now = this.now();
    this.wakeRequested = undefined;
    for (const [ws, held] of [...this.held]) {
      while (this.held.has(ws) && oldest(held) + GAP_MS <= now) {
        count("send.gap_released");
        log("warn", "send.gap_released", { object: "user", device_id: socketInfo(ws).deviceId, expected: socketInfo(ws).sendNext, held: held.size });
        this.release(ws, true);
      }
    }
    for (const job of this.pending) {
      if (job.submittedAt + this.deadlineMs > now) break;
      count("send.deadline");
      log("warn", "send.deadline", { object: "user", channel_id: job.channelId, device_id: job.input.deviceId, ms: now - job.submittedAt });
      this.finish(job, fail("unavailable", `No answer from the channel within ${this.deadlineMs} ms; retry with the same client_msg_id.`, DEADLINE_BACKOFF_MS));
    }
    for (const [channelId, call] of this.calls) {
      if (call.startedAt + this.abandonMs > now) continue;
      log("error", "send.append_abandoned", { object: "user", channel_id: channelId, ms: now - call.startedAt });
      call.abandon();
    }
    const next = this.nextDue();
    if (next !== undefined) this.requestWake(next);
  }

  /** When tick() next has something to do, if ever. */
  nextDue(): number | undefined {
    let due: number | undefined;
    const at = (t: number) => { due = due === undefined ? t : Math.min(due, t); };
    for (const job of this.pending) { at(job.submittedAt + this.deadlineMs); break; }
    for (const held of this.held.values()) at(oldest(held) + GAP_MS);
    for (const call of this.calls.values()) at(call.startedAt + this.abandonMs);
    return due;
  }

  private requestWake(at: number): void {
    if (this.wakeRequested !== undefined && this.wakeRequested <= at) return;
    this.wakeRequested = at;
    this.wakeAt(at);
  }

  /**
   * Hands SENDs to their channel's queue in the connection's send_seq order. The next number
   * expected is kept in the socket's attachment; numbers ahead of it wait (at most GAP_MS, and
   * at most a window's worth). Numbers behind it, repeated ones and 0 (a client that does not
   * number its SENDs) go as they come.
   */
  private admit(ws: WebSocket, sendSeq: number, job: Pending | undefined): void {
    if (!Number.isSafeInteger(sendSeq) || sendSeq <= 0) { if (job) this.enqueueAppend(job); return; }
    const next = socketInfo(ws).sendNext;
    let held = this.held.get(ws);
    if (sendSeq < next || held?.has(sendSeq)) { if (job) this.enqueueAppend(job); return; }
    if (sendSeq === next && !held) {
      patchSocketInfo(ws, { sendNext: next + 1 });
      if (job) this.enqueueAppend(job);
      return;
    }
    if (!held) this.held.set(ws, (held = new Map()));
    held.set(sendSeq, { job, at: this.now() });
    if (sendSeq === next) this.release(ws, false);
    else if (held.size >= LIMITS.maxUnackedFrames) this.release(ws, true);
    else this.requestWake(oldest(held) + GAP_MS);
  }

  /**
   * Sends the run of held SENDs that starts at the expected number; with `skipGap`, first moves
   * the expected number up to the lowest one held.
   */
  private release(ws: WebSocket, skipGap: boolean): void {
    const held = this.held.get(ws);
    if (!held) return;
    let next = socketInfo(ws).sendNext;
    if (skipGap && !held.has(next)) next = Math.min(...held.keys());
    for (let h = held.get(next); h; h = held.get(next)) {
      held.delete(next);
      next++;
      if (h.job && !h.job.answered) this.enqueueAppend(h.job);
    }
    if (held.size === 0) this.held.delete(ws);
    patchSocketInfo(ws, { sendNext: next });
  }

  private enqueueAppend(job: Pending): void {
    const queue = this.appendQueues.get(job.channelId);
    if (queue) queue.push(job);
    else this.appendQueues.set(job.channelId, [job]);
    if (!this.running.has(job.channelId)) this.ready.add(job.channelId);
    this.pump();
  }

  /**
   * Starts a call for each channel waiting, while slots allow: all of them normally, at most
   * `callsUnderPressure` at a time under pressure, and then the highest ranked channel first
   * (DM, group, broadcast; arrival order within a rank).
   */
  private pump(): void {
    while (this.ready.size > 0) {
      const pressed = this.underPressure();
      if (pressed && this.running.size >= this.overload.callsUnderPressure) return;
      let next: string | undefined;
      let best = Infinity;
      for (const channelId of this.ready) {
        if (!pressed) { next = channelId; break; }
        const rank = channelRank(this.channels.typeOf?.(channelId));
        if (rank < best) { best = rank; next = channelId; }
      }
      this.ready.delete(next!);
      void this.runBatch(next!);
    }
  }

  /** One appendBatch for a channel's queue; then the channel waits for a slot again if more came. */
  private async runBatch(channelId: string): Promise<void> {
    const queue = this.appendQueues.get(channelId) ?? [];
    this.running.add(channelId);
    const jobs: Pending[] = [];
    while (queue.length > 0 && jobs.length < LIMITS.maxUnackedFrames) {
      const job = queue.shift()!;
      if (!job.answered) jobs.push(job); // answered at its deadline while queued
    }
    if (jobs.length > 0) {
      const results = await this.append(channelId, jobs.map((j) => j.input));
      const messages: ChatMessageData[] = [];
      for (const r of results) if (r.ok && r.message) messages.push(r.message);
      if (messages.length > 0) this.stored(channelId, messages);
      jobs.forEach((job, i) => this.finish(job, results[i] ?? failureFromException(new Error("no result for a SEND"))));
    }
    this.running.delete(channelId);
    if (queue.length > 0) this.ready.add(channelId);
    else this.appendQueues.delete(channelId);
    this.pump();
  }

  /**
   * One appendBatch, retried once with a fresh stub when the platform says the failure is
   * transient (appendBatch dedups on client_msg_id, so a retry stores nothing twice), and given
   * up on after `abandonMs`.
   */
  private async append(channelId: string, inputs: AppendInput[]): Promise<AppendResult[]> {
    let abandon!: () => void;
    const abandoned = new Promise<"abandoned">((resolve) => { abandon = () => resolve("abandoned"); });
    const call: Call = { startedAt: this.now(), abandon };
    this.calls.set(channelId, call);
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          const results = await Promise.race([this.channels.appendBatch(channelId, inputs), abandoned]);
          if (results === "abandoned") {
            this.channels.forget(channelId);
            return inputs.map(() => fail("unavailable", "The channel did not answer; retry with the same client_msg_id.", DEADLINE_BACKOFF_MS));
          }
          return results;
        } catch (err) {
          this.channels.forget(channelId);
          const retry = attempt === 0 && isRetryablePlatformError(err) && this.now() - call.startedAt < this.deadlineMs;
          log(retry ? "warn" : "error", "send.append_failed", { object: "user", channel_id: channelId, attempt, retry }, err);
          if (!retry) return inputs.map(() => failureFromException(err));
        }
      }
    } finally {
      this.calls.delete(channelId);
    }
  }

  private finish(job: Pending, result: AppendResult): void {
    if (job.answered) return;
    job.answered = true;
    const waited = this.now() - job.submittedAt;
    if (waited > this.deadlineMs / 2 && result.ok) log("warn", "send.slow", { object: "user", channel_id: job.channelId, device_id: job.input.deviceId, ms: waited, trace_id: job.traceId });
    this.pending.delete(job);
    const left = (this.inflight.get(job.ws) ?? 1) - 1;
    if (left > 0) this.inflight.set(job.ws, left); else this.inflight.delete(job.ws);
    const trace = job.traceId ? { trace_id: job.traceId } : {};
    if (result.ok && result.slowdownMs && job.ws.readyState === WebSocket.OPEN) {
      this.slowDown(job.ws, job.encoding, result.slowdownMs, "the channel's fan-out is behind");
    }
    if (result.ok && job.traceId) {
      log("debug", "send.acked", { object: "user", user_id: job.input.userId, device_id: job.input.deviceId, channel_id: job.channelId, seq: result.ack.seq, status: result.ack.status, ms: waited, trace_id: job.traceId });
    }
    const frame = result.ok
      ? { type: pb.FrameType.SEND_ACK, request_id: job.requestId, send_ack: { ...result.ack, ...trace } }
      : errorFrame(job.requestId, result, { channel_id: capId(job.channelId), client_msg_id: capId(job.input.clientMsgId), ...trace });
    sendFrame(job.ws, frame, job.encoding);
    job.done();
  }
}

function oldest(held: Map<number, Held>): number {
  let at = Infinity;
  for (const h of held.values()) at = Math.min(at, h.at);
  return at;
}
