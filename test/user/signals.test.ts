import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { pb } from "../../protocol/codec.js";
import { TYPING_MIN_INTERVAL_MS, TypingGuard } from "../../durable-objects/channel/typing-guard.js";
import { memoryRecorder, recordMetricsWith } from "../../shared/metrics.js";
import { channelStub } from "../../shared/routing.js";
import { call, createGroup, register } from "../helpers/api.js";
import { onlineDevice } from "../helpers/socket.js";

const T = pb.FrameType;

describe("typing indicators and read receipts", () => {
  it("passes typing to the other members' devices, not to the typist's own", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    const [a1, a2, b1] = await Promise.all([onlineDevice(alice.access_token, "a1"), onlineDevice(alice.access_token, "a2"), onlineDevice(bob.access_token, "b1")]);
    a1.send({ type: T.TYPING, typing: { channel_id: channel, is_typing: true } });
    const t = await b1.next(T.TYPING);
    expect(t.typing).toMatchObject({ channel_id: channel, user_id: alice.user_id, device_id: "a1", is_typing: true });
    // A repeat within the guard window is dropped; the stop is passed on.
    a1.send({ type: T.TYPING, typing: { channel_id: channel, is_typing: true } });
    a1.send({ type: T.TYPING, typing: { channel_id: channel, is_typing: false } });
    const stop = await b1.next(T.TYPING);
    expect(stop.typing?.is_typing).toBeFalsy();
    await b1.sendText(channel, "fence");
    await a2.messages(1);
    expect(a2.frames.filter((f) => f.type === T.TYPING)).toHaveLength(0);
    expect(a1.frames.filter((f) => f.type === T.ERROR)).toHaveLength(0);
    for (const d of [a1, a2, b1]) d.close();
  });

  it("sends read receipts to the other members and stores the cursor for those who missed it", async () => {
    const alice = await register("alice"), bob = await register("bob"), carol = await register("carol");
    await call("PATCH", "/v1/me/settings", { token: bob.access_token, body: { read_receipts: true } });
    const channel = await createGroup(alice, [bob, carol]);
    const [a, b] = await Promise.all([onlineDevice(alice.access_token, "a"), onlineDevice(bob.access_token, "b")]);
    const ack = await a.sendText(channel, "did you read this?");
    await b.messages(1);
    b.send({ type: T.READ, read: { channel_id: channel, up_to_seq: ack.send_ack!.seq } });
    const receipt = await a.next(T.READ);
    expect(receipt.read).toMatchObject({ channel_id: channel, user_id: bob.user_id, up_to_seq: ack.send_ack!.seq });
    const detail = await call<{ channel: { member_list: { user_id: string; last_read_seq: number }[] } }>("GET", `/v1/channels/${channel}`, { token: carol.access_token });
    expect(detail.body.channel.member_list.find((m) => m.user_id === bob.user_id)?.last_read_seq).toBe(ack.send_ack!.seq);
    a.close(); b.close();
  });

  it("keeps a reader's receipts private when they turn them off", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    expect((await call("GET", "/v1/me/settings", { token: bob.access_token })).body).toEqual({ read_receipts: false, share_presence: true, push_previews: true, group_adds: "everyone" });
    expect((await call("PATCH", "/v1/me/settings", { token: bob.access_token, body: { read_receipts: true } })).body).toEqual({ read_receipts: true, share_presence: true, push_previews: true, group_adds: "everyone" });
    const off = await call("PATCH", "/v1/me/settings", { token: bob.access_token, body: { read_receipts: false } });
    expect(off.body).toEqual({ read_receipts: false, share_presence: true, push_previews: true, group_adds: "everyone" });
    const bad = await call("PATCH", "/v1/me/settings", { token: bob.access_token, body: { read_receipts: "yes" } });
    expect(bad.status).toBe(400);
    const [a, b] = await Promise.all([onlineDevice(alice.access_token, "a"), onlineDevice(bob.access_token, "b")]);
    const ack = await a.sendText(channel, "private?");
    await b.messages(1);
    b.send({ type: T.READ, read: { channel_id: channel, up_to_seq: ack.send_ack!.seq } });
    expect((await b.next(T.READ)).read?.user_id).toBe(bob.user_id); // bob's own devices still sync
    await b.sendText(channel, "fence");
    await a.messages(1);
    expect(a.frames.filter((f) => f.type === T.READ)).toHaveLength(0);
    a.close(); b.close();
  });

  it("passes a typing state on change only, at most one start per interval (controlled clock)", () => {
    const g = new TypingGuard();
    const passed: string[] = [];
    for (let t = 0; t < 6_000; t += 10) if (g.pass("u", (t / 10) % 2 === 0, t)) passed.push(`${t}:${(t / 10) % 2 === 0}`);
    // 600 alternating frames over 6 s: a start and a stop per 3 s.
    expect(passed).toEqual(["0:true", "10:false", "3000:true", "3010:false"]);
    expect(g.pass("v", false, 0)).toBe(false); // nothing to stop
    expect(g.pass("v", true, 0)).toBe(true);
    expect(g.pass("v", true, 1_000)).toBe(false); // a repeat
    expect(g.pass("v", true, TYPING_MIN_INTERVAL_MS)).toBe(true); // the keep-alive
  });

  it("fans out a flood of 500 alternating typing frames a handful of times, not 500", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    const b = await onlineDevice(bob.access_token, "b");
    const seen = memoryRecorder();
    const restore = recordMetricsWith(seen);
    const started = Date.now();
    try {
      const stub = channelStub(env, channel);
      for (let i = 0; i < 500; i++) expect((await stub.typing(alice.user_id, "a", i % 2 === 0)).ok).toBe(true);
    } finally {
      restore();
    }
    // A start and a stop per interval the flood lasted (however slow this machine is), never 500.
    const intervals = Math.ceil((Date.now() - started) / TYPING_MIN_INTERVAL_MS);
    expect(seen.total("typing.forwarded")).toBeGreaterThanOrEqual(1);
    expect(seen.total("typing.forwarded")).toBeLessThanOrEqual(2 * intervals);
    expect((await b.next(T.TYPING)).typing).toMatchObject({ user_id: alice.user_id, is_typing: true });
    b.close();
  });
});
