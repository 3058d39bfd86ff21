/**
 * What a relay shard does (docs/decisions/017-relay-tier.md), apart from the object around it so
 * it can be tested over a real database with recorder endpoints (as channel/fanout.ts is).
 *
 * - Holds its shard's watchers (user id, epoch; a registration or drop older than the row's
 *   epoch is stale and changes nothing).
 * - Takes one batch per fan-out round from its channel and delivers it to its watchers' UserObjects,
 *   RELAY_CONCURRENCY at a time, each call under RELAY_USER_DEADLINE_MS, with its own durable
 *   retry rows (fanout/rounds.ts): a watcher whose delivery failed is left out of later rounds until
 *   it has caught up from the channel's log, so it never gets a newer seq before an older one.
 * - Answers the batch once every watcher has it or has a durable retry row: a relay that dies
 *   mid-round fails the channel's call, and the channel sends the batch again (UserObjects drop
 *   seqs they have already written, so a repeat costs an RPC, never a duplicate on a socket).
 * - A watcher that answers `{live: false}` is dropped here *and* reported in the answer, so the
 *   channel's watchers table (and its count of watchers per shard) stays true.
 * - A watcher a batch removes from the channel gets the batch up to its removal, then is dropped.
 *
 * Calls are taken one at a time (rounds, catch-ups from the alarm): a relay's watchers get a
 * channel's seqs in order.
 */
import { SharedDeadline, withDeadline } from "../../shared/deadline.js";
import { log } from "../../shared/log.js";
import { count } from "../../shared/metrics.js";
import { LruMap } from "../../shared/lru.js";
import { cutFor, DeliveryRounds, removalsIn } from "../fanout/rounds.js";
import type { ChannelSignal, ChannelSummary, ChatMessageData, DeliveryBatch, DeliveryOutcome } from "../channel/types.js";

/** Concurrent UserObject calls of one relay round. */
export const RELAY_CONCURRENCY = 64;
/** Deadline of one delivery from a relay to a UserObject. */
export const RELAY_USER_DEADLINE_MS = 10_000;
/** Deadline of one signal (typing, read receipt) from a relay: best effort, never retried. */
export const RELAY_SIGNAL_DEADLINE_MS = 5_000;
/** Deadline of the channel calls a relay makes (reading the log for a catch-up). */
export const RELAY_CHANNEL_DEADLINE_MS = 10_000;
const MAX_STUBS = 2048;

export interface RelayWatcher {
  user_id: string;
  epoch: number;
}

/** One fan-out round from a channel to one of its relay shards. */
export interface RelayBatch {
  channel_id: string;
  shard: number;
  channel: ChannelSummary;
  /** Ascending seq, contiguous. */
  messages: ChatMessageData[];
}

/** What a relay answers a batch. */
export interface RelayDelivered {
  /** Watchers that answered `{live: false}` (no device connected), with the user's epoch then. */
  dropped: RelayWatcher[];
  /** Active watchers after the round. */
  watchers: number;
}

/** The calls a relay makes on a watcher's UserObject. */
export interface RelayMember {
  deliver(batch: DeliveryBatch): Promise<DeliveryOutcome | void>;
  signal(event: ChannelSignal): Promise<unknown>;
}

/** What a relay reads from its channel: the log for catch-ups, and how far the channel's fan-out got. */
export interface RelayChannel {
  relayBacklog(fromSeq: number, toSeq: number, max: number): Promise<{ channel: ChannelSummary; messages: ChatMessageData[]; delivered_up_to: number }>;
}

export interface RelayDeps {
  sql: SqlStorage;
  id(): string;
  userStub(userId: string): RelayMember;
  channel(): RelayChannel;
  /** Asks for the object's alarm at `at` (due retries). */
  wakeAt(at: number): void;
  waitUntil(promise: Promise<unknown>): void;
  deadlineMs?: number;
  now?: () => number;
}

export class Relay {
  /** Active watchers and their epochs (a shard holds at most a few thousand). */
  private readonly active = new Map<string, number>();
  private readonly stubs = new LruMap<string, RelayMember>(MAX_STUBS);
  private readonly rounds: DeliveryRounds;
  /** Typing and receipts to every watcher, on one timer. */
  private readonly signalDeadline = new SharedDeadline(RELAY_SIGNAL_DEADLINE_MS, "relay signal");
  /** The newest seq this relay delivered a round of (memory only: after a restart the channel says). */
  private seenSeq = 0;
  private summary: ChannelSummary | undefined;
  /** Watchers dropped since the last answer, reported with the next one. */
  private dropped: RelayWatcher[] = [];
  /** One call at a time. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: RelayDeps) {
    for (const r of deps.sql.exec<{ user_id: string; epoch: number }>("SELECT user_id, epoch FROM watchers WHERE active = 1")) this.active.set(r.user_id, r.epoch);
    this.rounds = new DeliveryRounds({
      sql: deps.sql, from: "relay", to: "user", id: deps.id, deadlineMs: deps.deadlineMs ?? RELAY_USER_DEADLINE_MS, concurrency: RELAY_CONCURRENCY,
      call: (userId, messages) => this.stub(userId).deliver({ channel: this.summary!, messages, removed_user_ids: [...removalsIn(messages).keys()] }),
      readBacklog: async (from, to, max) => {
        const page = await withDeadline(deps.channel().relayBacklog(from, to, max), RELAY_CHANNEL_DEADLINE_MS, "relay backlog");
        this.summary = page.channel;
        return page.messages;
      },
      isTarget: (userId) => this.active.has(userId),
      onNotLive: (userId, epoch) => this.drop(userId, epoch ?? this.active.get(userId) ?? 0),
      forget: (userId) => this.stubs.delete(userId),
      ...(deps.now ? { now: deps.now } : {}),
    });
  }

  get size(): number {
    return this.active.size;
  }

  isWatching(userId: string): boolean {
    return this.active.has(userId);
  }

  get retryCount(): number {
    return this.rounds.retryCount;
  }

  /**
   * Registers watchers as of their epochs, in one turn. Answers those now registered at the epoch
   * given (a stale registration is left out, and the channel keeps delivering to it directly).
   */
  register(watchers: RelayWatcher[]): RelayWatcher[] {
    const registered: RelayWatcher[] = [];
    for (const w of watchers) {
      const row = this.deps.sql.exec<{ epoch: number }>("SELECT epoch FROM watchers WHERE user_id = ?", w.user_id).toArray()[0];
      if (row && w.epoch < row.epoch) continue;
      this.deps.sql.exec(
        "INSERT INTO watchers (user_id, epoch, active) VALUES (?, ?, 1) ON CONFLICT (user_id) DO UPDATE SET epoch = excluded.epoch, active = 1",
        w.user_id, w.epoch,
      );
      this.active.set(w.user_id, w.epoch);
      registered.push(w);
    }
    count("relay.register", registered.length);
    return registered;
  }

  /** Stops delivering to `userId` as of `epoch`; false when stale or not watching. */
  unregister(userId: string, epoch: number): boolean {
    const current = this.active.get(userId);
    if (current === undefined || epoch < current) return false;
    this.deps.sql.exec("UPDATE watchers SET epoch = ?, active = 0 WHERE user_id = ?", epoch, userId);
    this.active.delete(userId);
    this.rounds.drop(userId);
    return true;
  }

  /**
   * Deletes every row naming these users (watcher, retry), whatever the epoch: their account is
   * erased (docs/decisions/020). Answers how many were known here.
   */
  forget(userIds: string[]): number {
    let known = 0;
    for (const userId of userIds) {
      known += this.deps.sql.exec("DELETE FROM watchers WHERE user_id = ?", userId).rowsWritten > 0 ? 1 : 0;
      this.active.delete(userId);
      this.rounds.drop(userId);
      this.stubs.delete(userId);
    }
    this.dropped = this.dropped.filter((d) => !userIds.includes(d.user_id));
    count("relay.forget", known);
    return known;
  }

  /** One round: due catch-ups first (in order), then the batch to every watcher not catching up. */
  deliver(batch: RelayBatch): Promise<RelayDelivered> {
    return this.serial(async () => {
      this.summary = batch.channel;
      const first = batch.messages[0];
      if (first) {
        if (this.rounds.retryCount > 0) await this.rounds.catchUp(first.seq - 1, (target, page) => cutFor(target, page, removalsIn(page)));
        const removedAt = removalsIn(batch.messages);
        count("relay.round");
        await this.rounds.deliver([...this.active.keys()], first.seq, (userId) => cutFor(userId, batch.messages, removedAt));
        // Removed in this batch: delivered up to the removal, now gone (whatever their epoch).
        for (const userId of removedAt.keys()) {
          const epoch = this.active.get(userId);
          if (epoch !== undefined) this.unregister(userId, epoch);
        }
        this.seenSeq = Math.max(this.seenSeq, batch.messages.at(-1)!.seq);
      }
      this.armRetries();
      const dropped = this.dropped;
      this.dropped = [];
      return { dropped, watchers: this.active.size };
    });
  }

  /** Ephemeral news to every watcher but `fromUserId`: best effort, off the caller's path. */
  signal(fromUserId: string, event: ChannelSignal): void {
    const targets = [...this.active.keys()].filter((id) => id !== fromUserId);
    if (targets.length === 0) return;
    count("relay.signal_rpc", targets.length);
    this.deps.waitUntil(Promise.allSettled(targets.map((id) => this.signalDeadline.run(this.stub(id).signal(event)))));
  }

  /** The alarm: due catch-ups, up to the newest seq this relay knows of (after a restart: the channel's). */
  onAlarm(): Promise<void> {
    return this.serial(async () => {
      if (this.rounds.retryCount === 0) return;
      if (this.seenSeq === 0) {
        const probe = await withDeadline(this.deps.channel().relayBacklog(1, 0, 0), RELAY_CHANNEL_DEADLINE_MS, "relay backlog");
        this.summary = probe.channel;
        this.seenSeq = probe.delivered_up_to;
      }
      await this.rounds.catchUp(this.seenSeq, (target, page) => cutFor(target, page, removalsIn(page)));
    }).finally(() => this.armRetries());
  }

  private drop(userId: string, epoch: number): void {
    if (!this.unregister(userId, Math.max(epoch, this.active.get(userId) ?? 0))) return;
    this.dropped.push({ user_id: userId, epoch });
    count("relay.dropped");
  }

  private armRetries(): void {
    const at = this.rounds.nextRetryAt();
    if (at !== undefined) this.deps.wakeAt(at);
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch((err) => log("error", "relay.call_failed", { object: "relay", id: this.deps.id() }, err));
    return run;
  }

  private stub(userId: string): RelayMember {
    return this.stubs.getOrSet(userId, () => this.deps.userStub(userId));
  }
}
