/**
 * Watchers end to end through the gateway (docs/decisions/013): a user watches their channels
 * while a device is connected, stops after the offline grace, is dropped by a delivery that finds
 * no socket, and never misses a live message while connected, whatever the order of connects,
 * disconnects and posts. Test timings (vitest.config.ts): offline grace 200 ms.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { pb } from "../../protocol/codec.js";
import { channelStub, userStub } from "../../shared/routing.js";
import type { UserObject } from "../../durable-objects/user/UserObject.js";
import type { ChannelRow } from "../../durable-objects/user/channel-list.js";
import { call, createGroup, register, waitListed, type TestUser } from "../helpers/api.js";
import { helloDevice, onlineDevice, type TestDevice } from "../helpers/socket.js";

const T = pb.FrameType;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function eventually<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** The channel's watcher row for `userId` (active 1/0), undefined if it never watched. */
function watcherRow(channelId: string, userId: string): Promise<{ active: number; epoch: number } | undefined> {
  return runInDurableObject(channelStub(env, channelId), (_o, state) =>
    state.storage.sql.exec<{ active: number; epoch: number }>("SELECT active, epoch FROM watchers WHERE user_id = ?", userId).toArray()[0]);
}

/** The user's channel row as the object holds it now (memory over table), and whether a socket is open. */
function userView(user: TestUser, channelId: string): Promise<{ row: ChannelRow | undefined; live: boolean; durable: number | undefined }> {
  return runInDurableObject(userStub(env, user.user_id), (instance: UserObject, state) => {
    const row = (instance as unknown as { channels: { row(id: string): ChannelRow | undefined } }).channels.row(channelId);
    const live = state.getWebSockets().some((ws) => ws.readyState === WebSocket.OPEN);
    const durable = state.storage.sql.exec<{ subscribed: number }>("SELECT subscribed FROM channels WHERE channel_id = ?", channelId).toArray()[0]?.subscribed;
    return { row, live, durable };
  });
}

describe("watchers", () => {
  it("watches while a device is connected and stops after the offline grace", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    expect(await watcherRow(channel, bob.user_id)).toBeUndefined();
    const b = await onlineDevice(bob.access_token, "b");
    expect((await watcherRow(channel, bob.user_id))?.active).toBe(1);
    expect((await userView(bob, channel)).row?.subscribed).toBe(1);
    b.close();
    await b.waitClosed();
    await eventually("bob unwatched", async () => (await watcherRow(channel, bob.user_id))?.active === 0);
    await eventually("bob's row says so", async () => (await userView(bob, channel)).row?.subscribed === 0);
  });

  it("drops a watcher whose delivery finds no socket (durably on its side first), and watches again on the next connect", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    const a = await onlineDevice(alice.access_token, "a");
    const b = await onlineDevice(bob.access_token, "b");
    const epoch = (await watcherRow(channel, bob.user_id))!.epoch;
    b.close();
    await b.waitClosed();
    // Within the grace: the channel still lists bob; the next post finds no socket.
    expect((await a.sendText(channel, "while bob is away")).type).toBe(T.SEND_ACK);
    await eventually("the channel to drop bob", async () => (await watcherRow(channel, bob.user_id))?.active === 0);
    const view = await userView(bob, channel);
    expect([view.live, view.row?.subscribed, view.durable]).toEqual([false, 0, 0]);
    const again = await helloDevice(bob.access_token, "b");
    const { messages, resumed } = await again.resume([{ channel_id: channel, last_seq: 1 }]);
    expect(messages.map((m) => m.content?.text?.text)).toEqual(["while bob is away"]);
    expect(resumed.resumed?.channels?.find((c) => c.channel_id === channel)).toMatchObject({ last_seq: 2, unread_count: 1 });
    const row = await watcherRow(channel, bob.user_id);
    expect(row?.active).toBe(1);
    expect(row!.epoch).toBeGreaterThan(epoch);
    expect((await a.sendText(channel, "welcome back")).type).toBe(T.SEND_ACK);
    expect((await again.messages(1))[0]?.content?.text?.text).toBe("welcome back");
    a.close(); again.close();
  });

  it.each([7, 11, 23])("never lets a connected device miss a live message, whatever the order of connects, disconnects and posts (seed %i)", async (start) => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    const a = await onlineDevice(alice.access_token, "a");
    let seed = start;
    const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const open = new Map<string, TestDevice>();
    const sessions: { device: TestDevice; from: number }[] = [];
    let last = 1;
    for (let step = 0; step < 40; step++) {
      const r = rand();
      const name = `b${Math.floor(rand() * 3)}`;
      if (r < 0.3 && !open.has(name)) {
        const d = await onlineDevice(bob.access_token, name);
        open.set(name, d);
        // Live from RESUMED on: everything posted after that must arrive live.
        sessions.push({ device: d, from: last });
      } else if (r < 0.5 && open.has(name)) {
        const d = open.get(name)!;
        open.delete(name);
        d.close();
        await d.waitClosed();
        if (rand() < 0.5) await sleep(150 + rand() * 150); // around the 200 ms grace
      } else {
        const ack = await a.sendText(channel, `post ${step}`);
        last = Number(ack.send_ack!.seq);
      }
    }
    const fence = await a.sendText(channel, "fence");
    last = Number(fence.send_ack!.seq);
    for (const [name, d] of open) {
      const s = sessions.findLast((x) => x.device === d)!;
      const got = await d.messages(last - s.from, 15_000);
      expect(got.map((m) => Number(m.seq)), `${name} got every post live, in order`).toEqual(Array.from({ length: last - s.from }, (_, i) => s.from + 1 + i));
    }
    // At rest: a live user is a watcher with a subscribed row.
    if (open.size > 0) {
      expect((await watcherRow(channel, bob.user_id))?.active).toBe(1);
      expect((await userView(bob, channel)).row?.subscribed).toBe(1);
    }
    for (const d of open.values()) d.close();
    a.close();
  }, 120_000);

  it("learns of a group it was added to while connected: CHANNEL_UPDATE, the notice, then live posts", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const b = await onlineDevice(bob.access_token, "b");
    const a = await onlineDevice(alice.access_token, "a");
    const channel = await createGroup(alice, [bob], "Later");
    const update = await b.take((f) => f.type === T.CHANNEL_UPDATE && f.channel_update?.channel?.channel_id === channel);
    expect(update.channel_update?.channel).toMatchObject({ name: "Later", member_count: 2 });
    const [created] = await b.messages(1);
    expect(created?.content?.system?.event).toBe("created");
    expect((await a.sendText(channel, "hello")).type).toBe(T.SEND_ACK);
    expect((await b.messages(1)).map((m) => [Number(m.seq), m.content?.text?.text])).toEqual([[2, "hello"]]);
    a.close(); b.close();
  });

  it("tells a member who was removed, and one who is added back", async () => {
    const alice = await register("alice"), bob = await register("bob"), carol = await register("carol");
    const channel = await createGroup(alice, [bob, carol]);
    expect((await call("DELETE", `/v1/channels/${channel}/members/${bob.user_id}`, { token: alice.access_token })).status).toBe(200);
    await waitListed(bob, channel, { left: true });
    expect((await call("POST", `/v1/channels/${channel}/members`, { token: alice.access_token, body: { members: [bob.user_id] } })).status).toBe(200);
    await waitListed(bob, channel);
    const list = await call<{ channels: { channel_id: string; unread_count: number; last_seq: number }[] }>("GET", "/v1/channels", { token: bob.access_token });
    // Back as of the notice that added him: nothing from his absence is unread.
    expect(list.body.channels.find((c) => c.channel_id === channel)).toMatchObject({ last_seq: 3, unread_count: 0 });
  });
});
