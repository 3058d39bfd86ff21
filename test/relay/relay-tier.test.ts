/**
 * The relay tier with the real objects (ChannelObject, RelayObject, UserObject) and real sockets:
 * a group that grows past the threshold moves its connected watchers to relay shards from its own
 * table, and every device keeps getting every post once, in order, across the move and across a
 * relay that restarts.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { pb } from "../../protocol/codec.js";
import type { ChannelObject } from "../../durable-objects/channel/ChannelObject.js";
import { channelStub, relayShardOf, relayStub } from "../../shared/routing.js";
import { call, createGroup, register } from "../helpers/api.js";
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
