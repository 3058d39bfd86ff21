/**
 * The channel's fan-out pump (docs/decisions/013): hands each stored message to the channel's
 * *watchers* (members with a device connected), never to every member, so a post costs
 * O(online devices) and nothing is written per member per message.
 *
 * One pump per channel: rounds of ≤ FANOUT_BATCH messages go out one at a time (so every watcher
 * gets a channel's messages in seq order), and whatever is appended during a round goes in the
 * next. `fanout_seq` records progress; the guard alarm finishes an interrupted fan-out after a
 * restart. Each call has a deadline; a watcher whose delivery fails catches up from the durable
 * retry table before it takes part in rounds again (durable-objects/fanout/rounds.ts). A watcher
 * that answers `{live: false}` is dropped.
 *
 * The watchdog: the guard alarm notices `fanout_seq < last_seq` with no progress for STALL_MS,
 * logs it (`fanout.stalled`) and restarts the pump.
 *
 * Typing indicators and read receipts go to the same watchers, without storage or retries.
 *
 * **Relay tier** (docs/decisions/017-relay-tier.md): a channel with relay shards sends each round
 * once to every shard that holds watchers (targets "relay:<n>" in the same retry table, with the
 * same rules: a shard that failed catches up from the log before it takes part in rounds again).
 * Watchers not yet registered at their shard are delivered directly. Registration runs in the
 * pump, between rounds, one page at a time: a watcher registered between rounds N and N+1 has had
 * every round up to N directly and gets N+1 on from its shard, so no watcher is ever without a path
 * or handed a newer seq before an older one. A watcher that is catching up directly is registered
 * only once it has caught up.
 *
 * Leaves go the same way back: a watcher that stopped watching (unwatch, removal, erasure) is told
 * to its shard by the pump, a page at a time (one call per shard), once the rounds sent before the
 * leave went out, so the relay neither keeps delivering to it nor keeps its entry.
 */
import { eachLimited, SharedDeadline, withDeadline } from "../../shared/deadline.js";
import { log } from "../../shared/log.js";
import { count } from "../../shared/metrics.js";
import { cutFor, DeliveryRounds, FANOUT_BATCH, removalsIn, RETRY_BASE_MS } from "../fanout/rounds.js";
import type { Sequencer } from "./sequencer.js";
import type { RelayLeave, Watchers } from "./watchers.js";
import { SIGNAL_MAX_MEMBERS, type ChannelSignal, type ChannelSummary, type ChatMessageData, type DeliveryBatch, type DeliveryOutcome } from "./types.js";
import { LruMap } from "../../shared/lru.js";
import type { RelayBatch, RelayDelivered, RelayWatcher } from "../relay/relay.js";
import type { Failure } from "../../shared/errors.js";
import { byRelayShard } from "../../shared/shards.js";

export { FANOUT_BATCH, RETRY_BASE_MS };
/** Concurrent UserObject calls per round. */
export const FANOUT_CONCURRENCY = 32;
/** Deadline of one delivery call. */
export const DELIVER_DEADLINE_MS = 10_000;
/** Deadline of one typing/read signal (best effort, never retried). */
export const SIGNAL_DEADLINE_MS = 5000;
/**
 * A durable reminder armed with the first append after each alarm run: if the process dies before
 * the fan-out finishes, the alarm wakes this object after the restart and the fan-out resumes.
 */
export const FANOUT_GUARD_MS = 2000;
/** Behind with no progress for this long: the pump is logged as stalled and restarted. */
export const STALL_MS = 15_000;
/** Stubs kept per channel (watchers of a direct channel are ≤ a few hundred). */
const MAX_STUBS = 512;
/** Concurrent relay calls of one round (a channel has at most MAX_RELAY_SHARDS shards). */
export const RELAY_CALL_CONCURRENCY = 64;
/**
 * Deadline of one round handed to a relay: the relay answers once each of its watchers has the
 * batch or a retry row, each under its own 10 s deadline, so this leaves room for a slow one.
 */
export const RELAY_DELIVER_DEADLINE_MS = 30_000;
/** Deadline of one registration call to a relay. */
export const RELAY_REGISTER_DEADLINE_MS = 10_000;
/** Watchers registered per pump step (grouped into one call per shard). */
export const REGISTER_PAGE = 256;
/** Leaves told to relays per pump step (grouped into one or two calls per shard). */
export const LEAVE_PAGE = 256;
const RELAY_PREFIX = "relay:";

/** The calls a channel makes on one of its relay shards (durable-objects/relay/RelayObject.ts). */
export interface RelayEndpoint {
  register(channelId: string, shard: number, watchers: RelayWatcher[]): Promise<({ ok: true; registered: RelayWatcher[] }) | Failure>;
  unregister(channelId: string, shard: number, watchers: RelayWatcher[]): Promise<({ ok: true }) | Failure>;
  forget(channelId: string, shard: number, userIds: string[]): Promise<({ ok: true }) | Failure>;
  deliver(batch: RelayBatch): Promise<({ ok: true } & RelayDelivered) | Failure>;
  signal(channelId: string, shard: number, fromUserId: string, event: ChannelSignal): Promise<unknown>;
}

/** The calls a channel makes on a member's UserObject. */
export interface MemberEndpoint {
  deliver(batch: DeliveryBatch): Promise<DeliveryOutcome | void>;
  signal(event: ChannelSignal): Promise<unknown>;
}

export interface FanOutDeps {
  sql: SqlStorage;
  id(): string;
  /** Asks for the object's alarm no later than `at` (durable when set in the caller's turn). */
  wakeAt(at: number): void;
  waitUntil(promise: Promise<unknown>): void;
  /** The log: its newest seq, and messages the in-memory tail no longer holds. */
  log: Pick<Sequencer, "lastSeq" | "read">;
  /** The channel as members' objects see it, read when a round starts. */
  summary(): ChannelSummary;
  memberCount(): number;
  watchers: Watchers;
  /** A stub for a member's UserObject. */
  userStub(userId: string): MemberEndpoint;
  /** A stub for one of the channel's relay shards. */
  relayStub?(shard: number): RelayEndpoint;
  /** Deadline of one round handed to a relay (RELAY_DELIVER_DEADLINE_MS; tests shorten it). */
  relayDeadlineMs?: number;
  /** Deadline of one delivery call (DELIVER_DEADLINE_MS; tests shorten it). */
  deadlineMs?: number;
  /** The clock retries are timed by (tests move it). */
  now?: () => number;
}

export class FanOut {
  private fanoutSeq = 0;
  /** fanout_seq as stored: the guard alarm saves where the rounds got to (decision 032). */
  private savedSeq = 0;
  /** Appended messages not yet fanned out, so the pump need not read them back. */
  private unsent: ChatMessageData[] = [];
  private pump: Promise<void> | undefined;
  /** Bumped by the watchdog: a pump of an older generation stops at its next step. */
  private generation = 0;
  /** Member stubs for reuse, bounded: a large channel's members need not all stay in memory. */
  private readonly stubs = new LruMap<string, MemberEndpoint>(MAX_STUBS);
  /** Typing and receipts to every direct watcher and relay shard, on one timer. */
  private readonly signalDeadline = new SharedDeadline(SIGNAL_DEADLINE_MS, "signal");
  /** An alarm is pending that will run the pump (see FANOUT_GUARD_MS). */
  private guardArmed = false;
  /** fanout_seq and when it last moved (or the pump last had nothing to do). */
  private progress = { seq: 0, at: Date.now() };
  /**
   * Seqs of messages whose sender's UserObject applied them from the append's answer (decision
   * 033), in seq order: a round holding only such messages of one sender leaves that sender out.
   * In memory only; after a restart the sender gets them again, which it drops by seq.
   */
  private readonly selfApplied = new Set<number>();
  /** Watchers removed from the channel: they get the round holding their removal, up to it. */
  private readonly removedWatchers = new Set<string>();
  private summaryForCalls: ChannelSummary | undefined;
  readonly direct: DeliveryRounds;
  /** Rounds to relay shards (targets "relay:<n>"); idle in the direct tier. */
  readonly relays: DeliveryRounds;
  private readonly relayStubs = new LruMap<number, RelayEndpoint>(MAX_STUBS);
  /** Registration at relays failed: not tried again before this. */
  private registerAfter = 0;
  /** Telling relays of leaves failed: not tried again before this. */
  private leaveAfter = 0;

  constructor(private readonly deps: FanOutDeps) {
    this.relays = new DeliveryRounds({
      sql: deps.sql, from: "channel", to: "relay", id: deps.id, deadlineMs: deps.relayDeadlineMs ?? RELAY_DELIVER_DEADLINE_MS,
      concurrency: RELAY_CALL_CONCURRENCY, owns: (target) => target.startsWith(RELAY_PREFIX),
      call: (target, messages) => this.deliverToRelay(shardOf(target), messages),
      readBacklog: (from, to, max) => deps.log.read(from, Math.min(max, to - from + 1)),
      isTarget: (target) => deps.watchers.atShard(shardOf(target)) > 0,
      onNotLive: () => {},
      forget: (target) => this.relayStubs.delete(shardOf(target)),
      ...(deps.now ? { now: deps.now } : {}),
    });
    this.direct = new DeliveryRounds({
      owns: (target) => !target.startsWith(RELAY_PREFIX),
      sql: deps.sql, from: "channel", to: "user", id: deps.id, deadlineMs: deps.deadlineMs ?? DELIVER_DEADLINE_MS, concurrency: FANOUT_CONCURRENCY,
      call: (userId, messages) => this.stub(userId).deliver({
        channel: this.summaryForCalls ?? deps.summary(), messages, removed_user_ids: [...removalsIn(messages).keys()],
      }),
      readBacklog: (from, to, max) => deps.log.read(from, Math.min(max, to - from + 1)),
      isTarget: (userId) => deps.watchers.isActive(userId),
      onNotLive: (userId, epoch) => {
        if (epoch === undefined) deps.watchers.remove(userId); else deps.watchers.unwatch(userId, epoch);
      },
      forget: (userId) => this.stubs.delete(userId),
      ...(deps.now ? { now: deps.now } : {}),
    });
    this.now = deps.now ?? Date.now;
  }

  private readonly now: () => number;

  /** Resumes from the channel row's fanout_seq. */
  start(fanoutSeq: number): void {
    this.fanoutSeq = fanoutSeq;
    this.savedSeq = fanoutSeq;
    this.progress = { seq: fanoutSeq, at: Date.now() };
  }

  /** Some stored messages have not been handed to every watcher yet. */
  get behind(): boolean {
    return this.fanoutSeq < this.deps.log.lastSeq;
  }

  /** Every message up to here was handed to every watcher (or to the retry table). */
  get deliveredUpTo(): number {
    return this.fanoutSeq;
  }

  /**
   * Takes a message just stored, in the INSERT's turn: the guard alarm set here is durable
   * together with the message (output gate).
   */
  accept(message: ChatMessageData, selfApplied = false): void {
    if (selfApplied) this.selfApplied.add(message.seq);
    if (message.seq === this.fanoutSeq + 1 && !this.pump) this.progress = { seq: this.fanoutSeq, at: Date.now() };
    if (!this.guardArmed) {
      this.guardArmed = true;
      this.deps.wakeAt(Date.now() + FANOUT_GUARD_MS);
    }
    this.unsent.push(message);
  }

  /** A watcher was removed from the channel: it still gets the round that removes it. */
  removedWatcher(userId: string): void {
    this.removedWatchers.add(userId);
    this.direct.drop(userId);
  }

  /** Starts the pump unless it runs already (it picks up whatever was accepted meanwhile). */
  kick(): void {
    void this.run();
  }

  /**
   * The guard alarm: the watchdog, then the pump (interrupted fan-out, due retries). Does not
   * wait for the pump: an alarm must never hang on another object.
   */
  onAlarm(now = Date.now()): void {
    this.guardArmed = false;
    this.saveProgress();
    if (this.behind && this.pump && this.progress.seq === this.fanoutSeq && now - this.progress.at > STALL_MS) {
      log("warn", "fanout.stalled", { object: "channel", channel_id: this.deps.id(), lag: this.deps.log.lastSeq - this.fanoutSeq, ms: now - this.progress.at });
      count("fanout.stalled");
      this.generation++;
      this.pump = undefined;
      this.progress = { seq: this.fanoutSeq, at: now };
    }
    this.kick();
  }

  /** When the alarm should next look at the fan-out, if ever. */
  nextDue(now = Date.now()): number | undefined {
    const retries = [this.direct.nextRetryAt(), this.relays.nextRetryAt()].filter((t): t is number => t !== undefined);
    if (this.registrable()) retries.push(Math.max(now, this.registerAfter));
    if (this.leavesToTell()) retries.push(Math.max(now, this.leaveAfter));
    const retry = retries.length > 0 ? Math.min(...retries) : undefined;
    if (this.behind || this.savedSeq < this.fanoutSeq) return Math.min(now + FANOUT_GUARD_MS, retry ?? Infinity);
    return retry;
  }

  /**
   * Writes fanout_seq if rounds ended since it was last stored. Called from the guard alarm, a turn
   * that writes anyway, never in a turn of its own: a round's end costs no commit, and the next
   * round's calls do not wait behind one (decision 032). While rounds are unsaved an alarm stays
   * armed (`nextDue`, the pump's end), so the stored value trails by about FANOUT_GUARD_MS; after
   * a crash the pump starts from it and repeats those rounds, which UserObjects drop by seq.
   */
  private saveProgress(): void {
    if (this.savedSeq >= this.fanoutSeq) return;
    this.deps.sql.exec("UPDATE channel SET fanout_seq = ? WHERE id = 1", this.fanoutSeq);
    this.savedSeq = this.fanoutSeq;
    log("debug", "fanout.progress_saved", { object: "channel", channel_id: this.deps.id(), seq: this.fanoutSeq });
  }

  /** Watchers delivered directly that could be registered at their relay shard now. */
  private registrable(): boolean {
    if (this.deps.watchers.relayShards === 0 || !this.deps.relayStub) return false;
    for (const userId of this.deps.watchers.directTargets()) if (!this.direct.isRetrying(userId)) return true;
    return false;
  }

  private wantsRegistration(): boolean {
    return this.registerAfter <= this.now() && this.registrable();
  }

  /** Leaves queued before the rounds sent so far, not yet told to their relay shards. */
  private leavesToTell(): boolean {
    return this.deps.relayStub !== undefined && this.deps.watchers.relayShards > 0 && this.deps.watchers.hasLeavesDue(this.fanoutSeq);
  }

  private wantsLeaves(): boolean {
    return this.leaveAfter <= this.now() && this.leavesToTell();
  }

  /**
   * One page of leaves told to their shards (one call per shard and kind): the relay stops
   * delivering to those watchers, or, for an erased account, deletes every row naming them. Runs
   * in the pump, after the rounds sent before each leave and after any registration on its way,
   * so a relay never hears a leave before what preceded it.
   */
  private async tellLeaves(): Promise<void> {
    const shards = this.deps.watchers.relayShards;
    const page = this.deps.watchers.leavesDue(this.fanoutSeq, LEAVE_PAGE);
    if (page.length === 0) return;
    const byShard = byRelayShard(page, shards);
    const told: RelayLeave[] = [];
    let failed = false;
    const channelId = this.deps.id();
    await eachLimited([...byShard], RELAY_CALL_CONCURRENCY, async ([shard, leaves]) => {
      try {
        const stop = leaves.filter((l) => !l.forget);
        const forget = leaves.filter((l) => l.forget);
        count("fanout.relay_leave_rpc", (stop.length > 0 ? 1 : 0) + (forget.length > 0 ? 1 : 0));
        if (stop.length > 0) {
          const r = await withDeadline(this.relay(shard).unregister(channelId, shard, stop.map(({ user_id, epoch }) => ({ user_id, epoch }))), RELAY_REGISTER_DEADLINE_MS, "relay unregister");
          if (!r.ok) throw new Error(`${r.code}: ${r.message}`);
          told.push(...stop);
        }
        if (forget.length > 0) {
          const r = await withDeadline(this.relay(shard).forget(channelId, shard, forget.map((l) => l.user_id)), RELAY_REGISTER_DEADLINE_MS, "relay forget");
          if (!r.ok) throw new Error(`${r.code}: ${r.message}`);
          told.push(...forget);
        }
      } catch (err) {
        failed = true;
        this.relayStubs.delete(shard);
        log("warn", "fanout.relay_leave_failed", { object: "channel", channel_id: channelId, shard }, err);
      }
    });
    this.deps.watchers.leavesTold(told);
    if (failed) {
      // Those not told stay queued; the alarm tries again.
      this.leaveAfter = this.now() + RETRY_BASE_MS;
      this.deps.wakeAt(Date.now() + RETRY_BASE_MS);
    }
  }

  /**
   * Runs the pump until the leave of `userId` reached its relay shard, or `ms` passed; answers
   * whether it did (erasure waits for it before it calls a channel done).
   */
  async leaveTold(userId: string, ms: number): Promise<boolean> {
    if (!this.deps.watchers.leavePending(userId)) return true;
    const until = Date.now() + ms;
    // Bounded: each pass is one pump run (rounds, then a page of leaves).
    for (let pass = 0; pass < 20 && this.deps.watchers.leavePending(userId) && Date.now() < until; pass++) {
      await withDeadline(this.run(), Math.max(1, until - Date.now()), "relay leave").catch(() => {});
      if (this.leaveAfter > this.now()) break;
    }
    return !this.deps.watchers.leavePending(userId);
  }

  /**
   * One page of watchers registered at their shards (one call per shard), then delivered through
   * them. Runs in the pump, between rounds (see the file comment).
   */
  private async registerAtRelays(): Promise<void> {
    const shards = this.deps.watchers.relayShards;
    const page = this.deps.watchers.unregistered(REGISTER_PAGE + this.direct.retryCount)
      .filter((w) => !this.direct.isRetrying(w.user_id)).slice(0, REGISTER_PAGE);
    if (page.length === 0) return;
    const byShard = byRelayShard(page, shards);
    let failed = false;
    let moved = 0;
    const channelId = this.deps.id();
    await eachLimited([...byShard], RELAY_CALL_CONCURRENCY, async ([shard, watchers]) => {
      try {
        count("fanout.relay_register_rpc", 1);
        const r = await withDeadline(this.relay(shard).register(channelId, shard, watchers), RELAY_REGISTER_DEADLINE_MS, "relay register");
        if (!r.ok) throw new Error(`${r.code}: ${r.message}`);
        // Only what is still as registered: a watcher that unwatched meanwhile stays as it is now.
        for (const w of r.registered) if (this.deps.watchers.atRelay(w.user_id, w.epoch)) moved++;
      } catch (err) {
        failed = true;
        this.relayStubs.delete(shard);
        log("warn", "fanout.relay_register_failed", { object: "channel", channel_id: channelId, shard }, err);
      }
    });
    if (failed || moved === 0) {
      // Those not registered keep their direct path; the alarm tries again.
      this.registerAfter = this.now() + RETRY_BASE_MS;
      this.deps.wakeAt(Date.now() + RETRY_BASE_MS);
    }
  }

  private async deliverToRelay(shard: number, messages: ChatMessageData[]): Promise<void> {
    const r = await this.relay(shard).deliver({ channel_id: this.deps.id(), shard, channel: this.summaryForCalls ?? this.deps.summary(), messages });
    if (!r.ok) throw new Error(`${r.code}: ${r.message}`);
    // Watchers with no device connected: the relay dropped them, the channel unwatches them (epoch
    // rules apply) without telling the relay back.
    for (const d of r.dropped) this.deps.watchers.unwatch(d.user_id, d.epoch, false);
  }

  private relay(shard: number): RelayEndpoint {
    return this.relayStubs.getOrSet(shard, () => this.deps.relayStub!(shard));
  }

  /**
   * Ephemeral news to every watcher but `fromUserId`, off the caller's path: the RPC that caused
   * it returns at once. Channels above SIGNAL_MAX_MEMBERS do not push typing or receipts at all;
   * `anySize` news (expiry, at most once per batch of expired messages) goes to every watcher.
   */
  signal(fromUserId: string, event: ChannelSignal, anySize = false): void {
    if (!anySize && this.deps.memberCount() > SIGNAL_MAX_MEMBERS) return;
    const targets = [...this.deps.watchers.directTargets()].filter((id) => id !== fromUserId);
    const shards = this.deps.relayStub ? this.deps.watchers.shardsWithWatchers() : [];
    if (targets.length + shards.length === 0) return;
    count("fanout.signal_rpc", targets.length + shards.length);
    const channelId = this.deps.id();
    this.deps.waitUntil(Promise.allSettled([
      ...targets.map((id) => this.signalDeadline.run(this.stub(id).signal(event))),
      ...shards.map((shard) => this.signalDeadline.run(this.relay(shard).signal(channelId, shard, fromUserId, event))),
    ]));
  }

  /**
   * One pump per object: while it awaits a round, new appends accumulate and go out together in
   * the next. Rounds run one at a time, so every watcher receives a channel's messages in order.
   * Due retries catch up before each round (so a catching-up watcher joins at the right seq).
   */
  run(): Promise<void> {
    if (this.pump) return this.pump;
    const due = Math.min(this.direct.nextRetryAt() ?? Infinity, this.relays.nextRetryAt() ?? Infinity) <= this.now();
    if (!this.behind && !due && !this.wantsRegistration() && !this.wantsLeaves()) {
      this.progress = { seq: this.fanoutSeq, at: Date.now() };
      return Promise.resolve();
    }
    const generation = this.generation;
    let pump: Promise<void> | undefined = undefined;
    pump = (async () => {
      await null; // run the body after `this.pump` is assigned, even if it has nothing to await
      try {
        for (;;) {
          if (generation !== this.generation) return;
          if (this.direct.retryCount > 0 || this.relays.retryCount > 0) {
            this.summaryForCalls = this.deps.summary();
            await Promise.all([
              this.direct.catchUp(this.fanoutSeq, (target, page) => cutFor(target, page, removalsIn(page))),
              this.relays.catchUp(this.fanoutSeq),
            ]);
          }
          if (generation !== this.generation) return;
          if (this.wantsLeaves()) await this.tellLeaves();
          if (generation !== this.generation) return;
          if (this.wantsRegistration()) {
            await this.registerAtRelays();
            if (!this.behind) continue;
          }
          if (generation !== this.generation) return;
          // A leave queued while the pump awaited a relay is told before it stops.
          if (!this.behind) { if (this.wantsLeaves()) continue; break; }
          const messages = this.takeUnsent(this.fanoutSeq + 1, FANOUT_BATCH);
          if (messages.length === 0) break;
          await this.deliverRound(messages);
          if (generation !== this.generation) return;
          this.fanoutSeq = messages.at(-1)!.seq;
          // Every watcher has the batch or a durable retry row: the round's end, for tracing a post.
          log("debug", "fanout.round_done", { object: "channel", channel_id: this.deps.id(), seq: this.fanoutSeq, ms: Date.now() - messages[0]!.server_ts });
          this.progress = { seq: this.fanoutSeq, at: Date.now() };
        }
        const retry = Math.min(this.direct.nextRetryAt() ?? Infinity, this.relays.nextRetryAt() ?? Infinity);
        if (retry !== Infinity) this.deps.wakeAt(retry);
        // The guard alarm stores where the rounds got to: arm it if none is pending.
        if (this.savedSeq < this.fanoutSeq && !this.guardArmed) {
          this.guardArmed = true;
          this.deps.wakeAt(Date.now() + FANOUT_GUARD_MS);
        }
      } catch (err) {
        log("error", "fanout.pump_failed", { object: "channel", channel_id: this.deps.id() }, err);
        this.deps.wakeAt(Date.now() + RETRY_BASE_MS);
      } finally {
        if (this.pump === pump) this.pump = undefined;
      }
    })();
    this.pump = pump;
    return pump;
  }

  private takeUnsent(fromSeq: number, max: number): ChatMessageData[] {
    this.unsent = this.unsent.filter((m) => m.seq >= fromSeq);
    if (this.unsent[0]?.seq === fromSeq) return this.unsent.slice(0, max);
    // After a restart the in-memory tail is gone: read the messages back.
    return this.deps.log.read(fromSeq, max);
  }

  /** Delivers one batch to every watcher, and to watchers the batch removes, up to their removal. */
  private async deliverRound(messages: ChatMessageData[]): Promise<void> {
    const removedAt = removalsIn(messages);
    const targets = new Set(this.deps.watchers.directTargets());
    const sender = this.appliedBySender(messages);
    if (sender !== undefined) targets.delete(sender);
    for (const userId of removedAt.keys()) if (this.removedWatchers.delete(userId)) targets.add(userId);
    this.summaryForCalls = this.deps.summary();
    const shards = this.deps.relayStub ? this.deps.watchers.shardsWithWatchers() : [];
    const tier = this.deps.watchers.relayShards > 0 ? "relay" : "direct";
    count("fanout.round", 1, { tier });
    // How long the batch's oldest message waited for its round (append → delivery starts).
    count("fanout.lag_ms", Math.max(0, Date.now() - messages[0]!.server_ts), { tier });
    await Promise.all([
      this.direct.deliver(targets, messages[0]!.seq, (userId) => cutFor(userId, messages, removedAt)),
      shards.length > 0 ? this.relays.deliver(shards.map((n) => RELAY_PREFIX + n), messages[0]!.seq, () => messages) : undefined,
    ]);
  }

  /**
   * The one sender whose UserObject applied every message of this round itself, if there is one
   * (a burst of one user's SENDs, the common case in a DM); forgets the round's seqs either way.
   */
  private appliedBySender(messages: ChatMessageData[]): string | undefined {
    const last = messages.at(-1)!.seq;
    const sender = messages[0]!.sender_user_id;
    const all = messages.every((m) => m.sender_user_id === sender && this.selfApplied.has(m.seq));
    for (const seq of this.selfApplied) {
      if (seq > last) break;
      this.selfApplied.delete(seq);
    }
    return all ? sender : undefined;
  }

  /** A watcher left (unwatched, removed): nothing more is retried for it directly. */
  dropDirect(userId: string): void {
    this.direct.drop(userId);
  }

  private stub(userId: string): MemberEndpoint {
    return this.stubs.getOrSet(userId, () => this.deps.userStub(userId));
  }
}

function shardOf(target: string): number {
  return Number(target.slice(RELAY_PREFIX.length));
}
