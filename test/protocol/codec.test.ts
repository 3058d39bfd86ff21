import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeFrame, encodeFrame, pb, payloadField, type Encoding, type FrameType } from "../../protocol/codec.js";
import { LIMITS } from "../../protocol/limits.js";

const encodings: Encoding[] = ["proto", "json"];

describe("frame codec", () => {
  it("defines every frame type of the seed, plus edgechat's, each with its payload field", () => {
    const seed = ["SEND", "SEND_ACK", "DELIVER", "DELIVER_ACK", "TYPING", "READ", "PRESENCE_HEARTBEAT", "PRESENCE", "PULL_HISTORY",
      "HISTORY_PAGE", "REACT", "ERROR", "RESUME", "RESUME_HINT", "SLOWDOWN", "GOAWAY", "CONFLICT", "EDIT", "DELETE"];
    const types = pb.FrameType as unknown as Record<string, number>;
    for (const name of seed) {
      expect(types[name], name).toBeGreaterThan(0);
      expect(payloadField(types[name]!)! in pb.Frame.prototype, name).toBe(true);
    }
  });

  // Regression: protobufjs's Node Buffer path threw in workerd for strings of 40+ characters.
  it.each(encodings)("round-trips text of any length and script (%s)", (encoding) => {
    fc.assert(fc.property(fc.string({ unit: "grapheme", maxLength: 3000 }), fc.integer({ min: 0, max: 2 ** 32 - 1 }), (text, requestId) => {
      const frame = { type: pb.FrameType.SEND, request_id: requestId, send: { channel_id: "c_g_0123456789abcdefghjkmnpqrs", client_msg_id: "x".repeat(40), content: { text: { text } } } };
      const decoded = decodeFrame(encodeFrame(frame, encoding), encoding);
      expect(decoded.ok).toBe(true);
      if (!decoded.ok) return;
      expect(decoded.frame.request_id).toBe(requestId);
      expect(decoded.frame.send?.content?.text?.text ?? "").toBe(text);
    }), { numRuns: 200 });
  });

  it.each(encodings)("keeps 64-bit counters as exact numbers below 2^53 (%s)", (encoding) => {
    const seq = Number.MAX_SAFE_INTEGER;
    const decoded = decodeFrame(encodeFrame({ type: pb.FrameType.DELIVER_ACK, deliver_ack: { channel_id: "c", seq } }, encoding), encoding);
    expect(decoded.ok && decoded.frame.deliver_ack?.seq).toBe(seq);
  });

  it("tells 'after_seq: 0' from no after_seq", () => {
    for (const encoding of encodings) {
      const withZero = decodeFrame(encodeFrame({ type: pb.FrameType.PULL_HISTORY, pull_history: { channel_id: "c", after_seq: 0 } }, encoding), encoding);
      const without = decodeFrame(encodeFrame({ type: pb.FrameType.PULL_HISTORY, pull_history: { channel_id: "c" } }, encoding), encoding);
      expect(withZero.ok && withZero.frame.pull_history?.after_seq).toBe(0);
      expect(without.ok && without.frame.pull_history?.after_seq).toBeFalsy();
      expect(without.ok && Object.hasOwn(without.frame.pull_history ?? {}, "after_seq")).toBe(false);
    }
  });

  it("reports bad input as values, never throws", () => {
    const cases: [Encoding, string | Uint8Array, string][] = [
      ["proto", new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), "malformed_frame"],
      ["proto", "a text frame", "malformed_frame"],
      ["proto", new Uint8Array(LIMITS.maxFrameBytes + 1), "frame_too_large"],
      ["proto", pb.Frame.encode({ type: 99 as FrameType }).finish(), "unknown_frame_type"],
      ["proto", pb.Frame.encode({ type: pb.FrameType.SEND, deliver: {} }).finish(), "malformed_frame"],
      ["json", "{not json", "malformed_frame"],
      ["json", "[1,2]", "malformed_frame"],
      ["json", JSON.stringify({ type: "NOPE" }), "unknown_frame_type"],
      ["json", JSON.stringify({ type: 1 }), "malformed_frame"],
      ["json", JSON.stringify({ type: "SEND", request_id: -1 }), "malformed_frame"],
      ["json", JSON.stringify({ type: "SEND", payload: "text" }), "malformed_frame"],
      ["json", JSON.stringify({ type: "SEND", payload: { content: "not an object" } }), "malformed_frame"],
      ["json", JSON.stringify({ type: "SEND", payload: { content: { text: { text: "x".repeat(LIMITS.maxFrameBytes) } } } }), "frame_too_large"],
    ];
    for (const [encoding, data, code] of cases) {
      const r = decodeFrame(data, encoding);
      expect(r.ok ? "ok" : r.code, `${encoding} ${String(data).slice(0, 40)}`).toBe(code);
    }
  });

  it("decodes arbitrary bytes and strings without throwing", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => { decodeFrame(bytes, "proto"); }), { numRuns: 500 });
    fc.assert(fc.property(fc.json(), (text) => { decodeFrame(text, "json"); }), { numRuns: 500 });
  });
});
