/**
 * Well-formed text in the shared codec and text helpers: a lone surrogate or non-UTF-8 bytes get
 * `invalid_text` from the frame decoder in both encodings (with the request_id, so the sender
 * learns which request failed), and the decoder hands back the frame repaired with U+FFFD so the
 * SDK can keep the other messages of a frame.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeFrame, encodeFrame, pb, type Encoding } from "../../protocol/codec.js";
import { cleanName, isWellFormed, toWellFormed, truncate, wellFormedDeep } from "../../protocol/text.js";
import { anyText } from "../helpers/text.js";

const encodings: Encoding[] = ["proto", "json"];
const CHANNEL = "c_g_0123456789abcdefghjkmnpqrs";

/** Protobuf repairs a lone surrogate as three U+FFFD (one per byte), JSON as one: compare runs. */
const sameRepair = (s: string) => s.replace(/\uFFFD+/g, "\uFFFD");

function sendFrame(text: string, requestId = 7) {
  return { type: pb.FrameType.SEND, request_id: requestId, send: { channel_id: CHANNEL, client_msg_id: "m-1", content: { text: { text } } } };
}

describe("text helpers", () => {
  it("tells lone surrogates from pairs and repairs them with U+FFFD", () => {
    expect(isWellFormed("a😀b")).toBe(true);
    expect(isWellFormed("a\ud800b")).toBe(false);
    expect(isWellFormed("\ude00\ud83d")).toBe(false);
    expect(toWellFormed("a\ud800b\udc00")).toBe("a\uFFFDb\uFFFD");
    expect(toWellFormed("\ud83d\ude00")).toBe("😀");
  });

  it("truncates without splitting a surrogate pair", () => {
    fc.assert(fc.property(fc.string({ unit: "grapheme", maxLength: 60 }), fc.integer({ min: 1, max: 80 }), (s, n) => {
      const t = truncate(s, n);
      expect(t.length).toBeLessThanOrEqual(n);
      expect(s.startsWith(t)).toBe(true);
      expect(isWellFormed(t)).toBe(true);
    }));
  });

  it("repairs nested values, allocating nothing when there is nothing to repair", () => {
    const clean = { a: ["x", { b: "y" }], n: 1, bytes: new Uint8Array([0xed]) };
    expect(wellFormedDeep(clean)).toBe(clean);
    const dirty = { a: ["x", { b: "y\udc00" }], n: 1 };
    expect(wellFormedDeep(dirty)).toEqual({ a: ["x", { b: "y\uFFFD" }], n: 1 });
    expect(dirty.a[1]).toEqual({ b: "y\udc00" });
  });

  it("cleans names of bidi controls, invisible and control characters, keeping spelling joiners and emoji sequences", () => {
    expect(cleanName("\u202Eadmin\u202C")).toBe("admin");
    expect(cleanName("ad\u200Bmin\u2060\uFEFF")).toBe("admin");
    expect(cleanName("\u2066Mallory\u2069 \u2067x\u2068")).toBe("Mallory x");
    expect(cleanName("a\u200Cb\u200Dc")).toBe("abc");
    expect(cleanName("Ann\u0000a\u007F\u009B")).toBe("Anna");
    expect(cleanName(" Ada\n\tLovelace  ")).toBe("Ada Lovelace");
    expect(cleanName("👩\u200D💻 dev")).toBe("👩\u200D💻 dev");
    expect(cleanName("می\u200Cخواهم")).toBe("می\u200Cخواهم"); // Persian: ZWNJ is spelling
    expect(cleanName("\u200B\u202E \u2066")).toBe("");
  });
});

describe("codec: text must be well-formed", () => {
  it("refuses a lone surrogate in a JSON frame with invalid_text, naming the field and keeping the request_id", () => {
    const r = decodeFrame(JSON.stringify({ type: "SEND", request_id: 42, payload: { channel_id: CHANNEL, client_msg_id: "m", content: { text: { text: "ok\ud800" } } } }), "json");
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.code).toBe("invalid_text");
    expect(r.requestId).toBe(42);
    expect(r.message).toContain("send.content.text.text");
    expect(r.message).toContain("U+D800");
    if (r.code !== "invalid_text") return;
    expect(r.repaired.send?.content?.text?.text).toBe("ok\uFFFD");
    expect(r.repaired.send?.client_msg_id).toBe("m");
  });

  it("refuses protobuf bytes that are not UTF-8 with invalid_text, not malformed_frame, keeping the request_id", () => {
    // protobufjs writes a lone surrogate as the 3 bytes ED A0 80 (not UTF-8); strict decoding refuses them.
    const bytes = encodeFrame(sendFrame("ok\ud800", 42), "proto") as Uint8Array;
    expect([...bytes].some((b, i) => b === 0xed && bytes[i + 1] === 0xa0)).toBe(true);
    const r = decodeFrame(bytes, "proto");
    expect(r.ok).toBe(false);
    if (r.ok || r.code !== "invalid_text") throw new Error(`expected invalid_text, got ${JSON.stringify(r)}`);
    expect(r.requestId).toBe(42);
    expect(r.paths).toEqual(["send.content.text.text"]);
    // Each byte that is not UTF-8 reads as one U+FFFD.
    expect(r.repaired.send?.content?.text?.text).toBe("ok\uFFFD\uFFFD\uFFFD");
  });

  it("still refuses truly broken protobuf as malformed_frame", () => {
    const r = decodeFrame(new Uint8Array([0x0a, 0xff, 0xff, 0xff]), "proto");
    expect(r.ok || r.code).toBe("malformed_frame");
  });

  it("refuses a binary message that is not UTF-8 on a JSON connection", () => {
    const bytes = new TextEncoder().encode(JSON.stringify({ type: "TYPING", request_id: 3, payload: { channel_id: "c_g_#", is_typing: true } }));
    bytes[bytes.indexOf(0x23)] = 0xff;
    const r = decodeFrame(bytes, "json");
    expect(r.ok || r.code).toBe("invalid_text");
    expect(r.ok || r.requestId).toBe(3);
  });

  it("names every damaged message of a DELIVER and repairs only those", () => {
    const msg = (seq: number, text: string) => ({ channel_id: CHANNEL, seq, content: { text: { text } } });
    for (const encoding of encodings) {
      const wire = encodeFrame({ type: pb.FrameType.DELIVER, deliver: { messages: [msg(1, "one"), msg(2, "t\udc00wo"), msg(3, "three 😀")] } }, encoding);
      const r = decodeFrame(wire, encoding);
      if (r.ok || r.code !== "invalid_text") throw new Error(`${encoding}: expected invalid_text`);
      expect(r.paths, encoding).toEqual(["deliver.messages.1.content.text.text"]);
      expect((r.repaired.deliver?.messages ?? []).map((m) => sameRepair(m.content?.text?.text ?? "")), encoding).toEqual(["one", "t\uFFFDwo", "three 😀"]);
    }
  });

  // The property behind issue 8's "poisoned channel": whatever string goes in, the decoder either
  // gives back exactly that string or refuses it with invalid_text, in both encodings alike.
  it.each(encodings)("any JS string round-trips exactly or is refused with invalid_text (%s)", (encoding) => {
    fc.assert(fc.property(anyText, (text) => {
      const r = decodeFrame(encodeFrame(sendFrame(text), encoding), encoding);
      if (isWellFormed(text)) {
        expect(r.ok).toBe(true);
        if (r.ok) expect(r.frame.send?.content?.text?.text ?? "").toBe(text);
      } else {
        expect(r.ok || r.code).toBe("invalid_text");
        if (!r.ok && r.code === "invalid_text") {
          expect(r.requestId).toBe(7);
          const repaired = r.repaired.send?.content?.text?.text ?? "";
          expect(isWellFormed(repaired)).toBe(true);
          expect(sameRepair(repaired)).toBe(sameRepair(toWellFormed(text)));
        }
      }
    }), { numRuns: 500 });
  });
});
