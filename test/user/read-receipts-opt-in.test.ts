/**
 * Read receipts are opt-in (seed Q10): off for everyone who never chose, the operator's default
 * (READ_RECEIPTS_DEFAULT) for those, and a user's own choice kept whatever the default. A cursor
 * that was not shared stays out of the channel's details too.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { pb } from "../../protocol/codec.js";
import { defaultSettings, effectiveSettings, storedChoices } from "../../durable-objects/user/settings.js";
import { userStub } from "../../shared/routing.js";
import { call, createGroup, register, type TestUser } from "../helpers/api.js";
import { onlineDevice } from "../helpers/socket.js";

const T = pb.FrameType;

async function storedSettings(user: TestUser): Promise<string> {
  return runInDurableObject(userStub(env, user.user_id), (_o, state) =>
    state.storage.sql.exec<{ settings: string }>("SELECT settings FROM profile WHERE id = 1").one().settings);
}

async function cursorShown(viewer: TestUser, channel: string, reader: TestUser): Promise<number | undefined> {
  const detail = await call<{ channel: { member_list: { user_id: string; last_read_seq: number }[] } }>("GET", `/v1/channels/${channel}`, { token: viewer.access_token });
  return detail.body.channel.member_list.find((m) => m.user_id === reader.user_id)?.last_read_seq;
}

describe("read receipts are opt-in", () => {
  it("defaults to off, or to what the operator sets", () => {
    expect(defaultSettings({})).toEqual({ read_receipts: false, share_presence: true, push_previews: true, group_adds: "everyone" });
    expect(defaultSettings({ READ_RECEIPTS_DEFAULT: "off" }).read_receipts).toBe(false);
    expect(defaultSettings({ READ_RECEIPTS_DEFAULT: " On " }).read_receipts).toBe(true);
    expect(defaultSettings({ READ_RECEIPTS_DEFAULT: "yes please" }).read_receipts).toBe(false);
    // The user's choice wins over either default; garbage stored is no choice.
    expect(effectiveSettings({ read_receipts: false }, defaultSettings({ READ_RECEIPTS_DEFAULT: "on" })).read_receipts).toBe(false);
    expect(effectiveSettings(storedChoices("{broken"), defaultSettings({ READ_RECEIPTS_DEFAULT: "on" })).read_receipts).toBe(true);
    expect(storedChoices('{"read_receipts":"yes","share_presence":false,"other":1}')).toEqual({ share_presence: false });
  });

  it("stores only what the user chose, so a default that changes reaches those who never chose", async () => {
    const bob = await register("bob");
    expect((await call("GET", "/v1/me/settings", { token: bob.access_token })).body).toEqual({ read_receipts: false, share_presence: true, push_previews: true, group_adds: "everyone" });
    await call("PATCH", "/v1/me/settings", { token: bob.access_token, body: { share_presence: false } });
    expect(JSON.parse(await storedSettings(bob))).toEqual({ share_presence: false });
    await call("PATCH", "/v1/me/settings", { token: bob.access_token, body: { read_receipts: true } });
    await call("PATCH", "/v1/me/settings", { token: bob.access_token, body: { share_presence: true } });
    expect(JSON.parse(await storedSettings(bob))).toEqual({ read_receipts: true, share_presence: true });
    expect((await call("GET", "/v1/me/settings", { token: bob.access_token })).body).toEqual({ read_receipts: true, share_presence: true, push_previews: true, group_adds: "everyone" });
  });

  it("keeps an unshared cursor out of the channel's details, and shares where the reader is once they opt in", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    const [a, b] = await Promise.all([onlineDevice(alice.access_token, "a"), onlineDevice(bob.access_token, "b")]);
    const first = await a.sendText(channel, "one");
    await b.messages(1);
    b.send({ type: T.READ, read: { channel_id: channel, up_to_seq: first.send_ack!.seq } });
    expect((await b.next(T.READ)).read?.up_to_seq).toBe(first.send_ack!.seq); // bob's own devices sync
    await b.sendText(channel, "fence");
    await a.messages(1);
    expect(a.frames.filter((f) => f.type === T.READ)).toHaveLength(0);
    expect(await cursorShown(alice, channel, bob)).toBe(0);

    await call("PATCH", "/v1/me/settings", { token: bob.access_token, body: { read_receipts: true } });
    const second = await a.sendText(channel, "two");
    await b.messages(1);
    b.send({ type: T.READ, read: { channel_id: channel, up_to_seq: second.send_ack!.seq } });
    expect((await a.next(T.READ)).read).toMatchObject({ user_id: bob.user_id, up_to_seq: second.send_ack!.seq });
    expect(await cursorShown(alice, channel, bob)).toBe(second.send_ack!.seq);

    // Off again: the cursor shown stays where it was shared last.
    await call("PATCH", "/v1/me/settings", { token: bob.access_token, body: { read_receipts: false } });
    const third = await a.sendText(channel, "three");
    await b.messages(1);
    b.send({ type: T.READ, read: { channel_id: channel, up_to_seq: third.send_ack!.seq } });
    await b.next(T.READ);
    expect(await cursorShown(alice, channel, bob)).toBe(second.send_ack!.seq);
    a.close(); b.close();
  });
});
