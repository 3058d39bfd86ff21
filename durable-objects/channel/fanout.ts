/**
 * Fan-out, tier 1 (docs/decisions/003): hands each stored message to every member's UserObject.
 * One pump per channel, batches of ≤ FANOUT_BATCH messages, ≤ FANOUT_CONCURRENCY calls at a
 * time. `fanout_seq` records progress; an alarm finishes an interrupted fan-out after a restart
 * and retries, with backoff, the members whose delivery failed (the fanout_retry table).
 * Typing indicators and read receipts take the same stubs, without storage or retries.
 */
import type { Sequencer } from "./sequencer.js";
import { SIGNAL_MAX_MEMBERS, type ChannelSignal, type ChannelSummary, type ChatMessageData, type DeliveryBatch } from "./types.js";
import { LruMap } from "../../shared/lru.js";

/** Messages per fan-out call; also the unit the pump coalesces bursts into. */
export const FANOUT_BATCH = 100;
/** Concurrent UserObject calls per fan-out round (tier 1, ≤ 1,000 members). */
export const FANOUT_CONCURRENCY = 32;
export const RETRY_BASE_MS = 1000;
export const RETRY_MAX_ATTEMPTS = 12;
/**
 * A durable reminder armed with the first append after each alarm run: if the process dies before
 * the fan-out finishes, the alarm wakes this object after the restart and the fan-out resumes.
 * (The constructor resumes it too, but only once something wakes a possibly quiet channel.)
 */
export const FANOUT_GUARD_MS = 2000;

/** The two calls a channel makes on a member's UserObject. */
export interface MemberEndpoint {
  deliver(batch: DeliveryBatch): Promise<unknown>;
  signal(event: ChannelSignal): Promise<unknown>;
}

export interface FanOutDeps {
  sql: SqlStorage;
  alarms: Pick<DurableObjectStorage, "getAlarm" | "setAlarm">;
  waitUntil(promise: Promise<unknown>): void;
  /** The log: its newest seq, and messages the in-memory tail no longer holds. */
  log: Pick<Sequencer, "lastSeq" | "read">;
  /** The channel as members' objects see it, read when a round starts. */
  summary(): ChannelSummary;
  /** Current members, read when a round starts. */
  memberIds(): string[];
  /** A stub for a member's UserObject (cached here, dropped after a failed call). */
  userStub(userId: string): MemberEndpoint;
}

export class FanOut {
  private fanoutSeq = 0;
  /** Appended messages not yet fanned out, so the pump need not read them back. */
  private unsent: ChatMessageData[] = [];
  private pump: Promise<void> | undefined;
  /** Member stubs for reuse, bounded: a large channel's members need not all stay in memory. */
  private readonly stubs = new LruMap<string, MemberEndpoint>(1000);
  /** An alarm is pending that will run the pump (see FANOUT_GUARD_MS). */
  private guardArmed = false;

  constructor(private readonly deps: FanOutDeps) {}

  /** Resumes from the channel row's fanout_seq. */
  start(fanoutSeq: number): void {
    this.fanoutSeq = fanoutSeq;
  }

  /** Some stored messages have not been handed to every member yet. */
  get behind(): boolean {
    return this.fanoutSeq < this.deps.log.lastSeq;
  }

  /** Every message up to here was handed to every member (or to the retry table). */
  get deliveredUpTo(): number {
    return this.fanoutSeq;
  }

  /**
   * Takes a message just stored, in the INSERT's turn: the guard alarm set here is durable
   * together with the message (output gate).
   */
  accept(message: ChatMessageData): void {
    if (!this.guardArmed) {
      this.guardArmed = true;
      void this.deps.alarms.setAlarm(Date.now() + FANOUT_GUARD_MS);
    }
    this.unsent.push(message);
  }

  /** Starts the pump unless it runs already (it picks up whatever was accepted meanwhile). */
  kick(): void {
    if (!this.pump) void this.run();
  }

  /** The alarm: finishes interrupted fan-out, then retries members whose delivery failed. */
  async onAlarm(): Promise<void> {
    this.guardArmed = false;
    await this.run();
    await this.retryFailed();
  }

  /**
   * Ephemeral fan-out to every member but `fromUserId`, off the caller's path: the RPC that caused
   * it returns at once. Channels above SIGNAL_MAX_MEMBERS do not push signals at all.
   */
  signal(fromUserId: string, event: ChannelSignal): void {
    const members = this.deps.memberIds();
    if (members.length > SIGNAL_MAX_MEMBERS) return;
    const targets = members.filter((id) => id !== fromUserId);
    this.deps.waitUntil(Promise.allSettled(targets.map((id) => this.stub(id).signal(event))));
  }

  /**
   * One pump per object: while it awaits a round of deliveries, new appends accumulate and go out
   * together in the next round. Rounds run one at a time, so every member receives a channel's
   * messages in seq order.
   */
  run(): Promise<void> {
    // With nothing to send the pump below would finish synchronously, run its `finally` before the
    // assignment, and leave `this.pump` set to a settled promise: no fan-out ever again.
    if (!this.pump && !this.behind) return Promise.resolve();
    this.pump ??= (async () => {
      try {
        while (this.behind) {
          const messages = this.takeUnsent(this.fanoutSeq + 1, FANOUT_BATCH);
          const to = messages.at(-1)!.seq;
          await this.deliverRound(messages);
          this.fanoutSeq = to;
          this.deps.sql.exec("UPDATE channel SET fanout_seq = ? WHERE id = 1", to);
        }
      } catch (err) {
        console.error("channel fan-out stopped; an alarm resumes it", err);
        await this.deps.alarms.setAlarm(Date.now() + RETRY_BASE_MS);
      } finally {
        this.pump = undefined;
      }
    })();
    return this.pump;
  }

  private takeUnsent(fromSeq: number, max: number): ChatMessageData[] {
    this.unsent = this.unsent.filter((m) => m.seq >= fromSeq);
    if (this.unsent[0]?.seq === fromSeq) return this.unsent.slice(0, max);
    // After a restart the in-memory tail is gone: read the messages back.
    return this.deps.log.read(fromSeq, max);
  }

  /** Delivers one batch to every member, and to anyone the batch removes up to their removal. */
  private async deliverRound(messages: ChatMessageData[]): Promise<void> {
    const channel = this.deps.summary();
    const removedAt = new Map<string, number>();
    for (const m of messages) {
      const sys = m.content.system;
      if (sys && (sys.event === "member_removed" || sys.event === "member_left")) {
        for (const uid of sys.target_user_ids ?? []) removedAt.set(uid, m.seq);
      }
    }
    const recipients = new Set([...this.deps.memberIds(), ...removedAt.keys()]);
    const batchFor = (userId: string): DeliveryBatch => {
      const cut = removedAt.get(userId);
      if (cut === undefined) return { channel, messages, removed_user_ids: [...removedAt.keys()] };
      // Someone removed in this batch sees nothing after their removal.
      return { channel, messages: messages.filter((m) => m.seq <= cut), removed_user_ids: [...removedAt.keys()] };
    };
    await this.deliverEach([...recipients], batchFor, messages[0]!.seq);
  }

  private async deliverEach(userIds: string[], batchFor: (userId: string) => DeliveryBatch, fromSeq: number): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < userIds.length) {
        const userId = userIds[next++]!;
        try {
          await this.stub(userId).deliver(batchFor(userId));
        } catch (err) {
          this.stubs.delete(userId); // a failed call can break the stub: take a fresh one next time
          console.warn(`delivery to ${userId} failed; retrying from an alarm`, err);
          await this.scheduleRetry(userId, fromSeq);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(FANOUT_CONCURRENCY, userIds.length) }, worker));
  }

  private async scheduleRetry(userId: string, fromSeq: number): Promise<void> {
    this.deps.sql.exec(
      `INSERT INTO fanout_retry (user_id, from_seq, attempts) VALUES (?, ?, 0)
       ON CONFLICT (user_id) DO UPDATE SET from_seq = min(from_seq, excluded.from_seq)`,
      userId, fromSeq,
    );
    const alarm = await this.deps.alarms.getAlarm();
    if (alarm === null || alarm > Date.now() + RETRY_BASE_MS) await this.deps.alarms.setAlarm(Date.now() + RETRY_BASE_MS);
  }

  private async retryFailed(): Promise<void> {
    const rows = this.deps.sql.exec<{ user_id: string; from_seq: number; attempts: number }>(
      "SELECT user_id, from_seq, attempts FROM fanout_retry",
    ).toArray();
    let pending = 0;
    for (const row of rows) {
      try {
        for (let from = row.from_seq; from <= this.fanoutSeq; from += FANOUT_BATCH) {
          const messages = this.deps.log.read(from, Math.min(FANOUT_BATCH, this.fanoutSeq - from + 1));
          if (messages.length === 0) break;
          await this.stub(row.user_id).deliver({ channel: this.deps.summary(), messages, removed_user_ids: [] });
        }
        this.deps.sql.exec("DELETE FROM fanout_retry WHERE user_id = ?", row.user_id);
      } catch (err) {
        this.stubs.delete(row.user_id);
        if (row.attempts + 1 >= RETRY_MAX_ATTEMPTS) {
          // The messages are stored; the member's devices fetch them on RESUME or at the next gap.
          console.error(`giving up live delivery to ${row.user_id} after ${RETRY_MAX_ATTEMPTS} attempts`, err);
          this.deps.sql.exec("DELETE FROM fanout_retry WHERE user_id = ?", row.user_id);
        } else {
          this.deps.sql.exec("UPDATE fanout_retry SET attempts = attempts + 1 WHERE user_id = ?", row.user_id);
          pending++;
        }
      }
    }
    if (pending > 0) await this.deps.alarms.setAlarm(Date.now() + RETRY_BASE_MS * 2 ** Math.min(6, rows[0]!.attempts));
  }

  private stub(userId: string): MemberEndpoint {
    let stub = this.stubs.get(userId);
    if (!stub) {
      stub = this.deps.userStub(userId);
      this.stubs.set(userId, stub);
    }
    return stub;
  }
}
