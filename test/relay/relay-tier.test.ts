/**
 * The relay tier with the real objects (ChannelObject, RelayObject, UserObject) and real sockets:
 * a group that grows past the threshold moves its connected watchers to relay shards from its own
 * table, and every device keeps getting every post once, in order, across the move and across a
 * relay that restarts. Watchers that stop watching (a subscriber who leaves, a device that
 * disconnects, an erased account) are told to their relay shard, which then holds no active entry
 * (or, after an erasure, no row at all) for them.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { api } from "../../workers/api/app.js";
import { describe, expect, it } from "vitest";
import { pb } from "../../protocol/codec.js";
import type { ChannelObject } from "../../durable-objects/channel/ChannelObject.js";
import { channelStub, relayShardOf, relayStub } from "../../shared/routing.js";
import { call, createDm, createGroup, register, waitListed, type TestUser } from "../helpers/api.js";
import { onlineDevice, type TestDevice } from "../helpers/socket.js";

const T = pb.FrameType;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** This channel's tier threshold, lowered so a small group crosses it (the vars hold the default). */
async function lowerThreshold(channelId: string, directMaxMembers: number): Promise<void> {
  await runInDurableObject(channelStub(env, channelId), (obj: ChannelObject) => {
    (obj as unknown as { tiers: { directMaxMembers: number; groupShards: number } }).tiers.directMaxMembers = directMaxMembers;
  });
}

async function watcherRows(channelId: string) {
  return runInDurableObject(channelStub(env, channelId), (_o, state) =>
    state.storage.sql.exec<{ user_id: string; active: number; at_relay: number }>("SELECT user_id, active, at_relay FROM watchers").toArray());
}

async function relayShardsOf(channelId: string): Promise<number> {
  return runInDurableObject(channelStub(env, channelId), (_o, state) =>
    state.storage.sql.exec<{ relay_shards: number }>("SELECT relay_shards FROM channel").one().relay_shards);
}

/** Positive marker: every listed user is registered at its shard (the channel confirmed it). */
async function allAtRelay(channelId: string, userIds: string[]): Promise<void> {
  for (let i = 0; ; i++) {
    const rows = await watcherRows(channelId);
    if (userIds.every((id) => rows.some((r) => r.user_id === id && r.active === 1 && r.at_relay === 1))) return;
    if (i > 400) throw new Error(`not all at their relay: ${JSON.stringify(rows)}`);
    await sleep(25);
  }
}

/** The texts `device` gets until `last` arrives; asserts strictly increasing seqs. */
async function textsUntil(device: TestDevice, last: string): Promise<string[]> {
  const texts: string[] = [];
  const seqs: number[] = [];
  while (!texts.includes(last)) {
    for (const m of await device.messages(1, 20_000)) {
      seqs.push(Number(m.seq));
      if (m.content?.text?.text) texts.push(m.content.text.text);
    }
  }
  for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1]!);
  return texts;
}

describe("relay tier", () => {
  it("moves a growing group's watchers to relay shards; every device gets every post once, in order, also after a relay restarts", async () => {
    const alice = await register("alice"), bob = await register("bob"), carol = await register("carol"), dave = await register("dave");
    const channel = await createGroup(alice, [bob, carol]);
    await lowerThreshold(channel, 3);
    const a = await onlineDevice(alice.access_token, "a");
    const b = await onlineDevice(bob.access_token, "b");
    const c = await onlineDevice(carol.access_token, "c");
    expect((await a.sendText(channel, "one")).type).toBe(T.SEND_ACK);
    await b.messages(1); await c.messages(1);
    expect(await relayShardsOf(channel)).toBe(0);

    // The fourth member takes the group past the threshold: relay tier, watchers re-registered.
    const added = await call("POST", `/v1/channels/${channel}/members`, { token: alice.access_token, body: { members: [dave.username] } });
    expect(added.status).toBe(200);
    expect(await relayShardsOf(channel)).toBe(16);
    await allAtRelay(channel, [alice.user_id, bob.user_id, carol.user_id]);
    for (const text of ["two", "three"]) expect((await a.sendText(channel, text)).type).toBe(T.SEND_ACK);
    expect(await textsUntil(b, "three")).toEqual(["two", "three"]);
    expect(await textsUntil(c, "three")).toEqual(["two", "three"]);

    // Each user's shard knows it.
    const shard = relayShardOf(bob.user_id, 16);
    const described = await relayStub(env, channel, shard).describe();
    expect(described?.channel_id).toBe(channel);
    expect(described?.watchers).toBeGreaterThanOrEqual(1);

    // Bob's shard restarts: its watchers are on disk, the next post reaches him.
    await runInDurableObject(relayStub(env, channel, shard), (_o, state) => {
      try { state.abort("relay restart in a test"); } catch { /* the abort ends this call */ }
    }).catch(() => {});
    expect((await a.sendText(channel, "four")).type).toBe(T.SEND_ACK);
    expect(await textsUntil(b, "four")).toEqual(["four"]);
    expect(await textsUntil(c, "four")).toEqual(["four"]);
    a.close(); b.close(); c.close();
  }, 120_000);
});

const BROADCAST_SHARDS = 64;

/** `userId`'s row at its relay shard of the broadcast channel `channelId` (undefined: none). */
async function relayRow(channelId: string, userId: string): Promise<{ active: number } | undefined> {
  return runInDurableObject(relayStub(env, channelId, relayShardOf(userId, BROADCAST_SHARDS)), (_o, state) =>
    state.storage.sql.exec<{ active: number }>("SELECT active FROM watchers WHERE user_id = ?", userId).toArray()[0]);
}

async function eventually<T>(what: string, read: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (done(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what} not within ${timeoutMs} ms; last: ${JSON.stringify(v)}`);
    await sleep(50);
  }
}

const hasText = (d: TestDevice, text: string) => d.frames.some((f) => f.type === T.DELIVER && (f.deliver?.messages ?? []).some((m) => m.content?.text?.text === text));

describe("relay tier: leaves reach the relay shards", () => {
  it("a subscriber who leaves, a device that goes offline and an erased account are no longer held by their shard", async () => {
    const [alice, bob, carol, dave] = await Promise.all([register("alice"), register("bob"), register("carol"), register("dave")]);
    const created = await call<{ channel: { channel_id: string } }>("POST", "/v1/channels", { token: alice.access_token, body: { type: "broadcast", name: "News" } });
    expect(created.status).toBe(201);
    const id = created.body.channel.channel_id;
    expect(await relayShardsOf(id)).toBe(BROADCAST_SHARDS);
    const subscribers: TestUser[] = [bob, carol, dave];
    expect((await call("POST", `/v1/channels/${id}/members/bulk`, { token: alice.access_token, body: { user_ids: subscribers.map((u) => u.user_id) } })).status).toBe(200);
    await Promise.all(subscribers.map((u) => waitListed(u, id)));
    const dm = await createDm(alice, bob);
    const a = await onlineDevice(alice.access_token, "a");
    const [b, c, d] = await Promise.all([onlineDevice(bob.access_token, "b"), onlineDevice(carol.access_token, "c"), onlineDevice(dave.access_token, "d")]);
    await allAtRelay(id, [alice.user_id, bob.user_id, carol.user_id, dave.user_id]);
    for (const u of subscribers) expect(await relayRow(id, u.user_id)).toEqual({ active: 1 });

    // bob leaves: his shard is told, and stops delivering to him.
    expect((await call("DELETE", `/v1/channels/${id}/members/${bob.user_id}`, { token: bob.access_token })).status).toBe(200);
    await eventually("bob's shard told of his leave", () => relayRow(id, bob.user_id), (r) => r?.active === 0);
    // Two posts: the second reaches dave only after the first's round reached every shard (rounds
    // go one at a time), then a DM to bob is written to his socket after anything that round
    // wrote there. So the DM arriving first proves the post never came.
    expect((await a.sendText(id, "after bob left")).type).toBe(T.SEND_ACK);
    expect((await a.sendText(id, "and another")).type).toBe(T.SEND_ACK);
    await d.take((f) => f.type === T.DELIVER && (f.deliver?.messages ?? []).some((m) => m.content?.text?.text === "and another"), 20_000);
    expect((await a.sendText(dm, "marker for bob")).type).toBe(T.SEND_ACK);
    await b.take((f) => f.type === T.DELIVER && (f.deliver?.messages ?? []).some((m) => m.content?.text?.text === "marker for bob"), 20_000);
    expect(hasText(b, "after bob left") || hasText(b, "and another")).toBe(false);

    // carol's only device disconnects: after the offline grace her UserObject unwatches, and the
    // channel tells her shard.
    c.close();
    await eventually("carol's shard told she went offline", () => relayRow(id, carol.user_id), (r) => r?.active === 0);

    // dave deletes his account: once the job is done his shard has no row naming him.
    expect((await call("DELETE", "/v1/me", { token: dave.access_token, body: { password: "correct horse battery" } })).status).toBe(202);
    const ADMIN = "relay-test-admin-token-0123456789abcdef";
    await eventually("dave's erasure", async () => {
      const res = await api.request(`/v1/admin/erasures/${dave.user_id}`, { headers: { Authorization: `Bearer ${ADMIN}` } }, { ...env, ADMIN_TOKEN: ADMIN });
      return (await res.json()) as { finished?: boolean };
    }, (p) => p.finished === true, 90_000);
    expect(await relayRow(id, dave.user_id)).toBeUndefined();
    const queued = await runInDurableObject(channelStub(env, id), (_o, state) => state.storage.sql.exec("SELECT user_id FROM relay_leaves").toArray());
    expect(queued).toEqual([]);
    // Still delivering to those who watch: alice's own device.
    expect((await a.sendText(id, "still here")).type).toBe(T.SEND_ACK);
    a.close(); b.close(); d.close();
  }, 180_000);
});
