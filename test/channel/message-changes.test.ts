/**
 * Reactions, edits and deletes. A change is answered with MESSAGE_UPDATE and logged as the
 * channel's next message (an UpdateBody), so every member's devices receive it in channel order,
 * live, through RESUME and in history, and one that was offline misses none.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { pb, type Frame, type FrameInit } from "../../protocol/codec.js";
import { LIMITS } from "../../protocol/limits.js";
import { channelStub } from "../../shared/routing.js";
import { call, createDm, createGroup, register, type TestUser } from "../helpers/api.js";
import { helloDevice, onlineDevice, type Msg, type TestDevice } from "../helpers/socket.js";

const T = pb.FrameType;

type HistoryBody = { messages: Msg[]; last_seq: number };

async function history(user: TestUser, channel: string): Promise<Msg[]> {
  const r = await call<HistoryBody>("GET", `/v1/channels/${channel}/messages?after=0&limit=200`, { token: user.access_token });
  expect(r.status).toBe(200);
  return r.body.messages;
}

/** Sends a change and waits for its answer (MESSAGE_UPDATE or ERROR). */
async function change(d: TestDevice, frame: FrameInit): Promise<Frame> {
  const id = d.send(frame);
  return d.take((f) => f.request_id === id && (f.type === T.MESSAGE_UPDATE || f.type === T.ERROR));
}

const react = (channel: string, seq: number, emoji: string, op: "add" | "remove" = "add"): FrameInit =>
  ({ type: T.REACT, react: { channel_id: channel, seq, emoji, op } });
const edit = (channel: string, seq: number, text: string): FrameInit =>
  ({ type: T.EDIT, edit: { channel_id: channel, seq, content: { text: { text } } } });
const del = (channel: string, seq: number, forEveryone: boolean): FrameInit =>
  ({ type: T.DELETE, delete: { channel_id: channel, seq, for_everyone: forEveryone } });

async function setup() {
  const alice = await register("alice"), bob = await register("bob"), carol = await register("carol");
  const channel = await createGroup(alice, [bob, carol]);
  const [a, a2, b] = await Promise.all([onlineDevice(alice.access_token, "a"), onlineDevice(alice.access_token, "a2"), onlineDevice(bob.access_token, "b")]);
  const ack = await a.sendText(channel, "hello team");
  const seq = Number(ack.send_ack!.seq);
  await b.messages(1);
  await a2.messages(1);
  return { alice, bob, carol, channel, a, a2, b, seq };
}

describe("message changes", () => {
  it("reactions: answered with the message as it is now, then delivered in order to every device as a change", async () => {
    const { alice, bob, channel, a, a2, b, seq } = await setup();
    const r1 = await change(b, react(channel, seq, "👍"));
    expect(r1.type).toBe(T.MESSAGE_UPDATE);
    expect(r1.message_update?.kind).toBe("reactions");
    expect(r1.message_update?.message?.reactions).toEqual([{ emoji: "👍", user_ids: [bob.user_id] }]);
    const r2 = await change(a, react(channel, seq, "👍"));
    expect(r2.message_update?.message?.reactions).toEqual([{ emoji: "👍", user_ids: [bob.user_id, alice.user_id] }]);
    // Every device, the reactors' own included, receives both changes as the channel's next seqs.
    for (const d of [a, a2, b]) {
      const got = await d.messages(2);
      expect(got.map((m) => Number(m.seq)), d.deviceId).toEqual([seq + 1, seq + 2]);
      const last = got[1]!.content!.update!;
      expect(Number(last.target_seq)).toBe(seq);
      expect(last.kind).toBe("reactions");
      expect(last.target?.reactions).toEqual([{ emoji: "👍", user_ids: [bob.user_id, alice.user_id] }]);
      expect(got[0]!.sender_user_id).toBe(bob.user_id);
    }
    // Adding again changes nothing and logs nothing; removing does.
    const again = await change(b, react(channel, seq, "👍"));
    expect(again.message_update?.message?.reactions).toEqual([{ emoji: "👍", user_ids: [bob.user_id, alice.user_id] }]);
    const removed = await change(b, react(channel, seq, "👍", "remove"));
    expect(removed.message_update?.message?.reactions).toEqual([{ emoji: "👍", user_ids: [alice.user_id] }]);
    const log = await history(alice, channel);
    expect(log.map((m) => Number(m.seq))).toEqual([1, 2, 3, 4, 5]);
    expect(log.find((m) => Number(m.seq) === seq)?.reactions).toEqual([{ emoji: "👍", user_ids: [alice.user_id] }]);
    // A reaction is not news: no unread for anyone, and the channel keeps its place in the list.
    const list = await call<{ channels: { channel_id: string; unread_count: number; last_seq: number; last_activity_at: number }[] }>("GET", "/v1/channels", { token: bob.access_token });
    const row = list.body.channels.find((c) => c.channel_id === channel)!;
    expect(row.last_seq).toBe(5);
    expect(row.last_activity_at).toBe(Number(log[seq - 1]!.server_ts));
    expect(row.unread_count).toBe(1); // alice's message, not the reactions to it
    for (const d of [a, a2, b]) d.close();
  });

  it("edits: only the sender, text for text; every device and the history see the new text", async () => {
    const { bob, channel, a, a2, b, seq } = await setup();
    const denied = await change(b, edit(channel, seq, "bob rewrites alice"));
    expect(denied.error).toMatchObject({ code: "forbidden", retryable: false });
    const ok = await change(a, edit(channel, seq, "hello team!"));
    expect(ok.message_update?.kind).toBe("edited");
    expect(ok.message_update?.message?.content?.text?.text).toBe("hello team!");
    expect(Number(ok.message_update?.message?.edited_at)).toBeGreaterThan(0);
    for (const d of [a2, b]) {
      const [m] = await d.messages(1);
      expect(m!.content?.update?.kind).toBe("edited");
      expect(m!.content?.update?.target?.content?.text?.text).toBe("hello team!");
    }
    // The same edit again (a retry) logs nothing.
    await change(a, edit(channel, seq, "hello team!"));
    const log = await history(bob, channel);
    expect(log).toHaveLength(3);
    expect(log[seq - 1]!.content?.text?.text).toBe("hello team!");
    // Bad edits are refused with a reason.
    expect((await change(a, edit(channel, seq, ""))).error?.code).toBe("invalid_argument");
    expect((await change(a, edit(channel, seq, "x".repeat(LIMITS.maxContentBytes + 1)))).error?.code).toBe("content_too_large");
    expect((await change(a, edit(channel, 1, "rename the channel notice"))).error?.code).toBe("invalid_argument");
    expect((await change(a, { type: T.EDIT, edit: { channel_id: channel, seq, content: { system: { text: "spoof" } } } })).error?.code).toBe("forbidden");
    expect((await change(a, edit(channel, 99, "nothing there"))).error?.code).toBe("not_found");
    // Past the edit window: refused.
    await runInDurableObject(channelStub(env, channel), (_o, state) => {
      state.storage.sql.exec("UPDATE messages SET server_ts = server_ts - ? WHERE seq = ?", LIMITS.editWindowMs + 1000, seq);
    });
    expect((await change(a, edit(channel, seq, "too late"))).error?.code).toBe("forbidden");
    for (const d of [a, a2, b]) d.close();
  });

  it("delete for everyone: a tombstone with no content or reactions; the sender within the window, group admins always", async () => {
    const { carol, channel, a, b, a2, seq } = await setup();
    await change(b, react(channel, seq, "❤️"));
    await b.messages(1);
    const bobAck = await b.sendText(channel, "a message alice will moderate");
    const bobSeq = Number(bobAck.send_ack!.seq);
    expect((await change(b, del(channel, seq, true))).error?.code).toBe("forbidden"); // not his
    const gone = await change(a, del(channel, seq, true));
    expect(gone.message_update?.kind).toBe("deleted");
    expect(gone.message_update?.message).toMatchObject({ deleted: true });
    expect(gone.message_update?.message?.content?.text).toBeFalsy();
    expect(gone.message_update?.message?.reactions ?? []).toEqual([]);
    // The owner removes bob's message (moderation) even past his own window.
    await runInDurableObject(channelStub(env, channel), (_o, state) => {
      state.storage.sql.exec("UPDATE messages SET server_ts = server_ts - ? WHERE seq = ?", LIMITS.deleteWindowMs + 1000, bobSeq);
    });
    expect((await change(b, del(channel, bobSeq, true))).error?.code).toBe("forbidden"); // his own, but too late
    expect((await change(a, del(channel, bobSeq, true))).message_update?.kind).toBe("deleted");
    // Deleting again is a no-op; reacting to or editing a tombstone is refused.
    expect((await change(a, del(channel, seq, true))).type).toBe(T.MESSAGE_UPDATE);
    expect((await change(b, react(channel, seq, "😂"))).error?.code).toBe("invalid_argument");
    expect((await change(a, edit(channel, seq, "back from the dead"))).error?.code).toBe("invalid_argument");
    const log = await history(carol, channel);
    const tomb = log[seq - 1]!;
    expect(tomb).toMatchObject({ deleted: true });
    expect(JSON.stringify(log)).not.toContain("hello team");
    expect(JSON.stringify(log)).not.toContain("alice will moderate");
    // The changes' own records carry the target as it is now: erased too.
    for (const m of log.filter((m) => Number(m.content?.update?.target_seq) === seq)) expect(m.content!.update!.target?.deleted).toBe(true);
    // Tombstones do not count as unread.
    const carolList = await call<{ channels: { channel_id: string; unread_count: number }[] }>("GET", "/v1/channels", { token: carol.access_token });
    expect(carolList.body.channels.find((c) => c.channel_id === channel)?.unread_count).toBe(0);
    for (const d of [a, a2, b]) d.close();
  });

  it("delete for me: hidden on all of that user's devices and in their history, nobody else's", async () => {
    const { alice, bob, channel, a, a2, b, seq } = await setup();
    const hidden = await change(a, del(channel, seq, false));
    expect(hidden.message_update?.kind).toBe("hidden");
    expect(hidden.message_update?.message).toMatchObject({ seq, hidden: true });
    const other = await a2.next(T.MESSAGE_UPDATE);
    expect(other.message_update).toMatchObject({ kind: "hidden", message: { seq, hidden: true } });
    const mine = await history(alice, channel);
    expect(mine[seq - 1]).toMatchObject({ seq, hidden: true });
    expect(JSON.stringify(mine)).not.toContain("hello team");
    expect((await history(bob, channel))[seq - 1]!.content?.text?.text).toBe("hello team");
    // A later change to the message reaches alice masked too.
    await change(b, react(channel, seq, "👍"));
    const [update] = await a2.messages(1);
    expect(update!.content?.update?.target).toMatchObject({ hidden: true });
    expect(update!.content?.update?.target?.reactions ?? []).toEqual([]);
    // A device that comes back later gets the masked message in its RESUME.
    a2.close();
    const a3 = await helloDevice(alice.access_token, "a3");
    const { messages } = await a3.resume([{ channel_id: channel, last_seq: 0 }]);
    expect(messages.find((m) => Number(m.seq) === seq)).toMatchObject({ hidden: true });
    expect(JSON.stringify(messages)).not.toContain("hello team");
    // REST does the same; unknown seqs and channels are refused.
    const rest = await call("DELETE", `/v1/channels/${channel}/messages/${seq + 100}?for=me`, { token: alice.access_token });
    expect([rest.status, rest.body.code]).toEqual([404, "not_found"]);
    for (const d of [a, a3, b]) d.close();
  });

  it("REST: edit, react and delete with the same rules and answers", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createDm(alice, bob);
    const a = await onlineDevice(alice.access_token, "a");
    const seq = Number((await a.sendText(channel, "typo hree")).send_ack!.seq);
    const edited = await call<{ message: Msg; kind: string; changed: boolean }>("PATCH", `/v1/channels/${channel}/messages/${seq}`, { token: alice.access_token, body: { text: "typo here" } });
    expect(edited.status).toBe(200);
    expect(edited.body).toMatchObject({ kind: "edited", changed: true, message: { seq, content: { text: { text: "typo here" } } } });
    const emoji = encodeURIComponent("🎉");
    const put = await call<{ message: Msg }>("PUT", `/v1/channels/${channel}/messages/${seq}/reactions/${emoji}`, { token: bob.access_token });
    expect(put.body.message.reactions).toEqual([{ emoji: "🎉", user_ids: [bob.user_id] }]);
    const shortcode = await call<{ message: Msg }>("PUT", `/v1/channels/${channel}/messages/${seq}/reactions/:tada:`, { token: alice.access_token });
    expect(shortcode.body.message.reactions?.map((r) => r.emoji)).toEqual(["🎉", ":tada:"]);
    const bad = await call("PUT", `/v1/channels/${channel}/messages/${seq}/reactions/${encodeURIComponent("not emoji")}`, { token: bob.access_token });
    expect([bad.status, bad.body.code]).toEqual([400, "invalid_argument"]);
    const off = await call<{ message: Msg }>("DELETE", `/v1/channels/${channel}/messages/${seq}/reactions/${emoji}`, { token: bob.access_token });
    expect(off.body.message.reactions?.map((r) => r.emoji)).toEqual([":tada:"]);
    // In a DM nobody moderates: bob cannot delete alice's message for everyone.
    const denied = await call("DELETE", `/v1/channels/${channel}/messages/${seq}?for=everyone`, { token: bob.access_token });
    expect([denied.status, denied.body.code]).toEqual([403, "forbidden"]);
    const gone = await call<{ message: Msg; kind: string }>("DELETE", `/v1/channels/${channel}/messages/${seq}?for=everyone`, { token: alice.access_token });
    expect(gone.body).toMatchObject({ kind: "deleted", message: { deleted: true } });
    const badQuery = await call("DELETE", `/v1/channels/${channel}/messages/${seq}?for=them`, { token: alice.access_token });
    expect(badQuery.status).toBe(400);
    // Every change delivered to the device, in order, after the message itself.
    const got = await a.messages(4);
    expect(got.map((m) => m.content?.update?.kind)).toEqual(["edited", "reactions", "reactions", "reactions"]);
    a.close();
  });

  it("caps distinct reactions per message and limits the rate of changes like messages", async () => {
    const { channel, a, b, seq } = await setup();
    const emojis = Array.from({ length: LIMITS.maxReactionsPerMessage + 1 }, (_, i) => String.fromCodePoint(0x1f600 + i));
    for (const e of emojis.slice(0, LIMITS.maxReactionsPerMessage)) expect((await change(b, react(channel, seq, e))).type).toBe(T.MESSAGE_UPDATE);
    const over = await change(b, react(channel, seq, emojis.at(-1)!));
    expect(over.error?.code).toBe("invalid_argument");
    // Someone else can still join an existing reaction.
    expect((await change(a, react(channel, seq, emojis[0]!))).type).toBe(T.MESSAGE_UPDATE);
    a.close(); b.close();
  });

  it("a device that was offline during changes receives them all, in order, on RESUME", async () => {
    const { alice, channel, a, a2, b, seq } = await setup();
    a2.close();
    await change(b, react(channel, seq, "👍"));
    await change(a, edit(channel, seq, "hello everyone"));
    await change(a, del(channel, seq, true));
    const back = await helloDevice(alice.access_token, "a2");
    const { messages } = await back.resume([{ channel_id: channel, last_seq: seq }]);
    expect(messages.map((m) => m.content?.update?.kind)).toEqual(["reactions", "edited", "deleted"]);
    // Each change carries the target as it is now (deleted), so applying them in order ends right.
    for (const m of messages) expect(m.content?.update?.target?.deleted).toBe(true);
    for (const d of [a, back, b]) d.close();
  });
});
