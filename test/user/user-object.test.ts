import { describe, expect, it } from "vitest";
import { pb } from "../../protocol/codec.js";
import { LIMITS } from "../../protocol/limits.js";
import { call, createDm, createGroup, register, type TestUser } from "../helpers/api.js";
import { connectDevice, helloDevice, onlineDevice, type Msg } from "../helpers/socket.js";

const T = pb.FrameType;
const texts = (ms: Msg[]) => ms.map((m) => m.content?.text?.text ?? m.content?.system?.text);

/**
 * Waits until `user`'s UserObject has been told of `channelId` up to `seq`: the fan-out of what
 * was sent is over, so a device that connects now gets nothing of it live. (What arrives live
 * between HELLO and RESUMED waits for the replay: test/user/reconnect-order.test.ts.)
 */
async function heardUpTo(user: TestUser, channelId: string, seq: number, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const list = await call<{ channels: { channel_id: string; last_seq: number }[] }>("GET", "/v1/channels", { token: user.access_token });
    if ((list.body.channels.find((c) => c.channel_id === channelId)?.last_seq ?? 0) >= seq) return;
    if (Date.now() > deadline) throw new Error(`${user.username} not told of ${channelId} up to seq ${seq} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("UserObject: devices and fan-out", () => {
  it("delivers to every device of every member, the sender's other devices included, not the sending one", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    const [phone, laptop, bob1, bob2] = await Promise.all([
      onlineDevice(alice.access_token, "phone"), onlineDevice(alice.access_token, "laptop"),
      onlineDevice(bob.access_token, "b1"), onlineDevice(bob.access_token, "b2"),
    ]);
    const ack = await phone.sendText(channel, "from the phone");
    expect(ack.send_ack?.status).toBe("stored");
    for (const d of [laptop, bob1, bob2]) {
      const [m] = await d.messages(1);
      expect(m?.server_msg_id).toBe(ack.send_ack?.server_msg_id);
      expect(m?.sender_device_id).toBe("phone");
      expect(m?.content?.text?.text).toBe("from the phone");
    }
    // A later message from bob is the fence: the phone gets it, and never got its own.
    await bob1.sendText(channel, "fence");
    const [fence] = await phone.messages(1);
    expect(fence?.content?.text?.text).toBe("fence");
    expect(phone.frames.filter((f) => f.type === T.DELIVER)).toHaveLength(0);
    for (const d of [phone, laptop, bob1, bob2]) d.close();
  });

  it("refuses an 11th device with a clear error, over the socket and over REST", async () => {
    const carol = await register("carol");
    for (let i = 0; i < LIMITS.maxDevicesPerUser; i++) {
      const r = await call("POST", "/v1/devices", { token: carol.access_token, body: { device_id: `dev${i}`, name: `Device ${i}` } });
      expect(r.status).toBe(201);
    }
    const eleventh = await connectDevice(carol.access_token, "dev-eleven");
    const err = await eleventh.next(T.ERROR);
    expect(err.error?.code).toBe("too_many_devices");
    expect(err.error?.retryable).toBe(false);
    expect((await eleventh.waitClosed()).code).toBe(4009);
    const rest = await call("POST", "/v1/devices", { token: carol.access_token, body: { device_id: "dev-eleven" } });
    expect(rest.status).toBe(409);
    expect(rest.body).toMatchObject({ code: "too_many_devices", retryable: false });
    // A known device still connects; removing one makes room.
    const known = await onlineDevice(carol.access_token, "dev3");
    expect(await call("DELETE", "/v1/devices/dev3", { token: carol.access_token }).then((r) => r.status)).toBe(204);
    expect((await known.waitClosed()).code).toBe(4000);
    const now = await onlineDevice(carol.access_token, "dev-eleven");
    const list = await call<{ devices: { device_id: string; connected: boolean }[] }>("GET", "/v1/devices", { token: carol.access_token });
    expect(list.body.devices).toHaveLength(10);
    expect(list.body.devices.find((d) => d.device_id === "dev-eleven")?.connected).toBe(true);
    now.close();
  });

  it("replaces an older connection of the same device with CONFLICT", async () => {
    const dan = await register("dan");
    const first = await onlineDevice(dan.access_token, "tablet");
    const second = await onlineDevice(dan.access_token, "tablet");
    const conflict = await first.next(T.CONFLICT);
    expect(conflict.conflict?.device_id).toBe("tablet");
    expect((await first.waitClosed()).code).toBe(4409);
    expect(second.closed).toBeUndefined();
    second.close();
  });

  it("RESUME sends exactly the missed messages, in order, once; then the channel states", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    const other = await createDm(alice, bob);
    let laptop = await helloDevice(alice.access_token, "laptop");
    const first = await laptop.resume([]);
    expect(first.messages.map((m) => [m.channel_id, m.seq, m.content?.system?.event]).sort()).toEqual([[channel, 1, "created"], [other, 1, "created"]].sort());
    const cursors = new Map(first.messages.map((m) => [m.channel_id!, m.seq!]));
    laptop.close();
    await laptop.waitClosed();

    const bobDevice = await onlineDevice(bob.access_token, "bob-phone");
    const acks = await bobDevice.sendTexts(Array.from({ length: 500 }, (_, i) => ({ channelId: i % 5 === 0 ? other : channel, text: `m${i}` })));
    expect(acks.filter((f) => f.type !== T.SEND_ACK)).toEqual([]);
    await heardUpTo(alice, channel, 401);
    await heardUpTo(alice, other, 101);
    laptop = await helloDevice(alice.access_token, "laptop");
    const { messages, resumed } = await laptop.resume([...cursors].map(([channel_id, last_seq]) => ({ channel_id, last_seq })));
    expect(messages).toHaveLength(500);
    for (const id of [channel, other]) {
      const seqs = messages.filter((m) => m.channel_id === id).map((m) => m.seq);
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => cursors.get(id)! + 1 + i));
    }
    expect(new Set(messages.map((m) => m.server_msg_id)).size).toBe(500);
    const states = resumed.resumed?.channels ?? [];
    expect(states.find((c) => c.channel_id === channel)).toMatchObject({ last_seq: 401, unread_count: 400, name: "Team" });
    // A DM has no name of its own, and the list copies no names: clients title it from the other member's profile.
    expect(states.find((c) => c.channel_id === other)).toMatchObject({ type: "dm", unread_count: 100, name: "" });
    expect(states.find((c) => c.channel_id === other)?.member_user_ids?.sort()).toEqual([alice.user_id, bob.user_id].sort());
    laptop.close(); bobDevice.close();
  }, 90_000);

  it("falls back to the device's DELIVER_ACK cursor when RESUME omits a channel", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    const bobDevice = await onlineDevice(bob.access_token, "b");
    let a = await helloDevice(alice.access_token, "a");
    await a.resume([]);
    for (let i = 0; i < 3; i++) await bobDevice.sendText(channel, `early ${i}`);
    const early = await a.messages(3);
    a.send({ type: T.DELIVER_ACK, deliver_ack: { channel_id: channel, seq: early.at(-1)!.seq! } });
    await a.sendText(channel, "fence"); // processed after the ack on the same socket
    a.close();
    for (let i = 0; i < 2; i++) await bobDevice.sendText(channel, `late ${i}`);
    a = await helloDevice(alice.access_token, "a");
    const { messages } = await a.resume([]); // no cursors: the server's record of this device applies
    expect(texts(messages)).toEqual(["fence", "late 0", "late 1"]);
    a.close(); bobDevice.close();
  });

  it("holds live messages that arrive during a RESUME so nothing is sent twice or out of order", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    const bobDevice = await onlineDevice(bob.access_token, "b");
    const before = await bobDevice.sendTexts(Array.from({ length: 300 }, (_, i) => ({ channelId: channel, text: `before ${i}` })));
    expect(before.filter((f) => f.type !== T.SEND_ACK)).toEqual([]);
    await heardUpTo(alice, channel, 301);
    const a = await helloDevice(alice.access_token, "a");
    const resume = a.send({ type: T.RESUME, resume: { cursors: [{ channel_id: channel, last_seq: 1 }] } });
    // Once the replay is under way (its first page is here), live messages, one at a time, so
    // they keep arriving while it pages the 300 out.
    await a.waitFor((f) => f.type === T.DELIVER, 15_000);
    const live = (async () => { for (let i = 0; i < 30; i++) await bobDevice.sendText(channel, `during ${i}`); })();
    await a.take((f) => f.type === T.RESUMED && f.request_id === resume, 15_000);
    await live;
    const all: Msg[] = [];
    for (let f = a.frames.find((x) => x.type === T.DELIVER); f; f = a.frames.find((x) => x.type === T.DELIVER)) {
      a.frames.splice(a.frames.indexOf(f), 1);
      all.push(...(f.deliver?.messages ?? []));
    }
    while (all.length < 330) {
      const f = await a.next(T.DELIVER, 10_000).catch(() => undefined);
      if (!f) break;
      all.push(...(f.deliver?.messages ?? []));
    }
    expect(all.map((m) => m.seq)).toEqual(Array.from({ length: 330 }, (_, i) => i + 2));
    a.close(); bobDevice.close();
  }, 90_000);

  it("READ moves the cursor on every device of the reader and lists unread counts", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const g1 = await createGroup(alice, [bob], "First");
    const g2 = await createGroup(alice, [bob], "Second");
    const bobDevice = await onlineDevice(bob.access_token, "b");
    for (let i = 0; i < 4; i++) await bobDevice.sendText(g1, `x${i}`);
    await bobDevice.sendText(g2, "newest");
    const list = await call<{ channels: { channel_id: string; unread_count: number; last_seq: number }[] }>("GET", "/v1/channels", { token: alice.access_token });
    expect(list.body.channels.map((c) => [c.channel_id, c.unread_count])).toEqual([[g2, 1], [g1, 4]]);
    const [p, q] = await Promise.all([onlineDevice(alice.access_token, "p"), onlineDevice(alice.access_token, "q")]);
    p.send({ type: T.READ, read: { channel_id: g1, up_to_seq: 3 } });
    for (const d of [p, q]) {
      const r = await d.next(T.READ);
      expect(r.read).toMatchObject({ channel_id: g1, up_to_seq: 3, unread_count: 2 });
    }
    p.send({ type: T.READ, read: { channel_id: g1, up_to_seq: 1 } }); // backwards: stays at 3
    expect((await q.next(T.READ)).read?.up_to_seq).toBe(3);
    const after = await call<{ channels: { channel_id: string; unread_count: number; last_read_seq: number }[] }>("GET", "/v1/channels", { token: alice.access_token });
    expect(after.body.channels.find((c) => c.channel_id === g1)).toMatchObject({ unread_count: 2, last_read_seq: 3 });
    p.close(); q.close(); bobDevice.close();
  });

  it("pages history over the socket in both directions", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    const a = await onlineDevice(alice.access_token, "a");
    for (let i = 0; i < 12; i++) await a.sendText(channel, `h${i}`);
    let id = a.send({ type: T.PULL_HISTORY, pull_history: { channel_id: channel, limit: 5 } });
    const newest = (await a.take((f) => f.request_id === id)).history_page!;
    expect(newest.messages?.map((m) => m.seq)).toEqual([9, 10, 11, 12, 13]);
    expect([newest.has_more, newest.next_cursor, newest.last_seq]).toEqual([true, 9, 13]);
    id = a.send({ type: T.PULL_HISTORY, pull_history: { channel_id: channel, before_seq: 9, limit: 5 } });
    expect((await a.take((f) => f.request_id === id)).history_page?.messages?.map((m) => m.seq)).toEqual([4, 5, 6, 7, 8]);
    id = a.send({ type: T.PULL_HISTORY, pull_history: { channel_id: channel, after_seq: 0, limit: 3 } });
    const fromStart = (await a.take((f) => f.request_id === id)).history_page!;
    expect(fromStart.messages?.map((m) => m.seq)).toEqual([1, 2, 3]);
    expect(fromStart.next_cursor).toBe(3);
    a.close();
  });
});
