/**
 * The receive path, over both encodings: RESUME cursors, dedup, ordering, gap repair with
 * PULL_HISTORY, coalesced DELIVER_ACKs.
 */
import { describe, expect, it } from "vitest";
import type { Encoding } from "../../protocol/codec.js";
import { channelState, connectReady, harness, message, openAndHello, seqs, T } from "./fakes.js";

describe.each<Encoding>(["proto", "json"])("delivery over %s", (encoding) => {
  it("connects: subprotocol, token, HELLO → RESUME → RESUMED → ready", async () => {
    const h = harness({ encoding });
    const ready = h.client.connect();
    const s = await openAndHello(h);
    expect(s.protocols).toEqual([encoding === "json" ? "edgechat.v1.json" : "edgechat.v1.proto"]);
    expect(s.binaryType).toBe("arraybuffer");
    expect(s.url.startsWith("wss://chat.test/v1/connect?")).toBe(true);
    expect(s.params.get("device_id")).toBe("dev-1");
    expect(s.params.get("access_token")).toBe("token-1");
    const [resume] = s.framesOfType(T.RESUME);
    expect(resume?.resume?.cursors ?? []).toEqual([]);
    expect(h.client.state).toBe("resuming");

    s.receive({ type: T.RESUMED, resumed: { channels: [channelState("c_a", 3, { unread_count: 2 }), channelState("c_b", 0)] } });
    await ready;
    expect(h.events.connectionState.map((c) => c.state)).toEqual(["connecting", "open", "resuming", "ready"]);
    expect(h.events.synced).toHaveLength(1);
    expect(h.client.channelStates().map((c) => [c.channel_id, c.last_seq, c.unread_count])).toEqual([["c_a", 3, 2], ["c_b", 0, 0]]);
    expect(h.events.channel.map((e) => e.source)).toEqual(["resumed", "resumed"]);
    expect(h.client.helloInfo?.user_id).toMatch(/^u_/);
    expect(s.wireKinds()).toEqual(new Set([encoding === "json" ? "text" : "binary"]));
  });

  it("emits DELIVERed messages once, in order, with full content, and acks cumulatively", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 0)]);
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 1), message("c1", 2)] } });
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 3)] } });
    await h.time.advance(0);
    expect(seqs(h, "c1")).toEqual([1, 2, 3]);
    const m = h.events.message[0]!;
    expect(m.content.text?.text).toBe("msg 1");
    expect(m.server_msg_id).toBe("00000000000000000000000000000001");
    expect(m.server_ts).toBe(1_700_000_000_001);
    // Coalesced: one DELIVER_ACK for the three messages of two frames.
    expect(s.framesOfType(T.DELIVER_ACK).map((f) => [f.deliver_ack?.channel_id, f.deliver_ack?.seq])).toEqual([["c1", 3]]);
    expect(h.client.channelStates()[0]).toMatchObject({ last_seq: 3, unread_count: 3 });
  });

  it("drops duplicate DELIVERs", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 0)]);
    const batch = { type: T.DELIVER, deliver: { messages: [message("c1", 1), message("c1", 2)] } };
    s.receive(batch);
    s.receive(batch);
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 2), message("c1", 3)] } });
    await h.time.advance(0);
    expect(seqs(h, "c1")).toEqual([1, 2, 3]);
  });

  it("orders out-of-order DELIVERs and repairs the gap with PULL_HISTORY", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 1)]);
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 4)] } });
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 3)] } });
    await h.time.advance(0);
    expect(seqs(h, "c1")).toEqual([]);
    const pulls = s.framesOfType(T.PULL_HISTORY);
    expect(pulls).toHaveLength(1); // one pull per hole, not one per early message
    expect(pulls[0]?.pull_history).toMatchObject({ channel_id: "c1", after_seq: 1 });
    expect(pulls[0]?.request_id).toBeGreaterThan(0);

    s.receive({
      type: T.HISTORY_PAGE,
      request_id: pulls[0]!.request_id,
      history_page: { channel_id: "c1", messages: [message("c1", 2), message("c1", 3), message("c1", 4)], has_more: false, last_seq: 4 },
    });
    await h.time.advance(0);
    expect(seqs(h, "c1")).toEqual([2, 3, 4]);
    expect(s.framesOfType(T.PULL_HISTORY)).toHaveLength(1);
    expect(s.framesOfType(T.DELIVER_ACK).at(-1)?.deliver_ack).toMatchObject({ channel_id: "c1", seq: 4 });
  });

  it("a live DELIVER that fills the hole first wins; the late page adds nothing", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 1)]);
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 3)] } });
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 2)] } });
    const [pull] = s.framesOfType(T.PULL_HISTORY);
    s.receive({ type: T.HISTORY_PAGE, request_id: pull!.request_id, history_page: { channel_id: "c1", messages: [message("c1", 2), message("c1", 3)], last_seq: 3 } });
    await h.time.advance(0);
    expect(seqs(h, "c1")).toEqual([2, 3]);
  });

  it("pages through a long gap", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 0)], [message("c1", 1)]);
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 500)] } });
    const page = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => message("c1", from + i));
    let pull = s.framesOfType(T.PULL_HISTORY)[0]!;
    expect(pull.pull_history).toMatchObject({ after_seq: 1, limit: 200 });
    s.receive({ type: T.HISTORY_PAGE, request_id: pull.request_id, history_page: { channel_id: "c1", messages: page(2, 201), has_more: true, next_cursor: 201, last_seq: 500 } });
    pull = s.framesOfType(T.PULL_HISTORY)[1]!;
    expect(pull.pull_history?.after_seq).toBe(201);
    s.receive({ type: T.HISTORY_PAGE, request_id: pull.request_id, history_page: { channel_id: "c1", messages: page(202, 401), has_more: true, last_seq: 500 } });
    pull = s.framesOfType(T.PULL_HISTORY)[2]!;
    s.receive({ type: T.HISTORY_PAGE, request_id: pull.request_id, history_page: { channel_id: "c1", messages: page(402, 500), has_more: false, last_seq: 500 } });
    await h.time.advance(0);
    expect(seqs(h, "c1")).toEqual(page(1, 500).map((m) => m.seq));
    expect(s.framesOfType(T.PULL_HISTORY)).toHaveLength(3);
  });

  it("after RESUMED, pulls what the server's 1,000-message resume cap left out", async () => {
    const h = harness({ encoding });
    const first = await connectReady(h, [channelState("c1", 10)]);
    first.serverClose(1006);
    await h.time.advance(1_000);
    const s = await openAndHello(h);
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 11), message("c1", 12)] } });
    s.receive({ type: T.RESUMED, resumed: { channels: [channelState("c1", 2_000)] } });
    await h.time.advance(0);
    expect(s.framesOfType(T.PULL_HISTORY)[0]?.pull_history).toMatchObject({ channel_id: "c1", after_seq: 12 });
  });

  it("sends per-channel RESUME cursors (highest contiguous seq) on every reconnect", async () => {
    const h = harness({ encoding });
    const s1 = await connectReady(h, [channelState("c1", 0), channelState("c2", 7)], [message("c1", 1)]);
    s1.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 2), message("c1", 4), message("c2", 8)] } });
    s1.serverClose(1006, "network");
    expect(h.client.state).toBe("reconnecting");
    await h.time.advance(1_000);
    expect(h.sockets).toHaveLength(2);
    const s2 = await openAndHello(h);
    const cursors = s2.framesOfType(T.RESUME)[0]?.resume?.cursors?.map((c) => [c.channel_id, c.last_seq]);
    // c1 holds 1, 2 and an early 4: its cursor is 2, so the server resends 3 and 4.
    expect(cursors).toEqual([["c1", 2], ["c2", 8]]);
    s2.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 3), message("c1", 4)] } });
    s2.receive({ type: T.RESUMED, resumed: { channels: [channelState("c1", 4), channelState("c2", 8)] } });
    await h.time.advance(0);
    expect(seqs(h, "c1")).toEqual([1, 2, 3, 4]);
    expect(h.events.synced).toHaveLength(2);
  });

  it("channels the client knew nothing about start at RESUMED's last_seq", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 40)]);
    expect(h.client.cursor("c1")).toBe(40);
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 42)] } });
    await h.time.advance(0);
    expect(s.framesOfType(T.PULL_HISTORY)[0]?.pull_history?.after_seq).toBe(40);
  });

  it("a channel joined live starts at its first message", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, []);
    s.receive({ type: T.CHANNEL_UPDATE, channel_update: { channel: channelState("c_new", 31) } });
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c_new", 31, { content: { system: { event: "member_added", text: "bob added me" } } })] } });
    await h.time.advance(0);
    expect(seqs(h, "c_new")).toEqual([31]);
    expect(h.events.message[0]?.content.system?.text).toBe("bob added me");
    expect(s.framesOfType(T.PULL_HISTORY)).toHaveLength(0);
    expect(h.events.channel.at(-1)).toMatchObject({ source: "update", channel: { channel_id: "c_new" } });
  });

  it("skips a hole the server keeps not filling, and says so", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 1)]);
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 3)] } });
    for (let i = 0; i < 3; i++) {
      const pull = s.framesOfType(T.PULL_HISTORY)[i]!;
      s.receive({ type: T.HISTORY_PAGE, request_id: pull.request_id, history_page: { channel_id: "c1", messages: [], has_more: false, last_seq: 3 } });
    }
    await h.time.advance(0);
    expect(seqs(h, "c1")).toEqual([3]);
    expect(h.events.error.map((e) => e.code)).toEqual(["gap_unfillable"]);
  });

  it("reports an undecodable server frame without dropping the connection", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 0)]);
    s.receiveText(encoding === "json" ? "{not json" : "garbage text on a binary connection");
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 1)] } });
    expect(h.events.error.map((e) => e.code)).toEqual(["malformed_frame"]);
    expect(seqs(h, "c1")).toEqual([1]);
    expect(h.client.state).toBe("ready");
  });
});
