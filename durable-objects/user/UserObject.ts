/**
 * UserObject: one per user. Holds the user's device sockets (WebSocket Hibernation API, tag =
 * device_id), devices, refresh sessions and channel list. While any device is connected the user
 * is *live* and watches their channels (live-channels.ts); channels then hand it DELIVER batches,
 * which it writes to every device socket, the sender's other devices included. On RESUME it
 * pulls each channel's gap for the reconnecting device.
 *
 * This file is the RPC surface, the hibernation handlers and the wiring; each concern has a
 * module: `profile.ts`, `sessions.ts`, `devices.ts` (with the registry the user manages),
 * `connections.ts` (connect, refuse, close), `settings.ts`, `channel-list.ts`, `live-channels.ts`,
 * `message-actions.ts` (reads, history, typing, reactions, edits, deletes) with `hidden-messages.ts`
 * (delete for me), `send-pipeline.ts`, `resume.ts`, `socket-protocol.ts` (frames, sockets, signals
 * to devices), `presence.ts` (own status, keep-alive, contacts' states) with `presence-link.ts`,
 * `push.ts` (subscriptions, notifier, ack deadlines), `erasure.ts` (the account's erasure job) and
 * `wakeups.ts` (the one alarm).
 */
import { DurableObject } from "cloudflare:workers";
import { pb, type FrameInit } from "../../protocol/codec.js";
import { PING, PONG } from "../../protocol/limits.js";
import { fail, type Result } from "../../shared/errors.js";
import { parseId } from "../../shared/ids.js";
import { channelStub } from "../../shared/routing.js";
import { AccountErasure, objectErasureHost, type ErasureState, type ErasureStep } from "./erasure.js";
import { presenceTimingsFromEnv } from "../presence/settings.js";
import { countedSqlFor } from "../counted-sql.js";
import { migrate } from "../migrate.js";
import type { ChannelObject } from "../channel/ChannelObject.js";
import type {
  ChannelSignal, ChatMessageData, ContentInit, DeliveryBatch, DeliveryOutcome, HistoryPageData, HistoryQuery, MemberProfile,
  MembershipNotice, MessageChange,
} from "../channel/types.js";
import type { Device, PresenceState, SessionInfo } from "../../protocol/types.js";
import { ChannelList, type ChannelState } from "./channel-list.js";
import { LiveChannels } from "./live-channels.js";
import { DeviceRegistry, Devices } from "./devices.js";
import { HiddenMessages } from "./hidden-messages.js";
import { MessageActions } from "./message-actions.js";
import { MAX_WATCHED_CONTACTS, PresenceLink } from "./presence-link.js";
import { UserPresence } from "./presence.js";
import { initProfile, profileUpdate, readProfile, renameProfile, tellContacts, verifyPlacement, type Profile } from "./profile.js";
import { Resume, RESUME_DEADLINE_MS } from "./resume.js";
import { USER_MIGRATIONS } from "./schema.js";
import { pushAckDeadlineFromEnv } from "./ack-deadline.js";
import { UserPush } from "./push.js";
import { sendPushJobs, type PushJob } from "../../queues/push-jobs.js";
import type { PushSubscriptionInput } from "../../protocol/push.js";
import { SendPipeline, sendDeadlineFromEnv } from "./send-pipeline.js";
import { Sessions } from "./sessions.js";
import { Connections } from "./connections.js";
import { defaultSettings, Settings, type UserSettings } from "./settings.js";
import {
  broadcast, closeDevice, closeIdleSockets, closeSession, deliverToSockets, keepKeepAliveAt, keptKeepAliveAt, markListAhead, openSockets, socketInfo, socketsKeptList,
  DeviceSignals, SocketProtocol,
} from "./socket-protocol.js";
import { observe } from "../../shared/observability.js";
import { goAwayAll } from "./drain.js";
import { Wakeups } from "./wakeups.js";
import { log, logsAt } from "../../shared/log.js";
import { overloadFromEnv } from "../../shared/overload.js";
import { writeGroupAdds } from "../../shared/group-adds-row.js";
import type { GroupAdds } from "../../protocol/types.js";
import { LruMap } from "../../shared/lru.js";
import { misplacement, Placement, refuseWhenMisplaced } from "../placement.js";
import { queueFor } from "../../shared/bindings.js";
import { FlushTimer } from "./flush-timer.js";

/** Channel stubs a UserObject keeps for reuse. */
const CHANNEL_STUB_CACHE_MAX = 500;

export type { Device, Profile, UserSettings };

export class UserObject extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private profile: Profile | undefined;
  private readonly sessions: Sessions;
  private readonly devices: Devices;
  /** The devices as the user manages them, with push and sessions (devices.ts). */
  private readonly registry: DeviceRegistry;
  private channels!: ChannelList;
  private live!: LiveChannels;
  private readonly hidden: HiddenMessages;
  /** Reads, history, reactions, edits and deletes the user makes (message-actions.ts). */
  private readonly actions: MessageActions;
  private readonly sends: SendPipeline;
  private readonly resume: Resume;
  private readonly protocol: SocketProtocol;
  /** Other people's typing, read receipts and presence to the devices (socket-protocol.ts). */
  private readonly signals: DeviceSignals;
  /** Connects, refuses and closes device sockets (connections.ts). */
  private readonly connections: Connections;
  /** The channel list's flush while live and the acks' flush, without an alarm write (flush-timer.ts). */
  private readonly listFlush = new FlushTimer(() => this.channels.flushDue(), () => this.channels.flush());
  private readonly ackFlush = new FlushTimer(() => this.devices.ackFlushDue(), () => this.devices.flushAcks());
  /** Channel stubs for reuse, bounded: a user may be in far more channels than worth remembering. */
  private readonly stubs = new LruMap<string, DurableObjectStub<ChannelObject>>(CHANNEL_STUB_CACHE_MAX);
  /** The user's own status at their shard, the keep-alive, contacts' states to the devices. */
  private readonly ownPresence: UserPresence;
  private readonly push: UserPush;
  private readonly wakeups: Wakeups;
  private readonly presenceGraceMs: number;
  private readonly erasure: AccountErasure;
  /** This instance wiped its storage (erasure): nothing it still holds in memory may be written back. */
  private erased = false;

  /** Where this instance was reached; a profile stored for another jurisdiction refuses every call. */
  private readonly placement: Placement;
  /** The user's settings, with the account row's copy of `group_adds` (docs/decisions/024) in step. */
  private readonly settings: Settings;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    observe(env);
    this.sql = countedSqlFor(ctx.storage.sql, "user", env);
    this.placement = new Placement(ctx, env, "user");
    const presence = presenceTimingsFromEnv(env);
    this.presenceGraceMs = presence.offlineGraceMs;
    this.ownPresence = new UserPresence({
      userId: () => this.profile?.user_id,
      sockets: () => openSockets(this.ctx),
      sharePresence: () => this.getSettings().share_presence,
      contacts: () => this.channels.contacts(this.profile?.user_id, MAX_WATCHED_CONTACTS),
      keptDue: () => keptKeepAliveAt(this.ctx),
      keepDue: (at) => keepKeepAliveAt(this.ctx, at),
      link: (userId) => new PresenceLink(env, userId),
      waitUntil: (promise) => ctx.waitUntil(promise),
    }, presence.ttlMs);
    this.sessions = new Sessions(this.sql, (sessionId) => closeSession(ctx, sessionId));
    // Acks come from open sockets, so the object is awake: a timer, not the alarm (flush-timer.ts).
    this.devices = new Devices(this.sql, (at) => this.ackFlush.askBy(at));
    this.hidden = new HiddenMessages(this.sql);
    this.actions = new MessageActions({
      userId: () => this.profile?.user_id,
      channel: (channelId) => this.channel(channelId),
      hidden: this.hidden,
      row: (channelId) => this.channels.row(channelId),
      readReceipts: () => this.getSettings().read_receipts,
      readMoved: (channelId, lastRead, unread) => {
        this.live.mirrorRead(channelId, lastRead, unread);
        this.push.read(channelId, lastRead);
      },
      broadcast: (frame) => this.broadcast(frame),
    });
    this.settings = new Settings({
      sql: this.sql,
      defaults: defaultSettings(env),
      userId: () => this.profile?.user_id,
      writeGroupAdds: (userId, policy) => writeGroupAdds(env, userId, policy),
      changed: () => this.ownPresence.changed(),
      log: (event, err) => log("warn", event, { object: "user", user_id: this.profile?.user_id }, err),
    });
    this.push = new UserPush({
      sql: this.sql,
      userId: () => this.profile?.user_id,
      previews: () => this.getSettings().push_previews !== false,
      row: (channelId) => this.channels.row(channelId),
      connected: () => openSockets(this.ctx).length > 0,
      // The queue in this user's jurisdiction: a job names their devices and the channel.
      send: (jobs) => sendPushJobs(queueFor<PushJob>(this.env, parseId(this.profile?.user_id)?.jurisdiction ?? ""), jobs),
      channel: (channelId) => this.channel(channelId),
      wakeAt: (at) => this.wakeAt(at),
      waitUntil: (promise) => this.ctx.waitUntil(promise),
    }, { windowMs: Number(env.PUSH_WINDOW_MS) || 30_000, ackDeadlineMs: pushAckDeadlineFromEnv(env) });
    this.registry = new DeviceRegistry({
      devices: this.devices,
      subscriptions: this.push.subscriptions,
      sessionsByDevice: () => this.sessions.sessionsByDevice(),
      connected: () => new Set(openSockets(this.ctx).map((ws) => socketInfo(ws).deviceId)),
      closeSockets: (deviceId) => closeDevice(ctx, deviceId),
      subscribed: () => this.live.kick(),
    });
    this.erasure = new AccountErasure(objectErasureHost({
      env, ctx, sql: this.sql, sessions: this.sessions, pushSubscriptions: this.push.subscriptions,
      userId: () => this.profile?.user_id,
      wiped: () => this.erased,
      unwatchContacts: () => this.ownPresence.unwatchContacts(),
      channelIds: () => this.channels.all().map((r) => r.channel_id),
      channel: (channelId) => this.channel(channelId),
      reset: () => {
        migrate(this.sql, USER_MIGRATIONS);
        this.erased = true;
        this.profile = undefined;
        this.ownPresence.reset();
      },
      waitUntil: (promise) => ctx.waitUntil(promise),
      wakeAt: (at) => this.wakeAt(at),
    }));
    this.wakeups = new Wakeups(ctx.storage);
    this.sends = new SendPipeline({
      appendBatch: (channelId, inputs) => this.channel(channelId).appendBatch(inputs),
      forget: (channelId) => this.stubs.delete(channelId),
      typeOf: (channelId) => this.channels?.row(channelId)?.type,
    }, {
      deadlineMs: sendDeadlineFromEnv(env), wakeAt: (at) => this.wakeups.atOrBefore(at), overload: overloadFromEnv(env),
      stored: (channelId, messages) => {
        if (this.erased) return;
        this.live.ownStored(channelId, messages);
        this.traceDeliveries(channelId, messages, () => (openSockets(this.ctx).length > 0 ? "devices" : "nobody"));
      },
    });
    this.resume = new Resume({
      rows: () => this.channels.current(),
      devices: this.devices,
      ready: () => this.live.ready(),
      synced: (channelId) => this.live.isSynced(channelId),
      // Pages come from this.history() and held ones from sendToDevices(): both masked already.
      history: (channelId, query) => this.history(channelId, query),
      raiseSent: (channelId, seq) => this.live.raiseSent(channelId, seq),
      states: () => this.channels.states(),
      // Who of the user's contacts is around, after RESUMED.
      resumed: (ws) => this.ctx.waitUntil(this.ownPresence.sendStates(this.ownPresence.contacts(), [ws])),
    });
    this.signals = new DeviceSignals(ctx, () => this.sends.underPressure());
    this.protocol = new SocketProtocol({
      userId: () => this.profile?.user_id,
      sends: this.sends,
      resume: this.resume,
      listed: (channelId) => this.channels.row(channelId) !== undefined,
      recordDelivered: (deviceId, channelId, seq) => {
        this.devices.recordDelivered(deviceId, channelId, seq);
        this.push.ackDeadlines.confirm(channelId, seq);
      },
      actions: this.actions,
      presenceChanged: () => this.ownPresence.changed(),
    });
    this.connections = new Connections({
      ctx,
      sessions: this.sessions,
      devices: this.devices,
      erasing: () => this.erased || this.erasure.state() !== undefined,
      profile: () => this.profile,
      init: (profile) => this.init(profile),
      opened: () => {
        this.ownPresence.changed();
        this.live.socketOpened();
        if (this.channels.aheadUnderCover) markListAhead(ctx, true);
        const now = Date.now();
        this.wakeAt(Math.min(now + RESUME_DEADLINE_MS, this.ownPresence.connected(now)));
      },
      gone: (ws, remaining) => {
        this.resume.socketGone(ws);
        this.sends.socketGone(ws);
        this.ownPresence.changed(ws);
        this.live.socketClosed(remaining);
      },
    });
    // Answered by the runtime without waking the object; a text pair because auto-responses
    // only match text frames, even on connections whose data frames are binary.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING, PONG));
    void ctx.blockConcurrencyWhile(async () => {
      migrate(this.sql, USER_MIGRATIONS);
      this.profile = readProfile(this.sql);
      verifyPlacement(this.sql, this, this.placement, this.profile);
      if (misplacement(this)) return;
      this.hidden.load();
      await this.wakeups.load();
      // An instance that starts with sockets open was woken from hibernation: whatever it kept
      // in memory is gone, and only what the sockets' attachments and storage hold is left.
      const sockets = ctx.getWebSockets().length;
      if (sockets > 0) log("info", "user.woke", { object: "user", id: this.profile?.user_id, sockets });
      this.channels = new ChannelList(this.sql, (at) => this.wakeAt(at), {
        active: () => this.live?.wentLive === true,
        ahead: (ahead) => markListAhead(this.ctx, ahead),
        flushBy: (at) => this.listFlush.askBy(at),
      });
      this.live = new LiveChannels(this.sql, this.channels, {
        me: () => this.profile?.user_id,
        openSockets: () => openSockets(this.ctx).length,
        channel: (channelId) => this.channel(channelId),
        forget: (channelId) => this.stubs.delete(channelId),
        history: (channelId, query) => this.history(channelId, query),
        emit: (messages) => this.sendToDevices(messages),
        anyReceiving: () => openSockets(this.ctx).some((ws) => this.resume.needsCatchUp(ws)),
        channelUpdate: (channelId) => this.broadcastChannelUpdate(channelId),
        contactsAdded: (userIds) => this.ownPresence.contactsAdded(userIds),
        wakeAt: (at) => this.wakeAt(at),
        graceMs: this.presenceGraceMs,
        pushWanted: () => this.push.subscriptions.any(),
        pushMissed: (batch) => this.push.missed(batch),
        pushRead: (channelId, messages) => this.push.ownMessages(channelId, messages),
        socketsKeptRows: () => socketsKeptList(ctx),
      });
      // Woken with sockets open (after hibernation) and rows to re-read: get on with it.
      if (openSockets(ctx).length > 0 && this.channels.wokeDirty) this.live.kick();
    });
  }

  /* ------------------------------------ RPC: account ------------------------------------ */

  /** Called once at registration; later calls update the display name only. */
  init(profile: Profile): Profile {
    return (this.profile = initProfile(this.sql, this.placement, profile, Date.now()));
  }

  getProfile(): Profile | undefined {
    return this.profile;
  }

  /** A new refresh session; the caller gets the secret once, the object keeps its hash. */
  createSession(): Promise<{ sessionId: string; secret: string }> {
    return this.sessions.create();
  }

  /**
   * Rotates a refresh session's secret. Presenting the previous (already rotated) secret means
   * the token leaked: the whole session is revoked, and its sockets are closed.
   */
  async refreshSession(sessionId: string, secret: string): Promise<Result<{ sessionId: string; secret: string; profile: Profile }>> {
    const rotated = await this.sessions.rotate(sessionId, secret, () => this.profile !== undefined);
    return rotated.ok ? { ...rotated, profile: this.profile! } : rotated;
  }

  /** Logout: ends the session whose refresh secret is presented, and closes its sockets. */
  revokeSession(sessionId: string, secret: string): Promise<boolean> {
    return this.sessions.revoke(sessionId, secret);
  }

  /** Whether access tokens naming this session are still good (the Worker asks per request, cached ≤ 1 s). */
  sessionActive(sessionId: string): boolean {
    return this.sessions.isActive(sessionId);
  }

  /** Active sessions, most recently used first; `current` marks the caller's. */
  listSessions(current: string): SessionInfo[] {
    return this.sessions.list(current);
  }

  /** "Sign out this device": ends a session by id and closes its sockets. */
  endSession(sessionId: string): boolean {
    return this.sessions.revokeById(sessionId);
  }

  /** "Sign out everywhere else": ends every session but `keep` and closes their sockets; returns the ids it ended. */
  endOtherSessions(keep: string): string[] {
    return this.sessions.revokeAllBut(keep);
  }

  /**
   * PATCH /v1/me (the directory in D1 was updated first): the name this object keeps, then a
   * PROFILE_UPDATE to the user's devices and to the people they share a DM or small group with,
   * whose clients read the profile again.
   */
  profileChanged(displayName?: string): void {
    const me = this.profile?.user_id;
    if (!me) return;
    if (displayName !== undefined) this.profile = renameProfile(this.sql, this.profile!, displayName);
    this.broadcast(profileUpdate(me));
    this.ctx.waitUntil(tellContacts(this.env, me, this.ownPresence.contacts()));
  }

  /** Someone this user talks to changed their profile: every device reads it again. */
  contactProfileChanged(userId: string): void {
    if (this.erasure.state()) return;
    this.broadcast(profileUpdate(userId));
  }

  /* ------------------------------------ RPC: erasure ------------------------------------ */

  /**
   * DELETE /v1/me (password checked, directory row marked): every session ends and every socket
   * closes at once, saying the account is being deleted; the job is created (idempotent) and the
   * alarm set to re-drive it. The caller sends the first queue message.
   */
  startErasure(): { created: boolean; state: ErasureState } {
    return this.erasure.start();
  }

  /** The job as operators see it (no content); undefined when none runs here. */
  erasureState(): ErasureState | undefined {
    return this.erasure.state();
  }

  /**
   * One bounded, idempotent step of the erasure job (erasure.ts); the queue consumer calls it
   * until `done`. With no job here (never started, or finished and wiped) it is done.
   */
  eraseStep(): Promise<{ done: boolean; step: ErasureStep }> {
    return this.erasure.step();
  }

  /* ------------------------------------ RPC: devices ------------------------------------ */

  /** The devices, each with the session it last connected with. */
  listDevices(): Device[] {
    return this.registry.list();
  }

  /** Registers (or renames) a device; a new 11th device is refused. `push`: null removes the subscription, undefined keeps it. */
  registerDevice(deviceId: string, name = "", platform = "", push?: PushSubscriptionInput | null): Result<{ device: Device }> {
    return this.registry.register(deviceId, name, platform, push);
  }

  /** PATCH /v1/devices/{id}: replaces the fields given; `push: null` removes the subscription. */
  updateDevice(deviceId: string, patch: { name?: string; platform?: string; push?: PushSubscriptionInput | null }): Result<{ device: Device }> {
    return this.registry.update(deviceId, patch);
  }

  /** Forgets a device and closes its socket. */
  removeDevice(deviceId: string): boolean {
    return this.registry.remove(deviceId);
  }

  /** Operator drain: asks every open socket to reconnect within `windowMs` (drain.ts). */
  drain(windowMs: number): number {
    return goAwayAll(this.ctx, windowMs);
  }

  /* ------------------------------------ RPC: channels ------------------------------------ */

  /**
   * The channels the user is in, most recently active first, exact: while the user is live the
   * rows are kept current by deliveries; otherwise each is re-read from its channel.
   */
  async listChannels(): Promise<ChannelState[]> {
    await this.live.refreshForList();
    return this.channels.states();
  }

  /**
   * One fan-out batch from a channel (or relay) for a watcher: the channel list is updated in
   * memory and DELIVER goes to every device socket that is past RESUME, except the one that sent
   * each message (it has the SEND_ACK). With no socket open the answer is `{live: false}` and the
   * caller stops watching for this user. Synchronous: the list and the sends change in one turn.
   */
  deliver(batch: DeliveryBatch): DeliveryOutcome {
    if (this.erased) return { live: false, epoch: 0 };
    const outcome = this.live.deliver(batch);
    if (outcome.live) this.awaitAcks(batch);
    this.traceDeliveries(batch.channel.channel_id, batch.messages, () => (!outcome.live ? "nobody" : openSockets(this.ctx).length > 0 ? "devices" : "push"));
    return outcome;
  }

  /** `deliver.message` debug lines for traced messages (docs/operations.md), from a round or an append's answer. */
  private traceDeliveries(channelId: string, messages: ChatMessageData[], where: () => "devices" | "push" | "nobody"): void {
    if (!logsAt("debug")) return;
    const to = where();
    for (const m of messages) {
      if (m.trace_id) log("debug", "deliver.message", { object: "user", id: this.profile?.user_id, channel_id: channelId, seq: m.seq, to, trace_id: m.trace_id });
    }
  }

  /** The user joined or left a channel (the channel's notice pump; the API after a create). */
  membershipChanged(notice: MembershipNotice): void {
    if (this.erased) return;
    this.live.notice(notice);
  }

  /** READ from REST or a socket: move the cursor in the channel, mirror it here, tell every device. */
  markRead(channelId: string, upToSeq: number): Promise<Result<{ last_read_seq: number; unread_count: number }>> {
    return this.actions.markRead(channelId, upToSeq);
  }

  /* ------------------------------------ RPC: message changes ------------------------------------ */

  /** A page of a channel's history as this user sees it (delete-for-me applied). */
  history(channelId: string, query: HistoryQuery): Promise<Result<HistoryPageData>> {
    return this.actions.history(channelId, query);
  }

  react(channelId: string, deviceId: string, seq: number, emoji: string, op: "add" | "remove"): Promise<Result<MessageChange>> {
    return this.actions.react(channelId, deviceId, seq, emoji, op);
  }

  edit(channelId: string, deviceId: string, seq: number, content: ContentInit): Promise<Result<MessageChange>> {
    return this.actions.edit(channelId, deviceId, seq, content);
  }

  /** Deletes a message for everyone (the channel decides who may), or for this user only, on all their devices. */
  deleteMessage(channelId: string, deviceId: string, seq: number, forEveryone: boolean): Promise<Result<MessageChange>> {
    return this.actions.deleteMessage(channelId, deviceId, seq, forEveryone);
  }

  /** A typing indicator or read receipt from another member: straight to every device (shed under pressure). */
  signal(event: ChannelSignal): void {
    if (event.kind === "expired") {
      // Not a frame: the list re-reads the channel's counts and tells the devices if they moved.
      this.live.resync(event.channel_id);
      return;
    }
    this.signals.signal(event);
  }

  /** A watched user's presence changed (from their PresenceObject shard): to every device (shed under pressure). */
  presence(state: PresenceState): void {
    this.signals.presence(state);
  }

  /* ------------------------------------ RPC: settings ------------------------------------ */

  /**
   * May `adderId` add this user to a group? Everyone may, unless the user chose `group_adds:
   * "contacts"`: then only someone they share a channel with (`adderChannelIds`: the adder's).
   */
  mayBeAddedBy(adderId: string, adderChannelIds: string[], listed?: GroupAdds | null): boolean {
    return this.settings.mayBeAddedBy(adderId, adderChannelIds, listed);
  }

  getSettings(): UserSettings {
    return this.settings.get();
  }

  /** Stores the settings in `patch` as the user's choices; unknown keys are ignored, the rest follow the operator's defaults. */
  updateSettings(patch: Partial<UserSettings>): Promise<Result<{ settings: UserSettings }>> {
    return this.settings.update(patch);
  }

  /* ------------------------------------ RPC: push ------------------------------------ */

  /** Mute (no push; the channel list shows it muted) or unmute one channel, on every device. */
  setMuted(channelId: string, muted: boolean): Result<{ channel: ChannelState }> {
    const row = this.channels.row(channelId);
    if (!row || row.left) return fail("not_found", "No such channel in your channel list.");
    if (this.channels.setMuted(channelId, muted)) this.broadcastChannelUpdate(channelId);
    return { ok: true, channel: this.channels.state(channelId)! };
  }

  /** The push provider says this subscription is gone (404/410): forget it unless replaced since. */
  removePushSubscription(deviceId: string, key: string): boolean {
    return this.push.subscriptions.removeIfCurrent(deviceId, key);
  }

  /** A push to this device exhausted its retries (the dead-letter consumer): counted on the device. */
  recordPushDeadLetter(deviceId: string, key: string): boolean {
    return this.push.subscriptions.recordFailure(deviceId, key);
  }

  /** Whether a (retried) message push for `seq` should still be shown: not once the user read it. */
  pushStillWanted(channelId: string, seq: number): Promise<boolean> {
    return this.push.stillWanted(channelId, seq);
  }

  /** A batch written to connected devices waits for a DELIVER_ACK before it goes to push (push.ts). */
  private awaitAcks(batch: DeliveryBatch): void {
    this.push.awaitAcks(batch);
  }

  /* ------------------------------------ alarm ------------------------------------ */

  /**
   * The one alarm (wakeups.ts) for every timed concern: SEND deadlines and send_seq gaps, push
   * windows, sockets that went silent (their device is gone without a goodbye), the channel list
   * flush, the unwatch after the offline grace, watch retries, sockets that sent no RESUME in time,
   * and, while any device is connected, the presence keep-alive every TTL/3 (200 s), which also
   * bounds how long a silent socket stays open (docs/decisions/028).
   */
  override async alarm(): Promise<void> {
    const now = Date.now();
    const late = this.wakeups.lateBy(now);
    this.wakeups.fired();
    if (this.erased) return;
    this.sends.tick();
    // Push windows whose end has come send their merged updates; unacked live deliveries go to push.
    const nextPush = this.push.onAlarm();
    const idle = closeIdleSockets(this.ctx, now, late, this.profile?.user_id);
    const open = openSockets(this.ctx);
    // The user's last devices went without a goodbye: silent ones just closed, or sockets lost
    // with the instance that held them (a restart, a deploy: the live mark is in storage). Either
    // way the shard hears "offline" now, not when the lease runs out (docs/decisions/028).
    const left = open.length === 0 && this.live.socketClosed(0, now);
    if (idle.length > 0 || left) this.ownPresence.changed();
    this.live.onAlarm(now);
    if ((this.devices.ackFlushDue() ?? Infinity) <= now) this.devices.flushAcks();
    const resumeDue = this.resume.overdue(open, (ws) => socketInfo(ws).helloAt, (ws) => socketInfo(ws), now);
    await this.ownPresence.keepAlive(now);
    const erasureDue = this.erasure.onAlarm(now, this.profile?.user_id);
    const due = [resumeDue, this.live.nextDue(), this.devices.ackFlushDue(), nextPush, erasureDue, this.ownPresence.nextDue()]
      .filter((t): t is number => t !== undefined);
    if (due.length > 0) this.wakeAt(Math.min(...due));
  }

  /** Sets the alarm to `at` unless it is set earlier already. */
  private wakeAt(at: number): void {
    this.wakeups.atOrBefore(at);
  }

  /* ------------------------------------ WebSocket ------------------------------------ */

  /** The gateway's WebSocket upgrade for one device (connections.ts). */
  override async fetch(request: Request): Promise<Response> {
    return this.connections.connect(request);
  }

  override async webSocketMessage(ws: WebSocket, data: ArrayBuffer | string): Promise<void> {
    await this.protocol.onMessage(ws, data);
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    this.connections.closed(ws, code);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.connections.gone(ws);
  }

  /* ------------------------------------ helpers ------------------------------------ */

  private sendToDevices(messages: ChatMessageData[]): void {
    deliverToSockets(openSockets(this.ctx), this.hidden.mask(messages), this.profile?.user_id, (ws) => this.resume.route(ws), (ws, m) => this.resume.hold(ws, m));
  }

  private broadcastChannelUpdate(channelId: string): void {
    const channel = this.channels.state(channelId);
    if (channel) this.broadcast({ type: pb.FrameType.CHANNEL_UPDATE, channel_update: { channel } });
  }

  private broadcast(frame: FrameInit): void {
    broadcast(openSockets(this.ctx), frame);
  }

  private channel(channelId: string): DurableObjectStub<ChannelObject> {
    return this.stubs.getOrSet(channelId, () => channelStub(this.env, channelId));
  }
}

export type { MemberProfile };

// Every call into a user found stored for another jurisdiction is refused (durable-objects/placement.ts).
refuseWhenMisplaced(UserObject);


