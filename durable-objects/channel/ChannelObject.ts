/**
 * ChannelObject: the single writer of one channel (DESIGN.md). It owns the channel's meta,
 * members, message log and idempotency keys, assigns every message its seq and HLC, and fans
 * each stored message out to its members' UserObjects.
 *
 * This file is the RPC surface and the channel row; the work is done by one module per concern:
 * `membership.ts` (members, roles), `sequencer.ts` (dedup, rate limit, seq/HLC, the log, history),
 * `message-changes.ts` (react, edit, delete rules), `fanout.ts` (delivery to members) and
 * `attachments.ts` (uploads declared in the channel, the SEND check for files, blob cleanup).
 *
 * The send path's one rule: check, assign seq/HLC and INSERT before the first `await`. The
 * output gate then holds the returned SEND_ACK (and every outgoing fan-out call) until the write
 * is durable, which is exactly the seed's "durable before ack". Every RPC method below that
 * writes is synchronous for that reason.
 */
import { DurableObject } from "cloudflare:workers";
import { fail, type Failure, type Result } from "../../shared/errors.js";
import { userStub } from "../../shared/routing.js";
import { count } from "../../shared/metrics.js";
import { LIMITS } from "../../protocol/limits.js";
import { migrate } from "../migrate.js";
import { deleteBlob } from "../../shared/attachments/blobs.js";
import { attachmentConfig } from "../../shared/attachments/config.js";
import { channelOfAttachment } from "../../shared/attachments/ids.js";
import { Attachments, uploadView, type AttachmentInit, type NewUpload, type PartRow, type UploadRow, type UploadView } from "./attachments.js";
import { FanOut } from "./fanout.js";
import { hlcToHex } from "./hlc.js";
import { Membership, uniqueProfiles } from "./membership.js";
import { MessageChanges } from "./message-changes.js";
import { rateLimitFromEnv, SenderRateLimiter } from "./rate-limit.js";
import { CHANNEL_MIGRATIONS } from "./schema.js";
import { Sequencer } from "./sequencer.js";
import { systemText } from "./system-messages.js";
import { TypingGuard } from "./typing-guard.js";
import { wellFormedDeep } from "../../protocol/text.js";
import {
  SMALL_CHANNEL_MEMBERS, type AppendInput, type ChannelDetails, type ChannelSummary, type ChannelType, type ContentInit,
  type HistoryPageData, type HistoryQuery, type MemberProfile, type MemberRole, type MessageChange, type SendAck,
} from "./types.js";
import { recordToAnalytics } from "../../shared/analytics.js";


type ChannelRow = {
  channel_id: string;
  type: ChannelType;
  name: string;
  created_by: string;
  created_at: number;
  last_seq: number;
  hlc_ms: number;
  hlc_logical: number;
  fanout_seq: number;
};

export interface CreateChannelInput {
  channelId: string;
  type: ChannelType;
  name: string;
  creator: MemberProfile;
  members: MemberProfile[];
  jurisdiction: string;
}

export class ChannelObject extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private channel: ChannelRow | undefined;
  private readonly members: Membership;
  /** Shared by sends and changes; a field so tests can change the limit of one channel. */
  private readonly limiter: SenderRateLimiter;
  private readonly log: Sequencer;
  private readonly changes: MessageChanges;
  private readonly fanout: FanOut;
  private readonly attachments: Attachments;
  /** Which typing indicators go out (on change, at most every few seconds per user). */
  private readonly typingGuard = new TypingGuard();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    recordToAnalytics(env);
    this.sql = ctx.storage.sql;
    this.members = new Membership(this.sql);
    this.limiter = new SenderRateLimiter(rateLimitFromEnv(env));
    this.attachments = new Attachments(this.sql, {
      alarms: ctx.storage,
      waitUntil: (promise) => ctx.waitUntil(promise),
      orphanTtlMs: attachmentConfig(env).orphanTtlMs,
      deleteBlob: (row) => deleteBlob(env, row),
    });
    this.log = new Sequencer(this.sql, this.limiter, (message) => {
      this.fanout.accept(message);
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
    this.fanout = new FanOut({
      sql: this.sql,
      alarms: ctx.storage,
      waitUntil: (promise) => ctx.waitUntil(promise),
      log: this.log,
      summary: () => this.summary(),
      memberIds: () => this.members.ids(),
      userStub: (userId) => userStub(env, userId),
    });
    void ctx.blockConcurrencyWhile(async () => {
      migrate(this.sql, CHANNEL_MIGRATIONS);
      this.load();
      // A restart between a durable append and its fan-out: finish the fan-out from an alarm.
      if (this.fanout.behind) await ctx.storage.setAlarm(Date.now());
    });
  }

  private load(): void {
    this.channel = this.sql.exec<ChannelRow>(
      "SELECT channel_id, type, name, created_by, created_at, last_seq, hlc_ms, hlc_logical, fanout_seq FROM channel WHERE id = 1",
    ).toArray()[0];
    if (!this.channel) return;
    this.log.start(this.channel.channel_id, this.channel.last_seq, { ms: this.channel.hlc_ms, logical: this.channel.hlc_logical });
    this.fanout.start(this.channel.fanout_seq);
    this.members.load();
  }

  /* ------------------------------------ RPC surface ------------------------------------ */

  /**
   * Creates the channel with its first members and a "created" system message. Creating a DM
   * that exists already returns it unchanged (`created: false`): DM ids are derived from the pair.
   */
  create(input: CreateChannelInput): Result<{ channel: ChannelDetails; created: boolean }> {
    if (this.channel) {
      if (this.channel.type === "dm" && input.type === "dm" && this.members.has(input.creator.user_id)) {
        return { ok: true, channel: this.details(), created: false };
      }
      return fail("conflict", "This channel exists already.");
    }
    const everyone = uniqueProfiles([input.creator, ...input.members]);
    if (input.type === "dm" && everyone.length !== 2) return fail("invalid_argument", "A DM has exactly two members.");
    if (everyone.length > LIMITS.maxGroupMembers) {
      return fail("invalid_argument", `A group has at most ${LIMITS.maxGroupMembers} members.`);
    }
    const now = Date.now();
    this.sql.exec(
      "INSERT INTO channel (id, channel_id, type, name, created_by, created_at, jurisdiction) VALUES (1, ?, ?, ?, ?, ?, ?)",
      input.channelId, input.type, input.name, input.creator.user_id, now, input.jurisdiction,
    );
    this.channel = {
      channel_id: input.channelId, type: input.type, name: input.name, created_by: input.creator.user_id,
      created_at: now, last_seq: 0, hlc_ms: 0, hlc_logical: 0, fanout_seq: 0,
    };
    this.log.start(input.channelId, 0, { ms: 0, logical: 0 });
    for (const p of everyone) {
      const role: MemberRole = input.type === "group" && p.user_id === input.creator.user_id ? "owner" : "member";
      this.members.add(p, role, now, this.log.lastSeq);
    }
    const others = everyone.filter((p) => p.user_id !== input.creator.user_id);
    this.appendSystem(input.creator, { event: "created", target_user_ids: others.map((p) => p.user_id) }, others, input.name);
    return { ok: true, channel: this.details(), created: true };
  }

  /**
   * Stores one message and returns its SEND_ACK. A retry with the same (sender, client_msg_id)
   * returns the original ids with status "duplicate" and stores nothing. A sender over the
   * channel's rate gets `rate_limited` with the wait in `backoffHintMs`.
   */
  append(input: AppendInput): Result<{ ack: SendAck }> {
    // Check, then seq/HLC and INSERT: all synchronous, no `await` anywhere on this path.
    const denied = this.requireMember(input.userId);
    if (denied) return denied;
    return this.log.append(input);
  }

  /**
   * Appends several messages in the order given, in one turn (one durable commit). The UserObject
   * sends one batch per channel at a time, which keeps each device's messages in the order it
   * sent them: the runtime does not promise to deliver separate calls in the order they were made.
   */
  appendBatch(inputs: AppendInput[]): Result<{ ack: SendAck }>[] {
    return inputs.map((input) => this.append(input));
  }

  /**
   * A page of history, ascending by seq: `before` pages older, `after` pages newer (`after: 0`
   * from the first message); neither gives the newest page.
   */
  history(userId: string, query: HistoryQuery): Result<HistoryPageData> {
    const denied = this.requireMember(userId);
    if (denied) return denied;
    return this.log.history(query);
  }

  /** Full state for a member: summary, member list with roles and read cursors. */
  describe(userId: string): Result<{ channel: ChannelDetails }> {
    const denied = this.requireMember(userId);
    if (denied) return denied;
    return { ok: true, channel: this.details() };
  }

  /** Adds members (owners and admins only) with one "added" system message. */
  addMembers(actorId: string, profiles: MemberProfile[]): Result<{ channel: ChannelDetails }> {
    const denied = this.requireMember(actorId);
    if (denied) return denied;
    if (this.channel!.type === "dm") return fail("invalid_argument", "A DM's members are fixed; create a group instead.");
    if (!this.members.isAdmin(actorId)) return fail("forbidden", "Only the group's owner and admins can add members.");
    const added = uniqueProfiles(profiles).filter((p) => !this.members.has(p.user_id));
    if (this.members.size + added.length > LIMITS.maxGroupMembers) {
      return fail("invalid_argument", `A group has at most ${LIMITS.maxGroupMembers} members.`);
    }
    if (added.length > 0) {
      const now = Date.now();
      for (const p of added) this.members.add(p, "member", now, this.log.lastSeq);
      this.appendSystem(this.members.get(actorId)!, { event: "member_added", target_user_ids: added.map((p) => p.user_id) }, added);
    }
    return { ok: true, channel: this.details() };
  }

  /** Removes a member: yourself (leave) or, for owners and admins, someone else. */
  removeMember(actorId: string, userId: string): Result<{ channel: ChannelDetails }> {
    const denied = this.requireMember(actorId);
    if (denied) return denied;
    const target = this.members.get(userId);
    if (!target) return fail("not_found", "That user is not a member of this channel.");
    if (this.channel!.type === "dm") return fail("invalid_argument", "A DM's members are fixed.");
    if (actorId !== userId && !this.members.isAdmin(actorId)) return fail("forbidden", "Only the group's owner and admins can remove members.");
    if (target.role === "owner" && actorId !== userId) return fail("forbidden", "The group's owner cannot be removed.");
    const actor = this.members.get(actorId)!;
    this.members.remove(userId, Date.now());
    const event = actorId === userId ? "member_left" : "member_removed";
    this.appendSystem(actor, { event, target_user_ids: [userId] }, [target]);
    return { ok: true, channel: this.details() };
  }

  /**
   * Moves the member's read cursor forward (never back) and returns their unread count: messages
   * from others, not system notices, after the cursor. With `share`, the other members' devices
   * get a read receipt (the reader's own setting decides; see user/settings.ts) and the channel's
   * details show the cursor; a reader who turns receipts on shares where they are at their next read.
   */
  markRead(userId: string, upToSeq: number, share = true): Result<{ last_read_seq: number; unread_count: number; moved: boolean }> {
    const member = this.members.get(userId);
    if (!member) return this.requireMember(userId)!;
    const target = Math.min(Math.max(0, Math.floor(upToSeq)), this.log.lastSeq);
    const moved = this.members.moveReadCursor(userId, target);
    const shared = share ? this.members.shareReadCursor(userId) : undefined;
    if (shared !== undefined) this.fanout.signal(userId, { kind: "read", channel_id: this.channel!.channel_id, user_id: userId, up_to_seq: shared });
    return { ok: true, last_read_seq: member.last_read_seq, unread_count: this.log.unreadCount(userId, member.last_read_seq), moved };
  }

  /**
   * Passes a typing indicator to the other members' devices. Best effort and lossy by design
   * (seed §4.1): nothing is stored, and typing-guard.ts drops repeats and fast flips.
   */
  typing(userId: string, deviceId: string, isTyping: boolean): Result {
    const denied = this.requireMember(userId);
    if (denied) return denied;
    if (!this.typingGuard.pass(userId, isTyping, Date.now())) return { ok: true };
    count("typing.forwarded");
    this.fanout.signal(userId, { kind: "typing", channel_id: this.channel!.channel_id, user_id: userId, device_id: deviceId, is_typing: isTyping });
    return { ok: true };
  }

  /**
   * Adds or removes one of the member's reactions. Adding one they have, or removing one they do
   * not, changes nothing and writes nothing (so a retry is harmless).
   */
  react(userId: string, deviceId: string, seq: number, emoji: string, op: "add" | "remove"): Result<MessageChange> {
    return this.changes.react(userId, deviceId, seq, emoji, op);
  }

  /** Replaces the text of one of the member's own messages, within LIMITS.editWindowMs. */
  edit(userId: string, deviceId: string, seq: number, content: ContentInit): Result<MessageChange> {
    return this.changes.edit(userId, deviceId, seq, content);
  }

  /**
   * Deletes a message for everyone: its content and reactions are erased and a tombstone keeps
   * its seq. Its sender may within LIMITS.deleteWindowMs; a group's owner and admins always may.
   */
  deleteForEveryone(userId: string, deviceId: string, seq: number): Result<MessageChange> {
    return this.changes.deleteForEveryone(userId, deviceId, seq);
  }

  /* ------------------------------------ attachments ------------------------------------ */

  /**
   * Records an upload a member declares (POST /v1/attachments/presign): the Worker checked type,
   * size and name against the configuration; the channel checks membership and keeps the row.
   * An upload no message carries is swept ATTACHMENT_ORPHAN_TTL_SECONDS later.
   */
  async createUpload(userId: string, upload: NewUpload): Promise<Result<{ upload: UploadView }>> {
    const denied = this.requireMember(userId);
    if (denied) return denied;
    if (channelOfAttachment(upload.attachment_id) !== this.channel!.channel_id) return fail("invalid_argument", "That attachment id belongs to another channel.");
    const row = this.attachments.create(userId, upload, Date.now());
    await this.attachments.armSweep();
    return { ok: true, upload: uploadView(this.channel!.channel_id, row) };
  }

  /** The multipart upload id R2 gave the upload. */
  setUploadId(attachmentId: string, uploadId: string): void {
    this.attachments.setUploadId(attachmentId, uploadId);
  }

  /**
   * An upload and the parts received so far, for the uploader (`userId`) or for a signed upload
   * URL (no user: the URL's signature is the permission).
   */
  upload(userId: string | undefined, attachmentId: string): Result<{ upload: UploadRow; parts: PartRow[] }> {
    if (!this.channel) return fail("not_found", "No such upload.");
    const found = this.attachments.pendingOf(userId, attachmentId);
    if (!found.ok) return found;
    return { ok: true, upload: found.upload, parts: this.attachments.parts(attachmentId) };
  }

  recordUploadPart(attachmentId: string, part: PartRow): Result {
    const found = this.attachments.pendingOf(undefined, attachmentId);
    if (!found.ok) return found;
    if (found.upload.state !== "pending") return fail("conflict", "This upload is finished already.");
    this.attachments.recordPart(attachmentId, part);
    return { ok: true };
  }

  /** The Worker checked the bytes (size, and sha256 measured or verified by R2). */
  completeUpload(attachmentId: string, sha256: string): Result<{ upload: UploadView }> {
    const found = this.attachments.pendingOf(undefined, attachmentId);
    if (!found.ok) return found;
    const row = found.upload.state === "pending" ? this.attachments.complete(attachmentId, sha256, Date.now())! : found.upload;
    if (row.state !== "complete") return fail("invalid_argument", "This upload failed its checks; upload the file again.");
    return { ok: true, upload: uploadView(this.channel!.channel_id, row) };
  }

  /** The bytes did not match the declaration: the upload is dead, its blob goes with the sweep. */
  failUpload(attachmentId: string): void {
    this.attachments.fail(attachmentId);
  }

  /**
   * A member's right to fetch an attachment: once a message carries it (its uploader: once
   * complete). Anyone else who names an existing attachment gets `forbidden`; the random half of
   * an attachment id cannot be guessed, so this confirms nothing to someone who did not have it.
   */
  attachmentFor(userId: string, attachmentId: string): Result<{ upload: UploadView }> {
    if (!this.channel) return fail("not_found", "No such attachment.");
    const found = this.attachments.downloadable(userId, attachmentId);
    if (!found.ok) return found;
    if (!this.members.has(userId)) return fail("forbidden", "Only members of the channel can fetch its attachments.");
    return { ok: true, upload: uploadView(this.channel.channel_id, found.upload) };
  }

  /** The uploader gives up an upload no message carries; its blob is deleted off this call's path. */
  cancelUpload(userId: string, attachmentId: string): Result {
    return this.attachments.cancel(userId, attachmentId);
  }

  /** Finishes interrupted fan-out, retries members whose delivery failed, sweeps orphaned uploads. */
  override async alarm(): Promise<void> {
    await this.fanout.onAlarm();
    await this.attachments.sweep();
  }

  /* ------------------------------------ internals ------------------------------------ */

  /**
   * Someone who never belonged to the channel is told it does not exist: DM ids can be computed
   * from two user ids, and "not a member" would confirm that two other people talk.
   */
  private requireMember(userId: string): Failure | undefined {
    if (!this.channel) return fail("not_found", "No such channel.");
    return this.members.require(userId);
  }

  /** Starts the fan-out pump after an append (a method, so restart tests can hold the pump back). */
  private kickFanout(): void {
    this.fanout.kick();
  }

  private appendSystem(actor: MemberProfile, body: { event: string; target_user_ids: string[] }, targets: MemberProfile[], name?: string): void {
    const text = systemText(body.event, actor, targets, name);
    this.log.insert(actor.user_id, "", null, "system", { system: { ...body, actor_user_id: actor.user_id, text } });
  }

  private summary(): ChannelSummary {
    const c = this.channel!;
    const small = this.members.size <= SMALL_CHANNEL_MEMBERS;
    // Names stored before the edges checked text leave here repaired (docs/protocol.md, "Text").
    return wellFormedDeep({
      channel_id: c.channel_id, type: c.type, name: c.name, member_count: this.members.size,
      members: small ? this.members.profiles() : [],
      last_seq: this.log.lastSeq, last_hlc: hlcToHex(this.log.lastHlc),
    });
  }

  private details(): ChannelDetails {
    const c = this.channel!;
    // Read cursors as their owners share them (read receipts are opt-in).
    return wellFormedDeep({ ...this.summary(), created_at: c.created_at, created_by: c.created_by, member_list: this.members.listShared() });
  }
}
