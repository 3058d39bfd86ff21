import { abortAllDurableObjects, env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LIMITS } from "../../protocol/limits.js";
import { newId } from "../../shared/ids.js";
import { memoryRecorder, recordMetricsWith } from "../../shared/metrics.js";
import { channelStub, userStub } from "../../shared/routing.js";
import type { ChannelObject } from "../../durable-objects/channel/ChannelObject.js";
import type { MemberProfile } from "../../durable-objects/channel/types.js";

function profile(name: string): MemberProfile {
  return { user_id: newId("u"), username: name, display_name: name };
}

async function group(owner: MemberProfile, members: MemberProfile[], name = "Team") {
  const id = newId("c");
  const stub = channelStub(env, id);
  const r = await stub.create({ channelId: id, type: "group", name, creator: owner, members, jurisdiction: "" });
  if (!r.ok) throw new Error(r.message);
  return { id, stub };
}

const text = (t: string) => ({ text: { text: t } });

/** Retries an assertion until it holds or `timeoutMs` passes (for work an alarm finishes). */
async function eventually(check: () => Promise<void>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try { return await check(); } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

function rowCount(stub: DurableObjectStub<ChannelObject>, where = "1 = 1", ...args: unknown[]): Promise<number> {
  return runInDurableObject(stub, (_obj, state) =>
    state.storage.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM messages WHERE ${where}`, ...(args as SqlStorageValue[])).one().n);
}

describe("ChannelObject sequencer", () => {
  it("gives contiguous seqs from 1 and strictly increasing HLCs, the creation notice first", async () => {
    const alice = profile("alice"), bob = profile("bob");
    const { stub } = await group(alice, [bob]);
    const acks = [];
    for (let i = 0; i < 20; i++) {
      const r = await stub.append({ userId: i % 2 ? bob.user_id : alice.user_id, deviceId: "d1", clientMsgId: `m${i}`, content: text(`hi ${i}`) });
      if (!r.ok) throw new Error(r.message);
      acks.push(r.ack);
    }
    expect(acks.map((a) => a.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 2));
    for (let i = 1; i < acks.length; i++) expect(acks[i]!.hlc > acks[i - 1]!.hlc).toBe(true);
    for (const a of acks) expect(a.server_msg_id).toBe(a.hlc + a.seq.toString(16).padStart(16, "0"));
    const page = await stub.history(alice.user_id, { after: 0, limit: 5 });
    // Notices carry ids, not names: clients put the actor's name in front of the text.
    expect(page.ok && page.messages[0]?.content.system).toMatchObject({
      event: "created", actor_user_id: alice.user_id, target_user_ids: [bob.user_id], text: 'created the group "Team"',
    });
  });

  it("stores a retried SEND once and answers it with the original ids", async () => {
    const alice = profile("alice"), bob = profile("bob");
    const { stub } = await group(alice, [bob]);
    const first = await stub.append({ userId: alice.user_id, deviceId: "phone", clientMsgId: "retry-me", content: text("once") });
    const again = await stub.append({ userId: alice.user_id, deviceId: "laptop", clientMsgId: "retry-me", content: text("once") });
    expect(first.ok && again.ok).toBe(true);
    if (!first.ok || !again.ok) return;
    expect(again.ack).toEqual({ ...first.ack, status: "duplicate" });
    expect(first.ack.status).toBe("stored");
    expect(await rowCount(stub, "client_msg_id = ?", "retry-me")).toBe(1);
    // The key is (sender, client_msg_id): another sender's equal id is another message.
    const bobs = await stub.append({ userId: bob.user_id, deviceId: "d", clientMsgId: "retry-me", content: text("mine") });
    expect(bobs.ok && bobs.ack.seq).toBe(first.ack.seq + 1);
  });

  it("an appendBatch of ten is ten INSERTs, one channel-row write and one read-cursor write, in one commit", async () => {
    const alice = profile("alice"), bob = profile("bob");
    const { stub } = await group(alice, [bob]);
    const inputs = Array.from({ length: 10 }, (_, i) => ({ userId: alice.user_id, deviceId: "phone", clientMsgId: `batch-${i}`, content: text(`m${i}`) }));
    const seen = memoryRecorder();
    // Counted in the batch's own turn (the fan-out's bookkeeping runs after it).
    const acks = await runInDurableObject(stub, (instance: ChannelObject) => {
      const restore = recordMetricsWith(seen);
      try {
        return instance.appendBatch(inputs);
      } finally {
        restore();
      }
    });
    expect(acks.map((a) => a.ok && a.ack.status)).toEqual(Array(10).fill("stored"));
    const seqs = acks.map((a) => (a.ok ? a.ack.seq : 0));
    expect(seqs).toEqual(Array.from({ length: 10 }, (_, i) => seqs[0]! + i));
    expect(seen.total("sql.write", { object: "channel", table: "messages" })).toBe(10);
    expect(seen.total("sql.write", { object: "channel", table: "channel" })).toBe(1);
    expect(seen.total("sql.write", { object: "channel", table: "members" })).toBe(1);
    const state = await stub.state(alice.user_id);
    expect(state.ok && [state.state.last_seq, state.state.last_read_seq, state.state.unread_count]).toEqual([seqs[9], seqs[9], 0]);
    // The same batch again: every one a duplicate, nothing written.
    const again = await stub.appendBatch(inputs);
    expect(again.map((a) => a.ok && [a.ack.seq, a.ack.status])).toEqual(seqs.map((s) => [s, "duplicate"]));
  });

  it("keeps one order and one copy under concurrent senders with retries (property)", async () => {
    const members = [profile("a"), profile("b"), profile("c")];
    await fc.assert(fc.asyncProperty(
      fc.array(fc.record({ sender: fc.integer({ min: 0, max: 2 }), key: fc.integer({ min: 0, max: 15 }) }), { minLength: 1, maxLength: 40 }),
      async (sends) => {
        const { stub } = await group(members[0]!, members.slice(1));
        const results = await Promise.all(sends.map((s) => stub.append({
          userId: members[s.sender]!.user_id, deviceId: "d", clientMsgId: `k${s.key}`, content: text(`from ${s.sender} key ${s.key}`),
        })));
        const acks = results.map((r) => { if (!r.ok) throw new Error(r.message); return r.ack; });
        const distinct = new Set(sends.map((s) => `${s.sender}:${s.key}`));
        // Every retry of one (sender, key) got the same seq; distinct keys got distinct seqs.
        const seqByKey = new Map<string, number>();
        sends.forEach((s, i) => {
          const k = `${s.sender}:${s.key}`;
          if (seqByKey.has(k)) expect(acks[i]!.seq).toBe(seqByKey.get(k));
          else seqByKey.set(k, acks[i]!.seq);
        });
        expect(new Set(seqByKey.values()).size).toBe(distinct.size);
        const page = await stub.history(members[0]!.user_id, { after: 0, limit: 200 });
        if (!page.ok) throw new Error(page.message);
        expect(page.messages.map((m) => m.seq)).toEqual(Array.from({ length: distinct.size + 1 }, (_, i) => i + 1));
        for (let i = 1; i < page.messages.length; i++) expect(page.messages[i]!.hlc > page.messages[i - 1]!.hlc).toBe(true);
      },
    ), { numRuns: 15 });
  });

  it("continues seq and HLC after a restart: the sequencer state is on disk, not in memory", async () => {
    const alice = profile("alice"), bob = profile("bob");
    const { id } = await group(alice, [bob]);
    const before = await channelStub(env, id).append({ userId: alice.user_id, deviceId: "d", clientMsgId: "before", content: text("before") });
    await abortAllDurableObjects();
    const stub = channelStub(env, id);
    const after = await stub.append({ userId: bob.user_id, deviceId: "d", clientMsgId: "after", content: text("after") });
    expect(before.ok && after.ok).toBe(true);
    if (!before.ok || !after.ok) return;
    expect(after.ack.seq).toBe(before.ack.seq + 1);
    expect(after.ack.hlc > before.ack.hlc).toBe(true);
    // A retry across the restart still dedups.
    const retried = await stub.append({ userId: alice.user_id, deviceId: "d", clientMsgId: "before", content: text("before") });
    expect(retried.ok && retried.ack.seq).toBe(before.ack.seq);
  });

  it("rejects bad input with a clear error and writes nothing", async () => {
    const alice = profile("alice"), bob = profile("bob"), eve = profile("eve");
    const { stub } = await group(alice, [bob]);
    const cases = [
      [{ userId: eve.user_id, clientMsgId: "x", content: text("hi") }, "not_found"],
      [{ userId: alice.user_id, clientMsgId: "x", content: text("a".repeat(LIMITS.maxContentBytes + 1)) }, "content_too_large"],
      [{ userId: alice.user_id, clientMsgId: "x", content: text("é".repeat(LIMITS.maxContentBytes / 2 + 1)) }, "content_too_large"],
      [{ userId: alice.user_id, clientMsgId: "x", content: text("") }, "invalid_argument"],
      [{ userId: alice.user_id, clientMsgId: "x", content: {} }, "invalid_argument"],
      [{ userId: alice.user_id, clientMsgId: "", content: text("hi") }, "invalid_argument"],
      [{ userId: alice.user_id, clientMsgId: "x".repeat(65), content: text("hi") }, "invalid_argument"],
      [{ userId: alice.user_id, clientMsgId: "x", content: { system: { event: "created", text: "forged" } } }, "forbidden"],
    ] as const;
    for (const [input, code] of cases) {
      const r = await stub.append({ deviceId: "d", ...input });
      expect(r.ok ? "ok" : r.code, JSON.stringify(input).slice(0, 80)).toBe(code);
      if (!r.ok) expect(r.retryable).toBe(false);
    }
    expect(await rowCount(stub)).toBe(1); // only the creation notice
    const ok = await stub.append({ userId: alice.user_id, deviceId: "d", clientMsgId: "fine", content: text("a".repeat(LIMITS.maxContentBytes)) });
    expect(ok.ok && ok.ack.seq).toBe(2);
  });

  it("pages history backwards and forwards by seq cursor", async () => {
    const alice = profile("alice"), bob = profile("bob");
    const { stub } = await group(alice, [bob]);
    for (let i = 0; i < 25; i++) await stub.append({ userId: alice.user_id, deviceId: "d", clientMsgId: `p${i}`, content: text(`${i}`) });
    // Newest page, then older pages until the start.
    const seen: number[] = [];
    let page = await stub.history(bob.user_id, { limit: 10 });
    for (;;) {
      if (!page.ok) throw new Error(page.message);
      seen.unshift(...page.messages.map((m) => m.seq));
      expect(page.last_seq).toBe(26);
      if (!page.has_more) break;
      page = await stub.history(bob.user_id, { before: page.next_cursor, limit: 10 });
    }
    expect(seen).toEqual(Array.from({ length: 26 }, (_, i) => i + 1));
    // Forwards from a cursor.
    const fwd: number[] = [];
    let cursor = 20;
    for (;;) {
      const p = await stub.history(bob.user_id, { after: cursor, limit: 4 });
      if (!p.ok) throw new Error(p.message);
      fwd.push(...p.messages.map((m) => m.seq));
      if (!p.has_more) break;
      cursor = p.next_cursor;
    }
    expect(fwd).toEqual([21, 22, 23, 24, 25, 26]);
    const clamped = await stub.history(bob.user_id, { after: 0, limit: 10_000 });
    expect(clamped.ok && clamped.messages.length).toBe(26);
  });

  it("lets owners add and remove members, announces it, and locks out those removed", async () => {
    const alice = profile("alice"), bob = profile("bob"), carol = profile("carol"), dave = profile("dave");
    const { stub } = await group(alice, [bob]);
    const denied = await stub.addMembers(bob.user_id, [carol]);
    expect(!denied.ok && denied.code).toBe("forbidden");
    const added = await stub.addMembers(alice.user_id, [carol, dave, bob]);
    expect(added.ok && added.channel.member_count).toBe(4);
    const removed = await stub.removeMember(alice.user_id, carol.user_id);
    expect(removed.ok && removed.channel.member_count).toBe(3);
    const left = await stub.removeMember(dave.user_id, dave.user_id);
    expect(left.ok).toBe(true);
    const cannotRemoveOwner = await stub.removeMember(bob.user_id, alice.user_id);
    expect(!cannotRemoveOwner.ok && cannotRemoveOwner.code).toBe("forbidden");
    const page = await stub.history(alice.user_id, { after: 0 });
    if (!page.ok) throw new Error(page.message);
    expect(page.messages.map((m) => [m.content.system?.actor_user_id, m.content.system?.event, m.content.system?.target_user_ids, m.content.system?.text])).toEqual([
      [alice.user_id, "created", [bob.user_id], 'created the group "Team"'],
      [alice.user_id, "member_added", [carol.user_id, dave.user_id], "added 2 people"],
      [alice.user_id, "member_removed", [carol.user_id], "removed 1 person"],
      [dave.user_id, "member_left", [dave.user_id], "left"],
    ]);
    // No profile is copied into the channel: members are ids with roles and cursors.
    const described = await stub.describe(alice.user_id);
    expect(described.ok && described.channel.member_list.map((m) => Object.keys(m).sort())).toEqual(
      Array(2).fill(["joined_at", "last_read_seq", "role", "user_id"]),
    );
    const locked = await stub.history(carol.user_id, {});
    expect(!locked.ok && locked.code).toBe("not_member");
    const cannotSend = await stub.append({ userId: carol.user_id, deviceId: "d", clientMsgId: "z", content: text("still here?") });
    expect(!cannotSend.ok && cannotSend.code).toBe("not_member");
  });

  it("moves read cursors forward only and counts unread messages from others", async () => {
    const alice = profile("alice"), bob = profile("bob");
    const { stub } = await group(alice, [bob]);
    for (let i = 0; i < 5; i++) await stub.append({ userId: alice.user_id, deviceId: "d", clientMsgId: `r${i}`, content: text(`${i}`) });
    const r1 = await stub.markRead(bob.user_id, 4);
    expect(r1.ok && [r1.last_read_seq, r1.unread_count]).toEqual([4, 2]);
    // Writing means having read up to one's own message: nothing before it is unread any more.
    await stub.append({ userId: bob.user_id, deviceId: "d", clientMsgId: "own", content: text("mine") });
    const own = await stub.state(bob.user_id);
    expect(own.ok && [own.state.last_read_seq, own.state.unread_count]).toEqual([7, 0]);
    await stub.append({ userId: alice.user_id, deviceId: "d", clientMsgId: "after", content: text("after") });
    const back = await stub.markRead(bob.user_id, 2);
    expect(back.ok && [back.last_read_seq, back.moved]).toEqual([7, false]);
    const past = await stub.markRead(bob.user_id, 999);
    expect(past.ok && [past.last_read_seq, past.unread_count]).toEqual([8, 0]);
  });

  it("finishes a fan-out interrupted by a crash, from an alarm", async () => {
    const alice = profile("alice"), bob = profile("bob");
    const { id, stub } = await group(alice, [bob]);
    await userStub(env, bob.user_id).init({ ...bob, jurisdiction: "" });
    await stub.append({ userId: alice.user_id, deviceId: "d", clientMsgId: "m1", content: text("one") });
    // Simulate a crash after the durable append but before fan-out reached anyone.
    await runInDurableObject(stub, (_o, state) => {
      state.storage.sql.exec("UPDATE channel SET fanout_seq = 0 WHERE id = 1");
    });
    await userStub(env, bob.user_id).listChannels(); // bob's list may or may not have it yet
    await abortAllDurableObjects();
    const restarted = channelStub(env, id);
    await restarted.describe(alice.user_id); // wake: the constructor sees fanout_seq < last_seq
    await runDurableObjectAlarm(restarted); // may have fired on its own already: both are fine
    await eventually(async () => {
      const list = await userStub(env, bob.user_id).listChannels();
      expect(list.find((c) => c.channel_id === id)?.last_seq).toBe(2);
    });
    // The pump records its progress after the delivery call returns: bob may have it a moment first.
    await eventually(async () => {
      const fanned = await runInDurableObject(restarted, (_o, state) =>
        state.storage.sql.exec<{ f: number }>("SELECT fanout_seq AS f FROM channel").one().f);
      expect(fanned).toBe(2);
    });
  });

  it("creates a DM once, whoever asks first", async () => {
    const alice = profile("alice"), bob = profile("bob");
    const id = newId("c");
    const stub = channelStub(env, id);
    const first = await stub.create({ channelId: id, type: "dm", name: "", creator: alice, members: [bob], jurisdiction: "" });
    const second = await stub.create({ channelId: id, type: "dm", name: "", creator: bob, members: [alice], jurisdiction: "" });
    expect(first.ok && first.created).toBe(true);
    expect(second.ok && second.created).toBe(false);
    const addToDm = await stub.addMembers(alice.user_id, [profile("carol")]);
    expect(!addToDm.ok && addToDm.code).toBe("invalid_argument");
  });
});
