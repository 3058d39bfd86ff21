/**
 * DELIVER frames are cut to the frame limit by what a message costs on the socket's own
 * encoding: its encoded length on protobuf sockets, the JSON bound on JSON sockets (issue 11).
 * Sockets here are WebSocketPairs inside workerd; what the client end receives is counted.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeFrame, encodeFrame, pb, type Encoding, type Frame } from "../../protocol/codec.js";
import { chunkMessages, MESSAGES_BYTE_BUDGET, messageWireSize } from "../../protocol/frame-budget.js";
import { LIMITS } from "../../protocol/limits.js";
import type { ChatMessageData } from "../../durable-objects/channel/types.js";
import { deliverToSockets, sendMessages, type SocketInfo } from "../../durable-objects/user/socket-protocol.js";

const CHANNEL = "c_g_0123456789abcdefghjkmnpqrs";

/** Text whose JSON is twice its encoded length: every `"` is escaped in JSON, one byte in protobuf. */
function quoted(seq: number, bytes = 40_000): ChatMessageData {
  return {
    channel_id: CHANNEL, seq, hlc: `0000019${seq}`, sender_user_id: "u_g_sender", sender_device_id: "d1",
    client_msg_id: `m${seq}`, server_msg_id: `s${seq}`, server_ts: 1_700_000_000_000 + seq, content: { text: { text: '"'.repeat(bytes) } },
  };
}

const END = "end of test";

function socketPair(encoding: Encoding): { server: WebSocket; frames: unknown[]; sizes: number[]; done: () => Promise<void> } {
  const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
  const frames: unknown[] = [];
  const sizes: number[] = [];
  let ended: () => void = () => {};
  const end = new Promise<void>((resolve) => { ended = resolve; });
  client.accept();
  client.binaryType = "arraybuffer";
  client.addEventListener("message", (e) => {
    const data = e.data as ArrayBuffer | string;
    if (data === END) { ended(); return; }
    sizes.push(typeof data === "string" ? new TextEncoder().encode(data).length : data.byteLength);
    const d = decodeFrame(data, encoding);
    if (!d.ok) throw new Error(d.message);
    frames.push(d.frame);
  });
  server.accept();
  server.serializeAttachment({ deviceId: `dev-${encoding}`, sessionId: "", encoding, status: "online", activeAt: 0, sendNext: 1, phase: "live", helloAt: 0, keepAliveAt: 0, listAhead: false } satisfies SocketInfo);
  // Frames arrive in order: once the marker sent after them is in, every frame is.
  const done = () => { server.send(END); return end; };
  return { server, frames, sizes, done };
}

describe("frame budget by encoding", () => {
  it("sizes a message by its encoded length on protobuf sockets, by the JSON bound otherwise", () => {
    const m = quoted(1);
    const encoded = pb.ChatMessage.encode(m as Parameters<typeof pb.ChatMessage.encode>[0]).finish().length;
    expect(messageWireSize(m, "proto")).toBeGreaterThan(encoded);
    expect(messageWireSize(m, "proto")).toBeLessThan(encoded + 16);
    expect(messageWireSize(m, "json")).toBeGreaterThan(2 * 40_000);
    expect(messageWireSize(m)).toBe(messageWireSize(m, "json"));
  });

  it("packs a live DELIVER batch by encoded length on a protobuf socket; a JSON socket's frames are as before", async () => {
    const batch = [1, 2, 3, 4, 5].map((seq) => quoted(seq));
    const proto = socketPair("proto");
    const json = socketPair("json");
    deliverToSockets([proto.server, json.server], batch, "u_g_reader", () => "send", () => {});
    await Promise.all([proto.done(), json.done()]);
    // 40 KB of quotes: two fit one protobuf frame; in JSON each is 80 KB, so one per frame.
    expect(proto.frames.length).toBe(3);
    expect(json.frames.length).toBe(5);
    expect(json.frames.length).toBe(chunkMessages(batch, MESSAGES_BYTE_BUDGET).length);
    for (const size of [...proto.sizes, ...json.sizes]) expect(size).toBeLessThanOrEqual(LIMITS.maxFrameBytes);
    const seqs = (frames: unknown[]) => frames.flatMap((f) => (f as Frame).deliver?.messages?.map((x) => Number(x.seq)) ?? []);
    expect(seqs(proto.frames)).toEqual([1, 2, 3, 4, 5]);
    expect(seqs(json.frames)).toEqual([1, 2, 3, 4, 5]);
  });

  it("RESUME pages (sendMessages) are cut the same way, and every protobuf frame stays within the limit", async () => {
    // Near the limit: many small messages and a few large ones in one run.
    const batch = Array.from({ length: 40 }, (_, i) => quoted(i + 1, i % 7 === 0 ? 60_000 : 3_000));
    const proto = socketPair("proto");
    const json = socketPair("json");
    sendMessages(proto.server, "proto", batch);
    sendMessages(json.server, "json", batch);
    await Promise.all([proto.done(), json.done()]);
    expect(proto.frames.length).toBeLessThan(json.frames.length);
    for (const size of proto.sizes) expect(size).toBeLessThanOrEqual(LIMITS.maxFrameBytes);
    for (const size of json.sizes) expect(size).toBeLessThanOrEqual(LIMITS.maxFrameBytes);
    // Greedy: no two neighbouring protobuf frames could have been one.
    const chunks = chunkMessages(batch, MESSAGES_BYTE_BUDGET, "proto");
    expect(chunks.length).toBe(proto.frames.length);
    for (let i = 1; i < chunks.length; i++) {
      const joined = encodeFrame({ type: pb.FrameType.DELIVER, deliver: { messages: [...chunks[i - 1]!, chunks[i]![0]!] } }, "proto").length;
      expect(joined).toBeGreaterThan(MESSAGES_BYTE_BUDGET - 16);
    }
  });

  it("a few short messages go in one frame without being encoded to measure them; any mix still fits (property)", () => {
    const encode = pb.ChatMessage.encode;
    let encodes = 0;
    pb.ChatMessage.encode = ((...args: Parameters<typeof encode>) => { encodes++; return encode(...args); }) as typeof encode;
    try {
      const few = [1, 2, 3].map((seq) => quoted(seq, 200));
      expect(chunkMessages(few, MESSAGES_BYTE_BUDGET, "proto")).toEqual([few]);
      expect(encodes).toBe(0);
      // With reactions, which the bound does not cover, each message is sized exactly.
      chunkMessages([{ ...few[0]!, reactions: [{ emoji: "👍", count: 2, user_ids: ["u_a", "u_b"] }] }], MESSAGES_BYTE_BUDGET, "proto");
      expect(encodes).toBe(1);
    } finally {
      pb.ChatMessage.encode = encode;
    }
    fc.assert(fc.property(
      fc.array(fc.record({ bytes: fc.integer({ min: 0, max: 60_000 }), quotes: fc.boolean(), reactions: fc.integer({ min: 0, max: 30 }) }), { minLength: 1, maxLength: 12 }),
      (specs) => {
        const batch = specs.map((s, i) => {
          const m = quoted(i + 1, s.bytes);
          if (!s.quotes) m.content = { text: { text: "é".repeat(Math.floor(s.bytes / 2)) } };
          if (s.reactions > 0) m.reactions = Array.from({ length: s.reactions }, (_, r) => ({ emoji: "🎉", count: 40, user_ids: Array.from({ length: 40 }, (_, u) => `u_g_reactor_${r}_${u}_0123456789`) }));
          return m;
        });
        const chunks = chunkMessages(batch, MESSAGES_BYTE_BUDGET, "proto");
        expect(chunks.flat()).toEqual(batch);
        for (const chunk of chunks) {
          const size = pb.Frame.encode({ type: pb.FrameType.DELIVER, deliver: { messages: chunk } } as Parameters<typeof pb.Frame.encode>[0]).finish().length;
          if (chunk.length > 1) expect(size).toBeLessThanOrEqual(LIMITS.maxFrameBytes);
        }
      },
    ), { numRuns: 60 });
  });
});
