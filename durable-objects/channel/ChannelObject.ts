/**
 * ChannelObject: the single writer of one channel (DESIGN.md). It owns the channel's meta,
 * members, message log and idempotency keys, assigns every message its seq and HLC, and fans
 * each stored message out to its *watchers* (members with a device connected).
 *
 * This file is the RPC surface and the wiring; the work is done by one module per concern:
 * `membership.ts` (members in SQL, roles, who may post, paging), `member-changes.ts` (creation,
 * adds, removals, roles, bulk adds, invite links, with `invites.ts`), `views.ts` (the channel row;
 * summary, details, a member's state, a member's reads), `sequencer.ts` (dedup, rate limit,
 * seq/HLC, the log, history), `message-changes.ts` (react, edit, delete rules), `signals.ts` (read
 * cursors and receipts, typing), `channel-settings.ts` (name and lifetime), `watchers.ts` (who is
 * live), `tiers.ts` (direct or relay), `fanout.ts` (delivery to watchers), `notices.ts` (telling
 * members they joined or left),
 * `attachments.ts` (uploads, the SEND check for files, blob cleanup), `retention.ts` (the message
 * lifetime, expiry in batches, the low-water mark) and `erasure.ts` (a member's erasure here).
 *
 * The send path's one rule: check, assign seq/HLC and INSERT before the first `await`. The
 * output gate then holds the returned SEND_ACK (and every outgoing fan-out call) until the write
 * is durable, which is exactly the seed's "durable before ack". Every RPC method below that
 * writes is synchronous for that reason.
 */
import { DurableObject } from "cloudflare:workers";
import { fail, type Failure, type Result } from "../../shared/errors.js";
import { count } from "../../shared/metrics.js";
import { relayStub, userStub } from "../../shared/routing.js";
import { LIMITS } from "../../protocol/limits.js";
import { countedSqlFor } from "../counted-sql.js";
import { migrate } from "../migrate.js";
import { deleteBlob } from "../../shared/attachments/blobs.js";
import { attachmentConfig } from "../../shared/attachments/config.js";
import { Attachments, type AttachmentInit, type NewUpload, type PartRow, type UploadRow, type UploadView } from "./attachments.js";
import { FANOUT_GUARD_MS, FanOut } from "./fanout.js";
import { Invites, type InviteView } from "./invites.js";
import { eraseMember, type ErasureProgress } from "./erasure.js";
import { DEFAULT_MEMBER_PAGE, Membership, type MemberPage } from "./membership.js";
import { MessageChanges } from "./message-changes.js";
import { noticePageFromEnv, Notices } from "./notices.js";
import { rateLimitFromEnv, SenderRateLimiter } from "./rate-limit.js";
import { Retention, retentionConfig } from "./retention.js";
import { CHANNEL_MIGRATIONS } from "./schema.js";
import { Sequencer } from "./sequencer.js";
import { systemText } from "./system-messages.js";
import { Signals } from "./signals.js";
import { Watchers } from "./watchers.js";
import { MemberChanges, type CreateChannelInput } from "./member-changes.js";
import { changeSettings, type ChannelPatch } from "./channel-settings.js";
import { ChannelViews, createChannelRow, lastActivity, readChannelRow, storedJurisdiction, type ChannelRow } from "./views.js";
import { enterTier, tierConfigFromEnv, type TierConfig } from "./tiers.js";
import {
  type AppendInput, type ChannelDetails, type ChannelSummary, type ChannelType, type ChatMessageData, type ContentInit,
  type HistoryPageData, type HistoryQuery, type MemberChannelState, type MemberProfile, type MemberRole, type MembershipNotice,
  type AppendAnswer, type MessageChange,
} from "./types.js";
import { observe } from "../../shared/observability.js";
import { overloadFromEnv, slowdownDelay, type OverloadConfig } from "../../shared/overload.js";
import { traced } from "../../shared/trace.js";
import { log } from "../../shared/log.js";
import { parseId } from "../../shared/ids.js";
import { misplacement, Placement, refuseWhenMisplaced } from "../placement.js";
import { canonicalDm } from "../../shared/locality.js";


export type { ChannelPatch, CreateChannelInput };

export class ChannelObject extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private channel: ChannelRow | undefined;
  private readonly members: Membership;
  private readonly watchers: Watchers;
  /** Shared by sends and changes; a field so tests can change the limit of one channel. */
  private readonly limiter: SenderRateLimiter;
  private readonly overload: OverloadConfig;
  /** The trace id of the SEND being appended, for the message the sequencer hands to fan-out. */
  private appendingTrace: string | undefined;
  /** Set while appending a `selfApplied` SEND: the stored message, for the answer (decision 033). */
  private selfApplied: { message?: ChatMessageData } | undefined;
  /** While an appendBatch runs: each sender's last post in it, where their read cursor moves once the batch is done. */
  private readsInBatch: Map<string, number> | undefined;
  private readonly log: Sequencer;
  private readonly changes: MessageChanges;
  private fanout!: FanOut;
  private readonly notices: Notices;
  /** Adds, removals, roles, bulk adds and invite links (member-changes.ts). */
  private readonly joins: MemberChanges;
  /** Summary, details and a member's state, as callers see them. */
  private readonly views: ChannelViews;
  /** The newest message that is not a change: the channel's "last activity". */
  private activity = { hlc: "", at: 0 };
  /** When the alarm is set for (null: none). */
  private alarmAt: number | null = null;
  private readonly attachments: Attachments;
  /** Read cursors with their receipts, and typing (signals.ts). */
  private readonly signals: Signals;
  /** Where this instance was reached; a channel stored for another jurisdiction refuses every call. */
  private readonly placement: Placement;
  /** A DM the locality policy no longer names: read-only, continued in this one (docs/decisions/021). */
  private supersededBy: string | undefined;
  /** A broadcast channel's subscriber cap; a field so tests can lower it for one channel. */
  private subscriberCap: number = LIMITS.maxBroadcastSubscribers;
  /** Fan-out tier thresholds (wrangler vars, defaults in tiers.ts). */
  private readonly tiers: TierConfig;
  /** Message lifetime and expiry; public so tests can move its clock. */
  readonly retention: Retention;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    observe(env);
    this.sql = countedSqlFor(ctx.storage.sql, "channel", env);
    this.placement = new Placement(ctx, env, "channel");
    this.members = new Membership(this.sql);
    this.watchers = new Watchers(this.sql);
    this.limiter = new SenderRateLimiter(rateLimitFromEnv(env));
    this.overload = overloadFromEnv(env);
    this.tiers = tierConfigFromEnv(env);
    this.retention = new Retention(this.sql, retentionConfig(env));
    this.attachments = new Attachments(this.sql, {
      wakeAt: (at) => this.wakeAt(at),
      waitUntil: (promise) => ctx.waitUntil(promise),
      orphanTtlMs: attachmentConfig(env).orphanTtlMs,
      deleteBlob: (row) => deleteBlob(env, row),
    });
    this.log = new Sequencer(this.sql, this.limiter, (message) => {
      // In memory only: live deliveries carry the SEND's trace id; the stored row does not.
      if (this.appendingTrace) message.trace_id = this.appendingTrace;
      if (this.selfApplied) this.selfApplied.message = message;
      this.fanout.accept(message, this.selfApplied !== undefined);
      const kind = message.content.update ? "update" : message.content.system ? "system" : "post";
      if (kind !== "update") this.activity = { hlc: message.hlc, at: message.server_ts };
      // Writing means having read up to here (the user's own message is never unread for them).
      if (kind === "post") {
        if (this.readsInBatch) this.readsInBatch.set(message.sender_user_id, message.seq);
        else this.members.moveReadCursor(message.sender_user_id, message.seq);
      }
      const expiresAt = this.retention.appended(message.server_ts);
      if (expiresAt !== undefined) this.wakeAt(expiresAt);
      this.kickFanout();
    }, (userId, kind, content) => (kind === "attachment" ? this.attachments.gate(userId, content.attachment as AttachmentInit) : { ok: true, content }));
    this.changes = new MessageChanges(this.sql, this.log, {
      requireMember: (userId) => this.requireMember(userId),
      isAdmin: (userId) => this.members.isAdmin(userId),
      channelType: () => this.channel!.type,
      deletedForEveryone: (kind, content) => {
        if (kind === "attachment") this.attachments.messageDeleted(content);
      },
    });
    this.views = new ChannelViews({
      sql: this.sql,
      members: this.members,
      log: this.log,
      retention: this.retention,
      row: () => this.channel!,
      activity: () => this.activity,
      supersededBy: () => this.supersededBy,
      requireMember: (userId) => this.requireMember(userId),
    });
    this.joins = new MemberChanges({
      members: this.members,
      invites: new Invites(this.sql, () => this.channel?.channel_id ?? ""),
      watchers: this.watchers,
      views: this.views,
      log: this.log,
      row: () => this.channel,
      open: (input, now) => {
        this.channel = createChannelRow(this.sql, { ...input, createdBy: input.creator.user_id }, now);
        this.log.start(input.channelId, 0, { ms: 0, logical: 0 });
        this.retention.load();
        this.members.load();
      },
      requireMember: (userId) => this.requireMember(userId),
      appendSystem: (actorId, body, name) => this.appendSystem(actorId, body, name),
      applyTier: () => this.applyTier(),
      kickNotices: () => this.kickNotices(),
      tellRelays: () => this.tellRelays(),
      removedWatcher: (userId) => this.fanout.removedWatcher(userId),
      subscriberCap: () => this.subscriberCap,
    });
    this.signals = new Signals({
      members: this.members,
      row: () => this.channel!,
      lastSeq: () => this.log.lastSeq,
      requireMember: (userId) => this.requireMember(userId),
      unread: (userId, lastRead) => this.views.unread(userId, lastRead),
      underPressure: () => this.pressure() !== undefined,
      signal: (fromUserId, event) => this.fanout.signal(fromUserId, event),
      now: () => Date.now(),
    });
    this.notices = new Notices({
      sql: this.sql,
      id: () => this.channel?.channel_id ?? "",
      stateFor: (userId) => this.views.memberState(userId),
      userStub: (userId) => userStub(env, userId),
      wakeAt: (at) => this.wakeAt(at),
      pageSize: noticePageFromEnv(env),
    });
    void ctx.blockConcurrencyWhile(async () => {
      migrate(this.sql, CHANNEL_MIGRATIONS);
      this.fanout = new FanOut({
        sql: this.sql,
        id: () => this.channel?.channel_id ?? "",
        wakeAt: (at) => this.wakeAt(at),
        waitUntil: (promise) => ctx.waitUntil(promise),
        log: this.log,
        summary: () => this.views.summary(),
        memberCount: () => this.members.size,
        watchers: this.watchers,
        userStub: (userId) => userStub(env, userId),
        relayStub: (shard) => relayStub(env, this.channel!.channel_id, shard),
      });
      this.load();
      if (misplacement(this)) return;
      this.alarmAt = await ctx.storage.getAlarm();
      // A restart between a durable append and its fan-out: finish the fan-out from an alarm.
      if (this.fanout.behind) this.wakeAt(Date.now());
      // Expiry under a lifetime set (or a server default configured) while the object slept.
      const expiresAt = this.channel ? this.retention.due() : undefined;
      if (expiresAt !== undefined) this.wakeAt(expiresAt);
    });
  }

  private load(): void {
    this.channel = readChannelRow(this.sql);
    if (!this.channel) return;
    const stored = storedJurisdiction(this.sql);
    const id = this.channel.channel_id;
    if (!this.placement.verify(this, stored, id) || !this.placement.verify(this, parseId(id)?.jurisdiction ?? "", id)) return;
    this.log.start(this.channel.channel_id, this.channel.last_seq, { ms: this.channel.hlc_ms, logical: this.channel.hlc_logical });
    this.fanout.start(this.channel.fanout_seq);
    this.retention.load();
    this.members.load();
    // Only DMs made before decision 016 can be superseded: workers place every new one by the policy.
    if (this.channel.type === "dm") this.supersededBy = canonicalDm(id, this.members.firstIds(2));
    this.watchers.load(this.channel.relay_shards);
    this.applyTier();
    this.activity = lastActivity(this.sql) ?? this.activity;
  }

  /* ------------------------------------ RPC surface ------------------------------------ */

  /**
   * Creates the channel with its first members and a "created" system message (member-changes.ts);
   * an existing DM is returned unchanged (`created: false`). `notice` is the creator's, for the
   * caller to pass on at once (the creator's own list shows the channel before the answer arrives).
   */
  create(input: CreateChannelInput): Result<{ channel: ChannelDetails; created: boolean; notice: MembershipNotice }> {
    // Created where its id says, with the jurisdiction its id says: nothing else is ever stored.
    return this.placement.admit(input.jurisdiction, input.channelId, parseId(input.channelId)?.jurisdiction)
      ?? this.placement.admit(input.jurisdiction, input.channelId)
      ?? this.joins.create(input);
  }

  /**
   * Stores one message and returns its SEND_ACK. A retry with the same (sender, client_msg_id)
   * returns the original ids with status "duplicate" and stores nothing. A sender over the
   * channel's rate gets `rate_limited` with the wait in `backoffHintMs`.
   */
  append(input: AppendInput): Result<AppendAnswer> {
    // Check, then seq/HLC and INSERT: all synchronous, no `await` anywhere on this path.
    const denied = this.requireMember(input.userId) ?? this.requirePoster(input.userId);
    if (denied) return denied;
    if (this.supersededBy) {
      return fail("conversation_moved", `This conversation is read-only; it continues in ${this.supersededBy}, stored where both members' data may live.`);
    }
    const trace = traced(input.traceId);
    this.appendingTrace = trace.trace_id;
    const own: { message?: ChatMessageData } | undefined = input.selfApplied ? {} : undefined;
    this.selfApplied = own;
    try {
      const r = this.log.append(input);
      if (r.ok && trace.trace_id) {
        log("debug", "message.stored", { object: "channel", channel_id: this.channel!.channel_id, user_id: input.userId, seq: r.ack.seq, status: r.ack.status, ...trace });
      }
      return r.ok && own?.message ? { ...r, message: { ...own.message } } : r;
    } finally {
      this.appendingTrace = undefined;
      this.selfApplied = undefined;
    }
  }

  /**
   * Appends several messages in the order given, in one turn (one durable commit). The UserObject
   * sends one batch per channel at a time, which keeps each device's messages in the order it
   * sent them: the runtime does not promise to deliver separate calls in the order they were made.
   */
  appendBatch(inputs: AppendInput[]): Result<AppendAnswer>[] {
    // Measured before this batch: the fan-out work already waiting when it came.
    const slowdownMs = this.pressure();
    // One batch, one turn: the sender's read cursor moves once, to their last message, after it.
    this.readsInBatch = new Map();
    let results: Result<AppendAnswer>[];
    try {
      results = this.log.inBatch(inputs, () => inputs.map((input) => this.append(input)));
    } finally {
      const reads = this.readsInBatch;
      this.readsInBatch = undefined;
      for (const [userId, seq] of reads) this.members.moveReadCursor(userId, seq);
    }
    if (slowdownMs === undefined) return results;
    count("overload.slowdown", 1, { object: "channel", type: this.channel!.type });
    return results.map((r) => (r.ok ? { ...r, slowdownMs } : r));
  }

  /**
   * The SLOWDOWN delay this channel's senders get while its fan-out lags (stored messages not yet
   * handed to every watcher) past its type's threshold: lowest for broadcast, highest for a DM,
   * so 1:1 traffic is the last slowed (docs/decisions/022). Undefined when there is no pressure.
   */
  private pressure(): number | undefined {
    if (!this.channel) return undefined;
    const lag = this.log.lastSeq - this.fanout.deliveredUpTo;
    return slowdownDelay(lag, this.overload.channelLag[this.channel.type] ?? this.overload.channelLag.group, this.overload);
  }

  /** A page of history, ascending: `before` pages older, `after` newer (`after: 0`: from the first); neither: the newest. */
  history(userId: string, query: HistoryQuery): Result<HistoryPageData> {
    return this.views.history(userId, query);
  }

  /**
   * Changes the channel's settings (PATCH /v1/channels/{id}): `retention_ms` (null = the server
   * default) by a group's or broadcast channel's owners and admins, or by either member of a DM;
   * `name` by owners and admins of a group or broadcast channel. Each change is logged as a system
   * message with ids only; a value equal to the current one changes and logs nothing.
   */
  update(actorId: string, patch: ChannelPatch): Result<{ channel: ChannelDetails }> {
    return changeSettings({
      sql: this.sql,
      members: this.members,
      retention: this.retention,
      log: this.log,
      row: () => this.channel!,
      requireMember: (userId) => this.requireMember(userId),
      appendSystem: (actor, body, name) => this.appendSystem(actor, body, name),
      wakeAt: (at) => this.wakeAt(at),
      details: (viewer) => this.views.details(viewer),
    }, actorId, patch);
  }

  /** The channel for a member: summary and the first page of members (page on with `members`). */
  describe(userId: string): Result<{ channel: ChannelDetails }> {
    return this.views.describe(userId);
  }

  /** A page of members (roles, read cursors) after `cursor`, in the order they joined (broadcast: admins only). */
  listMembers(userId: string, cursor = "", limit = DEFAULT_MEMBER_PAGE): Result<MemberPage> {
    return this.views.memberPage(userId, cursor, limit);
  }

  /**
   * `userId` becomes a watcher as of `epoch` (a device of theirs is connected): posts reach them live
   * from now on. Answers their exact state, which their channel list takes. A call older than the
   * user's last watch or unwatch changes nothing (and still answers the state).
   */
  watch(userId: string, epoch: number): Result<{ state: MemberChannelState }> {
    const denied = this.requireMember(userId);
    if (denied) return denied;
    const viaRelay = this.watchers.relayShards > 0;
    this.watchers.watch(userId, epoch, viaRelay);
    // Delivered directly until the pump has registered it at its relay shard.
    if (viaRelay && !this.watchers.isAtRelay(userId)) this.kickFanout();
    count("channel.watch");
    return { ok: true, state: this.views.memberState(userId) };
  }

  /** `userId` stops watching as of `epoch` (no device connected any more). */
  unwatch(userId: string, epoch: number): Result {
    if (!this.channel) return fail("not_found", "No such channel.");
    this.watchers.unwatch(userId, epoch);
    this.fanout.direct.drop(userId);
    this.tellRelays();
    count("channel.unwatch");
    return { ok: true };
  }

  /** The member's exact state, without watching (a list re-read for a user who is not live). */
  state(userId: string): Result<{ state: MemberChannelState }> {
    return this.views.state(userId);
  }

  /**
   * For the channel's relay shards only (relays hold no content): a window of the log to catch up a
   * watcher whose delivery failed, the summary deliveries carry, and how far the fan-out got.
   */
  relayBacklog(fromSeq: number, toSeq: number, max: number): { channel: ChannelSummary; messages: ChatMessageData[]; delivered_up_to: number } {
    if (!this.channel) throw new Error("relayBacklog on a channel that does not exist");
    return { channel: this.views.summary(), messages: this.log.backlog(fromSeq, toSeq, max), delivered_up_to: this.fanout.deliveredUpTo };
  }

  /** Moves the member's read cursor forward (never back), with a read receipt when `share` (signals.ts); answers the unread count. */
  markRead(userId: string, upToSeq: number, share = true): Result<{ last_read_seq: number; unread_count: number; moved: boolean }> {
    return this.signals.markRead(userId, upToSeq, share);
  }

  /** Passes a typing indicator to the other members' devices; best effort and lossy by design (signals.ts). */
  typing(userId: string, deviceId: string, isTyping: boolean): Result {
    return this.signals.typing(userId, deviceId, isTyping);
  }

  /** Adds or removes one of the member's reactions (message-changes.ts); a repeat writes nothing. */
  react(userId: string, deviceId: string, seq: number, emoji: string, op: "add" | "remove"): Result<MessageChange> {
    return this.changes.react(userId, deviceId, seq, emoji, op);
  }

  /** Replaces the text of one of the member's own messages, within LIMITS.editWindowMs. */
  edit(userId: string, deviceId: string, seq: number, content: ContentInit): Result<MessageChange> {
    return this.changes.edit(userId, deviceId, seq, content);
  }

  /** A tombstone keeps the seq: by its sender within LIMITS.deleteWindowMs, by a group's owner and admins always. */
  deleteForEveryone(userId: string, deviceId: string, seq: number): Result<MessageChange> {
    return this.changes.deleteForEveryone(userId, deviceId, seq);
  }

  /* ------------------------------- members, roles, bulk joins, invites ------------------------------- */

  /** Whether `actorId` may add members here at all; asked before the API looks at who is added. */
  mayAddMembers(actorId: string): Result {
    return this.joins.mayAddMembers(actorId);
  }

  /** Adds members (owners and admins only) with one "added" system message. */
  addMembers(actorId: string, profiles: MemberProfile[]): Result<{ channel: ChannelDetails }> {
    return this.joins.addMembers(actorId, profiles);
  }

  /** Removes a member: yourself (leave) or, for owners and admins, someone else. */
  removeMember(actorId: string, userId: string): Result<{ channel: ChannelDetails }> {
    return this.joins.removeMember(actorId, userId);
  }

  /** The owner makes a member an admin or an admin a member again (ownership moves only when the owner leaves). */
  setRole(actorId: string, userId: string, role: "admin" | "member"): Result<{ member: { user_id: string; role: MemberRole } }> {
    return this.joins.setRole(actorId, userId, role);
  }

  /** Adds up to LIMITS.maxBulkAdd subscribers to a broadcast channel, silently, in one turn; idempotent, all or nothing. */
  bulkAdd(actorId: string, userIds: string[]): Result<{ added: number; already: number; member_count: number }> {
    return this.joins.bulkAdd(actorId, userIds);
  }

  /** A new invite link (owners and admins of a group or broadcast channel). */
  createInvite(actorId: string, opts: { maxUses?: number; expiresInS?: number }): Result<{ invite: InviteView }> {
    return this.joins.createInvite(actorId, opts);
  }

  /** The links that still work (owners and admins). */
  listInvites(actorId: string): Result<{ invites: InviteView[] }> {
    return this.joins.listInvites(actorId);
  }

  revokeInvite(actorId: string, secret: string): Result {
    return this.joins.revokeInvite(actorId, secret);
  }

  /** What a link leads to, for anyone holding it: name, type and size, never the members. */
  previewInvite(userId: string, secret: string): Result<{ channel: { channel_id: string; name: string; type: ChannelType; member_count: number }; member: boolean }> {
    return this.joins.previewInvite(userId, secret);
  }

  /** Joins `userId` through a link (the Worker checked their data may live here); `notice` is the joiner's. */
  joinByInvite(userId: string, secret: string): Result<{ channel: ChannelDetails; joined: boolean; notice: MembershipNotice }> {
    return this.joins.joinByInvite(userId, secret);
  }

  /**
   * Erasure (docs/decisions/020, erasure.ts): tombstones up to `limit` of `userId`'s messages;
   * once none is left, deletes their uploads and removes them, with an "account_deleted" notice
   * that tells the other members' clients to blank what they cached. Idempotent; call until done.
   */
  async eraseMember(userId: string, limit: number): Promise<ErasureProgress> {
    if (!this.channel) return { done: true, tombstoned: 0, attachments: 0 };
    return eraseMember({
      sql: this.sql,
      attachments: this.attachments,
      members: this.members,
      watchers: this.watchers,
      appendNotice: (id) => this.appendSystem(id, { event: "account_deleted", target_user_ids: [id] }),
      tellRelays: () => this.tellRelays(),
      leaveTold: (id, ms) => this.fanout.leaveTold(id, ms),
    }, userId, limit);
  }

  /* ------------------------------------ attachments ------------------------------------ */

  /**
   * Records an upload a member declares (POST /v1/attachments/presign): the Worker checked type,
   * size and name; the channel checks membership (in a broadcast channel: owners and admins only,
   * as for posting) and keeps the row. An upload no message carries is swept ATTACHMENT_ORPHAN_TTL_SECONDS later.
   */
  async createUpload(userId: string, upload: NewUpload): Promise<Result<{ upload: UploadView }>> {
    const denied = this.requireMember(userId) ?? this.requirePoster(userId);
    if (denied) return denied;
    return this.attachments.declare(this.channel!.channel_id, userId, upload, Date.now());
  }

  /** The multipart upload id R2 gave the upload. */
  setUploadId(attachmentId: string, uploadId: string): void {
    this.attachments.setUploadId(attachmentId, uploadId);
  }

  /** An upload and its parts so far, for the uploader (`userId`) or a signed upload URL (no user: the signature is the permission). */
  upload(userId: string | undefined, attachmentId: string): Result<{ upload: UploadRow; parts: PartRow[] }> {
    if (!this.channel) return fail("not_found", "No such upload.");
    return this.attachments.withParts(userId, attachmentId);
  }

  recordUploadPart(attachmentId: string, part: PartRow): Result {
    return this.attachments.addPart(attachmentId, part);
  }

  /** The Worker checked the bytes (size, and sha256 measured or verified by R2). */
  completeUpload(attachmentId: string, sha256: string): Result<{ upload: UploadView }> {
    return this.attachments.finish(this.channel?.channel_id ?? "", attachmentId, sha256, Date.now());
  }

  /** The bytes did not match the declaration: the upload is dead, its blob goes with the sweep. */
  failUpload(attachmentId: string): void {
    this.attachments.fail(attachmentId);
  }

  /** A member's right to fetch an attachment: once a message carries it (its uploader: once complete). */
  attachmentFor(userId: string, attachmentId: string): Result<{ upload: UploadView }> {
    if (!this.channel) return fail("not_found", "No such attachment.");
    return this.attachments.fetchableBy(this.channel.channel_id, userId, this.members.has(userId), attachmentId);
  }

  /** The uploader gives up an upload no message carries; its blob is deleted off this call's path. */
  cancelUpload(userId: string, attachmentId: string): Result {
    return this.attachments.cancel(userId, attachmentId);
  }

  /** Fan-out guard and watchdog, delivery retries, membership notices, expiry, the attachment sweep. */
  override async alarm(): Promise<void> {
    this.alarmAt = null;
    const now = Date.now();
    this.fanout.onAlarm(now);
    // One bounded batch in this turn when due (the alarm also runs for fan-out, often). Unread
    // counts in watchers' lists are carried forward message by message, so they are told to re-read
    // theirs from the channel, which counts only what is still stored. The uploads go with the sweep below.
    const expiryDue = !this.channel ? undefined : this.retention.onAlarm(now, (minSeq) => {
      this.fanout.signal("", { kind: "expired", channel_id: this.channel!.channel_id, min_seq: minSeq }, true);
    });
    await this.notices.kick();
    await this.attachments.sweep();
    const due = [this.fanout.nextDue(now), this.notices.nextDue(), expiryDue].filter((t): t is number => t !== undefined);
    if (due.length > 0) this.wakeAt(Math.max(Math.min(...due), now + 50));
  }

  /* ------------------------------------ internals ------------------------------------ */

  /** Strangers hear the channel does not exist, former members that they left (membership.ts `require`). */
  private requireMember(userId: string): Failure | undefined {
    if (!this.channel) return fail("not_found", "No such channel.");
    return this.members.require(userId);
  }

  /** In a broadcast channel only the owner and admins post (membership.ts). */
  private requirePoster(userId: string): Failure | undefined {
    return this.channel && this.members.requirePoster(this.channel.type, userId);
  }

  /** Enters the relay tier when the channel's type and size call for it (tiers.ts); it never leaves it. */
  private applyTier(): void {
    const shards = enterTier(this.sql, this.channel!, this.members.size, this.tiers);
    if (shards === undefined) return;
    this.watchers.load(shards);
    this.wakeAt(Date.now());
  }

  /** Starts the fan-out pump after an append (a method, so restart tests can hold the pump back). */
  private kickFanout(): void {
    this.fanout.kick();
  }

  /**
   * Watchers stopped watching in a relay tier: the pump tells their shards (fanout.ts), and the
   * guard alarm, set in this turn, makes sure it does after a restart.
   */
  private tellRelays(): void {
    if (!this.watchers.hasLeavesDue(Infinity)) return;
    this.wakeAt(Date.now() + FANOUT_GUARD_MS);
    this.kickFanout();
  }

  private kickNotices(): void {
    this.wakeAt(Date.now());
    this.ctx.waitUntil(this.notices.kick());
  }

  /** Sets the alarm to `at` unless it is set earlier already (in the caller's turn: durable with its writes). */
  private wakeAt(at: number): void {
    if (this.alarmAt !== null && this.alarmAt <= at) return;
    this.alarmAt = at;
    void this.ctx.storage.setAlarm(at);
  }

  private appendSystem(actorId: string, body: { event: string; target_user_ids: string[] }, name?: string): void {
    const text = systemText(body.event, body.target_user_ids.length, name, this.channel?.type === "broadcast");
    this.log.insert(actorId, "", null, "system", { system: { ...body, actor_user_id: actorId, text } });
  }
}

// Every call into a channel found stored for another jurisdiction is refused (durable-objects/placement.ts).
refuseWhenMisplaced(ChannelObject);
