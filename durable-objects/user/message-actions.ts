/**
 * What the user does to messages through their UserObject, from REST or a socket: read (the
 * cursor moves in the channel, is mirrored in the channel list and told to every device), page
 * history, react, edit and delete, say they are typing. The channel decides; every message handed back passes the
 * user's delete-for-me marks (hidden-messages.ts), and a delete for this user alone is answered
 * here without the channel.
 */
import { pb, type FrameInit } from "../../protocol/codec.js";
import { fail, type Result } from "../../shared/errors.js";
import { ownResult } from "../../shared/rpc.js";
import type { ContentInit, HistoryPageData, HistoryQuery, MessageChange } from "../channel/types.js";
import type { ChannelRow } from "./channel-list.js";
import { hiddenMessage, type HiddenMessages } from "./hidden-messages.js";

/** The ChannelObject's RPC methods these actions call. */
export interface MessageChannel {
  markRead(userId: string, upToSeq: number, share: boolean): Promise<Result<{ last_read_seq: number; unread_count: number }>>;
  history(userId: string, query: HistoryQuery): Promise<Result<HistoryPageData>>;
  react(userId: string, deviceId: string, seq: number, emoji: string, op: "add" | "remove"): Promise<Result<MessageChange>>;
  edit(userId: string, deviceId: string, seq: number, content: ContentInit): Promise<Result<MessageChange>>;
  deleteForEveryone(userId: string, deviceId: string, seq: number): Promise<Result<MessageChange>>;
  typing(userId: string, deviceId: string, isTyping: boolean): Promise<Result>;
}

export interface MessageActionsHost {
  userId(): string | undefined;
  channel(channelId: string): MessageChannel;
  hidden: HiddenMessages;
  /** The channel-list row as it stands in memory. */
  row(channelId: string): ChannelRow | undefined;
  /** The user's `read_receipts` setting: whether the other members see where they read. */
  readReceipts(): boolean;
  /** A read moved the cursor: the channel list and push follow. */
  readMoved(channelId: string, lastReadSeq: number, unreadCount: number): void;
  /** A frame to every device socket. */
  broadcast(frame: FrameInit): void;
}

export class MessageActions {
  constructor(private readonly host: MessageActionsHost) {}

  /** READ: move the cursor in the channel, mirror it here, tell every device. */
  async markRead(channelId: string, upToSeq: number): Promise<Result<{ last_read_seq: number; unread_count: number }>> {
    const me = this.host.userId();
    if (!me) return fail("not_found", "Unknown user.");
    const result = await this.host.channel(channelId).markRead(me, upToSeq, this.host.readReceipts());
    if (!result.ok) return ownResult(result);
    this.host.readMoved(channelId, result.last_read_seq, result.unread_count);
    this.host.broadcast({
      type: pb.FrameType.READ,
      read: { channel_id: channelId, up_to_seq: result.last_read_seq, user_id: me, unread_count: result.unread_count },
    });
    return { ok: true, last_read_seq: result.last_read_seq, unread_count: result.unread_count };
  }

  /** A page of a channel's history as this user sees it (delete-for-me applied). */
  async history(channelId: string, query: HistoryQuery): Promise<Result<HistoryPageData>> {
    const me = this.host.userId();
    if (!me) return fail("not_found", "Unknown user.");
    const page = await this.host.channel(channelId).history(me, query);
    if (!page.ok) return ownResult(page);
    return { ...page, messages: this.host.hidden.mask(page.messages) };
  }

  /** A typing indicator to the channel's other members: best effort, lossy by design (channel/signals.ts). */
  typing(channelId: string, deviceId: string, isTyping: boolean): Promise<Result> {
    return this.host.channel(channelId).typing(this.host.userId()!, deviceId, isTyping);
  }

  react(channelId: string, deviceId: string, seq: number, emoji: string, op: "add" | "remove"): Promise<Result<MessageChange>> {
    return this.change(channelId, (me, channel) => channel.react(me, deviceId, seq, emoji, op));
  }

  edit(channelId: string, deviceId: string, seq: number, content: ContentInit): Promise<Result<MessageChange>> {
    return this.change(channelId, (me, channel) => channel.edit(me, deviceId, seq, content));
  }

  /**
   * Deletes a message for everyone (the channel decides who may), or for this user only: then
   * it is hidden on every one of the user's devices, now and whenever they fetch it again.
   */
  async deleteMessage(channelId: string, deviceId: string, seq: number, forEveryone: boolean): Promise<Result<MessageChange>> {
    if (forEveryone) return this.change(channelId, (me, channel) => channel.deleteForEveryone(me, deviceId, seq));
    const row = this.host.row(channelId);
    if (!row || row.left) return fail("not_found", "No such channel in your channel list.");
    if (!Number.isSafeInteger(seq) || seq < 1 || seq > row.last_seq) return fail("not_found", "No message with that seq in this channel.");
    const changed = this.host.hidden.hide(channelId, seq);
    const message = hiddenMessage(channelId, seq);
    if (changed) this.host.broadcast({ type: pb.FrameType.MESSAGE_UPDATE, message_update: { message, kind: "hidden" } });
    return { ok: true, message, kind: "hidden", changed };
  }

  private async change(channelId: string, run: (me: string, channel: MessageChannel) => Promise<Result<MessageChange>>): Promise<Result<MessageChange>> {
    const me = this.host.userId();
    if (!me) return fail("not_found", "Unknown user.");
    const result = await run(me, this.host.channel(channelId));
    if (!result.ok) return ownResult(result);
    return { ...result, message: this.host.hidden.mask([result.message])[0]! };
  }
}
