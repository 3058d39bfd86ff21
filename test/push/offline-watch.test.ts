/**
 * Push and watchers (decision 013): a user with a push subscription stays a watcher of their
 * channels while no device is connected, so deliveries still reach their UserObject and turn into
 * pushes; once the last subscription is gone, the next delivery finds neither socket nor push and
 * the channel drops the watcher. Users without push cost a post nothing.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, inject, it } from "vitest";
import type { PushSubscriptionInput } from "../../protocol/push.js";
import { channelStub, userStub } from "../../shared/routing.js";
import { call, createGroup, register } from "../helpers/api.js";
import { onlineDevice } from "../helpers/socket.js";
import { pb } from "../../protocol/codec.js";

const fakeUrl = inject("fakePushUrl");

async function watching(channelId: string, userId: string): Promise<number | undefined> {
  return runInDurableObject(channelStub(env, channelId), (_o, state) =>
    state.storage.sql.exec<{ active: number }>("SELECT active FROM watchers WHERE user_id = ?", userId).toArray()[0]?.active);
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
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
    await until("alice watching", async () => (await watching(channel, alice.user_id)) === 1);
    expect((await b.sendText(channel, "first")).type).toBe(pb.FrameType.SEND_ACK);
    expect(await watching(channel, carol.user_id)).toBeUndefined();
    expect(await watching(channel, alice.user_id)).toBe(1);

    // The subscription goes: the next delivery finds no socket and no push, and the watcher is dropped.
    expect((await call("PATCH", "/v1/devices/phone", { token: alice.access_token, body: { push: null } })).status).toBe(200);
    expect((await b.sendText(channel, "second")).type).toBe(pb.FrameType.SEND_ACK);
    await until("alice dropped", async () => (await watching(channel, alice.user_id)) === 0);
    const row = await runInDurableObject(userStub(env, alice.user_id), (_o, state) =>
      state.storage.sql.exec<{ subscribed: number }>("SELECT subscribed FROM channels WHERE channel_id = ?", channel).one());
    expect(row.subscribed).toBe(0);
    b.close();
  }, 60_000);
});
