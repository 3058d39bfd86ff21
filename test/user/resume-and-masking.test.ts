/** RESUME's gap rule and delete-for-me masking, on their own. */
import { describe, expect, it } from "vitest";
import { resumeGaps } from "../../durable-objects/user/resume.js";
import { HiddenMessages } from "../../durable-objects/user/hidden-messages.js";
import type { ChatMessageData } from "../../durable-objects/channel/types.js";
import { inFreshUser } from "../helpers/object-sql.js";

function msg(channel: string, seq: number, content: ChatMessageData["content"] = { text: { text: `#${seq}` } }): ChatMessageData {
  return { channel_id: channel, server_msg_id: `id${seq}`, hlc: `h${seq}`, seq, client_msg_id: "", sender_user_id: "u_b", sender_device_id: "d", server_ts: seq, content };
}

describe("resumeGaps", () => {
  const heads = [{ channel_id: "a", last_seq: 10 }, { channel_id: "b", last_seq: 5 }, { channel_id: "c", last_seq: 7 }, { channel_id: "d", last_seq: 3 }];

  it("starts after the device's own cursor, else after its last DELIVER_ACK, else from the beginning; skips channels it is level with", () => {
    const client = new Map([["a", 4], ["b", 5]]);
    const acked = new Map([["a", 9], ["c", 6]]);
    expect(resumeGaps(heads, client, acked)).toEqual([
      { channel_id: "a", last_seq: 10, from: 4 },
      { channel_id: "c", last_seq: 7, from: 6 },
      { channel_id: "d", last_seq: 3, from: 0 },
    ]);
  });
});

describe("HiddenMessages", () => {
  it("passes messages through untouched while the user has hidden nothing", async () => {
    await inFreshUser((sql) => {
      const hidden = new HiddenMessages(sql);
      hidden.load();
      const ms = [msg("c1", 1)];
      expect(hidden.mask(ms)).toBe(ms);
    });
  });

  it("masks a hidden message to its seq and ids, and the target of a change to it; survives a restart", async () => {
    await inFreshUser((sql) => {
      const hidden = new HiddenMessages(sql);
      hidden.load();
      expect(hidden.hide("c1", 2)).toBe(true);
      expect(hidden.hide("c1", 2)).toBe(false);
      const after = new HiddenMessages(sql);
      after.load();
      const change = msg("c1", 3, { update: { target_seq: 2, kind: "edited", target: msg("c1", 2) } });
      const [one, two, three, other] = after.mask([msg("c1", 1), msg("c1", 2), change, msg("c2", 2)]);
      expect(one).toEqual(msg("c1", 1));
      expect(two).toEqual({
        channel_id: "c1", server_msg_id: "id2", hlc: "h2", seq: 2, client_msg_id: "", sender_user_id: "", sender_device_id: "", server_ts: 2, content: {}, hidden: true,
      });
      expect(three!.content.update).toMatchObject({ target_seq: 2, kind: "edited", target: { seq: 2, hidden: true, content: {} } });
      expect(other).toEqual(msg("c2", 2));
    });
  });
});
