/**
 * Delivery rounds with a durable retry table: the machinery a ChannelObject (to its watchers or
 * its relays) and a RelayObject (to its watchers) share. docs/decisions/013-fan-out-tiers.md.
 *
 * - A round hands one ascending batch of messages to every target, at most `concurrency` calls
 *   in flight, each under a deadline. A target that fails or times out goes into the
 *   `delivery_retry` table with the first seq it lacks; the round never waits longer than the
 *   deadline on anyone.
 * - A target in the retry table is left out of later rounds until it has caught up, so it never
 *   receives a newer seq before an older one. Catching up (`catchUp`) reads the backlog from the
 *   log and delivers it in order; a target that has everything up to the round's first seq joins
 *   the next round. Backoff is per target (its own attempts).
 * - A target that keeps failing is given up on after RETRY_MAX_ATTEMPTS: it skips ahead (the row
 *   goes, it joins the next round, and its object sees the hole and re-syncs; devices pull gaps).
 * - A target that answers `{live: false}` has no open socket: the owner drops it (`onNotLive`).
 */
import { SharedDeadline } from "../../shared/deadline.js";
import { log } from "../../shared/log.js";
import { count } from "../../shared/metrics.js";
import type { ChatMessageData } from "../channel/types.js";

export const RETRY_BASE_MS = 1000;
export const RETRY_MAX_ATTEMPTS = 12;
/** Messages per delivery call; also the unit a pump coalesces bursts into. */
export const FANOUT_BATCH = 100;
/** A backlog longer than this is not replayed: the target gets the newest batch and pulls the rest. */
export const MAX_CATCH_UP = 1000;

/** What a target says about one delivery. Older objects answer nothing, which counts as live. */
export interface Outcome {
  live?: boolean;
  /** The user's watch epoch when it answered (see durable-objects/user/live-channels.ts). */
  epoch?: number;
}

export interface RoundsDeps {
  sql: SqlStorage;
  /** For logs and metrics: who delivers ("channel" | "relay") and to what ("user" | "relay"). */
  from: string;
  to: string;
  /** The owner's id (channel id, relay name), for logs. */
  id(): string;
  deadlineMs: number;
  concurrency: number;
  /** Delivers `messages` to `target`. */
  call(target: string, messages: ChatMessageData[]): Promise<Outcome | void>;
  /** Stored messages from `fromSeq` to `toSeq` (inclusive), ascending, at most `max`. */
  readBacklog(fromSeq: number, toSeq: number, max: number): Promise<ChatMessageData[]> | ChatMessageData[];
  /** Whether `target` should still receive anything (a watcher that left no longer does). */
  isTarget(target: string): boolean;
  /** `target` answered that it has no open socket. */
  onNotLive(target: string, epoch: number | undefined): void;
  /** A call failed: drop any cached stub for `target`. */
  forget(target: string): void;
  /**
   * Which rows of the shared `delivery_retry` table are this instance's (a channel in a relay tier
   * runs two: its direct watchers and its relay shards, "relay:<n>"). Default: all of them.
   */
  owns?(target: string): boolean;
  now?(): number;
}

type RetryRow = { target: string; from_seq: number; attempts: number; next_at: number };

export class DeliveryRounds {
  private readonly retries = new Map<string, RetryRow>();
  private readonly now: () => number;
  /** Every call's deadline, on one timer: a round makes one call per target. */
  private readonly deadline: SharedDeadline;

  constructor(private readonly deps: RoundsDeps) {
    this.now = deps.now ?? Date.now;
    this.deadline = new SharedDeadline(deps.deadlineMs, `deliver to ${deps.to}`);
    for (const row of deps.sql.exec<RetryRow>("SELECT target, from_seq, attempts, next_at FROM delivery_retry")) {
      if (!deps.owns || deps.owns(row.target)) this.retries.set(row.target, { ...row });
    }
  }

  /** Targets that are catching up and left out of rounds. */
  isRetrying(target: string): boolean {
    return this.retries.has(target);
  }

  get retryCount(): number {
    return this.retries.size;
  }

  /** When the earliest retry is due, if any. */
  nextRetryAt(): number | undefined {
    let at: number | undefined;
    for (const r of this.retries.values()) at = at === undefined ? r.next_at : Math.min(at, r.next_at);
    return at;
  }

  /** `target` is gone (unwatched, removed): nothing more is retried for it. */
  drop(target: string): void {
    if (!this.retries.delete(target)) return;
    this.deps.sql.exec("DELETE FROM delivery_retry WHERE target = ?", target);
  }

  /**
   * One round: `messagesFor(target)` (ascending, contiguous from the round's first seq; empty =
   * nothing for this target) to every target not catching up.
   */
  async deliver(targets: Iterable<string>, firstSeq: number, messagesFor: (target: string) => ChatMessageData[]): Promise<void> {
    const list = [...targets].filter((t) => !this.retries.has(t));
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < list.length) {
        const target = list[next++]!;
        const messages = messagesFor(target);
        if (messages.length === 0) continue;
        try {
          await this.callOnce(target, messages);
        } catch (err) {
          this.deps.forget(target);
          this.scheduleRetry(target, firstSeq, err);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.deps.concurrency, list.length) }, worker));
  }

  /**
   * Replays due backlogs up to `upTo` (everything before the next round's first seq), in order.
   * A target whose backlog is delivered leaves the table and joins the next round.
   */
  async catchUp(upTo: number, messagesFor: (target: string, messages: ChatMessageData[]) => ChatMessageData[] = (_, m) => m): Promise<void> {
    const now = this.now();
    const due = [...this.retries.values()].filter((r) => r.next_at <= now);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < due.length) await this.catchUpOne(due[next++]!, upTo, messagesFor);
    };
    await Promise.all(Array.from({ length: Math.min(this.deps.concurrency, due.length) }, worker));
  }

  private async catchUpOne(row: RetryRow, upTo: number, messagesFor: (target: string, messages: ChatMessageData[]) => ChatMessageData[]): Promise<void> {
    const { target } = row;
    if (!this.deps.isTarget(target)) { this.drop(target); return; }
    let from = row.from_seq;
    if (upTo - from + 1 > MAX_CATCH_UP) {
      // Too far behind to replay: the newest batch only; the target's object sees the hole and re-syncs.
      from = upTo - FANOUT_BATCH + 1;
      log("warn", "fanout.skipped_ahead", { object: this.deps.from, id: this.deps.id(), target, from: row.from_seq, to: from - 1 });
      count("fanout.skipped_ahead", 1, { from: this.deps.from });
    }
    try {
      while (from <= upTo) {
        const page = await this.deps.readBacklog(from, upTo, FANOUT_BATCH);
        if (page.length === 0) break;
        const messages = messagesFor(target, page);
        if (messages.length > 0) {
          const outcome = await this.callOnce(target, messages);
          if (outcome?.live === false) return; // onNotLive dropped it
        }
        // A removal within the page ends this target's deliveries.
        if (messages.length < page.length) { this.drop(target); return; }
        from = page.at(-1)!.seq + 1;
        row.from_seq = from;
      }
      this.drop(target);
    } catch (err) {
      this.deps.forget(target);
      row.from_seq = Math.max(row.from_seq, from);
      row.attempts++;
      if (row.attempts >= RETRY_MAX_ATTEMPTS) {
        log("error", "fanout.gave_up", { object: this.deps.from, id: this.deps.id(), target, attempts: row.attempts }, err);
        count("fanout.gave_up", 1, { from: this.deps.from });
        this.drop(target);
        return;
      }
      row.next_at = this.now() + backoffMs(row.attempts);
      this.deps.sql.exec("UPDATE delivery_retry SET from_seq = ?, attempts = ?, next_at = ? WHERE target = ?", row.from_seq, row.attempts, row.next_at, target);
    }
  }

  private async callOnce(target: string, messages: ChatMessageData[]): Promise<Outcome | void> {
    count("fanout.rpc", 1, { from: this.deps.from, to: this.deps.to });
    const outcome = await this.deadline.run(this.deps.call(target, messages));
    if (outcome && outcome.live === false) {
      this.drop(target);
      this.deps.onNotLive(target, outcome.epoch);
    }
    return outcome;
  }

  private scheduleRetry(target: string, fromSeq: number, err: unknown): void {
    count("fanout.retry", 1, { from: this.deps.from, to: this.deps.to });
    log("warn", "fanout.delivery_failed", { object: this.deps.from, id: this.deps.id(), target, from_seq: fromSeq }, err);
    const existing = this.retries.get(target);
    if (existing) {
      existing.from_seq = Math.min(existing.from_seq, fromSeq);
      this.deps.sql.exec("UPDATE delivery_retry SET from_seq = ? WHERE target = ?", existing.from_seq, target);
      return;
    }
    const row: RetryRow = { target, from_seq: fromSeq, attempts: 0, next_at: this.now() + RETRY_BASE_MS };
    this.retries.set(target, row);
    this.deps.sql.exec(
      "INSERT INTO delivery_retry (target, from_seq, attempts, next_at) VALUES (?, ?, ?, ?) ON CONFLICT (target) DO UPDATE SET from_seq = min(from_seq, excluded.from_seq)",
      target, row.from_seq, row.attempts, row.next_at,
    );
  }
}

export function backoffMs(attempts: number): number {
  return RETRY_BASE_MS * 2 ** Math.min(6, Math.max(0, attempts));
}

/**
 * Who a batch removes, and at which seq: a member removed (or leaving) in a batch receives it up
 * to their removal and nothing after.
 */
export function removalsIn(messages: ChatMessageData[]): Map<string, number> {
  const removedAt = new Map<string, number>();
  for (const m of messages) {
    const sys = m.content.system;
    if (sys && (sys.event === "member_removed" || sys.event === "member_left")) {
      for (const uid of sys.target_user_ids ?? []) removedAt.set(uid, m.seq);
    }
  }
  return removedAt;
}

/** `messages` as `target` may receive them: cut after its removal, if the batch removes it. */
export function cutFor(target: string, messages: ChatMessageData[], removedAt: Map<string, number>): ChatMessageData[] {
  const cut = removedAt.get(target);
  return cut === undefined ? messages : messages.filter((m) => m.seq <= cut);
}
