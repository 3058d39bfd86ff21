/**
 * Push inside one UserObject: the devices' subscriptions (push-subscriptions.ts), the coalescing
 * notifier for missed messages (push-notifier.ts) and the deadlines of live deliveries no device
 * acked (ack-deadline.ts), wired to the delivery path, reads and the alarm. Jobs go to the push
 * queue in the user's jurisdiction off the caller's path (`waitUntil`); push is best effort, the
 * messages are stored and reach the devices on their next RESUME.
 *
 * The delivery path enters here three ways: `missed` (no device took the batch), `awaitAcks` (the
 * batch was written to sockets) and `ownMessages` (the user wrote, from any device: read up to it).
 */
import { count } from "../../shared/metrics.js";
import { log } from "../../shared/log.js";
import type { PushJob } from "../../queues/push-jobs.js";
import type { ChannelRow } from "./channel-list.js";
import type { ChatMessageData, DeliveryBatch } from "../channel/types.js";
import { withDeadline } from "../../shared/deadline.js";
import { WATCH_DEADLINE_MS, type ChannelEndpoint } from "./live-channels.js";
import { AckDeadlines } from "./ack-deadline.js";
import { missedMessages, PushNotifier } from "./push-notifier.js";
import { PushSubscriptions } from "./push-subscriptions.js";

export interface PushHost {
  sql: SqlStorage;
  userId(): string | undefined;
  /** The user's `push_previews` setting (message text in notifications). */
  previews(): boolean;
  /** The channel-list row as it stands in memory. */
  row(channelId: string): ChannelRow | undefined;
  /** Whether a device socket is open now. */
  connected(): boolean;
  /** Hands jobs to the push queue in the user's jurisdiction. */
  send(jobs: PushJob[]): Promise<void>;
  /** The channel, asked for the user's read cursor while it is not in the list yet. */
  channel(channelId: string): Pick<ChannelEndpoint, "state">;
  wakeAt(at: number): void;
  waitUntil(promise: Promise<unknown>): void;
}

export interface PushSettings {
  /** PUSH_WINDOW_MS: the coalescing window. */
  windowMs: number;
  /** PUSH_ACK_DEADLINE_MS (ack-deadline.ts); 0: live deliveries are never pushed. */
  ackDeadlineMs: number;
}

export class UserPush {
  readonly subscriptions: PushSubscriptions;
  readonly notifier: PushNotifier;
  /** Live deliveries no device confirmed yet, for push after the ack deadline. */
  readonly ackDeadlines: AckDeadlines;

  constructor(private readonly host: PushHost, settings: PushSettings, now: () => number = Date.now) {
    this.subscriptions = new PushSubscriptions(host.sql);
    this.notifier = new PushNotifier(host.sql, this.subscriptions, () => host.userId(), {
      windowMs: settings.windowMs,
      now,
      dispatch: (jobs) => host.waitUntil(this.enqueue(jobs)),
      row: (channelId) => host.row(channelId),
    });
    this.ackDeadlines = new AckDeadlines(settings.ackDeadlineMs, now);
  }

  /** Whether a (retried) message push for `seq` should still be shown: not once the user read it. */
  async stillWanted(channelId: string, seq: number): Promise<boolean> {
    const me = this.host.userId();
    if (this.host.row(channelId) || !me) return this.notifier.stillUnread(channelId, seq);
    // Not in the list yet (the channel's notice is on its way): the channel knows the read cursor.
    try {
      const r = await withDeadline(this.host.channel(channelId).state(me), WATCH_DEADLINE_MS, "push read cursor");
      return r.ok ? r.state.member && r.state.last_read_seq < seq : false;
    } catch {
      return true;
    }
  }

  /** Messages that reached this user while none of their devices took them; coalesced per channel. */
  missed(batch: DeliveryBatch): void {
    const me = this.host.userId();
    if (!me || !this.subscriptions.any()) return; // most users: nothing to read, nothing to write
    const wake = this.notifier.missed(missedMessages(batch, me, this.host.previews()));
    if (wake !== undefined) this.host.wakeAt(wake);
  }

  /** The user's own message (sent from any device) reads the channel up to it: clear what stands. */
  ownMessages(channelId: string, messages: ChatMessageData[]): void {
    const me = this.host.userId();
    let own = 0;
    for (const m of messages) if (m.sender_user_id === me && !m.content.update) own = Math.max(own, m.seq);
    if (own > 0) this.read(channelId, own);
  }

  /** The user read up to `seq` (any device, or their own message): nothing up to it is pushed. */
  read(channelId: string, seq: number): void {
    this.ackDeadlines.confirm(channelId, seq);
    this.notifier.read(channelId, seq);
  }

  /**
   * A batch written to connected devices: with push on, its messages wait for a DELIVER_ACK and
   * go to push if none comes within the deadline. Without a subscription, or with no socket open
   * (then `missed` took it), nothing is kept.
   */
  awaitAcks(batch: DeliveryBatch): void {
    const me = this.host.userId();
    if (!me || !this.ackDeadlines.enabled || !this.host.connected() || !this.subscriptions.any()) return;
    if (batch.channel.type === "broadcast") return; // never pushed (decision 018)
    if (this.host.row(batch.channel.channel_id)?.left !== 0) return;
    const wake = this.ackDeadlines.delivered(missedMessages(batch, me, this.host.previews()));
    if (wake !== undefined) this.host.wakeAt(wake);
  }

  /** The alarm: windows that ended send their merged updates, live deliveries no device acked go to push. Answers when next due. */
  onAlarm(): number | undefined {
    const windows = this.notifier.flushDue();
    const unacked = this.ackDeadlines.due();
    let pushed: number | undefined;
    if (unacked.length > 0) {
      count("push.unacked", unacked.length);
      log("info", "push.unacked", { object: "user", id: this.host.userId(), messages: unacked.length });
      pushed = this.notifier.missed(unacked);
    }
    const due = [windows, pushed, this.ackDeadlines.nextDue()].filter((t): t is number => t !== undefined);
    return due.length > 0 ? Math.min(...due) : undefined;
  }

  private async enqueue(jobs: PushJob[]): Promise<void> {
    try {
      await this.host.send(jobs);
    } catch (err) {
      // Push is best effort: the messages are stored and reach the devices on their next RESUME.
      log("error", "push.enqueue_failed", { object: "user", user_id: this.host.userId(), jobs: jobs.length }, err);
    }
  }
}
