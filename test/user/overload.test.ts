/**
 * Overload in the UserObject's send path (docs/decisions/022), with real sockets and a channel
 * that holds its calls: SLOWDOWN before the window is full, proportional and capped; a channel's
 * own pressure reaching the sender; DMs served before groups before broadcasts (order of acks,
 * not time); typing dropped under pressure while every SEND is still answered.
 */
import { describe, expect, it } from "vitest";
import { decodeFrame, encodeFrame, pb, type Frame } from "../../protocol/codec.js";
import { LIMITS } from "../../protocol/limits.js";
import type { Result } from "../../shared/errors.js";
import { memoryRecorder, recordMetricsWith } from "../../shared/metrics.js";
import { DEFAULT_OVERLOAD, slowdownDelay, channelRank } from "../../shared/overload.js";
import { SendPipeline, type AppendResult, type AppendTarget } from "../../durable-objects/user/send-pipeline.js";
import { patchSocketInfo, SocketProtocol, type SocketHost } from "../../durable-objects/user/socket-protocol.js";
import type { AppendInput } from "../../durable-objects/channel/types.js";

const T = pb.FrameType;
const settle = () => new Promise((r) => setTimeout(r, 0));

function connection() {
  const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
  server.accept();
  client.accept();
  const frames: Frame[] = [];
  client.addEventListener("message", (e) => {
    const d = decodeFrame(e.data as string, "json");
    if (d.ok) frames.push(d.frame);
  });
  return { ws: server, frames };
}

const DM = "c_d_00000000000000000000000000";
const GROUP_A = "c_g_00000000000000000000000000";
const GROUP_B = "c_g_11111111111111111111111111";
const BROADCAST = "c_g_22222222222222222222222222";
const TYPES: Record<string, string> = { [DM]: "dm", [GROUP_A]: "group", [GROUP_B]: "group", [BROADCAST]: "broadcast" };

/** Acks everything, holding every call while `hold` is set; optionally reports its own pressure. */
class Channel implements AppendTarget {
  calls: { channelId: string; keys: string[] }[] = [];
  hold: Promise<void> | undefined;
  slowdownMs: number | undefined;
  private seq = 0;
  async appendBatch(channelId: string, inputs: AppendInput[]): Promise<AppendResult[]> {
    this.calls.push({ channelId, keys: inputs.map((i) => i.clientMsgId) });
    if (this.hold) await this.hold;
    return inputs.map((i) => ({
      ok: true as const,
      ack: { channel_id: channelId, client_msg_id: i.clientMsgId, server_msg_id: "", hlc: "", seq: ++this.seq, server_ts: 0, status: "stored" },
      ...(this.slowdownMs ? { slowdownMs: this.slowdownMs } : {}),
    }));
  }
  forget(): void {}
  typeOf(channelId: string): string | undefined {
    return TYPES[channelId];
  }
}

let requestIds = 1;
const job = (ws: WebSocket, key: string, channelId = GROUP_A) =>
  ({ ws, encoding: "json" as const, requestId: requestIds++, channelId, input: { userId: "u_a", deviceId: "d", clientMsgId: key, content: { text: { text: key } } } });

function held(channel: Channel): () => void {
  let release!: () => void;
  channel.hold = new Promise((r) => { release = r; });
  return () => { channel.hold = undefined; release(); };
}

describe("slowdownDelay", () => {
  it("is nothing up to the threshold, then grows with the excess, capped", () => {
    expect(slowdownDelay(32, 32)).toBeUndefined();
    expect(slowdownDelay(33, 32)).toBe(DEFAULT_OVERLOAD.baseDelayMs);
    expect(slowdownDelay(40, 32)).toBe(DEFAULT_OVERLOAD.baseDelayMs + 7 * DEFAULT_OVERLOAD.perExcessMs);
    expect(slowdownDelay(10_000, 32)).toBe(DEFAULT_OVERLOAD.maxDelayMs);
    expect([channelRank("dm"), channelRank("group"), channelRank("broadcast"), channelRank(undefined)]).toEqual([0, 1, 2, 1]);
  });
});

describe("SLOWDOWN under pressure", () => {
  it("is sent at the threshold, long before the socket's window is full, and no SEND is refused", async () => {
    const channel = new Channel();
    const release = held(channel);
    const pipeline = new SendPipeline(channel, { overload: { ...DEFAULT_OVERLOAD, userPendingSends: 4 } });
    const { ws, frames } = connection();
    const replies = [];
    for (let i = 0; i < 4; i++) replies.push(pipeline.submit(job(ws, `s${i}`), 0));
    await settle();
    expect(frames).toEqual([]);
    replies.push(pipeline.submit(job(ws, "s4"), 0));
    await settle();
    expect(frames.map((f) => [f.type, f.slowdown?.delay_ms])).toEqual([[T.SLOWDOWN, DEFAULT_OVERLOAD.baseDelayMs]]);
    expect(pipeline.inFlight(ws)).toBe(5);
    expect(pipeline.inFlight(ws)).toBeLessThan(LIMITS.maxUnackedFrames);
    expect(pipeline.underPressure()).toBe(true);
    // More pending work: a longer pause is asked for, at most once per pause.
    for (let i = 5; i < 30; i++) replies.push(pipeline.submit(job(ws, `s${i}`), 0));
    await settle();
    const delays = frames.filter((f) => f.type === T.SLOWDOWN).map((f) => f.slowdown!.delay_ms!);
    expect(delays.length).toBeGreaterThan(1);
    expect(delays.length).toBeLessThan(10);
    expect([...delays].sort((a, b) => a - b)).toEqual(delays);
    release();
    await Promise.all(replies);
    await settle();
    expect(frames.filter((f) => f.type === T.SEND_ACK)).toHaveLength(30);
    expect(frames.filter((f) => f.type === T.ERROR)).toEqual([]);
    expect(pipeline.underPressure()).toBe(false);
  });

  it("passes a channel's own pressure (its fan-out lags) to the sender as SLOWDOWN", async () => {
    const channel = new Channel();
    channel.slowdownMs = 600;
    const pipeline = new SendPipeline(channel);
    const { ws, frames } = connection();
    await pipeline.submit(job(ws, "a"), 0);
    await settle();
    expect(frames.map((f) => [f.type, f.slowdown?.delay_ms])).toEqual([[T.SLOWDOWN, 600], [T.SEND_ACK, undefined]]);
  });

  it("serves DMs before groups before broadcasts while under pressure", async () => {
    const channel = new Channel();
    const release = held(channel);
    const pipeline = new SendPipeline(channel, { overload: { ...DEFAULT_OVERLOAD, userPendingSends: 1, callsUnderPressure: 1 } });
    const { ws, frames } = connection();
    const replies = [pipeline.submit(job(ws, "g-first", GROUP_A), 0)];
    await settle();
    // Queued behind it, in this order: a broadcast, a group, then DMs.
    replies.push(pipeline.submit(job(ws, "b1", BROADCAST), 0));
    replies.push(pipeline.submit(job(ws, "g1", GROUP_B), 0), pipeline.submit(job(ws, "g2", GROUP_B), 0));
    replies.push(pipeline.submit(job(ws, "d1", DM), 0), pipeline.submit(job(ws, "d2", DM), 0));
    await settle();
    expect(channel.calls.map((c) => c.channelId)).toEqual([GROUP_A]); // one call at a time under pressure
    release();
    await Promise.all(replies);
    await settle();
    expect(channel.calls.map((c) => c.keys)).toEqual([["g-first"], ["d1", "d2"], ["g1", "g2"], ["b1"]]);
    expect(frames.filter((f) => f.type === T.SEND_ACK).map((f) => f.send_ack!.client_msg_id)).toEqual(["g-first", "d1", "d2", "g1", "g2", "b1"]);
  });

  it("without pressure, channels are not held back: each gets its call at once", async () => {
    const channel = new Channel();
    const release = held(channel);
    const pipeline = new SendPipeline(channel);
    const { ws } = connection();
    const replies = [GROUP_A, BROADCAST, GROUP_B, DM].map((c, i) => pipeline.submit(job(ws, `k${i}`, c), 0));
    await settle();
    expect(channel.calls.map((c) => c.channelId)).toEqual([GROUP_A, BROADCAST, GROUP_B, DM]);
    release();
    await Promise.all(replies);
  });

  it("drops TYPING under pressure (counted, no ERROR) while every SEND is answered", async () => {
    const channel = new Channel();
    const release = held(channel);
    const pipeline = new SendPipeline(channel, { overload: { ...DEFAULT_OVERLOAD, userPendingSends: 8 } });
    const typed: string[] = [];
    const host = { userId: () => "u_a", sends: pipeline, actions: { typing: async (channelId: string) => { typed.push(channelId); return { ok: true } as Result; } } };
    const protocol = new SocketProtocol(host as unknown as SocketHost);
    const { ws, frames } = connection();
    patchSocketInfo(ws, { encoding: "json", deviceId: "d" });
    const seen = memoryRecorder();
    const restore = recordMetricsWith(seen);
    try {
      const typing = () => encodeFrame({ type: T.TYPING, request_id: 0, typing: { channel_id: GROUP_A, is_typing: true } }, "json") as string;
      await protocol.onMessage(ws, typing());
      expect(typed).toEqual([GROUP_A]); // no pressure yet: forwarded
      const sends: Promise<void>[] = [];
      for (let i = 0; i < 20; i++) {
        sends.push(protocol.onMessage(ws, encodeFrame({ type: T.SEND, request_id: 100 + i, send: { channel_id: GROUP_A, client_msg_id: `m${i}`, content: { text: { text: "x" } } } }, "json") as string));
      }
      await settle();
      expect(pipeline.underPressure()).toBe(true);
      await protocol.onMessage(ws, typing());
      await protocol.onMessage(ws, typing());
      expect(typed).toEqual([GROUP_A]);
      expect(seen.total("overload.dropped", { kind: "typing" })).toBe(2);
      release();
      await Promise.all(sends);
      await settle();
      const answers = frames.filter((f) => f.type === T.SEND_ACK || f.type === T.ERROR);
      expect(answers.map((f) => f.type)).toEqual(Array(20).fill(T.SEND_ACK));
      expect(new Set(answers.map((f) => f.request_id)).size).toBe(20);
      expect(frames.some((f) => f.type === T.SLOWDOWN)).toBe(true);
    } finally {
      restore();
    }
  });
});
