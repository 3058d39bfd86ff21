/**
 * The core promise, end to end: a real `wrangler dev`, three users with two devices each on real
 * WebSockets through the project's own SDK, a group conversation with concurrent senders.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { createClient, type ChatMessage, type EdgechatClient, type MessageUpdate, type PresenceEvent, type WebSocketConstructor } from "../../client/index.js";
import { decodeFrame, encodeFrame, pb } from "../../protocol/codec.js";
import type { edgechat } from "../../protocol/generated/chat.js";

type SendAckPayload = edgechat.v1.ISendAck;
import { startDevServer, type DevServer } from "../support/dev-server.js";

let server: DevServer;
beforeAll(async () => { server = await startDevServer(); });
afterAll(async () => { await server?.stop(); });

const PASSWORD = "correct horse battery";

/** One device: an SDK client plus everything it has emitted, per channel, in order. */
class Device {
  readonly seen = new Map<string, ChatMessage[]>();
  readonly updates: MessageUpdate[] = [];
  readonly presence: PresenceEvent[] = [];
  constructor(readonly name: string, readonly client: EdgechatClient) {
    client.on("message", (m) => {
      const list = this.seen.get(m.channel_id) ?? [];
      list.push(m);
      this.seen.set(m.channel_id, list);
    });
    client.on("messageUpdated", (u) => this.updates.push(u));
    client.on("presence", (p) => this.presence.push(p));
  }
  /** The newest presence this device heard of `userId`. */
  presenceOf(userId: string): PresenceEvent | undefined {
    return this.presence.filter((p) => p.user_id === userId).at(-1);
  }
  count(channelId: string): number {
    return this.seen.get(channelId)?.length ?? 0;
  }
}

function device(name: string, username: string, deviceId: string, encoding: "proto" | "json" = "proto"): Device {
  return new Device(name, createClient({
    url: server.url, deviceId, encoding, credentials: { username, password: PASSWORD },
    WebSocket: WebSocket as unknown as WebSocketConstructor,
  }));
}

async function until(what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function assertSameStream(devices: Device[], channelId: string, expected: number): void {
  const reference = devices[0]!.seen.get(channelId)!;
  for (const d of devices) {
    const list = d.seen.get(channelId) ?? [];
    expect(list.length, `${d.name} saw each message once`).toBe(expected);
    expect(list.map((m) => m.seq), `${d.name} in seq order`).toEqual(Array.from({ length: expected }, (_, i) => i + 1));
    expect(list.map((m) => m.server_msg_id), `${d.name} same messages`).toEqual(reference.map((m) => m.server_msg_id));
  }
}

describe("a group conversation across 3 users × 2 devices", () => {
  const names = ["alice", "bob", "carol"].map((n) => `${n}_${Math.random().toString(36).slice(2, 7)}`);
  let devices: Device[] = [];
  let channelId = "";

  it("registers, creates the group, connects six devices (protobuf and JSON)", async () => {
    const owners = names.map((n) => device(`${n}/phone`, n, `${n}-phone`));
    for (const [i, d] of owners.entries()) await d.client.register({ username: names[i]!, password: PASSWORD });
    const seconds = names.map((n) => device(`${n}/laptop`, n, `${n}-laptop`, "json"));
    devices = [...owners, ...seconds];
    const group = await owners[0]!.client.channels.create({ type: "group", name: "Launch", members: [names[1]!, names[2]!] });
    channelId = group.channel_id;
    await Promise.all(devices.map((d) => d.client.connect()));
    await until("the creation notice everywhere", () => devices.every((d) => d.count(channelId) === 1));
    expect(devices[5]!.seen.get(channelId)![0]!.content.system?.event).toBe("created");
  });

  it("delivers every message to every device exactly once, in one seq order", async () => {
    const perDevice = 25;
    const acks = await Promise.all(devices.map((d) =>
      Promise.all(Array.from({ length: perDevice }, (_, i) => d.client.send(channelId, `${d.name} #${i}`)))));
    const total = 1 + perDevice * devices.length;
    await until("every device to hold every message", () => devices.every((d) => d.count(channelId) === total));
    assertSameStream(devices, channelId, total);
    // Each sender's own messages keep their send order (one socket, one channel, one writer).
    for (const [i, d] of devices.entries()) {
      const seqs = acks[i]!.map((a) => a.seq);
      expect([...seqs].sort((a, b) => a - b), d.name).toEqual(seqs);
    }
  });

  it("stores a retried SEND once and acks it with the same ids, even across reconnects", async () => {
    const token = devices[0]!.client.session()!.access_token;
    const clientMsgId = crypto.randomUUID();
    const sendOnce = async (deviceId: string) => {
      const ws = new WebSocket(`${server.wsUrl}/v1/connect?device_id=${deviceId}&access_token=${token}`, "edgechat.v1.proto");
      ws.binaryType = "arraybuffer";
      const ack = await new Promise<SendAckPayload>((resolve, reject) => {
        ws.on("error", reject);
        ws.on("message", (data: ArrayBuffer) => {
          const f = decodeFrame(data, "proto");
          if (f.ok && f.frame.type === pb.FrameType.HELLO) {
            ws.send(encodeFrame({ type: pb.FrameType.SEND, request_id: 1, send: { channel_id: channelId, client_msg_id: clientMsgId, content: { text: { text: "exactly once" } } } }, "proto"));
          }
          if (f.ok && f.frame.type === pb.FrameType.SEND_ACK) resolve(f.frame.send_ack as SendAckPayload);
          if (f.ok && f.frame.type === pb.FrameType.ERROR) reject(new Error(f.frame.error?.message ?? "error"));
        });
      });
      ws.close();
      return ack;
    };
    const first = await sendOnce("retry-device");
    const second = await sendOnce("retry-device"); // a new connection, as after a network drop
    const third = await sendOnce("another-device");
    expect(first.status).toBe("stored");
    expect([second.status, third.status]).toEqual(["duplicate", "duplicate"]);
    expect(new Set([first.server_msg_id, second.server_msg_id, third.server_msg_id]).size).toBe(1);
    const page = await devices[1]!.client.history(channelId, { after: first.seq! - 1, limit: 5 });
    expect(page.messages.filter((m) => m.client_msg_id === clientMsgId)).toHaveLength(1);
    await until("the retried message once everywhere", () => devices.every((d) => d.count(channelId) === first.seq!));
  });

  it("catches up a device that was offline with RESUME: exactly the gap, in order, once", async () => {
    const offline = devices[5]!; // carol's laptop
    const before = offline.count(channelId);
    offline.client.disconnect();
    const senders = [devices[0]!, devices[1]!, devices[3]!];
    const missed = 500;
    await Promise.all(senders.map((d, k) =>
      Promise.all(Array.from({ length: Math.ceil(missed / senders.length) }, (_, i) => k * 1000 + i)
        .slice(0, k === senders.length - 1 ? missed - Math.ceil(missed / senders.length) * (senders.length - 1) : undefined)
        .map((i) => d.client.send(channelId, `while carol's laptop was away ${i}`)))));
    const online = devices.filter((d) => d !== offline);
    const total = before + missed;
    await until("online devices to have the new messages", () => online.every((d) => d.count(channelId) === total));
    expect(offline.count(channelId)).toBe(before);
    await offline.client.connect();
    await until("the laptop to catch up", () => offline.count(channelId) === total);
    // The marker: one more message, sent now. Anything extra for the laptop (a repeat, a late
    // copy) would reach it before this one.
    await devices[0]!.client.send(channelId, "after the catch-up");
    await until("the marker everywhere", () => devices.every((d) => d.count(channelId) >= total + 1));
    assertSameStream(devices, channelId, total + 1);
    expect(offline.client.channelStates().find((c) => c.channel_id === channelId)?.last_seq).toBe(total + 1);
  });

  afterAll(() => { for (const d of devices) d.client.disconnect(); });
});

describe("reactions, edits, deletes and presence through the SDK", () => {
  const names = ["dana", "erik"].map((n) => `${n}_${Math.random().toString(36).slice(2, 7)}`);
  let dana: Device, danaTablet: Device, erik: Device;
  let channelId = "";

  afterAll(() => { for (const d of [dana, danaTablet, erik]) d?.client.disconnect(); });

  it("applies every change on every device, in order, and catches up a device that was away", async () => {
    dana = device("dana/phone", names[0]!, "dana-phone");
    danaTablet = device("dana/tablet", names[0]!, "dana-tablet", "json");
    erik = device("erik/phone", names[1]!, "erik-phone", "json");
    await dana.client.register({ username: names[0]!, password: PASSWORD });
    await erik.client.register({ username: names[1]!, password: PASSWORD });
    channelId = (await dana.client.channels.create({ type: "dm", member: names[1]! })).channel_id;
    await Promise.all([dana, danaTablet, erik].map((d) => d.client.connect()));
    const ack = await dana.client.send(channelId, "see you at 7");
    await until("the message on erik's phone", () => erik.count(channelId) === 2);

    danaTablet.client.disconnect(); // away while the message changes
    const reacted = await erik.client.react(channelId, ack.seq, "👍");
    expect(reacted.message.reactions).toEqual([{ emoji: "👍", user_ids: [erik.client.userId] }]);
    const edited = await dana.client.editMessage(channelId, ack.seq, "see you at 8");
    expect(edited).toMatchObject({ kind: "edited", message: { content: { text: { text: "see you at 8" } } } });
    await erik.client.react(channelId, ack.seq, "👍", "remove");
    await dana.client.react(channelId, ack.seq, "🎉");
    await until("four changes on dana's phone and erik's", () => [dana, erik].every((d) => d.updates.filter((u) => u.message.seq === ack.seq).length >= 4));

    // The tablet comes back: the changes arrive in the order they were made, and end in the same state.
    await danaTablet.client.connect();
    await until("the tablet to catch up", () => danaTablet.updates.filter((u) => u.message.seq === ack.seq).length >= 4);
    for (const d of [dana, danaTablet, erik]) {
      const final = d.updates.filter((u) => u.message.seq === ack.seq).at(-1)!.message;
      expect(final.content.text?.text, d.name).toBe("see you at 8");
      expect(final.reactions, d.name).toEqual([{ emoji: "🎉", user_ids: [dana.client.userId] }]);
      // Changes never show up as messages, and nobody counts them as unread.
      expect(d.seen.get(channelId)?.map((m) => m.seq), d.name).toEqual([1, 2]);
    }
    expect(erik.client.channelStates().find((c) => c.channel_id === channelId)?.unread_count).toBe(1);

    // Delete for everyone: a tombstone on all three; the history page says so too.
    await dana.client.deleteMessage(channelId, ack.seq, { forEveryone: true });
    await until("the tombstone everywhere", () => [dana, danaTablet, erik].every((d) => d.updates.at(-1)?.message.deleted === true));
    const page = await erik.client.history(channelId, { after: 0 });
    expect(page.messages.map((m) => [m.seq, m.deleted])).toEqual([[1, false], [2, true]]);
    expect(page.updates.map((u) => u.kind)).toEqual(["reactions", "edited", "reactions", "reactions", "deleted"]);
    expect(JSON.stringify(page)).not.toContain("see you at");
  });

  it("shows each other online and away, and offline with a last-seen time after the grace", async () => {
    const erikId = erik.client.userId!;
    await until("dana's phone to see erik online", () => dana.presenceOf(erikId)?.status === "online");
    await erik.client.setPresence("away");
    await until("dana's devices to see erik away", () => [dana, danaTablet].every((d) => d.presenceOf(erikId)?.status === "away"));
    const left = Date.now();
    erik.client.disconnect();
    await until("erik offline, seen just now", () => dana.presenceOf(erikId)?.status === "offline");
    expect(dana.presenceOf(erikId)!.last_seen).toBeGreaterThanOrEqual(left - 2000);
    const [pulled] = await dana.client.users.presence([erikId]);
    expect(pulled).toMatchObject({ user_id: erikId, status: "offline" });
  });
});
