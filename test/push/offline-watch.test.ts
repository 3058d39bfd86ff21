/**
 * Push and watchers (decision 013): a user with a push subscription stays a watcher of their
 * channels while no device is connected, so deliveries still reach their UserObject and turn into
 * pushes; once the last subscription is gone, the next delivery finds neither socket nor push and
 * the channel drops the watcher. Users without push cost a post nothing. Broadcast channels are
 * the exception (decision 018): subscribers watch them only while a device is connected, push or
 * not, so an offline subscriber costs a post nothing and reads it when they open the channel.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, inject, it } from "vitest";
import type { PushSubscriptionInput } from "../../protocol/push.js";
import { channelStub, userStub } from "../../shared/routing.js";
import { call, createGroup, register, waitListed } from "../helpers/api.js";
import { pushesTo, until } from "../support/push-records.js";
import { onlineDevice } from "../helpers/socket.js";
import { pb } from "../../protocol/codec.js";

const fakeUrl = inject("fakePushUrl");

async function watching(channelId: string, userId: string): Promise<number | undefined> {
  return runInDurableObject(channelStub(env, channelId), (_o, state) =>
    state.storage.sql.exec<{ active: number }>("SELECT active FROM watchers WHERE user_id = ?", userId).toArray()[0]?.active);
}

async function subscribed(userId: string, channelId: string): Promise<number | undefined> {
  return runInDurableObject(userStub(env, userId), (_o, state) =>
    state.storage.sql.exec<{ subscribed: number }>("SELECT subscribed FROM channels WHERE channel_id = ?", channelId).toArray()[0]?.subscribed);
}

describe("push keeps an offline user watching", () => {
  it("watches with a subscription and no device, and stops after the subscription is removed", async () => {
    const alice = await register("alice"), bob = await register("bob"), carol = await register("carol");
    const name = `watch${alice.user_id.slice(-8)}`;
    const sub = (await (await fetch(`${fakeUrl}/__subscribe`, { method: "POST", body: JSON.stringify({ name }) })).json()) as PushSubscriptionInput;
    expect((await call("POST", "/v1/devices", { token: alice.access_token, body: { device_id: "phone", push: sub } })).status).toBe(201);
    const channel = await createGroup(bob, [alice, carol], "Watch");
    const b = await onlineDevice(bob.access_token, "b");

    // alice (push, no device) becomes a watcher from the notice that added her; carol (neither) does not.
    await until("alice watching", async () => (await watching(channel, alice.user_id)) === 1, 20_000, 50);
    expect((await b.sendText(channel, "first")).type).toBe(pb.FrameType.SEND_ACK);
    expect(await watching(channel, carol.user_id)).toBeUndefined();
    expect(await watching(channel, alice.user_id)).toBe(1);

    // The subscription goes: the next delivery finds no socket and no push, and the watcher is dropped.
    expect((await call("PATCH", "/v1/devices/phone", { token: alice.access_token, body: { push: null } })).status).toBe(200);
    expect((await b.sendText(channel, "second")).type).toBe(pb.FrameType.SEND_ACK);
    await until("alice dropped", async () => (await watching(channel, alice.user_id)) === 0, 20_000, 50);
    const row = await runInDurableObject(userStub(env, alice.user_id), (_o, state) =>
      state.storage.sql.exec<{ subscribed: number }>("SELECT subscribed FROM channels WHERE channel_id = ?", channel).one());
    expect(row.subscribed).toBe(0);
    b.close();
  }, 60_000);

  it("never keeps an offline subscriber watching a broadcast channel: no push for its posts, the unread count when they come back", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const name = `bcast${alice.user_id.slice(-8)}`;
    const sub = (await (await fetch(`${fakeUrl}/__subscribe`, { method: "POST", body: JSON.stringify({ name }) })).json()) as PushSubscriptionInput;
    expect((await call("POST", "/v1/devices", { token: alice.access_token, body: { device_id: "phone", push: sub } })).status).toBe(201);
    const group = await createGroup(bob, [alice], "Marker");
    const created = await call<{ channel: { channel_id: string } }>("POST", "/v1/channels", { token: bob.access_token, body: { type: "broadcast", name: "News" } });
    expect(created.status).toBe(201);
    const news = created.body.channel.channel_id;
    expect((await call("POST", `/v1/channels/${news}/members/bulk`, { token: bob.access_token, body: { user_ids: [alice.user_id] } })).status).toBe(200);
    await waitListed(alice, news);
    await until("alice watching the group", async () => (await watching(group, alice.user_id)) === 1, 20_000, 50);

    // Online, she watches the broadcast channel too; after her device goes and the grace passes,
    // she watches the group still (push) and the broadcast channel no more.
    const phone = await onlineDevice(alice.access_token, "phone");
    await until("alice's broadcast row watched", async () => (await subscribed(alice.user_id, news)) === 1, 20_000, 50);
    phone.close();
    await phone.waitClosed();
    await until("alice's broadcast row unwatched", async () => (await subscribed(alice.user_id, news)) === 0, 20_000, 50);
    expect(await subscribed(alice.user_id, group)).toBe(1);

    // A broadcast post, then a group post: the group's push is the marker that the broadcast post
    // was decided before it; it was not pushed and never reached her object.
    const b = await onlineDevice(bob.access_token, "b");
    expect((await b.sendText(news, "Version 2 is out")).type).toBe(pb.FrameType.SEND_ACK);
    expect((await b.sendText(group, "lunch?")).type).toBe(pb.FrameType.SEND_ACK);
    await until("the group's push", async () => (await pushesTo(fakeUrl, name)).some((r) => r.payload?.channel_id === group), 20_000, 50);
    expect((await pushesTo(fakeUrl, name)).filter((r) => r.payload?.channel_id === news)).toEqual([]);
    const windows = await runInDurableObject(userStub(env, alice.user_id), (_o, state) =>
      state.storage.sql.exec("SELECT channel_id FROM push_windows WHERE channel_id = ?", news).toArray());
    expect(windows).toEqual([]);

    // Back online, the channel shows the post as unread.
    const laptop = await onlineDevice(alice.access_token, "laptop");
    const list = await call<{ channels: { channel_id: string; unread_count: number }[] }>("GET", "/v1/channels", { token: alice.access_token });
    expect(list.body.channels.find((c) => c.channel_id === news)?.unread_count).toBe(1);
    laptop.close();
    b.close();
  }, 60_000);
});
