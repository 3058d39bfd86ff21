/**
 * Reactions, edits and deletes for everyone: who may change which message, and how a change is
 * written. Each change is logged as the channel's next message (docs/decisions/005), so every
 * device receives it in order; like a SEND, it is checked and written in one turn.
 */
import { fail, type Failure, type Result } from "../../shared/errors.js";
import { LIMITS } from "../../protocol/limits.js";
import { blob, contentForStorage, decodeContent, sameContent, validateClientContent, validEmoji } from "./content.js";
import { postersOnly } from "./membership.js";
import { parseReactions, type MessageRow, type Sequencer } from "./sequencer.js";
import type { ChangeKind, ChannelType, ContentInit, MessageChange } from "./types.js";

/** What the rules need to know about the channel and its members. */
export interface ChangeRules {
  /** A Failure for anyone who may not touch the channel (see ChannelObject.requireMember). */
  requireMember(userId: string): Failure | undefined;
  isAdmin(userId: string): boolean;
  channelType(): ChannelType;
  /** Told in the delete's turn, with the content as it was, so what it pointed at can go too. */
  deletedForEveryone?(kind: MessageRow["kind"], content: ContentInit): void;
}

export class MessageChanges {
  constructor(
    private readonly sql: SqlStorage,
    private readonly log: Sequencer,
    private readonly rules: ChangeRules,
  ) {}

  /**
   * Adds or removes one of the member's reactions. Adding one they have, or removing one they do
   * not, changes nothing and writes nothing (so a retry is harmless). A reaction is logged like a
   * post (decision 005): in a broadcast channel only its owner and admins react.
   */
  react(userId: string, deviceId: string, seq: number, emoji: string, op: "add" | "remove"): Result<MessageChange> {
    if (!this.rules.requireMember(userId) && this.rules.channelType() === "broadcast" && !this.rules.isAdmin(userId)) {
      return postersOnly();
    }
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
    const limited = this.log.limitChange(userId);
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
    const next = contentForStorage(valid.content);
    if (!next.ok) return next;
    if (sameContent(row.content, next.bytes)) return this.unchanged(row, "edited");
    const limited = this.log.limitChange(userId);
    if (limited) return limited;
    row.content = blob(next.bytes);
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
    const moderator = this.rules.channelType() === "group" && this.rules.isAdmin(userId);
    if (row.sender_user_id !== userId && !moderator) return fail("forbidden", "Only its sender or a group admin can delete a message for everyone.");
    if (row.sender_user_id === userId && !moderator && Date.now() - row.server_ts > LIMITS.deleteWindowMs) {
      return fail("forbidden", `A message can be deleted for everyone for ${LIMITS.deleteWindowMs / 3_600_000} hours after it was sent.`);
    }
    const limited = this.log.limitChange(userId);
    if (limited) return limited;
    const before = decodeContent(row.content);
    row.deleted = 1;
    row.content = new ArrayBuffer(0);
    row.reactions = "[]";
    this.sql.exec("UPDATE messages SET deleted = 1, content = ?, reactions = '[]' WHERE seq = ?", row.content, seq);
    this.sql.exec("DELETE FROM reactions WHERE seq = ?", seq);
    this.rules.deletedForEveryone?.(row.kind, before);
    return this.changed(userId, deviceId, row, "deleted");
  }

  /** The member's target for a react, edit or delete: a message people wrote (not a notice, not a change). */
  private changeable(userId: string, seq: number): Result<{ row: MessageRow }> {
    const denied = this.rules.requireMember(userId);
    if (denied) return denied;
    if (!Number.isSafeInteger(seq) || seq < 1 || seq > this.log.lastSeq) return fail("not_found", "No message with that seq in this channel.");
    const row = this.log.row(seq);
    if (!row) return fail("not_found", "That message has expired under the channel's retention.");
    if (row.kind === "system" || row.kind === "update") return fail("invalid_argument", "Channel notices cannot be changed or reacted to.");
    return { ok: true, row };
  }

  private unchanged(row: MessageRow, kind: ChangeKind): Result<MessageChange> {
    return { ok: true, message: this.log.toMessage(row), kind, changed: false };
  }

  /** Logs the change as the channel's next message, so every device receives it in order. */
  private changed(userId: string, deviceId: string, target: MessageRow, kind: ChangeKind): Result<MessageChange> {
    const message = this.log.toMessage(target);
    this.log.insert(userId, deviceId, null, "update", { update: { target_seq: target.seq, kind } }, { update: { target_seq: target.seq, kind, target: message } });
    return { ok: true, message, kind, changed: true };
  }
}
