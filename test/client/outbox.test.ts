/**
 * The send path: optimistic entries, retries with the same client_msg_id, acks folded into the
 * message stream, failures, flow control, SLOWDOWN, persistence.
 */
import { describe, expect, it } from "vitest";
import type { Encoding } from "../../protocol/codec.js";
import { memoryStorage } from "../../client/outbox.js";
import type { OutboxEntry } from "../../client/types.js";
import { channelState, connectReady, fakeFetch, harness, ME, message, openAndHello, seqs, settle, T, type FakeSocket } from "./fakes.js";

function ackFor(s: FakeSocket, index: number, seq: number, status = "stored") {
  const send = s.framesOfType(T.SEND)[index]!;
  return {
    type: T.SEND_ACK,
    request_id: send.request_id,
    send_ack: {
      channel_id: send.send!.channel_id, client_msg_id: send.send!.client_msg_id, seq, status,
      server_msg_id: `${"0".repeat(16)}${seq.toString(16).padStart(16, "0")}`, hlc: seq.toString(16).padStart(16, "0"), server_ts: 1_700_000_000_000 + seq,
    },
  };
}

describe.each<Encoding>(["proto", "json"])("outbox over %s", (encoding) => {
  it("sends with a fresh client_msg_id, resolves with the SEND_ACK and emits the message", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 4)]);
    const pending = h.client.send("c1", "hello");
    expect(pending.clientMsgId).toMatch(/^[0-9a-f-]{36}$/);
    expect(h.client.outbox.get(pending.clientMsgId)?.state).toBe("sending");
    const [send] = s.framesOfType(T.SEND);
    expect(send?.send).toMatchObject({ channel_id: "c1", client_msg_id: pending.clientMsgId, content: { text: { text: "hello" } } });

    s.receive(ackFor(s, 0, 5));
    const ack = await pending;
    expect(ack).toMatchObject({ channel_id: "c1", client_msg_id: pending.clientMsgId, seq: 5, status: "stored" });
    expect(h.events.ack).toEqual([ack]);
    expect(h.events.outbox.map((e) => e.state)).toEqual(["sending", "sent"]);
    expect(h.client.outbox.list()).toEqual([]);
    // The server does not echo our own message back: the ack becomes the message.
    expect(h.events.message).toEqual([expect.objectContaining({ seq: 5, sender_user_id: ME, sender_device_id: "dev-1", content: { text: { text: "hello" } } })]);
    await h.time.advance(0);
    expect(s.framesOfType(T.DELIVER_ACK).at(-1)?.deliver_ack).toMatchObject({ channel_id: "c1", seq: 5 });
    // ...and it advanced contiguity: the next DELIVER is in order, no pull.
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 6)] } });
    expect(seqs(h, "c1")).toEqual([5, 6]);
    expect(s.framesOfType(T.PULL_HISTORY)).toHaveLength(0);
  });

  it("an own message acked above a hole waits for the hole to be pulled", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 4)]);
    const pending = h.client.send("c1", "mine");
    s.receive(ackFor(s, 0, 6));
    await pending;
    expect(seqs(h, "c1")).toEqual([]);
    const pull = s.framesOfType(T.PULL_HISTORY)[0]!;
    expect(pull.pull_history?.after_seq).toBe(4);
    s.receive({
      type: T.HISTORY_PAGE, request_id: pull.request_id,
      history_page: { channel_id: "c1", messages: [message("c1", 5), message("c1", 6, { client_msg_id: pending.clientMsgId, sender_user_id: ME })], last_seq: 6 },
    });
    expect(seqs(h, "c1")).toEqual([5, 6]);
    expect(h.events.message[1]?.sender_device_id).toBe("dev-1");
  });

  it("in a channel created here, a SEND_ACK that beats the 'created' DELIVER still comes out in order", async () => {
    const api = fakeFetch({ "POST /v1/channels": () => ({ status: 201, body: { channel: { channel_id: "c_new", type: "dm", name: "" } } }) });
    const h = harness({ encoding, fetch: api.fetch });
    const s = await connectReady(h, []);
    await h.client.channels.create({ type: "dm", member: "bob" });
    const pending = h.client.send("c_new", "first!");
    s.receive(ackFor(s, 0, 2));
    await pending;
    expect(seqs(h, "c_new")).toEqual([]);
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c_new", 1, { content: { system: { event: "created", text: "me started the conversation" } } })] } });
    expect(seqs(h, "c_new")).toEqual([1, 2]);
    const pull = s.framesOfType(T.PULL_HISTORY)[0]!;
    s.receive({ type: T.HISTORY_PAGE, request_id: pull.request_id, history_page: { channel_id: "c_new", messages: [message("c_new", 1), message("c_new", 2)], last_seq: 2 } });
    expect(seqs(h, "c_new")).toEqual([1, 2]);
  });

  it("in a channel it has no starting point for, an own message is shown at its ack", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, []);
    const pending = h.client.send("c_joined", "hi all");
    s.receive(ackFor(s, 0, 31));
    await pending;
    expect(seqs(h, "c_joined")).toEqual([31]);
    expect(s.framesOfType(T.PULL_HISTORY)).toHaveLength(0);
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c_joined", 32)] } });
    expect(seqs(h, "c_joined")).toEqual([31, 32]);
  });

  it("retries across a disconnect with the same client_msg_id", async () => {
    const h = harness({ encoding });
    const s1 = await connectReady(h, [channelState("c1", 0)]);
    const pending = h.client.send("c1", "survive this");
    const id1 = s1.framesOfType(T.SEND)[0]?.send?.client_msg_id;
    s1.serverClose(1006);
    await h.time.advance(1_000);
    const s2 = await openAndHello(h);
    expect(s2.framesOfType(T.SEND)).toHaveLength(0); // not before RESUMED
    s2.receive({ type: T.RESUMED, resumed: { channels: [channelState("c1", 1)] } });
    const resent = s2.framesOfType(T.SEND);
    expect(resent.map((f) => f.send?.client_msg_id)).toEqual([id1]);
    s2.receive(ackFor(s2, 0, 1, "duplicate"));
    expect((await pending).status).toBe("duplicate");
    expect(h.client.outbox.get(pending.clientMsgId)).toBeUndefined();
    expect(h.client.outbox.list()).toEqual([]);
    expect(h.events.outbox.at(-1)).toMatchObject({ state: "sent", attempts: 2 });
  });

  it("queues sends made before connecting and sends them once ready", async () => {
    const h = harness({ encoding });
    const pending = h.client.send("c1", "offline draft");
    expect(h.client.outbox.list().map((e) => e.state)).toEqual(["sending"]);
    const s = await connectReady(h, [channelState("c1", 0)]);
    expect(s.framesOfType(T.SEND).map((f) => f.send?.client_msg_id)).toEqual([pending.clientMsgId]);
    expect(h.client.outbox.list()[0]?.user_id).toBe(ME);
  });

  it("resolves an entry whose own message comes back during RESUME instead of sending it again", async () => {
    const h = harness({ encoding });
    const s1 = await connectReady(h, [channelState("c1", 0)]);
    const pending = h.client.send("c1", "ack lost");
    s1.serverClose(1006);
    await h.time.advance(1_000);
    const s2 = await openAndHello(h);
    s2.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 1, { client_msg_id: pending.clientMsgId, sender_user_id: ME, sender_device_id: "dev-1" })] } });
    s2.receive({ type: T.RESUMED, resumed: { channels: [channelState("c1", 1)] } });
    expect((await pending).seq).toBe(1);
    expect(s2.framesOfType(T.SEND)).toHaveLength(0);
    expect(seqs(h, "c1")).toEqual([1]);
  });

  it("marks an entry failed on a non-retryable ERROR and rejects its promise with the code", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 0)]);
    const pending = h.client.send("c_not_mine", "hi");
    const send = s.framesOfType(T.SEND)[0]!;
    s.receive({ type: T.ERROR, request_id: send.request_id, error: { code: "not_member", message: "You are not a member of this channel.", retryable: false, client_msg_id: pending.clientMsgId } });
    await expect(pending).rejects.toMatchObject({ code: "not_member", retryable: false });
    const entry = h.client.outbox.get(pending.clientMsgId);
    expect(entry).toMatchObject({ state: "failed", error: { code: "not_member" } });
    expect(h.events.error).toEqual([]); // reported through the promise and the outbox event
    // The failed entry is not resent on reconnect...
    s.serverClose(1006);
    await h.time.advance(1_000);
    const s2 = await connectReadyAgain(h);
    expect(s2.framesOfType(T.SEND)).toHaveLength(0);
    // ...until the app retries it, with the same id.
    const again = h.client.outbox.retry(pending.clientMsgId);
    expect(s2.framesOfType(T.SEND)[0]?.send?.client_msg_id).toBe(pending.clientMsgId);
    s2.receive(ackFor(s2, 0, 1));
    expect((await again).seq).toBe(1);
  });

  it("a failed send nobody awaits is not an unhandled rejection", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 0)]);
    void h.client.send("c1", "fire and forget");
    const send = s.framesOfType(T.SEND)[0]!;
    s.receive({ type: T.ERROR, request_id: send.request_id, error: { code: "forbidden", retryable: false } });
    await settle();
    expect(h.events.outbox.at(-1)?.state).toBe("failed");
  });

  it("holds a retryable ERROR for its backoff hint, then resends the same id", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 0)]);
    const pending = h.client.send("c1", "slow down");
    const later = h.client.send("c1", "queued behind");
    expect(s.framesOfType(T.SEND)).toHaveLength(2);
    const first = s.framesOfType(T.SEND)[0]!;
    s.receive({ type: T.ERROR, request_id: first.request_id, error: { code: "rate_limited", retryable: true, backoff_hint_ms: 2_000, client_msg_id: pending.clientMsgId } });
    await h.time.advance(1_999);
    expect(s.framesOfType(T.SEND)).toHaveLength(2);
    await h.time.advance(1);
    const sends = s.framesOfType(T.SEND);
    expect(sends).toHaveLength(3);
    expect(sends[2]?.send?.client_msg_id).toBe(pending.clientMsgId);
    expect(h.client.outbox.get(later.clientMsgId)?.state).toBe("sending");
  });

  it("retries a SEND the server gave up on (unavailable at its deadline) with the same id, and takes the original ids from the duplicate ack", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 0)]);
    const pending = h.client.send("c1", "slow channel");
    const first = s.framesOfType(T.SEND)[0]!;
    s.receive({ type: T.ERROR, request_id: first.request_id, error: { code: "unavailable", retryable: true, backoff_hint_ms: 1_000, client_msg_id: pending.clientMsgId, channel_id: "c1" } });
    await h.time.advance(999);
    expect(s.framesOfType(T.SEND)).toHaveLength(1);
    await h.time.advance(1_000); // max(hint, backoffDelay(0)): 1 s with the harness's pinned jitter
    const sends = s.framesOfType(T.SEND);
    expect(sends).toHaveLength(2);
    expect(sends[1]?.send?.client_msg_id).toBe(pending.clientMsgId);
    expect(sends[1]?.send?.send_seq).toBe(2); // a new number on the same connection
    // The first attempt was stored after all: the retry is a duplicate with the original ids.
    s.receive(ackFor(s, 1, 1, "duplicate"));
    await expect(pending).resolves.toMatchObject({ client_msg_id: pending.clientMsgId, seq: 1, status: "duplicate" });
    expect(h.client.outbox.list()).toEqual([]);
  });

  it("keeps at most 64 SENDs in flight and queues the rest", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 0)]);
    const pendings = Array.from({ length: 70 }, (_, i) => h.client.send("c1", `m${i}`));
    expect(s.framesOfType(T.SEND)).toHaveLength(64);
    s.receive(ackFor(s, 0, 1));
    s.receive(ackFor(s, 1, 2));
    const sends = s.framesOfType(T.SEND);
    expect(sends).toHaveLength(66);
    expect(sends.map((f) => f.send?.client_msg_id)).toEqual(pendings.slice(0, 66).map((p) => p.clientMsgId));
  });

  it("honours a smaller window from HELLO", async () => {
    const h = harness({ encoding });
    const ready = h.client.connect();
    const s = await openAndHello(h, { max_unacked_frames: 2 });
    s.receive({ type: T.RESUMED, resumed: { channels: [] } });
    await ready;
    for (let i = 0; i < 5; i++) h.client.send("c1", `m${i}`);
    expect(s.framesOfType(T.SEND)).toHaveLength(2);
  });

  it("pauses the outbox on SLOWDOWN", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 0)]);
    s.receive({ type: T.SLOWDOWN, slowdown: { delay_ms: 5_000, reason: "too many unacked frames" } });
    h.client.send("c1", "wait");
    h.client.send("c1", "for it");
    await h.time.advance(4_999);
    expect(s.framesOfType(T.SEND)).toHaveLength(0);
    await h.time.advance(1);
    expect(s.framesOfType(T.SEND)).toHaveLength(2);
  });

  it("on SLOWDOWN says it is sending slowly, holds new SENDs, then resumes and says so", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 0)]);
    const events: { sending_slowly: boolean; delay_ms: number }[] = [];
    h.client.on("slowdown", (e) => events.push({ sending_slowly: e.sending_slowly, delay_ms: e.delay_ms }));
    const first = h.client.send("c1", "before");
    await settle();
    expect(s.framesOfType(T.SEND)).toHaveLength(1);
    s.receive({ type: T.SLOWDOWN, slowdown: { delay_ms: 300, reason: "40 SENDs pending for this user" } });
    // The SEND already out is still answered during the pause.
    s.receive(ackFor(s, 0, 1));
    await expect(first).resolves.toMatchObject({ seq: 1 });
    expect(h.client.sendingSlowly).toBe(true);
    h.client.send("c1", "during");
    await h.time.advance(200);
    // A longer pause asked for meanwhile extends it.
    s.receive({ type: T.SLOWDOWN, slowdown: { delay_ms: 400, reason: "more" } });
    await h.time.advance(399);
    expect(s.framesOfType(T.SEND)).toHaveLength(1);
    expect(events).toEqual([{ sending_slowly: true, delay_ms: 300 }, { sending_slowly: true, delay_ms: 400 }]);
    await h.time.advance(1);
    expect(s.framesOfType(T.SEND)).toHaveLength(2);
    expect(h.client.sendingSlowly).toBe(false);
    expect(events.at(-1)).toEqual({ sending_slowly: false, delay_ms: 0 });
    expect(events).toHaveLength(3);
  });

  it("resends a SEND that got no answer within the request timeout", async () => {
    const h = harness({ encoding, requestTimeoutMs: 10_000, heartbeatIntervalMs: 60_000 });
    const s = await connectReady(h, [channelState("c1", 0)]);
    const pending = h.client.send("c1", "anyone?");
    await h.time.advance(10_000);
    const ids = s.framesOfType(T.SEND).map((f) => f.send?.client_msg_id);
    expect(ids).toEqual([pending.clientMsgId, pending.clientMsgId]);
  });

  it("rejects empty and oversized content up front, without an outbox entry", async () => {
    const h = harness({ encoding });
    await connectReady(h, [channelState("c1", 0)]);
    await expect(h.client.send("c1", "")).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(h.client.send("c1", "é".repeat(40_000))).rejects.toMatchObject({ code: "content_too_large" });
    expect(h.client.outbox.list()).toEqual([]);
  });

  it("discard() drops an entry and rejects its promise", async () => {
    const h = harness({ encoding });
    const pending = h.client.send("c1", "never mind");
    expect(h.client.outbox.discard(pending.clientMsgId)).toBe(true);
    await expect(pending).rejects.toMatchObject({ code: "discarded" });
    const s = await connectReady(h, []);
    expect(s.framesOfType(T.SEND)).toHaveLength(0);
  });
});

describe("outbox persistence", () => {
  it("restores unsent entries from storage and sends them with their original ids", async () => {
    const storage = memoryStorage();
    const stored: OutboxEntry = {
      client_msg_id: "11111111-2222-4333-8444-555555555555", channel_id: "c1", content: { text: { text: "written before a reload" } },
      created_at: 5, state: "sending", attempts: 1, user_id: ME,
    };
    await storage.put(stored);
    const h = harness({ storage });
    const s = await connectReady(h, [channelState("c1", 0)]);
    expect(h.events.outbox[0]).toMatchObject({ client_msg_id: stored.client_msg_id, state: "sending" });
    expect(s.framesOfType(T.SEND).map((f) => f.send?.client_msg_id)).toEqual([stored.client_msg_id]);
    s.receive(ackFor(s, 0, 1, "duplicate"));
    await settle();
    expect(await storage.load()).toEqual([]);
    expect(seqs(h, "c1")).toEqual([1]);
  });

  it("persists new entries until acked, and failures until dealt with", async () => {
    const storage = memoryStorage();
    const h = harness({ storage });
    const ok = h.client.send("c1", "one");
    const bad = h.client.send("c1", "two");
    await settle();
    expect((await storage.load()).map((e) => e.client_msg_id).sort()).toEqual([ok.clientMsgId, bad.clientMsgId].sort());
    const s = await connectReady(h, [channelState("c1", 0)]);
    s.receive(ackFor(s, 0, 1));
    s.receive({ type: T.ERROR, request_id: s.framesOfType(T.SEND)[1]!.request_id, error: { code: "forbidden" } });
    await bad.catch(() => {});
    await settle();
    expect((await storage.load()).map((e) => [e.client_msg_id, e.state])).toEqual([[bad.clientMsgId, "failed"]]);
  });

  it("leaves entries of another account alone", async () => {
    const storage = memoryStorage();
    await storage.put({ client_msg_id: "other", channel_id: "c1", content: { text: { text: "not yours" } }, created_at: 1, state: "sending", attempts: 0, user_id: "u_g_someoneelse00000000000000" });
    const h = harness({ storage });
    const s = await connectReady(h, [channelState("c1", 0)]);
    expect(s.framesOfType(T.SEND)).toHaveLength(0);
  });
});

async function connectReadyAgain(h: ReturnType<typeof harness>): Promise<FakeSocket> {
  const s = await openAndHello(h);
  s.receive({ type: T.RESUMED, resumed: { channels: [channelState("c1", 0)] } });
  return s;
}

describe("unread counts around one's own messages (as the server counts them)", () => {
  it("a send acked here, or one from another device of mine, reads up to it: unread 0, cursor at it; others' later messages count", async () => {
    const h = harness();
    const s = await connectReady(h, [channelState("c1", 2, { unread_count: 2, last_read_seq: 0 })], [message("c1", 1), message("c1", 2)]);
    expect(h.client.channelStates()[0]).toMatchObject({ last_seq: 2, last_read_seq: 0, unread_count: 2 });
    // Answering without reading first: the channel moved my cursor to my message.
    const pending = h.client.send("c1", "answer");
    s.receive(ackFor(s, 0, 3));
    await pending;
    expect(h.client.channelStates()[0]).toMatchObject({ last_seq: 3, last_read_seq: 3, unread_count: 0 });
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 4)] } });
    expect(h.client.channelStates()[0]).toMatchObject({ last_seq: 4, last_read_seq: 3, unread_count: 1 });
    // My other device wrote: delivered here like anyone's message, it reads up to it too.
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 5, { sender_user_id: ME, sender_device_id: "my-laptop" })] } });
    expect(h.client.channelStates()[0]).toMatchObject({ last_seq: 5, last_read_seq: 5, unread_count: 0 });
    // A notice does not count, nor move the cursor.
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 6, { content: { system: { event: "renamed", actor_user_id: "u_x", target_user_ids: [] } } })] } });
    expect(h.client.channelStates()[0]).toMatchObject({ last_seq: 6, last_read_seq: 5, unread_count: 0 });
  });

  it("in a broadcast channel counts every seq after the cursor, as the server does", async () => {
    const h = harness();
    const s = await connectReady(h, [channelState("b1", 1, { type: "broadcast", unread_count: 1, last_read_seq: 0 })], [message("b1", 1)]);
    s.receive({ type: T.DELIVER, deliver: { messages: [message("b1", 2, { content: { system: { event: "renamed", actor_user_id: "u_x", target_user_ids: [] } } }), message("b1", 3)] } });
    expect(h.client.channelStates()[0]).toMatchObject({ last_seq: 3, last_read_seq: 0, unread_count: 3 });
  });
});
