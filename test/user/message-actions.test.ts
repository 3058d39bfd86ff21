/**
 * The user's message actions on their own (durable-objects/user/message-actions.ts) over real
 * SQLite and a recording channel: a read mirrored and told to every device, delete-for-me checked
 * against the channel list and masked in later pages and change answers, failures passed through.
 * test/user/user-object.test.ts and resume-and-masking.test.ts run them through the Worker.
 */
import { describe, expect, it } from "vitest";
import { emptyRow, type ChannelRow } from "../../durable-objects/user/channel-list.js";
import { HiddenMessages } from "../../durable-objects/user/hidden-messages.js";
import { MessageActions, type MessageChannel } from "../../durable-objects/user/message-actions.js";
import type { ChatMessageData } from "../../durable-objects/channel/types.js";
import type { FrameInit } from "../../protocol/codec.js";
import { pb } from "../../protocol/codec.js";
import { fail } from "../../shared/errors.js";
import { inFreshUser } from "../helpers/object-sql.js";

const ME = "u_me", C = "c_team";

function message(seq: number): ChatMessageData {
  return {
    channel_id: C, server_msg_id: String(seq).padStart(32, "0"), hlc: "0", seq, client_msg_id: `m${seq}`, sender_user_id: "u_bob",
    sender_device_id: "d", server_ts: seq, content: { text: { text: `hi ${seq}` } }, reactions: [], edited_at: 0, deleted: false, hidden: false,
  } as ChatMessageData;
}

function setup(sql: SqlStorage) {
  const frames: FrameInit[] = [];
  const calls: string[] = [];
  const row: ChannelRow = { ...emptyRow(C), last_seq: 3 };
  const channel: MessageChannel = {
    markRead: async (userId, upTo, share) => (calls.push(`markRead ${userId} ${upTo} ${share}`), { ok: true, last_read_seq: Math.min(upTo, 3), unread_count: 3 - Math.min(upTo, 3) }),
    history: async () => ({ ok: true, messages: [message(1), message(2), message(3)], has_more: false } as never),
    react: async (_u, _d, seq) => ({ ok: true, message: message(seq), kind: "reaction", changed: true } as never),
    edit: async () => fail("forbidden", "Only the sender can edit a message."),
    deleteForEveryone: async (_u, _d, seq) => ({ ok: true, message: { ...message(seq), deleted: true }, kind: "deleted", changed: true } as never),
    typing: async (userId, deviceId, isTyping) => (calls.push(`typing ${userId} ${deviceId} ${isTyping}`), { ok: true }),
  };
  const actions = new MessageActions({
    userId: () => ME,
    channel: () => channel,
    hidden: new HiddenMessages(sql),
    row: (channelId) => (channelId === C ? row : undefined),
    readReceipts: () => false,
    readMoved: (channelId, lastRead, unread) => void calls.push(`readMoved ${channelId} ${lastRead} ${unread}`),
    broadcast: (frame) => void frames.push(frame),
  });
  return { actions, frames, calls, row };
}

describe("MessageActions", () => {
  it("typing goes to the channel as this user, from the device that typed", async () => {
    await inFreshUser(async (sql) => {
      const { actions, calls } = setup(sql);
      expect(await actions.typing(C, "phone", true)).toEqual({ ok: true });
      expect(calls).toEqual([`typing ${ME} phone true`]);
    });
  });

  it("a read moves the channel's cursor with the user's receipts setting, is mirrored, and every device hears it", async () => {
    await inFreshUser(async (sql) => {
      const { actions, frames, calls } = setup(sql);
      expect(await actions.markRead(C, 9)).toEqual({ ok: true, last_read_seq: 3, unread_count: 0 });
      expect(calls).toEqual([`markRead ${ME} 9 false`, `readMoved ${C} 3 0`]);
      expect(frames).toEqual([{ type: pb.FrameType.READ, read: { channel_id: C, up_to_seq: 3, user_id: ME, unread_count: 0 } }]);
    });
  });

  it("deletes for this user only what their list holds, once, and masks it in history and change answers", async () => {
    await inFreshUser(async (sql) => {
      const { actions, frames } = setup(sql);
      expect(await actions.deleteMessage("c_other", "phone", 1, false)).toMatchObject({ ok: false, code: "not_found" });
      expect(await actions.deleteMessage(C, "phone", 4, false)).toMatchObject({ ok: false, code: "not_found" });
      expect(await actions.deleteMessage(C, "phone", 2, false)).toMatchObject({ ok: true, kind: "hidden", changed: true });
      expect(await actions.deleteMessage(C, "phone", 2, false)).toMatchObject({ ok: true, changed: false });
      expect(frames.map((f) => f.type)).toEqual([pb.FrameType.MESSAGE_UPDATE]); // the repeat tells no one
      const page = await actions.history(C, {});
      expect(page.ok && page.messages.map((m) => m.hidden)).toEqual([false, true, false]);
      const reacted = await actions.react(C, "phone", 2, "👍", "add");
      expect(reacted.ok && reacted.message.hidden).toBe(true);
      expect(await actions.edit(C, "phone", 1, { text: { text: "x" } })).toMatchObject({ ok: false, code: "forbidden" });
      expect(await actions.deleteMessage(C, "phone", 3, true)).toMatchObject({ ok: true, kind: "deleted" });
    });
  });
});
