/**
 * The rules for reactions, edits and deletes on their own: who may change what, what a retry
 * writes (nothing), and that a change is logged as the channel's next message.
 */
import { describe, expect, it } from "vitest";
import { fail } from "../../shared/errors.js";
import { LIMITS } from "../../protocol/limits.js";
import { HLC_ZERO } from "../../durable-objects/channel/hlc.js";
import { MessageChanges } from "../../durable-objects/channel/message-changes.js";
import { SenderRateLimiter } from "../../durable-objects/channel/rate-limit.js";
import { Sequencer } from "../../durable-objects/channel/sequencer.js";
import type { ChannelType, ChatMessageData } from "../../durable-objects/channel/types.js";
import { inFreshChannel } from "../helpers/object-sql.js";

const CHANNEL = "c_g_00000000000000000000000000";
const MEMBERS = new Set(["u_owner", "u_admin", "u_a", "u_b"]);

function setup(sql: SqlStorage, type: ChannelType = "group") {
  sql.exec("INSERT INTO channel (id, channel_id, type, name, created_by, created_at) VALUES (1, ?, ?, 'T', 'u_owner', 0)", CHANNEL, type);
  const logged: ChatMessageData[] = [];
  const log = new Sequencer(sql, new SenderRateLimiter({ perSecond: 0, burst: 1 }), (m) => logged.push(m));
  log.start(CHANNEL, 0, HLC_ZERO);
  const changes = new MessageChanges(sql, log, {
    requireMember: (id) => (MEMBERS.has(id) ? undefined : fail("not_found", "No such channel.")),
    isAdmin: (id) => id === "u_owner" || id === "u_admin",
    channelType: () => type,
  });
  const post = (userId: string, text: string) => {
    const r = log.append({ userId, deviceId: "d", clientMsgId: `${userId}-${text}`, content: { text: { text } } });
    if (!r.ok) throw new Error(r.message);
    return r.ack.seq;
  };
  return { log, changes, logged, post };
}

describe("MessageChanges", () => {
  it("lets only the sender edit, logs the edit as the next seq, and writes nothing for the same text again", async () => {
    await inFreshChannel((sql) => {
      const { changes, logged, post } = setup(sql);
      const seq = post("u_a", "hello");
      expect(changes.edit("u_b", "d", seq, { text: { text: "mine now" } })).toMatchObject({ ok: false, code: "forbidden" });
      expect(changes.edit("u_admin", "d", seq, { text: { text: "mine now" } })).toMatchObject({ ok: false, code: "forbidden" });
      const edited = changes.edit("u_a", "d", seq, { text: { text: "hello!" } });
      expect(edited).toMatchObject({ ok: true, kind: "edited", changed: true, message: { seq, content: { text: { text: "hello!" } } } });
      expect(logged.at(-1)).toMatchObject({ seq: seq + 1, content: { update: { target_seq: seq, kind: "edited", target: { content: { text: { text: "hello!" } } } } } });
      const again = changes.edit("u_a", "d", seq, { text: { text: "hello!" } });
      expect(again).toMatchObject({ ok: true, changed: false });
      expect(logged).toHaveLength(2);
    });
  });

  it("refuses changes to notices, to changes, to unknown seqs and from strangers", async () => {
    await inFreshChannel((sql) => {
      const { changes, log, post } = setup(sql);
      log.insert("u_owner", "", null, "system", { system: { event: "created", target_user_ids: [], actor_user_id: "u_owner", text: "" } });
      const seq = post("u_a", "x");
      changes.react("u_b", "d", seq, "👍", "add");
      expect(changes.react("u_a", "d", 1, "👍", "add")).toMatchObject({ ok: false, code: "invalid_argument" });
      expect(changes.react("u_a", "d", seq + 1, "👍", "add")).toMatchObject({ ok: false, code: "invalid_argument" });
      expect(changes.react("u_a", "d", 99, "👍", "add")).toMatchObject({ ok: false, code: "not_found" });
      expect(changes.react("u_x", "d", seq, "👍", "add")).toMatchObject({ ok: false, code: "not_found" });
      expect(changes.react("u_a", "d", seq, "not an emoji", "add")).toMatchObject({ ok: false, code: "invalid_argument" });
    });
  });

  it("keeps reactions per user and emoji; adding twice or removing what is not there changes nothing", async () => {
    await inFreshChannel((sql) => {
      const { changes, logged, post } = setup(sql);
      const seq = post("u_a", "x");
      expect(changes.react("u_b", "d", seq, "👍", "add")).toMatchObject({ changed: true, message: { reactions: [{ emoji: "👍", user_ids: ["u_b"] }] } });
      expect(changes.react("u_a", "d", seq, "👍", "add")).toMatchObject({ changed: true, message: { reactions: [{ emoji: "👍", user_ids: ["u_b", "u_a"] }] } });
      expect(changes.react("u_a", "d", seq, "👍", "add")).toMatchObject({ ok: true, changed: false });
      expect(changes.react("u_a", "d", seq, "🎉", "remove")).toMatchObject({ ok: true, changed: false });
      const removed = changes.react("u_b", "d", seq, "👍", "remove");
      expect(removed).toMatchObject({ changed: true, message: { reactions: [{ emoji: "👍", user_ids: ["u_a"] }] } });
      expect(logged).toHaveLength(4); // the message and three changes
      expect(sql.exec("SELECT user_id FROM reactions WHERE seq = ?", seq).toArray()).toEqual([{ user_id: "u_a" }]);
    });
  });

  it("in a broadcast channel only the owner and admins react; a stranger still hears the channel does not exist", async () => {
    await inFreshChannel((sql) => {
      const { changes, post } = setup(sql, "broadcast");
      const seq = post("u_owner", "news");
      expect(changes.react("u_a", "d", seq, "👍", "add")).toMatchObject({ ok: false, code: "forbidden" });
      expect(changes.react("u_a", "d", seq + 99, "👍", "add")).toMatchObject({ ok: false, code: "forbidden" });
      expect(changes.react("u_stranger", "d", seq, "👍", "add")).toMatchObject({ ok: false, code: "not_found" });
      expect(changes.react("u_admin", "d", seq, "👍", "add")).toMatchObject({ ok: true });
    });
  });

  it("lets a group's admins delete anyone's message at any time, but not a DM's other member", async () => {
    await inFreshChannel((sql) => {
      const { changes, post } = setup(sql);
      const seq = post("u_a", "x");
      sql.exec("UPDATE messages SET server_ts = ? WHERE seq = ?", Date.now() - LIMITS.deleteWindowMs - 1000, seq);
      expect(changes.deleteForEveryone("u_a", "d", seq)).toMatchObject({ ok: false, code: "forbidden" });
      expect(changes.deleteForEveryone("u_b", "d", seq)).toMatchObject({ ok: false, code: "forbidden" });
      expect(changes.deleteForEveryone("u_admin", "d", seq)).toMatchObject({ ok: true, changed: true, message: { deleted: true, content: {} } });
      expect(changes.deleteForEveryone("u_admin", "d", seq)).toMatchObject({ ok: true, changed: false });
      expect(changes.react("u_b", "d", seq, "👍", "add")).toMatchObject({ ok: false, code: "invalid_argument" });
    });
    await inFreshChannel((sql) => {
      const { changes, post } = setup(sql, "dm");
      const seq = post("u_a", "x");
      expect(changes.deleteForEveryone("u_owner", "d", seq)).toMatchObject({ ok: false, code: "forbidden" });
      expect(changes.deleteForEveryone("u_a", "d", seq)).toMatchObject({ ok: true, changed: true });
    });
  });
});
