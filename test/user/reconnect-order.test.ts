/**
 * The order contract of one connection (docs/protocol.md, DESIGN.md invariant 4): from its first
 * frame, a connection receives each channel's messages in strictly increasing seq, never one seq
 * twice, RESUME replay included. Live deliveries wait until RESUMED; a socket that never sends
 * RESUME is resumed by the server after RESUME_DEADLINE_MS.
 */
import { describe, expect, it } from "vitest";
import { pb, type Frame } from "../../protocol/codec.js";
import { RESUME_DEADLINE_MS } from "../../durable-objects/user/resume.js";
import { createGroup, register } from "../helpers/api.js";
import { helloDevice, onlineDevice, type TestDevice } from "../helpers/socket.js";

const T = pb.FrameType;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every DELIVERed message of the connection, from its first frame, as [channel, seq]. */
function delivered(log: Frame[]): [string, number][] {
  return log.filter((f) => f.type === T.DELIVER).flatMap((f) => (f.deliver?.messages ?? []).map((m): [string, number] => [m.channel_id!, Number(m.seq)]));
}

/** Strictly increasing per channel, none twice, over the whole connection. */
function expectOrdered(d: TestDevice): void {
  const last = new Map<string, number>();
  for (const [channel, seq] of delivered(d.log)) {
    const prev = last.get(channel) ?? 0;
    expect(seq, `${d.deviceId}: seq ${seq} of ${channel.slice(-6)} after ${prev}`).toBeGreaterThan(prev);
    last.set(channel, seq);
  }
}

describe("the order of a connection", () => {
  it("sends nothing live before RESUME, then the gap, then live messages: each seq once, increasing", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    const a = await onlineDevice(alice.access_token, "a");
    const marker = await onlineDevice(bob.access_token, "bob-marker");
    const b = await helloDevice(bob.access_token, "bob-late");
    for (let i = 0; i < 5; i++) expect((await a.sendText(channel, `before ${i}`)).type).toBe(T.SEND_ACK);
    // The marker is live and gets all five; the socket that has not sent RESUME gets none.
    await marker.messages(5);
    expect(b.log.filter((f) => f.type === T.DELIVER)).toEqual([]);
    const { messages } = await b.resume([{ channel_id: channel, last_seq: 1 }]);
    expect(messages.map((m) => Number(m.seq))).toEqual([2, 3, 4, 5, 6]);
    for (let i = 0; i < 3; i++) await a.sendText(channel, `after ${i}`);
    expect((await b.messages(3)).map((m) => Number(m.seq))).toEqual([7, 8, 9]);
    expectOrdered(b);
    a.close(); b.close(); marker.close();
  });

  it("keeps every reconnecting connection in order while posts keep coming, RESUME sent right after HELLO", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    const a = await onlineDevice(alice.access_token, "a");
    let posting = true;
    let posted = 1;
    const poster = (async () => {
      while (posting) {
        const ack = await a.sendText(channel, `live ${posted}`);
        posted = Number(ack.send_ack!.seq);
      }
    })();
    /** Highest contiguous seq the device holds, across its connections. */
    let held = 0;
    const connections: TestDevice[] = [];
    for (let round = 0; round < 8; round++) {
      const d = await helloDevice(bob.access_token, "bob-phone");
      connections.push(d);
      const { messages } = await d.resume([{ channel_id: channel, last_seq: held }]);
      for (const m of messages) if (Number(m.seq) === held + 1) held++;
      await sleep(50 + round * 20);
      for (const f of d.frames.filter((x) => x.type === T.DELIVER)) for (const m of f.deliver?.messages ?? []) if (Number(m.seq) === held + 1) held++;
      d.close();
      await d.waitClosed();
    }
    posting = false;
    await poster;
    for (const d of connections) expectOrdered(d);
    // Together, the connections saw one contiguous stream (each picked up where the last left off).
    expect(held).toBeGreaterThan(1);
    a.close();
  }, 120_000);

  it("resumes a socket that never sends RESUME after the deadline, as if RESUME {} had come", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    const a = await onlineDevice(alice.access_token, "a");
    const b = await helloDevice(bob.access_token, "quiet");
    const started = Date.now();
    await a.sendText(channel, "one");
    const resumed = await b.next(T.RESUMED, RESUME_DEADLINE_MS + 15_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(RESUME_DEADLINE_MS - 1000);
    expect(resumed.request_id ?? 0).toBe(0);
    expect(delivered(b.log)).toEqual([[channel, 1], [channel, 2]]);
    b.frames.length = 0;
    await a.sendText(channel, "two");
    expect((await b.messages(1, 10_000)).map((m) => Number(m.seq))).toEqual([3]);
    // A late RESUME is answered, and repeats nothing on this connection.
    const late = await b.resume([{ channel_id: channel, last_seq: 0 }]);
    expect(late.messages).toEqual([]);
    await a.sendText(channel, "three");
    expect((await b.messages(1)).map((m) => Number(m.seq))).toEqual([4]);
    expectOrdered(b);
    a.close(); b.close();
  }, 60_000);

  it("answers two RESUMEs on one socket one after the other, never repeating a seq", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(alice, [bob]);
    const a = await onlineDevice(alice.access_token, "a");
    for (let i = 0; i < 250; i++) await a.sendText(channel, `m${i}`);
    const b = await helloDevice(bob.access_token, "double");
    const first = b.send({ type: T.RESUME, resume: { cursors: [{ channel_id: channel, last_seq: 0 }] } });
    const second = b.send({ type: T.RESUME, resume: { cursors: [{ channel_id: channel, last_seq: 0 }] } });
    await b.take((f) => f.type === T.RESUMED && f.request_id === first, 20_000);
    await b.take((f) => f.type === T.RESUMED && f.request_id === second, 20_000);
    expect(delivered(b.log).map(([, seq]) => seq)).toEqual(Array.from({ length: 251 }, (_, i) => i + 1));
    b.frames.length = 0;
    await a.sendText(channel, "after");
    expect((await b.messages(1)).map((m) => Number(m.seq))).toEqual([252]);
    expectOrdered(b);
    a.close(); b.close();
  }, 90_000);
});
