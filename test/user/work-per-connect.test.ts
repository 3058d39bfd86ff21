/**
 * What connecting costs, counted (docs/decisions/023): the calls a UserObject makes to channels
 * and presence shards, and the rows it writes, when a device of a user in K channels connects and
 * RESUMEs. The first device makes the user live: one watch per channel, nothing else per channel
 * when the device already holds everything. A second device of a live user, and a reconnect
 * within the offline grace, watch nothing and page nothing. Counts, never time.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { memoryRecorder, recordMetricsWith, type MemoryRecorder } from "../../shared/metrics.js";
import { pb } from "../../protocol/codec.js";
import { channelStub, userStub } from "../../shared/routing.js";
import { createGroup, register, type TestUser } from "../helpers/api.js";
import { helloDevice, onlineDevice, type TestDevice } from "../helpers/socket.js";

const K = 5;

type Work = {
  watches: number; channelWatches: number; pages: number; catchUps: number; states: number; presence: number; userWrites: number;
  writesByTable: Record<string, number>;
};

function writesByTable(seen: MemoryRecorder): Record<string, number> {
  const byTable: Record<string, number> = {};
  for (const p of seen.points) if (p.name === "sql.write") byTable[`${p.tags?.object}.${p.tags?.table}`] = (byTable[`${p.tags?.object}.${p.tags?.table}`] ?? 0) + p.n;
  return byTable;
}

function work(seen: MemoryRecorder): Work {
  return {
    watches: seen.total("user.watch"), channelWatches: seen.total("channel.watch"), pages: seen.total("resume.pages"),
    catchUps: seen.total("user.catch_up"), states: seen.total("user.state"), presence: seen.total("presence.rpc"),
    userWrites: seen.total("sql.write", { object: "user" }),
    writesByTable: writesByTable(seen),
  };
}

/** Connects a device and RESUMEs it with `cursors`; returns the device and the work it caused. */
async function connectCounted(user: TestUser, deviceId: string, cursors: { channel_id: string; last_seq: number }[]): Promise<{ device: TestDevice; work: Work }> {
  const seen = memoryRecorder();
  const restore = recordMetricsWith(seen);
  try {
    const device = await helloDevice(user.access_token, deviceId);
    await device.resume(cursors);
    return { device, work: work(seen) };
  } finally {
    restore();
  }
}

/** Alice and bob in K groups, two messages from bob in each; alice's cursors at every head. */
async function aliceInKChannels(): Promise<{ alice: TestUser; bob: TestUser; heads: { channel_id: string; last_seq: number }[] }> {
  const alice = await register("alice"), bob = await register("bob");
  const channels: string[] = [];
  for (let i = 0; i < K; i++) channels.push(await createGroup(bob, [alice], `g${i}`));
  const b = await onlineDevice(bob.access_token, "b");
  const acks = await b.sendTexts(channels.flatMap((channelId) => [{ channelId, text: "one" }, { channelId, text: "two" }]));
  b.close();
  const heads = channels.map((channel_id, i) => ({ channel_id, last_seq: Number(acks[2 * i + 1]!.send_ack?.seq) }));
  return { alice, bob, heads };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function watcherActive(channelId: string, userId: string): Promise<number | undefined> {
  return runInDurableObject(channelStub(env, channelId), (_o, state) =>
    state.storage.sql.exec<{ active: number }>("SELECT active FROM watchers WHERE user_id = ?", userId).toArray()[0]?.active);
}

/** The offline grace of alice's object, for this test only: long enough that a reconnect falls within it. */
async function longGrace(user: TestUser): Promise<void> {
  await runInDurableObject(userStub(env, user.user_id), (instance) => {
    (instance as unknown as { live: { host: { graceMs: number } } }).live.host.graceMs = 10 * 60_000;
  });
}

describe("work per connect", () => {
  it("first device: one watch per channel and no page when it holds everything; second device and a reconnect within the grace: none", async () => {
    const { alice, heads } = await aliceInKChannels();
    await longGrace(alice);

    const first = await connectCounted(alice, "a1", heads);
    console.log("first device", JSON.stringify(first.work));
    expect(first.work.watches).toBe(K);
    expect(first.work.channelWatches).toBe(K);
    expect(first.work.pages).toBe(0);
    expect(first.work.catchUps).toBe(0);
    expect(first.work.states).toBe(0);

    const second = await connectCounted(alice, "a2", heads);
    console.log("second device", JSON.stringify(second.work));
    expect(second.work).toMatchObject({ watches: 0, channelWatches: 0, pages: 0, catchUps: 0, states: 0 });

    first.device.close(); second.device.close();
    await first.device.waitClosed(); await second.device.waitClosed();
    const again = await connectCounted(alice, "a1", heads);
    console.log("reconnect within the grace", JSON.stringify(again.work));
    expect(again.work).toMatchObject({ watches: 0, channelWatches: 0, pages: 0, catchUps: 0, states: 0 });
    again.device.close();
  }, 120_000);

  it("a new device without cursors reads each channel's gap once: one RESUME page each, no catch-up read besides", async () => {
    const { alice, heads } = await aliceInKChannels();
    const fresh = await connectCounted(alice, "new", []);
    console.log("fresh device", JSON.stringify(fresh.work));
    expect(fresh.work).toMatchObject({ watches: K, pages: K, catchUps: 0, states: 0 });
    // Every message once (the groups' "created" notices and bob's two), whatever order the channels came in.
    const got = fresh.device.log.filter((f) => f.type === pb.FrameType.DELIVER).flatMap((f) => f.deliver?.messages ?? []).map((m) => `${m.channel_id}:${m.seq}`);
    expect(new Set(got).size).toBe(got.length);
    for (const h of heads) expect(got.filter((x) => x.startsWith(`${h.channel_id}:`)).length).toBe(h.last_seq);
    fresh.device.close();
  }, 120_000);

  it("back after the grace with messages waiting in every channel: K watches and one page per channel, each message once", async () => {
    const { alice, bob, heads } = await aliceInKChannels();
    const a = await onlineDevice(alice.access_token, "a");
    a.close();
    await a.waitClosed();
    // Past the grace: alice's object unwatched every channel (the positive marker: the channels say so).
    await eventually("alice unwatched everywhere", async () => {
      for (const h of heads) if ((await watcherActive(h.channel_id, alice.user_id)) !== 0) return false;
      return true;
    });
    const b = await onlineDevice(bob.access_token, "b2");
    await b.sendTexts(heads.map((h) => ({ channelId: h.channel_id, text: "while you were away" })));
    b.close();
    const back = await connectCounted(alice, "a", heads);
    console.log("back after the grace", JSON.stringify(back.work));
    expect(back.work).toMatchObject({ watches: K, channelWatches: K, pages: K, catchUps: 0, states: 0 });
    const got = back.device.log.filter((f) => f.type === pb.FrameType.DELIVER).flatMap((f) => f.deliver?.messages ?? []);
    expect(got.map((m) => `${m.channel_id}:${m.seq}`).sort()).toEqual(heads.map((h) => `${h.channel_id}:${h.last_seq + 1}`).sort());
    back.device.close();
  }, 120_000);
});
