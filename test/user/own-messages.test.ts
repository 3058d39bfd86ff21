/**
 * The user's own posts from their appends' answers (docs/decisions/033): the channel leaves the
 * sender out of rounds that hold only such posts, so the sender's object folds them into its list
 * and writes them to the user's other devices itself, in seq order with what the rounds bring,
 * never ahead of a hole. LiveChannels over real storage, with a host that records what the
 * devices were sent.
 */
import { describe, expect, it } from "vitest";
import { ChannelList, emptyRow } from "../../durable-objects/user/channel-list.js";
import { LiveChannels, type LiveHost } from "../../durable-objects/user/live-channels.js";
import type { ChatMessageData, DeliveryBatch } from "../../durable-objects/channel/types.js";
import { call, createDm, register } from "../helpers/api.js";
import { inFreshUser } from "../helpers/object-sql.js";
import { onlineDevice } from "../helpers/socket.js";

const ME = "u_me", BOB = "u_bob", CHANNEL = "c1";

function msg(seq: number, sender: string): ChatMessageData {
  return {
    channel_id: CHANNEL, server_msg_id: "", hlc: seq.toString(16).padStart(16, "0"), seq, client_msg_id: `k${seq}`, sender_user_id: sender,
    sender_device_id: sender === ME ? "phone" : "b1", server_ts: 1000 + seq, content: { text: { text: `#${seq}` } },
  };
}

function setup(sql: SqlStorage) {
  const list = new ChannelList(sql);
  list.write({ ...emptyRow(CHANNEL), member_count: 2, members: JSON.stringify([ME, BOB]), subscribed: 1 });
  const emitted: number[] = [];
  const pushRead: number[] = [];
  const host: LiveHost = {
    me: () => ME, openSockets: () => 2,
    channel: () => { throw new Error("no channel calls expected"); },
    forget: () => {}, history: () => { throw new Error("no history expected"); },
    emit: (messages) => emitted.push(...messages.map((m) => m.seq)),
    anyReceiving: () => true, channelUpdate: () => {}, contactsAdded: () => {}, wakeAt: () => {}, graceMs: 1000,
    pushWanted: () => false, pushMissed: () => {}, pushRead: (_channelId, messages) => pushRead.push(...messages.map((m) => m.seq)),
    socketsKeptRows: () => true,
  };
  const live = new LiveChannels(sql, list, host);
  const round = (...seqs: [number, string][]): DeliveryBatch => ({
    channel: { channel_id: CHANNEL, type: "group", name: "", member_count: 2, member_user_ids: [ME, BOB], members: [], last_seq: 0, last_hlc: "" },
    messages: seqs.map(([s, from]) => msg(s, from)), removed_user_ids: [],
  });
  return { list, live, emitted, pushRead, round, row: () => list.row(CHANNEL)! };
}

describe("own posts from the append's answer", () => {
  it("applies a post that follows what the list holds at once: the row, the other devices, push", async () => {
    await inFreshUser((sql) => {
      const { live, emitted, pushRead, round, row } = setup(sql);
      live.deliver(round([1, BOB], [2, BOB]));
      live.ownStored(CHANNEL, [msg(3, ME), msg(4, ME)]);
      expect(emitted).toEqual([1, 2, 3, 4]);
      expect(pushRead).toEqual([1, 2, 3, 4]); // every delivery, and the answer, tells push what the user has seen
      expect(row()).toMatchObject({ last_seq: 4, sent_seq: 4, last_read_seq: 4, unread_count: 0, last_activity_at: 1004 });
    });
  });

  it("waits behind a round still on its way, then applies both in seq order, once", async () => {
    await inFreshUser((sql) => {
      const { live, emitted, round, row } = setup(sql);
      live.deliver(round([1, BOB]));
      // The answer for 3 comes before the round that carries bob's 2.
      live.ownStored(CHANNEL, [msg(3, ME)]);
      expect(emitted).toEqual([1]);
      expect(row()).toMatchObject({ last_seq: 1, unread_count: 1 });
      live.deliver(round([2, BOB]));
      expect(emitted).toEqual([1, 2, 3]);
      expect(row()).toMatchObject({ last_seq: 3, sent_seq: 3, last_read_seq: 3, unread_count: 0 });
      // A round that carries 3 as well (a relay, a repeat after a restart) adds nothing.
      live.deliver(round([3, ME], [4, BOB]));
      expect(emitted).toEqual([1, 2, 3, 4]);
      expect(row()).toMatchObject({ last_seq: 4, unread_count: 1 });
    });
  });

  it("drops an answer for a post the rounds brought already, and keeps waiting posts apart by seq", async () => {
    await inFreshUser((sql) => {
      const { live, emitted, round, row } = setup(sql);
      live.deliver(round([1, ME], [2, BOB]));
      live.ownStored(CHANNEL, [msg(1, ME)]);
      expect(emitted).toEqual([1, 2]);
      live.ownStored(CHANNEL, [msg(5, ME)]);
      live.ownStored(CHANNEL, [msg(4, ME), msg(5, ME)]);
      live.deliver(round([3, BOB]));
      expect(emitted).toEqual([1, 2, 3, 4, 5]);
      expect(row().last_seq).toBe(5);
    });
  });
});

describe("own posts between real objects", () => {
  it("reach the sender's other device in seq order with the other member's, each once, and the list counts them", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createDm(alice, bob);
    const [phone, laptop, b1] = await Promise.all([
      onlineDevice(alice.access_token, "phone"), onlineDevice(alice.access_token, "laptop"), onlineDevice(bob.access_token, "b1"),
    ]);
    const items = (who: string) => Array.from({ length: 40 }, (_, i) => ({ channelId: channel, text: `${who}${i}` }));
    const [fromAlice, fromBob] = await Promise.all([phone.sendTexts(items("a"), 8), b1.sendTexts(items("b"), 8)]);
    const seqs = (answers: { send_ack?: { seq?: unknown } | null }[]) => answers.map((f) => Number(f.send_ack?.seq));
    const aliceSeqs = seqs(fromAlice), bobSeqs = seqs(fromBob);
    const all = [...aliceSeqs, ...bobSeqs].sort((x, y) => x - y);
    expect(new Set(all).size).toBe(80);
    // Every frame each device got, from its first: strictly increasing seqs, nothing twice, no hole.
    const got = async (d: typeof laptop, n: number) => (await d.messages(n, 30_000)).map((m) => Number(m.seq));
    expect(await got(laptop, 80)).toEqual(all);
    expect(await got(phone, 40)).toEqual(bobSeqs);
    expect(await got(b1, 40)).toEqual(aliceSeqs);
    // alice has read up to her last post; bob's after it are unread. Her list says the same as the channel.
    const lastOwn = Math.max(...aliceSeqs);
    const unread = bobSeqs.filter((s) => s > lastOwn).length;
    const list = await call<{ channels: { channel_id: string; last_seq: number; unread_count: number; last_read_seq: number }[] }>("GET", "/v1/channels", { token: alice.access_token });
    expect(list.body.channels.find((c) => c.channel_id === channel)).toMatchObject({ last_seq: all.at(-1), last_read_seq: lastOwn, unread_count: unread });
    for (const d of [phone, laptop, b1]) d.close();
  }, 90_000);
});
