/**
 * ChannelObject: the single writer of one channel (DESIGN.md). It owns the channel's meta,
 * members, message log and idempotency keys, assigns every message its seq and HLC, and fans
 * each stored message out to its members' UserObjects.
 *
 * The send path's one rule: check, assign seq/HLC and INSERT before the first `await`. The
 * output gate then holds the returned SEND_ACK (and every outgoing fan-out call) until the write
 * is durable, which is exactly the seed's "durable before ack".
 */
import { DurableObject } from "cloudflare:workers";
import { fail, type Failure, type Result } from "../../shared/errors.js";
import { userStub } from "../../shared/routing.js";
import { LIMITS } from "../../protocol/limits.js";
import { chunkMessages } from "../../protocol/frame-budget.js";
import { migrate } from "../migrate.js";
import { validateClientContent, validClientMsgId, validEmoji, type ContentKind } from "./content.js";
import { HLC_ZERO, hlcToHex, nextHlc, serverMsgId, type Hlc } from "./hlc.js";
import { rateLimitFromEnv, SenderRateLimiter } from "./rate-limit.js";
import { CHANNEL_MIGRATIONS } from "./schema.js";
import { systemText } from "./system-messages.js";
import {
  SIGNAL_MAX_MEMBERS, SMALL_CHANNEL_MEMBERS, type ChannelSignal,
  type AppendInput, type ChannelDetails, type ChannelSummary, type ChannelType, type ChatMessageData,
  type ContentInit, type DeliveryBatch, type HistoryPageData, type HistoryQuery, type Member,
  type MemberProfile, type MemberRole, type SendAck, type ChangeKind, type MessageChange, type Reaction,
} from "./types.js";
import type { UserObject } from "../user/UserObject.js";

/** Messages per fan-out call; also the unit the pump coalesces bursts into. */
const FANOUT_BATCH = 100;
/** Concurrent UserObject calls per fan-out round (tier 1, ≤ 1,000 members). */
const FANOUT_CONCURRENCY = 32;
const RETRY_BASE_MS = 1000;
const RETRY_MAX_ATTEMPTS = 12;
/**
 * A durable reminder armed with the first append after each alarm run: if the process dies before
 * the fan-out finishes, the alarm wakes this object after the restart and the fan-out resumes.
 * (The constructor resumes it too, but only once something wakes a possibly quiet channel.)
 */
const FANOUT_GUARD_MS = 2000;
/** A repeated typing state from one user within this window is not passed on (flood guard). */
const TYPING_REPEAT_MS = 2500;

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

type MessageRow = {
  seq: number;
  hlc_ms: number;
  hlc_logical: number;
  sender_user_id: string;
  sender_device_id: string;
  client_msg_id: string | null;
  kind: ContentKind;
  content: string;
  server_ts: number;
  edited_at: number;
  deleted: number;
  reactions: string;
};

type MemberRow = {
  user_id: string;
  username: string;
  display_name: string;
  role: MemberRole;
  joined_at: number;
  last_read_seq: number;
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
  private hlc: Hlc = HLC_ZERO;
  private lastSeq = 0;
  private fanoutSeq = 0;
  /** Current members only; the table keeps those who left (left_at set). */
  private readonly members = new Map<string, Member>();
  /** Appended messages not yet fanned out, so the pump need not read them back. */
  private unsent: ChatMessageData[] = [];
  private fanout: Promise<void> | undefined;
  private readonly stubs = new Map<string, DurableObjectStub<UserObject>>();
  /** An alarm is pending that will run the fan-out pump (see FANOUT_GUARD_MS). */
  private fanoutGuardArmed = false;
  private readonly limiter: SenderRateLimiter;
  /** Last typing state passed on per user: memory only, like the indicator itself. */
  private readonly typingSent = new Map<string, { isTyping: boolean; at: number }>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.limiter = new SenderRateLimiter(rateLimitFromEnv(env));
    void ctx.blockConcurrencyWhile(async () => {
      migrate(this.sql, CHANNEL_MIGRATIONS);
      this.load();
      // A restart between a durable append and its fan-out: finish the fan-out from an alarm.
      if (this.fanoutSeq < this.lastSeq) await ctx.storage.setAlarm(Date.now());
    });
  }

  private load(): void {
    this.channel = this.sql.exec<ChannelRow>(
      "SELECT channel_id, type, name, created_by, created_at, last_seq, hlc_ms, hlc_logical, fanout_seq FROM channel WHERE id = 1",
    ).toArray()[0];
    if (!this.channel) return;
    this.lastSeq = this.channel.last_seq;
    this.fanoutSeq = this.channel.fanout_seq;
    this.hlc = { ms: this.channel.hlc_ms, logical: this.channel.hlc_logical };
    this.members.clear();
    for (const m of this.sql.exec<MemberRow>(
      "SELECT user_id, username, display_name, role, joined_at, last_read_seq FROM members WHERE left_at IS NULL",
    )) {
      this.members.set(m.user_id, { ...m });
    }
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
    for (const p of everyone) {
      const role: MemberRole = input.type === "group" && p.user_id === input.creator.user_id ? "owner" : "member";
      this.insertMember(p, role, now);
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
    const denied = this.requireMember(input.userId);
    if (denied) return denied;
    if (!validClientMsgId(input.clientMsgId)) {
      return fail("invalid_argument", `client_msg_id must be 1-${LIMITS.maxClientMsgIdLength} printable ASCII characters (a UUID).`);
    }
    const existing = this.sql.exec<Pick<MessageRow, "seq" | "hlc_ms" | "hlc_logical" | "server_ts">>(
      "SELECT seq, hlc_ms, hlc_logical, server_ts FROM messages WHERE sender_user_id = ? AND client_msg_id = ?",
      input.userId, input.clientMsgId,
    ).toArray()[0];
    if (existing) {
      const hlc = { ms: existing.hlc_ms, logical: existing.hlc_logical };
      return { ok: true, ack: this.ack(input.clientMsgId, hlc, existing.seq, existing.server_ts, "duplicate") };
    }
    // After the dedup lookup: a retry of a stored message is answered, never limited.
    const wait = this.limiter.take(input.userId, Date.now());
    if (wait > 0) {
      return fail("rate_limited", `Slow down: at most ${this.limiter.limit.perSecond} messages per second per person in one channel.`, wait);
    }
    const valid = validateClientContent(input.content);
    if (!valid.ok) return valid;
    const stored = this.insertMessage(input.userId, input.deviceId, input.clientMsgId, valid.kind, valid.content);
    return { ok: true, ack: this.ack(input.clientMsgId, stored.hlc, stored.seq, stored.server_ts, "stored") };
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
    const limit = clampLimit(query.limit);
    let rows: MessageRow[];
    let hasMore: boolean;
    // Pages are cut to what one frame carries, so a page of large messages may hold fewer.
    if (query.after !== undefined && query.before === undefined) {
      rows = this.sql.exec<MessageRow>(`${SELECT_MESSAGES} WHERE seq > ? ORDER BY seq ASC LIMIT ?`, query.after, limit).toArray();
      const messages = chunkMessages(rows.map((r) => this.toMessage(r)))[0] ?? []; // the oldest that fit one frame
      const last = messages.at(-1)?.seq ?? query.after;
      hasMore = last < this.lastSeq;
      return this.page(messages, hasMore ? last : 0, hasMore);
    }
    const before = query.before !== undefined && query.before > 0 ? Math.min(query.before, this.lastSeq + 1) : this.lastSeq + 1;
    rows = this.sql.exec<MessageRow>(`${SELECT_MESSAGES} WHERE seq < ? ORDER BY seq DESC LIMIT ?`, before, limit).toArray();
    const messages = (chunkMessages(rows.map((r) => this.toMessage(r)))[0] ?? []).reverse(); // the newest that fit
    const first = messages[0]?.seq ?? 0;
    hasMore = first > 1 && this.sql.exec("SELECT 1 FROM messages WHERE seq < ? LIMIT 1", first).toArray().length > 0;
    return this.page(messages, hasMore ? first : 0, hasMore);
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
    if (!this.isAdmin(actorId)) return fail("forbidden", "Only the group's owner and admins can add members.");
    const added = uniqueProfiles(profiles).filter((p) => !this.members.has(p.user_id));
    if (this.members.size + added.length > LIMITS.maxGroupMembers) {
      return fail("invalid_argument", `A group has at most ${LIMITS.maxGroupMembers} members.`);
    }
    if (added.length > 0) {
      const now = Date.now();
      for (const p of added) this.insertMember(p, "member", now);
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
    if (actorId !== userId && !this.isAdmin(actorId)) return fail("forbidden", "Only the group's owner and admins can remove members.");
    if (target.role === "owner" && actorId !== userId) return fail("forbidden", "The group's owner cannot be removed.");
    const actor = this.members.get(actorId)!;
    this.sql.exec("UPDATE members SET left_at = ? WHERE user_id = ?", Date.now(), userId);
    this.members.delete(userId);
    if (target.role === "owner") this.handOverOwnership();
    const event = actorId === userId ? "member_left" : "member_removed";
    this.appendSystem(actor, { event, target_user_ids: [userId] }, [target]);
    return { ok: true, channel: this.details() };
  }

  /**
   * Moves the member's read cursor forward (never back) and returns their unread count: messages
   * from others, not system notices, after the cursor. With `share`, the other members' devices
   * get a read receipt (the reader's own setting decides; see UserObject settings).
   */
  markRead(userId: string, upToSeq: number, share = true): Result<{ last_read_seq: number; unread_count: number; moved: boolean }> {
    const member = this.members.get(userId);
    if (!member) return this.requireMember(userId)!;
    const target = Math.min(Math.max(0, Math.floor(upToSeq)), this.lastSeq);
    const moved = target > member.last_read_seq;
    if (moved) {
      member.last_read_seq = target;
      this.sql.exec("UPDATE members SET last_read_seq = ? WHERE user_id = ?", target, userId);
      if (share) this.signal(userId, { kind: "read", channel_id: this.channel!.channel_id, user_id: userId, up_to_seq: target });
    }
    return { ok: true, last_read_seq: member.last_read_seq, unread_count: this.unreadCount(userId, member.last_read_seq), moved };
  }

  /**
   * Passes a typing indicator to the other members' devices. Best effort and lossy by design
   * (seed §4.1): nothing is stored, a repeat of the same state within a few seconds is dropped.
   */
  typing(userId: string, deviceId: string, isTyping: boolean): Result {
    const denied = this.requireMember(userId);
    if (denied) return denied;
    const now = Date.now();
    const last = this.typingSent.get(userId);
    if (last && last.isTyping === isTyping && now - last.at < TYPING_REPEAT_MS) return { ok: true };
    this.typingSent.set(userId, { isTyping, at: now });
    this.signal(userId, { kind: "typing", channel_id: this.channel!.channel_id, user_id: userId, device_id: deviceId, is_typing: isTyping });
    return { ok: true };
  }

  /**
   * Adds or removes one of the member's reactions. Adding one they have, or removing one they do
   * not, changes nothing and writes nothing (so a retry is harmless).
   */
  react(userId: string, deviceId: string, seq: number, emoji: string, op: "add" | "remove"): Result<MessageChange> {
    const found = this.changeable(userId, seq);
    if (!found.ok) return found;
    const row = found.row;
    if (!validEmoji(emoji)) return fail("invalid_argument", `emoji must be one emoji or a :shortcode:, at most ${LIMITS.maxEmojiLength} characters.`);
    if (op !== "add" && op !== "remove") return fail("invalid_argument", "op must be add or remove.");
    if (row.deleted) return fail("invalid_argument", "A deleted message takes no reactions.");
    const reactions = parseReactions(row.reactions);
    const entry = reactions.find((r) => r.emoji === emoji);
    const has = entry?.user_ids.includes(userId) ?? false;
    if ((op === "add") === has) return this.unchanged(row, "reactions");
    if (op === "add" && !entry && reactions.length >= LIMITS.maxReactionsPerMessage) {
      return fail("invalid_argument", `A message takes at most ${LIMITS.maxReactionsPerMessage} different reactions.`);
    }
    const limited = this.takeRate(userId);
    if (limited) return limited;
    if (op === "add") {
      this.sql.exec("INSERT INTO reactions (seq, user_id, emoji, created_at) VALUES (?, ?, ?, ?)", seq, userId, emoji, Date.now());
      if (entry) entry.user_ids.push(userId); else reactions.push({ emoji, user_ids: [userId] });
    } else {
      this.sql.exec("DELETE FROM reactions WHERE seq = ? AND user_id = ? AND emoji = ?", seq, userId, emoji);
      entry!.user_ids = entry!.user_ids.filter((id) => id !== userId);
    }
    row.reactions = JSON.stringify(reactions.filter((r) => r.user_ids.length > 0));
    this.sql.exec("UPDATE messages SET reactions = ? WHERE seq = ?", row.reactions, seq);
    return this.changed(userId, deviceId, row, "reactions");
  }

  /** Replaces the text of one of the member's own messages, within LIMITS.editWindowMs. */
  edit(userId: string, deviceId: string, seq: number, content: ContentInit): Result<MessageChange> {
    const found = this.changeable(userId, seq);
    if (!found.ok) return found;
    const row = found.row;
    if (row.sender_user_id !== userId) return fail("forbidden", "Only its sender can edit a message.");
    if (row.deleted) return fail("invalid_argument", "A deleted message cannot be edited.");
    if (row.kind !== "text") return fail("invalid_argument", "Only text messages can be edited.");
    if (Date.now() - row.server_ts > LIMITS.editWindowMs) {
      return fail("forbidden", `A message can be edited for ${LIMITS.editWindowMs / 3_600_000} hours after it was sent.`);
    }
    const valid = validateClientContent(content);
    if (!valid.ok) return valid;
    if (valid.kind !== "text") return fail("invalid_argument", "An edit replaces text with text.");
    const next = JSON.stringify(valid.content);
    if (next === row.content) return this.unchanged(row, "edited");
    const limited = this.takeRate(userId);
    if (limited) return limited;
    row.content = next;
    row.edited_at = Date.now();
    this.sql.exec("UPDATE messages SET content = ?, edited_at = ? WHERE seq = ?", row.content, row.edited_at, seq);
    return this.changed(userId, deviceId, row, "edited");
  }

  /**
   * Deletes a message for everyone: its content and reactions are erased and a tombstone keeps
   * its seq. Its sender may within LIMITS.deleteWindowMs; a group's owner and admins always may.
   */
  deleteForEveryone(userId: string, deviceId: string, seq: number): Result<MessageChange> {
    const found = this.changeable(userId, seq);
    if (!found.ok) return found;
    const row = found.row;
    if (row.deleted) return this.unchanged(row, "deleted");
    const moderator = this.channel!.type === "group" && this.isAdmin(userId);
    if (row.sender_user_id !== userId && !moderator) return fail("forbidden", "Only its sender or a group admin can delete a message for everyone.");
    if (row.sender_user_id === userId && !moderator && Date.now() - row.server_ts > LIMITS.deleteWindowMs) {
      return fail("forbidden", `A message can be deleted for everyone for ${LIMITS.deleteWindowMs / 3_600_000} hours after it was sent.`);
    }
    const limited = this.takeRate(userId);
    if (limited) return limited;
    row.deleted = 1;
    row.content = "{}";
    row.reactions = "[]";
    this.sql.exec("UPDATE messages SET deleted = 1, content = '{}', reactions = '[]' WHERE seq = ?", seq);
    this.sql.exec("DELETE FROM reactions WHERE seq = ?", seq);
    return this.changed(userId, deviceId, row, "deleted");
  }

  /** Finishes interrupted fan-out and retries members whose delivery failed. */
  override async alarm(): Promise<void> {
    this.fanoutGuardArmed = false;
    await this.runFanout();
    await this.retryFailedDeliveries();
  }

  /* ------------------------------------ internals ------------------------------------ */

  /**
   * Someone who never belonged to the channel is told it does not exist: DM ids can be computed
   * from two user ids, and "not a member" would confirm that two other people talk.
   */
  private requireMember(userId: string): Failure | undefined {
    if (!this.channel) return fail("not_found", "No such channel.");
    if (this.members.has(userId)) return undefined;
    const former = this.sql.exec("SELECT 1 FROM members WHERE user_id = ?", userId).toArray().length > 0;
    return former ? fail("not_member", "You are no longer a member of this channel.") : fail("not_found", "No such channel.");
  }

  /** The member's target for a react, edit or delete: a message people wrote (not a notice, not a change). */
  private changeable(userId: string, seq: number): Result<{ row: MessageRow }> {
    const denied = this.requireMember(userId);
    if (denied) return denied;
    if (!Number.isSafeInteger(seq) || seq < 1 || seq > this.lastSeq) return fail("not_found", "No message with that seq in this channel.");
    const row = this.sql.exec<MessageRow>(`${SELECT_MESSAGES} WHERE seq = ?`, seq).one();
    if (row.kind === "system" || row.kind === "update") return fail("invalid_argument", "Channel notices cannot be changed or reacted to.");
    return { ok: true, row };
  }

  private takeRate(userId: string): Failure | undefined {
    const wait = this.limiter.take(userId, Date.now());
    if (wait <= 0) return undefined;
    return fail("rate_limited", `Slow down: at most ${this.limiter.limit.perSecond} messages and changes per second per person in one channel.`, wait);
  }

  private unchanged(row: MessageRow, kind: ChangeKind): Result<MessageChange> {
    return { ok: true, message: this.toMessage(row), kind, changed: false };
  }

  /** Logs the change as the channel's next message, so every device receives it in order. */
  private changed(userId: string, deviceId: string, target: MessageRow, kind: ChangeKind): Result<MessageChange> {
    const message = this.toMessage(target);
    this.insertMessage(userId, deviceId, null, "update", { update: { target_seq: target.seq, kind } }, { update: { target_seq: target.seq, kind, target: message } });
    return { ok: true, message, kind, changed: true };
  }

  private isAdmin(userId: string): boolean {
    const role = this.members.get(userId)?.role;
    return role === "owner" || role === "admin";
  }

  /** The longest-standing member becomes owner when the owner leaves. */
  private handOverOwnership(): void {
    let next: Member | undefined;
    for (const m of this.members.values()) if (!next || m.joined_at < next.joined_at) next = m;
    if (!next) return;
    next.role = "owner";
    this.sql.exec("UPDATE members SET role = 'owner' WHERE user_id = ?", next.user_id);
  }

  private insertMember(p: MemberProfile, role: MemberRole, now: number): void {
    this.sql.exec(
      `INSERT INTO members (user_id, username, display_name, role, joined_at, joined_seq, left_at, last_read_seq)
       VALUES (?, ?, ?, ?, ?, ?, NULL, ?)
       ON CONFLICT (user_id) DO UPDATE SET username = excluded.username, display_name = excluded.display_name,
         role = excluded.role, joined_at = excluded.joined_at, joined_seq = excluded.joined_seq, left_at = NULL`,
      p.user_id, p.username, p.display_name, role, now, this.lastSeq + 1, this.lastSeq,
    );
    const lastRead = this.sql.exec<{ last_read_seq: number }>("SELECT last_read_seq FROM members WHERE user_id = ?", p.user_id).one().last_read_seq;
    this.members.set(p.user_id, { user_id: p.user_id, username: p.username, display_name: p.display_name, role, joined_at: now, last_read_seq: lastRead });
  }

  private appendSystem(actor: MemberProfile, body: { event: string; target_user_ids: string[] }, targets: MemberProfile[], name?: string): void {
    const text = systemText(body.event, actor, targets, name);
    this.insertMessage(actor.user_id, "", null, "system", { system: { ...body, actor_user_id: actor.user_id, text } });
  }

  /**
   * The sequencer. Synchronous on purpose: seq, HLC, the message row and the channel row are
   * written in one implicit transaction with no `await` in between.
   */
  private insertMessage(userId: string, deviceId: string, clientMsgId: string | null, kind: ContentKind, content: ContentInit, delivered: ContentInit = content) {
    const now = Date.now();
    const hlc = nextHlc(this.hlc, now);
    const seq = this.lastSeq + 1;
    this.sql.exec(
      `INSERT INTO messages (seq, hlc_ms, hlc_logical, sender_user_id, sender_device_id, client_msg_id, kind, content, server_ts)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      seq, hlc.ms, hlc.logical, userId, deviceId, clientMsgId, kind, JSON.stringify(content), now,
    );
    this.sql.exec("UPDATE channel SET last_seq = ?, hlc_ms = ?, hlc_logical = ? WHERE id = 1", seq, hlc.ms, hlc.logical);
    this.lastSeq = seq;
    this.hlc = hlc;
    if (!this.fanoutGuardArmed) {
      // Same turn as the INSERT, so it is durable together with the message (output gate).
      this.fanoutGuardArmed = true;
      void this.ctx.storage.setAlarm(Date.now() + FANOUT_GUARD_MS);
    }
    this.unsent.push({
      channel_id: this.channel!.channel_id, server_msg_id: serverMsgId(hlc, seq), hlc: hlcToHex(hlc), seq,
      client_msg_id: clientMsgId ?? "", sender_user_id: userId, sender_device_id: deviceId, server_ts: now, content: delivered,
    });
    this.kickFanout();
    return { seq, hlc, server_ts: now };
  }

  private ack(clientMsgId: string, hlc: Hlc, seq: number, serverTs: number, status: SendAck["status"]): SendAck {
    return {
      channel_id: this.channel!.channel_id, client_msg_id: clientMsgId, server_msg_id: serverMsgId(hlc, seq),
      hlc: hlcToHex(hlc), seq, server_ts: serverTs, status,
    };
  }

  private page(messages: ChatMessageData[], nextCursor: number, hasMore: boolean): Result<HistoryPageData> {
    return {
      ok: true, channel_id: this.channel!.channel_id, messages,
      next_cursor: nextCursor, has_more: hasMore, last_seq: this.lastSeq,
    };
  }

  /** A stored row as clients see it; a change carries its target as it is now. */
  private toMessage(r: MessageRow): ChatMessageData {
    const hlc = { ms: r.hlc_ms, logical: r.hlc_logical };
    let content = r.deleted ? {} : (JSON.parse(r.content) as ContentInit);
    if (r.kind === "update" && content.update) {
      const target = this.sql.exec<MessageRow>(`${SELECT_MESSAGES} WHERE seq = ?`, Number(content.update.target_seq)).toArray()[0];
      if (target) content = { update: { ...content.update, target: this.toMessage(target) } };
    }
    const m: ChatMessageData = {
      channel_id: this.channel!.channel_id, server_msg_id: serverMsgId(hlc, r.seq), hlc: hlcToHex(hlc), seq: r.seq,
      client_msg_id: r.client_msg_id ?? "", sender_user_id: r.sender_user_id, sender_device_id: r.sender_device_id,
      server_ts: r.server_ts, content,
    };
    if (r.reactions !== "[]") m.reactions = parseReactions(r.reactions);
    if (r.edited_at) m.edited_at = r.edited_at;
    if (r.deleted) m.deleted = true;
    return m;
  }

  private unreadCount(userId: string, afterSeq: number): number {
    return this.sql.exec<{ n: number }>(
      "SELECT count(*) AS n FROM messages WHERE seq > ? AND sender_user_id != ? AND kind NOT IN ('system', 'update') AND deleted = 0",
      afterSeq, userId,
    ).one().n;
  }

  private summary(): ChannelSummary {
    const c = this.channel!;
    const small = this.members.size <= SMALL_CHANNEL_MEMBERS;
    return {
      channel_id: c.channel_id, type: c.type, name: c.name, member_count: this.members.size,
      members: small ? [...this.members.values()].map(({ user_id, username, display_name }) => ({ user_id, username, display_name })) : [],
      last_seq: this.lastSeq, last_hlc: hlcToHex(this.hlc),
    };
  }

  private details(): ChannelDetails {
    const c = this.channel!;
    return { ...this.summary(), created_at: c.created_at, created_by: c.created_by, member_list: [...this.members.values()].map((m) => ({ ...m })) };
  }

  /**
   * Ephemeral fan-out to every member but `fromUserId`, off the caller's path: the RPC that caused
   * it returns at once. Channels above SIGNAL_MAX_MEMBERS do not push signals at all.
   */
  private signal(fromUserId: string, event: ChannelSignal): void {
    if (this.members.size > SIGNAL_MAX_MEMBERS) return;
    const targets = [...this.members.keys()].filter((id) => id !== fromUserId);
    this.ctx.waitUntil(Promise.allSettled(targets.map((id) => this.userStub(id).signal(event))));
  }

  /* ------------------------------------ fan-out (tier 1) ------------------------------------ */

  private kickFanout(): void {
    if (!this.fanout) void this.runFanout();
  }

  /**
   * One pump per object: while it awaits a round of deliveries, new appends accumulate and go out
   * together in the next round. Rounds run one at a time, so every member receives a channel's
   * messages in seq order.
   */
  private runFanout(): Promise<void> {
    // With nothing to send the pump below would finish synchronously, run its `finally` before the
    // assignment, and leave `this.fanout` set to a settled promise: no fan-out ever again.
    if (!this.fanout && this.fanoutSeq >= this.lastSeq) return Promise.resolve();
    this.fanout ??= (async () => {
      try {
        while (this.fanoutSeq < this.lastSeq) {
          const messages = this.takeUnsent(this.fanoutSeq + 1, FANOUT_BATCH);
          const to = messages.at(-1)!.seq;
          await this.deliverRound(messages);
          this.fanoutSeq = to;
          this.sql.exec("UPDATE channel SET fanout_seq = ? WHERE id = 1", to);
        }
      } catch (err) {
        console.error("channel fan-out stopped; an alarm resumes it", err);
        await this.ctx.storage.setAlarm(Date.now() + RETRY_BASE_MS);
      } finally {
        this.fanout = undefined;
      }
    })();
    return this.fanout;
  }

  private takeUnsent(fromSeq: number, max: number): ChatMessageData[] {
    this.unsent = this.unsent.filter((m) => m.seq >= fromSeq);
    if (this.unsent[0]?.seq === fromSeq) return this.unsent.slice(0, max);
    // After a restart the in-memory tail is gone: read the messages back.
    return this.readMessages(fromSeq, max);
  }

  private readMessages(fromSeq: number, max: number): ChatMessageData[] {
    return this.sql.exec<MessageRow>(`${SELECT_MESSAGES} WHERE seq >= ? ORDER BY seq ASC LIMIT ?`, fromSeq, max)
      .toArray().map((r) => this.toMessage(r));
  }

  /** Delivers one batch to every member, and to anyone the batch removes up to their removal. */
  private async deliverRound(messages: ChatMessageData[]): Promise<void> {
    const channel = this.summary();
    const removedAt = new Map<string, number>();
    for (const m of messages) {
      const sys = m.content.system;
      if (sys && (sys.event === "member_removed" || sys.event === "member_left")) {
        for (const uid of sys.target_user_ids ?? []) removedAt.set(uid, m.seq);
      }
    }
    const recipients = new Set([...this.members.keys(), ...removedAt.keys()]);
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
          await this.userStub(userId).deliver(batchFor(userId));
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
    this.sql.exec(
      `INSERT INTO fanout_retry (user_id, from_seq, attempts) VALUES (?, ?, 0)
       ON CONFLICT (user_id) DO UPDATE SET from_seq = min(from_seq, excluded.from_seq)`,
      userId, fromSeq,
    );
    const alarm = await this.ctx.storage.getAlarm();
    if (alarm === null || alarm > Date.now() + RETRY_BASE_MS) await this.ctx.storage.setAlarm(Date.now() + RETRY_BASE_MS);
  }

  private async retryFailedDeliveries(): Promise<void> {
    const rows = this.sql.exec<{ user_id: string; from_seq: number; attempts: number }>(
      "SELECT user_id, from_seq, attempts FROM fanout_retry",
    ).toArray();
    let pending = 0;
    for (const row of rows) {
      try {
        for (let from = row.from_seq; from <= this.fanoutSeq; from += FANOUT_BATCH) {
          const messages = this.readMessages(from, Math.min(FANOUT_BATCH, this.fanoutSeq - from + 1));
          if (messages.length === 0) break;
          await this.userStub(row.user_id).deliver({ channel: this.summary(), messages, removed_user_ids: [] });
        }
        this.sql.exec("DELETE FROM fanout_retry WHERE user_id = ?", row.user_id);
      } catch (err) {
        this.stubs.delete(row.user_id);
        if (row.attempts + 1 >= RETRY_MAX_ATTEMPTS) {
          // The messages are stored; the member's devices fetch them on RESUME or at the next gap.
          console.error(`giving up live delivery to ${row.user_id} after ${RETRY_MAX_ATTEMPTS} attempts`, err);
          this.sql.exec("DELETE FROM fanout_retry WHERE user_id = ?", row.user_id);
        } else {
          this.sql.exec("UPDATE fanout_retry SET attempts = attempts + 1 WHERE user_id = ?", row.user_id);
          pending++;
        }
      }
    }
    if (pending > 0) await this.ctx.storage.setAlarm(Date.now() + RETRY_BASE_MS * 2 ** Math.min(6, rows[0]!.attempts));
  }

  private userStub(userId: string): DurableObjectStub<UserObject> {
    let stub = this.stubs.get(userId);
    if (!stub) {
      stub = userStub(this.env, userId);
      this.stubs.set(userId, stub);
    }
    return stub;
  }
}

const SELECT_MESSAGES =
  "SELECT seq, hlc_ms, hlc_logical, sender_user_id, sender_device_id, client_msg_id, kind, content, server_ts, edited_at, deleted, reactions FROM messages";

function parseReactions(json: string): Reaction[] {
  return JSON.parse(json) as Reaction[];
}

function clampLimit(limit: number | undefined): number {
  if (limit === undefined || !Number.isFinite(limit) || limit <= 0) return LIMITS.defaultPageSize;
  return Math.min(Math.floor(limit), LIMITS.maxPageSize);
}

function uniqueProfiles(profiles: MemberProfile[]): MemberProfile[] {
  const seen = new Map<string, MemberProfile>();
  for (const p of profiles) if (!seen.has(p.user_id)) seen.set(p.user_id, p);
  return [...seen.values()];
}
