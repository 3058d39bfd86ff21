/**
 * The user's side of watching (docs/decisions/013): a channel delivers live only to *watchers*,
 * members whose UserObject has at least one open device socket. This module decides when this
 * user watches which channel, keeps the channel list exact while it does, and turns deliveries
 * into live frames.
 *
 * - Going live (a first socket opens): `watch(me, epoch)` on every listed channel whose row says
 *   `subscribed = 0` (bounded concurrency, a deadline per call). The answer is the channel's exact
 *   state for this member; the row takes it and says `subscribed = 1`. RESUME waits for this.
 * - Going offline (the last socket closed, and still so after a grace): `unwatch(me, epoch)` on the
 *   subscribed channels, rows back to `subscribed = 0`. Alarm-driven, never timers.
 * - The safety net: a delivery that finds no open socket writes `subscribed = 0` for its channel
 *   (durable before the reply leaves, by the output gate) and answers `{live: false}`; the channel
 *   then drops the watcher. A delivery that fails or times out leaves the watcher in place (the
 *   channel retries it).
 * - Offline with a push subscription, the user stays a watcher of DMs and groups (their messages
 *   go to push), never of broadcast channels: a post there reaches online subscribers only, and
 *   subscribers read what they missed when they open the channel (decision 018). So an offline
 *   subscriber costs a broadcast post nothing, push or not.
 * - Every watch and unwatch carries the user's epoch, bumped durably on each live/offline
 *   transition, so a late call never overrides a newer one, and watches and unwatches run one
 *   pass at a time (`reconcile`), never overlapping for one channel.
 *
 * Invariant (tested): whenever a channel does not list the user as a watcher, the user's row says
 * `subscribed = 0` or the user is not live; and while the user is live, a row with
 * `subscribed = 0` is watched again promptly (now, or from the retry alarm). So a live user never
 * silently misses live messages.
 */
import { withDeadline, eachLimited } from "../../shared/deadline.js";
import type { Result } from "../../shared/errors.js";
import { log } from "../../shared/log.js";
import { count } from "../../shared/metrics.js";
import { LIMITS } from "../../protocol/limits.js";
import type { ChatMessageData, DeliveryBatch, DeliveryOutcome, HistoryPageData, HistoryQuery, MemberChannelState, MembershipNotice } from "../channel/types.js";
import { applySnapshot, applySummary, emptyRow, foldMessages, memberIds, type ChannelList, type ChannelRow } from "./channel-list.js";

/** Channels watched (or re-synced) at the same time. */
export const WATCH_CONCURRENCY = 8;
/** Deadline of one watch, unwatch or state call. */
export const WATCH_DEADLINE_MS = 10_000;
/** A failed watch is retried after this, doubling up to 64×. */
export const WATCH_RETRY_MS = 1000;
/** Messages a live device is caught up with after a watch (a join, a re-watch); older ones it pulls. */
export const CATCH_UP_MESSAGES = LIMITS.maxPageSize;

/** The channel calls this module makes. */
export interface ChannelEndpoint {
  watch(userId: string, epoch: number): Promise<Result<{ state: MemberChannelState }>>;
  unwatch(userId: string, epoch: number): Promise<Result>;
  state(userId: string): Promise<Result<{ state: MemberChannelState }>>;
}

export interface LiveHost {
  me(): string | undefined;
  /** Open device sockets right now. */
  openSockets(): number;
  channel(channelId: string): ChannelEndpoint;
  /** A failed call may break a stub: the next call takes a fresh one. */
  forget(channelId: string): void;
  /** A page of history as this user sees it (for catching up live devices). */
  history(channelId: string, query: HistoryQuery): Promise<Result<HistoryPageData>>;
  /** Writes messages of one channel to the devices, as their phase allows (see resume.ts). */
  emit(messages: ChatMessageData[]): void;
  /**
   * Whether any socket needs a newly watched channel caught up from the log: a live one, or one
   * whose RESUME has read its rows already (a RESUME still waiting for the watches pages the gap itself).
   */
  anyReceiving(): boolean;
  /** CHANNEL_UPDATE for the row to every device. */
  channelUpdate(channelId: string): void;
  /** New people share a small channel with the user (presence). */
  contactsAdded(userIds: string[]): void;
  /** Asks for the object's alarm no later than `at`. */
  wakeAt(at: number): void;
  /** The grace before an offline user unwatches (PRESENCE_OFFLINE_GRACE_MS). */
  graceMs: number;
  /**
   * Whether the user has a push subscription: then they stay a watcher while offline, and
   * deliveries that find no socket go to push instead of dropping the watcher.
   */
  pushWanted(): boolean;
  /** Messages that reached the user while no device took them (push, coalesced per channel). */
  pushMissed(batch: DeliveryBatch): void;
  /** Every delivery: the user's own messages clear what push shows. */
  pushRead(channelId: string, messages: ChatMessageData[]): void;
  /**
   * On wake: whether the sockets the runtime kept (closing ones included) leave the rows as
   * stored: there are some, and none says the list was ahead of its table (decision 035).
   */
  socketsKeptRows(): boolean;
}

/** At most this many missed messages are handed to push when a watch finds some (the rest are counted). */
const PUSH_CATCH_UP = 20;

type LiveState = { epoch: number; offline_at: number };

export class LiveChannels {
  private state: LiveState;
  /** Rows whose counts must be re-read from their channel (new rows, holes, a dirty wake). */
  private readonly needsSync = new Set<string>();
  /** Rows re-read on the channel's word (messages expired): devices hear the new counts. */
  private readonly announce = new Set<string>();
  /** Channels whose watch (or state) call is out: deliveries wait here, in order. */
  private readonly syncing = new Map<string, DeliveryBatch[]>();
  /** Failed watches: when to try again. */
  private readonly retryAt = new Map<string, { at: number; attempts: number }>();
  /**
   * The user's own messages, from their appends' answers (decision 033), waiting for the seqs
   * before them to arrive in rounds: applied in seq order like a delivery, never ahead of a hole.
   * In memory only: lost with the object, they are re-read like any hole (the next round's gap).
   */
  private readonly own = new Map<string, ChatMessageData[]>();
  private running: Promise<void> | undefined;
  private again = false;

  constructor(private readonly sql: SqlStorage, private readonly list: ChannelList, private readonly host: LiveHost) {
    this.state = sql.exec<LiveState>("SELECT epoch, offline_at FROM live_state WHERE id = 1").one();
    // Live when the instance went away: its sockets covered rows that may not have been written
    // (decision 035). Without them (a crash, a restart), or with one saying so, re-sync as after a crash.
    if (this.wentLive && !host.socketsKeptRows()) list.markBehind();
    if (list.wokeDirty) {
      // A crash between delivery and flush: every row may be behind its channel.
      for (const row of list.current()) this.needsSync.add(row.channel_id);
      log("info", "user.list_resync", { object: "user", id: host.me(), rows: this.needsSync.size });
    }
  }

  get epoch(): number {
    return this.state.epoch;
  }

  /* ------------------------------------ transitions ------------------------------------ */

  /** Live as far as the epoch says: each transition bumps it, odd = live, even = offline. */
  get wentLive(): boolean {
    return this.state.epoch % 2 === 1;
  }

  /** A socket was accepted. The first one makes the user live (a new, odd epoch). */
  socketOpened(): void {
    if (!this.wentLive) this.transition(0);
    this.kick();
  }

  /**
   * A socket closed; `open` is what is left. The last one starts the grace before unwatching.
   * Returns whether the user just stopped being live (false when they were not live already).
   */
  socketClosed(open: number, now = Date.now()): boolean {
    if (open > 0 || !this.wentLive) return false;
    // No socket covers rows held in memory any more: they are written with the epoch's change.
    this.list.flush(now);
    this.transition(now);
    this.host.wakeAt(now + this.host.graceMs);
    return true;
  }

  private transition(offlineAt: number): void {
    this.state = { epoch: this.state.epoch + 1, offline_at: offlineAt };
    this.sql.exec("UPDATE live_state SET epoch = ?, offline_at = ? WHERE id = 1", this.state.epoch, this.state.offline_at);
  }

  private isLive(): boolean {
    return this.host.openSockets() > 0;
  }

  /** Whether the user should watch anything: a device connected, or push to send. */
  private wantsDeliveries(): boolean {
    return this.isLive() || this.host.pushWanted();
  }

  /** Whether the user should watch this channel: a device connected, or push to send and not a broadcast channel. */
  private wants(row: Pick<ChannelRow, "type">): boolean {
    return this.isLive() || (this.host.pushWanted() && row.type !== "broadcast");
  }

  /* ------------------------------------ deliveries ------------------------------------ */

  /**
   * One delivery from a channel (or relay). Synchronous: the row's durable `subscribed = 0` when
   * nobody is connected is written in this turn, before the answer leaves.
   */
  deliver(batch: DeliveryBatch): DeliveryOutcome {
    const channelId = batch.channel.channel_id;
    this.host.pushRead(channelId, batch.messages);
    const live = this.isLive();
    if (!live && this.wants(batch.channel)) {
      // Offline with push: the row stays current and the messages go to push; the watcher stays.
      const waiting = this.syncing.get(channelId);
      if (waiting) waiting.push(batch);
      else this.applyLive(channelId, batch.messages, batch.channel);
      if (this.list.row(channelId)?.left === 0) this.host.pushMissed(batch);
      count("deliver.push");
      return { live: true, epoch: this.state.epoch };
    }
    if (!live) {
      const row = this.list.row(channelId);
      if (row && row.subscribed === 1) {
        row.subscribed = 0;
        this.list.write(row);
      }
      count("deliver.not_live");
      return { live: false, epoch: this.state.epoch };
    }
    const waiting = this.syncing.get(channelId);
    if (waiting) waiting.push(batch);
    else this.applyLive(channelId, batch.messages, batch.channel);
    return { live: true, epoch: this.state.epoch };
  }

  /**
   * The user's own messages as their channel stored them (the append's answer): the channel leaves
   * this user out of rounds holding only these, so they are applied here, as a delivery would be
   * (the row, the user's other devices), as soon as every seq before them has arrived.
   */
  ownStored(channelId: string, messages: ChatMessageData[]): void {
    const row = this.list.row(channelId);
    if (!row) return; // a channel the list does not know yet: its watch reads the exact state
    const waiting = this.own.get(channelId) ?? [];
    const seqs = new Set(waiting.map((m) => m.seq));
    for (const m of messages) if (m.seq > row.last_seq && !seqs.has(m.seq)) waiting.push(m);
    if (waiting.length === 0) return;
    waiting.sort((a, b) => a.seq - b.seq);
    this.own.set(channelId, waiting);
    this.host.pushRead(channelId, messages);
    if (!this.syncing.has(channelId)) this.applyOwn(row);
  }

  /** Applies the user's own messages that follow the row's last seq without a hole. */
  private applyOwn(row: ChannelRow): void {
    const waiting = this.own.get(row.channel_id);
    if (!waiting) return;
    let i = 0;
    while (i < waiting.length && waiting[i]!.seq <= row.last_seq) i++;
    let j = i;
    while (j < waiting.length && waiting[j]!.seq === row.last_seq + 1 + (j - i)) j++;
    const ready = waiting.slice(i, j);
    const rest = waiting.slice(j);
    if (rest.length > 0) this.own.set(row.channel_id, rest); else this.own.delete(row.channel_id);
    if (ready.length > 0) this.applyLive(row.channel_id, ready);
  }

  /**
   * Folds live messages into the row and writes what is new to the devices. `channel` is the
   * summary a delivery carries; the user's own posts from an append's answer come without one.
   */
  private applyLive(channelId: string, messages: ChatMessageData[], channel?: DeliveryBatch["channel"]): void {
    const known = this.list.row(channelId);
    const row = known ?? emptyRow(channelId);
    const wasLeft = row.left;
    const summaryChanged = channel !== undefined && applySummary(row, channel);
    const applied = foldMessages(row, messages, this.host.me());
    const fresh = messages.filter((m) => m.seq > row.sent_seq);
    if (fresh.length > 0) {
      row.sent_seq = fresh.at(-1)!.seq;
      this.host.emit(fresh);
    }
    if (applied.left) row.subscribed = 0;
    this.list.put(row);
    if (!known || applied.gap) {
      // A channel this object had not heard of, or a hole: the counts are re-read from the channel.
      this.needsSync.add(channelId);
      this.kick();
    }
    if (!known || summaryChanged || row.left !== wasLeft) this.host.channelUpdate(channelId);
    if (!known || (summaryChanged && row.left === 0)) this.host.contactsAdded(memberIds(row.members));
    if (known && this.own.has(channelId)) this.applyOwn(row);
  }

  /**
   * A membership change from the channel's notice pump (or the API right after creating a
   * channel). Written through: it is the only news a user who is not live gets of a new channel.
   */
  notice(n: MembershipNotice): void {
    const s = n.state;
    const known = this.list.row(s.channel_id);
    if (known && known.membership_seq > n.membership_seq) return;
    const row = known ?? emptyRow(s.channel_id);
    const wasLeft = known ? known.left : 1;
    if (!known || (known.left === 1 && s.member)) {
      // New (or renewed) membership: live devices are caught up from the notice that added the user.
      row.last_seq = Math.min(row.last_seq, s.joined_seq - 1);
      row.sent_seq = Math.max(0, s.joined_seq - 1);
    }
    applySnapshot(row, s);
    row.membership_seq = n.membership_seq;
    if (!s.member) row.subscribed = 0;
    this.list.write(row);
    if (s.member) {
      this.needsSync.add(s.channel_id);
      this.kick();
      if (wasLeft === 1) this.host.contactsAdded(memberIds(row.members));
    }
    if (row.left !== wasLeft || !known) this.host.channelUpdate(s.channel_id);
  }

  /**
   * The channel says its counts changed under the list (messages expired): the row is re-read
   * from the channel, and the devices get a CHANNEL_UPDATE with the new numbers.
   */
  resync(channelId: string): void {
    const row = this.list.row(channelId);
    if (!row || row.left === 1) return;
    this.needsSync.add(channelId);
    this.announce.add(channelId);
    this.kick();
  }

  /** Whether a row's numbers are exact: watched and not waiting for a re-read. */
  isSynced(channelId: string): boolean {
    if (this.needsSync.has(channelId) || this.syncing.has(channelId)) return false;
    return this.list.row(channelId)?.subscribed === 1;
  }

  /** A RESUME wrote the channel up to `seq` to a socket: live deliveries start above it. */
  raiseSent(channelId: string, seq: number): void {
    const row = this.list.row(channelId);
    if (!row || row.sent_seq >= seq) return;
    row.sent_seq = seq;
    this.list.put(row);
  }

  /** The user read up to `lastRead` (the channel's answer): mirror it in the row. */
  mirrorRead(channelId: string, lastRead: number, unread: number): void {
    const row = this.list.row(channelId);
    if (!row) return;
    row.last_read_seq = Math.max(row.last_read_seq, lastRead);
    row.unread_count = unread;
    this.list.put(row);
  }

  /* ------------------------------------ reconcile ------------------------------------ */

  /**
   * Runs a reconcile pass soon: watches what a live user should watch, unwatches after the grace.
   * Passes never overlap; a kick during a pass runs one more.
   */
  kick(): void {
    if (this.running) { this.again = true; return; }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.reconcileOnce();
        } while (this.again);
      } catch (err) {
        log("error", "user.reconcile_failed", { object: "user", id: this.host.me() }, err);
      } finally {
        this.running = undefined;
      }
    })();
  }

  /** Resolves once no reconcile pass is running (RESUME waits for this: gaps from exact last_seqs). */
  async ready(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Due work for the alarm: the flush, the offline grace, retries. */
  onAlarm(now: number): void {
    if ((this.list.flushDue() ?? Infinity) <= now) this.list.flush(now);
    const offlineDue = !this.isLive() && this.state.offline_at !== 0 && this.state.offline_at + this.host.graceMs <= now;
    const retriesDue = [...this.retryAt.values()].some((r) => r.at <= now);
    const unsynced = this.list.current().some((r) => r.subscribed === 0 && this.wants(r));
    if (offlineDue || retriesDue || unsynced || this.needsSync.size > 0) this.kick();
  }

  /** The next time onAlarm has something to do. */
  nextDue(): number | undefined {
    const times: number[] = [];
    const flush = this.list.flushDue();
    if (flush !== undefined) times.push(flush);
    if (!this.isLive() && this.state.offline_at !== 0 && this.list.current().some((r) => r.subscribed === 1 && !this.wants(r))) times.push(this.state.offline_at + this.host.graceMs);
    for (const r of this.retryAt.values()) times.push(r.at);
    return times.length > 0 ? Math.min(...times) : undefined;
  }

  private async reconcileOnce(): Promise<void> {
    const epoch = this.state.epoch;
    const now = Date.now();
    if (this.wantsDeliveries()) {
      const rows = this.list.current().filter((r) => {
        if (!this.wants(r)) return false;
        if (r.subscribed === 1 && !this.needsSync.has(r.channel_id)) return false;
        const retry = this.retryAt.get(r.channel_id);
        return !retry || retry.at <= now;
      });
      await eachLimited(rows, WATCH_CONCURRENCY, (r) => this.sync(r.channel_id, epoch, true));
    }
    if (this.isLive() || this.state.offline_at === 0 || this.state.offline_at + this.host.graceMs > now) return;
    const rows = this.list.all().filter((r) => r.subscribed === 1 && !this.wants(r));
    await eachLimited(rows, WATCH_CONCURRENCY, (r) => this.unwatchOne(r.channel_id, epoch));
    if (rows.length > 0) this.list.flush();
  }

  /**
   * Reads the channel's exact state for this member: with `register`, also becomes its watcher.
   * Deliveries that arrive meanwhile wait and are applied after, over the exact numbers.
   */
  private async sync(channelId: string, epoch: number, register: boolean): Promise<void> {
    const me = this.host.me();
    if (!me || this.syncing.has(channelId)) return;
    this.syncing.set(channelId, []);
    try {
      const endpoint = this.host.channel(channelId);
      const r = await withDeadline(register ? endpoint.watch(me, epoch) : endpoint.state(me), WATCH_DEADLINE_MS, register ? "watch" : "state");
      count(register ? "user.watch" : "user.state");
      const row = this.list.row(channelId) ?? emptyRow(channelId);
      if (r.ok) {
        const wasLeft = row.left;
        const knownSeq = row.last_seq;
        applySnapshot(row, r.state);
        if (register && epoch === this.state.epoch && this.wants(row)) row.subscribed = 1;
        this.list.put(row);
        this.needsSync.delete(channelId);
        this.retryAt.delete(channelId);
        if (register && this.host.anyReceiving()) await this.catchUp(row);
        else if (register && !this.isLive() && this.host.pushWanted() && row.left === 0) await this.pushCatchUp(row, knownSeq);
        if (this.announce.delete(channelId) || row.left !== wasLeft) this.host.channelUpdate(channelId);
      } else if (r.code === "not_member" || r.code === "not_found") {
        row.left = 1;
        row.subscribed = 0;
        this.list.write(row);
        this.needsSync.delete(channelId);
        this.retryAt.delete(channelId);
        this.host.channelUpdate(channelId);
      } else {
        this.retryLater(channelId, r.message);
      }
    } catch (err) {
      this.host.forget(channelId);
      this.retryLater(channelId, err);
    } finally {
      const waiting = this.syncing.get(channelId) ?? [];
      this.syncing.delete(channelId);
      for (const batch of waiting) this.applyLive(channelId, batch.messages, batch.channel);
      const row = this.own.has(channelId) ? this.list.row(channelId) : undefined;
      if (row) this.applyOwn(row);
    }
  }

  /** Live devices get what the channel holds past what was written to them live, newest page. */
  private async catchUp(row: ChannelRow): Promise<void> {
    if (row.last_seq <= row.sent_seq) return;
    const after = Math.max(row.sent_seq, row.last_seq - CATCH_UP_MESSAGES);
    const page = await withDeadline(this.host.history(row.channel_id, { after, limit: CATCH_UP_MESSAGES }), WATCH_DEADLINE_MS, "catch-up");
    count("user.catch_up");
    if (!page.ok) return;
    const current = this.list.row(row.channel_id) ?? row;
    const fresh = page.messages.filter((m) => m.seq > current.sent_seq);
    if (fresh.length === 0) return;
    current.sent_seq = fresh.at(-1)!.seq;
    this.list.put(current);
    this.host.emit(fresh);
  }

  /**
   * Offline with push: what the channel holds past what this row knew (posted before the watch
   * was registered, e.g. right after the user was added) goes to push, newest PUSH_CATCH_UP.
   */
  private async pushCatchUp(row: ChannelRow, knownSeq: number): Promise<void> {
    if (row.last_seq <= knownSeq) return;
    const after = Math.max(knownSeq, row.last_seq - PUSH_CATCH_UP);
    const page = await withDeadline(this.host.history(row.channel_id, { after, limit: PUSH_CATCH_UP }), WATCH_DEADLINE_MS, "push catch-up");
    if (!page.ok || page.messages.length === 0) return;
    this.host.pushMissed({ channel: summaryOf(row), messages: page.messages, removed_user_ids: [] });
  }

  private async unwatchOne(channelId: string, epoch: number): Promise<void> {
    const me = this.host.me();
    if (!me) return;
    try {
      await withDeadline(this.host.channel(channelId).unwatch(me, epoch), WATCH_DEADLINE_MS, "unwatch");
      count("user.unwatch");
    } catch (err) {
      // The channel keeps the watcher: its next delivery finds no socket and drops it.
      this.host.forget(channelId);
      log("warn", "user.unwatch_failed", { object: "user", id: me, channel_id: channelId }, err);
    }
    const row = this.list.row(channelId);
    if (row && row.subscribed === 1) {
      row.subscribed = 0;
      this.list.put(row);
    }
  }

  private retryLater(channelId: string, reason: unknown): void {
    const prev = this.retryAt.get(channelId);
    const attempts = (prev?.attempts ?? 0) + 1;
    const at = Date.now() + WATCH_RETRY_MS * 2 ** Math.min(6, attempts - 1);
    this.retryAt.set(channelId, { at, attempts });
    this.host.wakeAt(at);
    count("user.watch_failed");
    log("warn", "user.watch_failed", { object: "user", id: this.host.me(), channel_id: channelId, attempts }, reason instanceof Error || typeof reason !== "string" ? reason : new Error(reason));
  }

  /**
   * The list as it stands at each channel, for a user who is not live (REST): rows are not
   * kept current while nobody watches, so each is re-read (no watcher is registered).
   */
  async refreshForList(): Promise<void> {
    if (this.isLive()) { await this.ready(); return; }
    const rows = this.list.current();
    await eachLimited(rows, WATCH_CONCURRENCY, (r) => this.sync(r.channel_id, this.state.epoch, false));
    if (rows.length > 0) this.list.flush();
  }
}

/** A channel summary as the row knows it (for batches the object makes itself: the summary is unchanged). */
function summaryOf(row: ChannelRow): DeliveryBatch["channel"] {
  return {
    channel_id: row.channel_id, type: row.type as DeliveryBatch["channel"]["type"], name: row.name, member_count: row.member_count,
    member_user_ids: memberIds(row.members), members: [], last_seq: row.last_seq, last_hlc: row.last_activity_hlc,
  };
}
