/**
 * The channel list's bookkeeping on its own: unread counts, the user's own messages, retried
 * batches, membership notices about the user, deletes of unread messages, read cursors.
 */
import { describe, expect, it } from "vitest";
import { ChannelList } from "../../durable-objects/user/channel-list.js";
import type { ChannelSummary, ChatMessageData, DeliveryBatch } from "../../durable-objects/channel/types.js";
import { inFreshUser } from "../helpers/object-sql.js";

const ME = "u_me", BOB = "u_bob";
const members = [{ user_id: ME, username: "me", display_name: "Me" }, { user_id: BOB, username: "bob", display_name: "Bob" }];

function channel(over: Partial<ChannelSummary> = {}): ChannelSummary {
  return { channel_id: "c1", type: "group", name: "Team", member_count: 2, members, last_seq: 0, last_hlc: "", ...over };
}

function msg(seq: number, sender: string, content: ChatMessageData["content"] = { text: { text: `#${seq}` } }): ChatMessageData {
  return {
    channel_id: "c1", server_msg_id: "", hlc: seq.toString(16).padStart(16, "0"), seq, client_msg_id: "", sender_user_id: sender,
    sender_device_id: "d", server_ts: 1000 + seq, content,
  };
}

const batch = (messages: ChatMessageData[], over: Partial<ChannelSummary> = {}): DeliveryBatch => ({ channel: channel(over), messages, removed_user_ids: [] });
const notice = (event: string, target: string) => ({ system: { event, target_user_ids: [target], actor_user_id: BOB, text: "" } });

describe("ChannelList", () => {
  it("counts others' messages as unread, not notices, and resets the count when the user writes", async () => {
    await inFreshUser((sql) => {
      const list = new ChannelList(sql);
      expect(list.apply(batch([msg(1, BOB, notice("created", ME)), msg(2, BOB), msg(3, BOB)]), ME)).toEqual({ membershipChanged: true, left: false });
      expect(list.states(ME)[0]).toMatchObject({ channel_id: "c1", last_seq: 3, unread_count: 2, last_read_seq: 0, last_activity_at: 1003 });
      expect(list.apply(batch([msg(4, ME)]), ME)).toEqual({ membershipChanged: false, left: false });
      expect(list.row("c1")).toMatchObject({ unread_count: 0, last_read_seq: 4 });
      list.apply(batch([msg(5, BOB)]), ME);
      expect(list.row("c1")?.unread_count).toBe(1);
    });
  });

  it("counts a batch delivered twice once", async () => {
    await inFreshUser((sql) => {
      const list = new ChannelList(sql);
      const b = batch([msg(1, BOB), msg(2, BOB)]);
      list.apply(b, ME);
      list.apply(b, ME);
      list.apply(batch([msg(2, BOB), msg(3, BOB)]), ME);
      expect(list.row("c1")).toMatchObject({ last_seq: 3, unread_count: 3 });
    });
  });

  it("takes an unread message deleted for everyone off the count; an edit is not news", async () => {
    await inFreshUser((sql) => {
      const list = new ChannelList(sql);
      list.apply(batch([msg(1, BOB), msg(2, BOB)]), ME);
      list.apply(batch([msg(3, BOB, { update: { target_seq: 2, kind: "edited", target: msg(2, BOB) } })]), ME);
      expect(list.row("c1")).toMatchObject({ last_seq: 3, unread_count: 2, last_activity_at: 1002 });
      list.apply(batch([msg(4, BOB, { update: { target_seq: 1, kind: "deleted", target: msg(1, BOB) } })]), ME);
      expect(list.row("c1")?.unread_count).toBe(1);
    });
  });

  it("marks the channel as left when a notice removes the user, and back when one adds them", async () => {
    await inFreshUser((sql) => {
      const list = new ChannelList(sql);
      list.apply(batch([msg(1, BOB)]), ME);
      expect(list.apply(batch([msg(2, BOB, notice("member_removed", ME))], { member_count: 1 }), ME)).toEqual({ membershipChanged: true, left: true });
      expect(list.states(ME)).toEqual([]);
      expect(list.ids()).toEqual(new Set(["c1"]));
      expect(list.heads()).toEqual([]);
      expect(list.apply(batch([msg(3, BOB, notice("member_added", ME))]), ME)).toEqual({ membershipChanged: true, left: false });
      expect(list.heads()).toEqual([{ channel_id: "c1", last_seq: 3 }]);
      // A notice about someone else changes nothing for the user.
      expect(list.apply(batch([msg(4, BOB, notice("member_removed", "u_carol"))]), ME).left).toBe(false);
    });
  });

  it("mirrors the channel's read cursor without moving it back, and names a DM after the other person", async () => {
    await inFreshUser((sql) => {
      const list = new ChannelList(sql);
      list.apply(batch([msg(1, BOB), msg(2, BOB), msg(3, BOB)], { type: "dm", name: "" }), ME);
      list.mirrorRead("c1", 2, 1);
      list.mirrorRead("c1", 1, 1);
      expect(list.state("c1", ME)).toMatchObject({ name: "Bob", last_read_seq: 2, unread_count: 1, member_user_ids: [ME, BOB] });
      expect(list.state("c1", BOB)?.name).toBe("Me");
      expect(list.contacts(ME, 10)).toEqual([BOB]);
      expect(list.state("nope", ME)).toBeUndefined();
    });
  });
});
