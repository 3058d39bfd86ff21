/**
 * The send pipeline on its own, with real sockets (a WebSocketPair per connection) and a channel
 * that records what it is asked to append: send_seq order, one batch in flight per channel, the
 * flow-control window, failures, and SENDs held behind a number that never came.
 */
import { describe, expect, it } from "vitest";
import { decodeFrame, pb, type Frame } from "../../protocol/codec.js";
import { LIMITS } from "../../protocol/limits.js";
import { fail, type Result } from "../../shared/errors.js";
import { GAP_MS, SendPipeline, type AppendTarget } from "../../durable-objects/user/send-pipeline.js";
import { DEFAULT_OVERLOAD } from "../../shared/overload.js";
import type { AppendInput, SendAck } from "../../durable-objects/channel/types.js";

const T = pb.FrameType;

/** The server end of a socket, and the frames its client end received. */
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

/** A channel that acks everything, unless told to hold a call or to fail. */
class Channel implements AppendTarget {
  calls: { channelId: string; keys: string[] }[] = [];
  forgotten: string[] = [];
  hold: Promise<void> | undefined;
  failWith: Error | undefined;
  private seq = 0;
  async appendBatch(channelId: string, inputs: AppendInput[]): Promise<Result<{ ack: SendAck }>[]> {
    this.calls.push({ channelId, keys: inputs.map((i) => i.clientMsgId) });
    if (this.hold) await this.hold;
    if (this.failWith) throw this.failWith;
    return inputs.map((i) => i.clientMsgId.startsWith("bad")
      ? fail("invalid_argument", "bad")
      : { ok: true, ack: { channel_id: channelId, client_msg_id: i.clientMsgId, server_msg_id: "", hlc: "", seq: ++this.seq, server_ts: 0, status: "stored" } });
  }
  forget(channelId: string): void {
    this.forgotten.push(channelId);
  }
}

/** A clock the test moves, and the wake-ups the pipeline asked for. */
function manualClock(start = 1_000_000) {
  const c = { t: start, wakes: [] as number[], now: () => c.t, wakeAt: (at: number) => { c.wakes.push(at); } };
  return c;
}

/** Resolves to "pending" if `p` has not settled once the pipeline's promise chains have run. */
async function stateOf(p: Promise<unknown>): Promise<"settled" | "pending"> {
  return Promise.race([p.then(() => "settled" as const), settle().then(() => settle()).then(() => "pending" as const)]);
}

const job = (ws: WebSocket, key: string, channelId = "c_g_00000000000000000000000000", requestId = 1) =>
  ({ ws, encoding: "json" as const, requestId, channelId, input: { userId: "u_a", deviceId: "d", clientMsgId: key, content: { text: { text: key } } } });

/** Lets the pipeline's promise chains run. */
const settle = () => new Promise((r) => setTimeout(r, 0));

describe("SendPipeline", () => {
  it("appends a connection's SENDs in send_seq order whatever order they are handed over in", async () => {
    const channel = new Channel();
    const pipeline = new SendPipeline(channel);
    const { ws, frames } = connection();
    const replies = [3, 1, 2, 5, 4].map((n) => pipeline.submit(job(ws, `s${n}`), n));
    expect(pipeline.inFlight(ws)).toBe(5);
    await Promise.all(replies);
    expect(channel.calls.map((c) => c.keys)).toEqual([["s1"], ["s2", "s3", "s4", "s5"]]);
    await settle();
    expect(frames.map((f) => [f.type, f.send_ack?.client_msg_id, f.send_ack?.seq])).toEqual(
      ["s1", "s2", "s3", "s4", "s5"].map((k, i) => [T.SEND_ACK, k, i + 1]),
    );
    expect(pipeline.inFlight(ws)).toBe(0);
  });

  it("keeps one append in flight per channel and sends what queued meanwhile as one batch", async () => {
    const channel = new Channel();
    const pipeline = new SendPipeline(channel);
    const { ws } = connection();
    let release!: () => void;
    channel.hold = new Promise((r) => { release = r; });
    const first = pipeline.submit(job(ws, "a"), 0);
    await settle();
    const rest = ["b", "c", "d"].map((k) => pipeline.submit(job(ws, k), 0));
    const elsewhere = pipeline.submit(job(ws, "x", "c_g_11111111111111111111111111"), 0);
    await settle();
    expect(channel.calls.map((c) => c.keys)).toEqual([["a"], ["x"]]);
    channel.hold = undefined;
    release();
    await Promise.all([first, ...rest, elsewhere]);
    expect(channel.calls.map((c) => c.keys)).toEqual([["a"], ["x"], ["b", "c", "d"]]);
  });

  it("refuses a SEND past the window with SLOWDOWN and rate_limited", async () => {
    const channel = new Channel();
    channel.hold = new Promise(() => {});
    // The window on its own: the user-wide threshold (which asks for SLOWDOWN earlier) set out of the way; test/user/overload.test.ts covers it.
    const pipeline = new SendPipeline(channel, { overload: { ...DEFAULT_OVERLOAD, userPendingSends: LIMITS.maxUnackedFrames } });
    const { ws, frames } = connection();
    for (let i = 0; i < LIMITS.maxUnackedFrames; i++) {
      expect(pipeline.refuseOverWindow(ws, "json")).toBeUndefined();
      void pipeline.submit(job(ws, `w${i}`), 0);
    }
    const refused = pipeline.refuseOverWindow(ws, "json");
    expect(refused).toMatchObject({ ok: false, code: "rate_limited", retryable: true });
    await settle();
    expect(frames.map((f) => f.type)).toEqual([T.SLOWDOWN]);
    expect(pipeline.refuseOverWindow(connection().ws, "json")).toBeUndefined(); // per connection
  });

  it("answers every SEND of a failed call with a retryable ERROR that names it, and takes a fresh stub", async () => {
    const channel = new Channel();
    channel.failWith = new Error("stub broke");
    const pipeline = new SendPipeline(channel);
    const { ws, frames } = connection();
    await Promise.all([pipeline.submit(job(ws, "a", undefined, 7), 0), pipeline.submit(job(ws, "b", undefined, 8), 0)]);
    await settle();
    expect(frames.map((f) => [f.type, f.request_id, f.error?.client_msg_id, f.error?.retryable])).toEqual([
      [T.ERROR, 7, "a", true], [T.ERROR, 8, "b", true],
    ]);
    // "b" queued behind "a", so it went in a second call, which failed the same way.
    expect(channel.calls.map((c) => c.keys)).toEqual([["a"], ["b"]]);
    expect(channel.forgotten).toEqual(["c_g_00000000000000000000000000", "c_g_00000000000000000000000000"]);
    expect(pipeline.inFlight(ws)).toBe(0);
    channel.failWith = undefined;
    await pipeline.submit(job(ws, "bad-one", undefined, 9), 0);
    await settle();
    expect(frames.at(-1)).toMatchObject({ type: T.ERROR, request_id: 9, error: { code: "invalid_argument", retryable: false } });
  });

  it("holds SENDs behind a missing send_seq until it comes, and stores them in order when the socket closes without it", async () => {
    const channel = new Channel();
    const pipeline = new SendPipeline(channel);
    const { ws } = connection();
    const two = pipeline.submit(job(ws, "s2"), 2);
    const three = pipeline.submit(job(ws, "s3"), 3);
    await settle();
    expect(channel.calls).toEqual([]);
    await Promise.all([pipeline.submit(job(ws, "s1"), 1), two, three]);
    expect(channel.calls.flatMap((c) => c.keys)).toEqual(["s1", "s2", "s3"]);

    const gone = connection();
    channel.calls = [];
    const held = [6, 5].map((n) => pipeline.submit(job(gone.ws, `s${n}`), n));
    await settle();
    expect(channel.calls).toEqual([]);
    pipeline.socketGone(gone.ws);
    await Promise.all(held);
    expect(channel.calls.flatMap((c) => c.keys)).toEqual(["s5", "s6"]);
  });

  it("keeps a connection's send_seq across a new instance of the object (hibernation)", async () => {
    const channel = new Channel();
    const { ws, frames } = connection();
    await new SendPipeline(channel).submit(job(ws, "s1", undefined, 1), 1);
    // The object hibernated with the socket open: a new instance, a new pipeline, the same socket.
    const woken = new SendPipeline(channel);
    expect(await stateOf(woken.submit(job(ws, "s2", undefined, 2), 2))).toBe("settled");
    await settle();
    expect(frames.map((f) => [f.type, f.send_ack?.client_msg_id])).toEqual([[T.SEND_ACK, "s1"], [T.SEND_ACK, "s2"]]);
  });

  it("lets a refused SEND use up its send_seq, so the next one does not wait for it", async () => {
    const channel = new Channel();
    const pipeline = new SendPipeline(channel);
    const { ws } = connection();
    pipeline.skip(ws, 1); // e.g. a bad channel id, answered with ERROR before ordering
    expect(await stateOf(pipeline.submit(job(ws, "s2"), 2))).toBe("settled");
    expect(channel.calls.flatMap((c) => c.keys)).toEqual(["s2"]);
  });

  it("goes on without a send_seq that never comes once GAP_MS has passed (checked by tick)", async () => {
    const channel = new Channel();
    const clock = manualClock();
    const pipeline = new SendPipeline(channel, { now: clock.now, wakeAt: clock.wakeAt });
    const { ws } = connection();
    const held = [3, 4].map((n) => pipeline.submit(job(ws, `s${n}`), n));
    expect(await stateOf(held[0]!)).toBe("pending");
    expect(Math.min(...clock.wakes)).toBe(clock.t + GAP_MS);
    clock.t += GAP_MS - 1;
    pipeline.tick();
    expect(await stateOf(held[0]!)).toBe("pending");
    clock.t += 1;
    pipeline.tick();
    await Promise.all(held);
    expect(channel.calls.flatMap((c) => c.keys)).toEqual(["s3", "s4"]);
    // 1 and 2 are given up on: a late 1 goes as it comes, and 5 follows 4 without waiting.
    expect(await stateOf(pipeline.submit(job(ws, "s5"), 5))).toBe("settled");
    expect(await stateOf(pipeline.submit(job(ws, "s1"), 1))).toBe("settled");
  });

  it("answers a SEND with no reply within the deadline with a retryable unavailable, frees its place, and ignores the late reply", async () => {
    const channel = new Channel();
    let release!: () => void;
    channel.hold = new Promise((r) => { release = r; });
    const clock = manualClock();
    const pipeline = new SendPipeline(channel, { now: clock.now, wakeAt: clock.wakeAt, deadlineMs: 10_000 });
    const { ws, frames } = connection();
    const stuck = pipeline.submit(job(ws, "a", undefined, 7), 0);
    clock.t += 5_000;
    const queued = pipeline.submit(job(ws, "b", undefined, 8), 0); // behind "a" on the same channel
    expect(clock.wakes[0]).toBe(clock.t - 5_000 + 10_000);
    clock.t += 5_000;
    pipeline.tick();
    await stuck;
    expect(pipeline.inFlight(ws)).toBe(1);
    expect(await stateOf(queued)).toBe("pending");
    clock.t += 5_000;
    pipeline.tick();
    await queued;
    expect(pipeline.inFlight(ws)).toBe(0);
    await settle();
    expect(frames.map((f) => [f.type, f.request_id, f.error?.code, f.error?.retryable, f.error?.client_msg_id, f.error?.backoff_hint_ms! > 0])).toEqual([
      [T.ERROR, 7, "unavailable", true, "a", true], [T.ERROR, 8, "unavailable", true, "b", true],
    ]);
    // The channel answers at last: nothing more is written for SENDs already answered, and "b",
    // answered while queued, is never appended.
    channel.hold = undefined;
    release();
    await settle(); await settle();
    expect(frames).toHaveLength(2);
    expect(channel.calls.map((c) => c.keys)).toEqual([["a"]]);
  });

  it("gives up on an appendBatch that never returns, so the channel's later SENDs go through", async () => {
    const channel = new Channel();
    channel.hold = new Promise(() => {});
    const clock = manualClock();
    const pipeline = new SendPipeline(channel, { now: clock.now, wakeAt: clock.wakeAt, deadlineMs: 1000 });
    const { ws, frames } = connection();
    const first = pipeline.submit(job(ws, "a", undefined, 1), 0);
    clock.t += pipeline.abandonMs;
    pipeline.tick();
    await first;
    await settle();
    expect(channel.forgotten).toEqual(["c_g_00000000000000000000000000"]);
    channel.hold = undefined;
    await pipeline.submit(job(ws, "b", undefined, 2), 0);
    await settle();
    expect(frames.map((f) => [f.type, f.request_id])).toEqual([[T.ERROR, 1], [T.SEND_ACK, 2]]);
  });

  it("retries a call the platform says failed transiently once, with a fresh stub", async () => {
    const channel = new Channel();
    const transient = Object.assign(new Error("Network connection lost."), { retryable: true });
    const appendBatch = channel.appendBatch.bind(channel);
    let failures = 1;
    channel.appendBatch = async (channelId, inputs) => {
      if (failures-- > 0) { channel.calls.push({ channelId, keys: inputs.map((i) => i.clientMsgId) }); throw transient; }
      return appendBatch(channelId, inputs);
    };
    const pipeline = new SendPipeline(channel);
    const { ws, frames } = connection();
    await pipeline.submit(job(ws, "a"), 0);
    await settle();
    expect(channel.calls.map((c) => c.keys)).toEqual([["a"], ["a"]]);
    expect(channel.forgotten).toHaveLength(1);
    expect(frames.map((f) => f.type)).toEqual([T.SEND_ACK]);
  });
});
