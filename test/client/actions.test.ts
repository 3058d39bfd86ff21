/**
 * READ, typing, presence and message changes (react, edit, delete): answers resolve the promise,
 * failures are rejected promises carrying the server's code, never unhandled.
 */
import { describe, expect, it } from "vitest";
import type { Encoding } from "../../protocol/codec.js";
import { BOB, channelState, connectReady, fakeFetch, harness, ME, message, settle, T } from "./fakes.js";

describe.each<Encoding>(["proto", "json"])("actions over %s", (encoding) => {
  it("markRead sends READ, resolves on the echo and updates the channel state", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 10, { unread_count: 10 })]);
    const done = h.client.markRead("c1", 7);
    const read = s.framesOfType(T.READ)[0]!;
    expect(read.read).toMatchObject({ channel_id: "c1", up_to_seq: 7 });
    s.receive({ type: T.READ, read: { channel_id: "c1", user_id: ME, up_to_seq: 7, unread_count: 3 } });
    await done;
    expect(h.client.channelStates()[0]).toMatchObject({ last_read_seq: 7, unread_count: 3 });
    expect(h.events.read).toEqual([{ channel_id: "c1", user_id: ME, up_to_seq: 7, unread_count: 3 }]);
    // Cursors never move backwards: nothing is sent for an older seq.
    await h.client.markRead("c1", 5);
    expect(s.framesOfType(T.READ)).toHaveLength(1);
  });

  it("markRead resolves after the grace period when the server does not echo", async () => {
    const h = harness({ encoding });
    await connectReady(h, [channelState("c1", 10)]);
    let resolved = false;
    const done = h.client.markRead("c1", 10).then(() => { resolved = true; });
    await h.time.advance(4_999);
    expect(resolved).toBe(false);
    await h.time.advance(1);
    await done;
    expect(resolved).toBe(true);
  });

  it("markRead uses REST when not connected", async () => {
    const api = fakeFetch({ "POST /v1/channels/c1/read": () => ({ status: 200, body: { last_read_seq: 4, unread_count: 0 } }) });
    const h = harness({ encoding, fetch: api.fetch });
    await h.client.markRead("c1", 4);
    expect(api.calls.map((c) => [c.path, c.body])).toEqual([["/v1/channels/c1/read", { up_to_seq: 4 }]]);
  });

  it("other users' reads arrive as read events", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 3)]);
    s.receive({ type: T.READ, read: { channel_id: "c1", user_id: BOB, up_to_seq: 3 } });
    expect(h.events.read).toEqual([{ channel_id: "c1", user_id: BOB, up_to_seq: 3, unread_count: 0 }]);
    expect(h.client.channelStates()[0]?.last_read_seq).toBe(0);
  });

  it.each([
    ["typing", (c: ReturnType<typeof harness>["client"]) => c.typing("c1"), T.TYPING],
    ["react", (c: ReturnType<typeof harness>["client"]) => c.react("c1", 1, "👍"), T.REACT],
    ["editMessage", (c: ReturnType<typeof harness>["client"]) => c.editMessage("c1", 1, "fixed"), T.EDIT],
    ["deleteMessage", (c: ReturnType<typeof harness>["client"]) => c.deleteMessage("c1", 1, { forEveryone: true }), T.DELETE],
    ["setPresence", (c: ReturnType<typeof harness>["client"]) => c.setPresence("away"), T.PRESENCE_HEARTBEAT],
  ] as const)("%s sends its frame and rejects with the server's error code", async (_name, call, type) => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 1)]);
    const pending = call(h.client);
    const frame = s.framesOfType(type)[0]!;
    expect(frame.request_id).toBeGreaterThan(0);
    s.receive({ type: T.ERROR, request_id: frame.request_id, error: { code: "not_implemented", message: "later", retryable: false } });
    await expect(pending).rejects.toMatchObject({ code: "not_implemented" });
    expect(h.events.error).toEqual([]);
    expect(h.client.state).toBe("ready");
  });

  it("a stub nobody awaits does not cause an unhandled rejection", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 1)]);
    void h.client.typing("c1");
    void h.client.react("c1", 1, "x");
    void h.client.markRead("c1", 1);
    for (const type of [T.TYPING, T.REACT, T.READ]) {
      const frame = s.framesOfType(type)[0]!;
      s.receive({ type: T.ERROR, request_id: frame.request_id, error: { code: "not_implemented" } });
    }
    await settle();
    // Vitest fails the run on any unhandled rejection; reaching here with none is the assertion.
    expect(h.client.state).toBe("ready");
  });

  it("react resolves with the message as it is now when its MESSAGE_UPDATE answers", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 1)]);
    const pending = h.client.react("c1", 1, "🎉");
    const frame = s.framesOfType(T.REACT)[0]!;
    expect(frame.react).toMatchObject({ channel_id: "c1", seq: 1, emoji: "🎉", op: "add" });
    // Someone else's change to the same message does not answer this request.
    s.receive({ type: T.MESSAGE_UPDATE, message_update: { kind: "hidden", message: message("c1", 1, { hidden: true }) } });
    s.receive({ type: T.MESSAGE_UPDATE, request_id: frame.request_id, message_update: { kind: "reactions", message: message("c1", 1, { reactions: [{ emoji: "🎉", user_ids: [ME] }] }) } });
    const update = await pending;
    expect(update).toMatchObject({ kind: "reactions", message: { seq: 1, reactions: [{ emoji: "🎉", user_ids: [ME] }] } });
    expect(h.events.messageUpdated.map((u) => u.kind)).toEqual(["hidden", "reactions"]);
  });

  it("turns a logged change into messageUpdated, moves the cursor, and keeps it out of message events and unread counts", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 2, { unread_count: 1, last_read_seq: 1 })], [message("c1", 1), message("c1", 2)]);
    const target = message("c1", 2, { reactions: [{ emoji: "👍", user_ids: [ME] }] });
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 3, { sender_user_id: ME, client_msg_id: "", content: { update: { target_seq: 2, kind: "reactions", target } } })] } });
    expect(h.events.message.map((m) => m.seq)).toEqual([1, 2]);
    expect(h.events.messageUpdated).toHaveLength(1);
    expect(h.events.messageUpdated[0]).toMatchObject({ kind: "reactions", message: { channel_id: "c1", seq: 2, reactions: [{ emoji: "👍", user_ids: [ME] }] } });
    expect(h.client.channelStates()[0]).toMatchObject({ last_seq: 3, unread_count: 1 });
    // Deleting the unread message for everyone takes it off the unread count.
    s.receive({ type: T.DELIVER, deliver: { messages: [message("c1", 4, { client_msg_id: "", content: { update: { target_seq: 2, kind: "deleted", target: message("c1", 2, { deleted: true, content: {} }) } } })] } });
    expect(h.client.channelStates()[0]).toMatchObject({ last_seq: 4, unread_count: 0 });
    expect(h.events.messageUpdated[1]).toMatchObject({ kind: "deleted", message: { seq: 2, deleted: true } });
    // The cursor covers the changes, so the next DELIVER_ACK does too.
    await h.time.advance(2_000);
    const acks = s.framesOfType(T.DELIVER_ACK).map((f) => f.deliver_ack?.seq);
    expect(acks.at(-1)).toBe(4);
  });

  it("history pages hand changes over apart from the messages", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 3)]);
    const pending = h.client.history("c1", { after: 0 });
    const pull = s.framesOfType(T.PULL_HISTORY)[0]!;
    const edited = message("c1", 1, { edited_at: 5, content: { text: { text: "fixed" } } });
    s.receive({ type: T.HISTORY_PAGE, request_id: pull.request_id, history_page: {
      channel_id: "c1", last_seq: 3, messages: [edited, message("c1", 2), message("c1", 3, { content: { update: { target_seq: 1, kind: "edited", target: edited } } })],
    } });
    const page = await pending;
    expect(page.messages.map((m) => m.seq)).toEqual([1, 2]);
    expect(page.updates).toEqual([expect.objectContaining({ kind: "edited", message: expect.objectContaining({ seq: 1, edited_at: 5 }) })]);
  });

  it("mutations need a connection; typing and presence are dropped silently without one", async () => {
    const h = harness({ encoding });
    await expect(h.client.editMessage("c1", 1, "x")).rejects.toMatchObject({ code: "network_error", retryable: true });
    await expect(h.client.typing("c1")).resolves.toBeUndefined();
    await expect(h.client.setPresence("online")).resolves.toBeUndefined();
  });

  it("mutations time out with a retryable error", async () => {
    const h = harness({ encoding, requestTimeoutMs: 10_000, heartbeatIntervalMs: 60_000 });
    await connectReady(h, [channelState("c1", 1)]);
    const pending = h.client.deleteMessage("c1", 1);
    await h.time.advance(10_000);
    await expect(pending).rejects.toMatchObject({ code: "timeout", retryable: true });
  });

  it("typing and presence from others arrive as events", async () => {
    const h = harness({ encoding });
    const s = await connectReady(h, [channelState("c1", 1)]);
    s.receive({ type: T.TYPING, typing: { channel_id: "c1", user_id: BOB, device_id: "bob-phone", is_typing: true } });
    s.receive({ type: T.PRESENCE, presence: { user_id: BOB, status: "away", last_seen: 1234 } });
    expect(h.events.typing).toEqual([{ channel_id: "c1", user_id: BOB, device_id: "bob-phone", is_typing: true }]);
    expect(h.events.presence).toEqual([{ user_id: BOB, status: "away", last_seen: 1234 }]);
  });
});
