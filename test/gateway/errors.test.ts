import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { encodeFrame, pb, type FrameType } from "../../protocol/codec.js";
import { LIMITS } from "../../protocol/limits.js";
import { signAccessToken } from "../../workers/auth/tokens.js";
import { BASE, call, createGroup, register } from "../helpers/api.js";
import { connectDevice, onlineDevice, type TestDevice } from "../helpers/socket.js";
import type { edgechat } from "../../protocol/generated/chat.js";

type ErrorPayload = edgechat.v1.IError;

const T = pb.FrameType;

/** After any error the same socket and the same objects keep working. */
async function stillWorks(device: TestDevice, channel: string, peer: TestDevice): Promise<void> {
  const ack = await device.sendText(channel, `still fine ${crypto.randomUUID()}`);
  expect(ack.type).toBe(T.SEND_ACK);
  const [m] = await peer.messages(1);
  expect(m?.server_msg_id).toBe(ack.send_ack?.server_msg_id);
}

async function errorAfter(device: TestDevice, send: () => void): Promise<ErrorPayload> {
  send();
  const f = await device.next(T.ERROR);
  return f.error as ErrorPayload;
}

describe("gateway and frame errors", () => {
  it("answers every kind of bad frame with an ERROR and keeps the socket usable (proto)", async () => {
    const alice = await register("alice"), bob = await register("bob"), eve = await register("eve");
    const channel = await createGroup(alice, [bob]);
    const a = await onlineDevice(alice.access_token, "a");
    const b = await onlineDevice(bob.access_token, "b");
    const e = await onlineDevice(eve.access_token, "e");

    const cases: [string, () => void, string][] = [
      ["garbage bytes", () => a.raw(new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01])), "malformed_frame"],
      ["a text frame on a binary connection", () => a.raw("hello?"), "malformed_frame"],
      ["an oversized frame", () => a.raw(new Uint8Array(LIMITS.maxFrameBytes + 1024)), "frame_too_large"],
      ["an unknown frame type", () => a.raw(pb.Frame.encode({ type: 77 as FrameType, request_id: 5 }).finish()), "unknown_frame_type"],
      ["a server-only frame", () => a.send({ type: T.SEND_ACK, send_ack: { seq: 1 } }), "unexpected_frame"],
      ["a SEND without a channel", () => a.send({ type: T.SEND, send: { client_msg_id: "x", content: { text: { text: "hi" } } } }), "invalid_argument"],
      ["a SEND to a channel id that is not one", () => a.send({ type: T.SEND, send: { channel_id: "general", client_msg_id: "x", content: { text: { text: "hi" } } } }), "invalid_argument"],
      ["a SEND without client_msg_id", () => a.send({ type: T.SEND, send: { channel_id: channel, content: { text: { text: "hi" } } } }), "invalid_argument"],
      ["oversized content", () => a.send({ type: T.SEND, send: { channel_id: channel, client_msg_id: "big", content: { text: { text: "x".repeat(LIMITS.maxContentBytes + 1) } } } }), "content_too_large"],
      ["a reaction to a notice", () => a.send({ type: T.REACT, react: { channel_id: channel, seq: 1, emoji: "👍", op: "add" } }), "invalid_argument"],
      ["a reaction that is not an emoji", () => a.send({ type: T.REACT, react: { channel_id: channel, seq: 1, emoji: "thumbs up", op: "add" } }), "invalid_argument"],
      ["an edit of a message that does not exist", () => a.send({ type: T.EDIT, edit: { channel_id: channel, seq: 999, content: { text: { text: "x" } } } }), "not_found"],
      ["typing in a channel one was never in", () => e.send({ type: T.TYPING, typing: { channel_id: channel, is_typing: true } }), "not_found"],
      ["history of a channel one was never in", () => e.send({ type: T.PULL_HISTORY, pull_history: { channel_id: channel } }), "not_found"],
      ["a DELIVER_ACK without seq", () => a.send({ type: T.DELIVER_ACK, deliver_ack: { channel_id: channel } }), "invalid_argument"],
    ];
    for (const [what, send, code] of cases) {
      const device = what.startsWith("history") || what.startsWith("typing") ? e : a;
      const err = await errorAfter(device, send);
      expect(err.code, what).toBe(code);
      expect(err.retryable, what).toBe(false);
      expect(err.message?.length, what).toBeGreaterThan(0);
    }
    // A stranger's SEND: ERROR names the message (and does not confirm the channel exists).
    const denied = await e.sendText(channel, "let me in", "eve-1");
    expect(denied.error).toMatchObject({ code: "not_found", client_msg_id: "eve-1", channel_id: channel, retryable: false });
    const history = await call<{ messages: unknown[] }>("GET", `/v1/channels/${channel}/messages`, { token: alice.access_token });
    expect(history.body.messages).toHaveLength(1); // the creation notice only

    await stillWorks(a, channel, b);
    expect(a.closed).toBeUndefined();
    a.close(); b.close(); e.close();
  });

  it("speaks JSON text frames with the same schema when asked, with the same errors", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    const a = await onlineDevice(alice.access_token, "a", "json");
    const b = await onlineDevice(bob.access_token, "b", "proto");
    for (const [raw, code] of [
      ["{oops", "malformed_frame"],
      [JSON.stringify({ type: "FLY", payload: {} }), "unknown_frame_type"],
      [JSON.stringify({ type: "SEND", request_id: 3, payload: { channel_id: channel, content: 42 } }), "malformed_frame"],
      [JSON.stringify({ type: "SEND", request_id: 4.5, payload: {} }), "malformed_frame"],
    ] as const) {
      const err = await errorAfter(a, () => a.raw(raw));
      expect(err.code, raw).toBe(code);
    }
    // A hand-written JSON SEND works like a protobuf one.
    a.raw(JSON.stringify({ type: "SEND", request_id: 9, payload: { channel_id: channel, client_msg_id: "json-1", content: { text: { text: "hi from JSON" } } } }));
    const ack = await a.take((f) => f.request_id === 9);
    expect(ack.type).toBe(T.SEND_ACK);
    const [m] = await b.messages(1);
    expect(m?.content?.text?.text).toBe("hi from JSON");
    a.close(); b.close();
  });

  it("answers the text heartbeat without a frame of its own", async () => {
    const alice = await register("alice");
    const a = await onlineDevice(alice.access_token, "a");
    a.raw("ping");
    await a.waitForText("pong");
    // A request sent after the ping is the marker: its answer is the first frame to arrive.
    const marker = a.send({ type: T.HELLO });
    const reply = await a.take((f) => f.request_id === marker);
    expect(reply.error?.code).toBe("unexpected_frame");
    expect(a.frames).toEqual([]);
    a.close();
  });

  it("refuses sockets with bad credentials or arguments, with a readable reason", async () => {
    const alice = await register("alice");
    const expired = await signAccessToken(env, { userId: alice.user_id, username: alice.username, sessionId: "s" }, -60);
    const [header, payload] = alice.access_token.split(".");
    const forged = `${header}.${payload}.${"A".repeat(43)}`;
    for (const [token, device, code, close] of [
      ["", "d", "unauthorized", 4401],
      ["not-a-jwt", "d", "unauthorized", 4401],
      [forged, "d", "unauthorized", 4401],
      [expired, "d", "token_expired", 4401],
      [alice.access_token, "bad device id!", "invalid_argument", 4400],
    ] as const) {
      const d = await connectDevice(token, device);
      const err = await d.next(T.ERROR);
      expect(err.error?.code, code).toBe(code);
      expect((await d.waitClosed()).code).toBe(close);
    }
    const plain = await SELF.fetch(`${BASE}/v1/connect?device_id=d`, { headers: { Authorization: `Bearer ${alice.access_token}` } });
    expect(plain.status).toBe(400);
    expect(await plain.json()).toMatchObject({ code: "invalid_argument", retryable: false });
    const wrongProtocol = await SELF.fetch(`${BASE}/v1/connect?device_id=d`, { headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": "mqtt" } });
    expect(wrongProtocol.status).toBe(400);
  });

  it("encodes the ERROR frame the same way in both encodings", () => {
    const frame = { type: T.ERROR, request_id: 7, error: { request_id: 7, code: "not_member", message: "m", retryable: false } };
    expect(JSON.parse(encodeFrame(frame, "json") as string)).toEqual({ type: "ERROR", request_id: 7, payload: { request_id: 7, code: "not_member", message: "m" } });
  });
});
