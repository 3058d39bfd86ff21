/**
 * Overload and trace ids end to end, under a real `wrangler dev` with the project's SDK on real
 * WebSockets: a flood from several devices at once is slowed with SLOWDOWN (threshold lowered so
 * this machine reaches it), the SDK holds its SENDs for each pause and resumes, and every SEND is
 * answered exactly once; then one message's trace id is followed from SEND to each DELIVER in
 * wrangler's own output.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { createClient, type ChatMessage, type EdgechatClient, type WebSocketConstructor } from "../../client/index.js";
import { decodeFrame, pb, type Frame } from "../../protocol/codec.js";
import { startDevServer, type DevServer } from "../support/dev-server.js";

const T = pb.FrameType;
const PASSWORD = "correct horse battery";
let server: DevServer;
beforeAll(async () => {
  // The rate limiter off and the user threshold low: the flood meets SLOWDOWN, not rate_limited.
  server = await startDevServer({ vars: { OVERLOAD_USER_PENDING_SENDS: "4", SEND_RATE_PER_SECOND: "0", LOG_LEVEL: "debug" } });
});
afterAll(async () => { await server?.stop(); });

/** What went over one device's socket, decoded, with the local time of each frame. */
interface Wire {
  sent: { at: number; frame: Frame }[];
  received: { at: number; frame: Frame }[];
}

/** The `ws` WebSocket, recording every JSON frame both ways. */
function tappedWebSocket(wire: Wire): WebSocketConstructor {
  class Tapped extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      this.on("message", (data: Buffer, isBinary: boolean) => {
        if (isBinary) return;
        const d = decodeFrame(data.toString(), "json");
        if (d.ok) wire.received.push({ at: Date.now(), frame: d.frame });
      });
    }
    override send(data: unknown, ...rest: unknown[]): void {
      if (typeof data === "string" && data !== "ping") {
        const d = decodeFrame(data, "json");
        if (d.ok) wire.sent.push({ at: Date.now(), frame: d.frame });
      }
      (WebSocket.prototype.send as (...a: unknown[]) => void).call(this, data, ...rest);
    }
  }
  return Tapped as unknown as WebSocketConstructor;
}

interface Device {
  name: string;
  client: EdgechatClient;
  wire: Wire;
  seen: ChatMessage[];
  slowdowns: { sending_slowly: boolean; delay_ms: number }[];
}

function device(name: string, username: string, deviceId: string): Device {
  const wire: Wire = { sent: [], received: [] };
  const client = createClient({ url: server.url, deviceId, encoding: "json", credentials: { username, password: PASSWORD }, WebSocket: tappedWebSocket(wire) });
  const d: Device = { name, client, wire, seen: [], slowdowns: [] };
  client.on("message", (m) => d.seen.push(m));
  client.on("slowdown", (e) => d.slowdowns.push({ sending_slowly: e.sending_slowly, delay_ms: e.delay_ms }));
  return d;
}

async function until(what: string, check: () => boolean, timeoutMs = 120_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !check();) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const suffix = Math.random().toString(36).slice(2, 7);
const names = { alice: `alice_${suffix}`, bob: `bob_${suffix}`, carol: `carol_${suffix}` };
let laptop: Device, phone: Device, bob: Device, carol: Device;
let group = "";

describe("overload end to end", () => {
  it("a flood from three devices: SLOWDOWN observed and honoured, every SEND answered exactly once, nothing lost or doubled", async () => {
    laptop = device("alice-laptop", names.alice, "alice-laptop");
    phone = device("alice-phone", names.alice, "alice-phone");
    bob = device("bob", names.bob, "bob-phone");
    carol = device("carol", names.carol, "carol-phone");
    await laptop.client.register({ username: names.alice, password: PASSWORD });
    await bob.client.register({ username: names.bob, password: PASSWORD });
    await carol.client.register({ username: names.carol, password: PASSWORD });
    group = (await laptop.client.channels.create({ type: "group", name: "Flood", members: [names.bob, names.carol] })).channel_id;
    await Promise.all([laptop, phone, bob, carol].map((d) => d.client.connect()));

    const senders = [laptop, phone, bob];
    const perSender = 40;
    const acks = await Promise.all(senders.flatMap((s) => Array.from({ length: perSender }, (_, i) => s.client.send(group, `${s.name} ${i}`))));
    expect(acks).toHaveLength(senders.length * perSender);
    expect(new Set(acks.map((a) => a.seq)).size).toBe(acks.length);

    // Carol (not sending) receives every one of them once.
    const posts = () => carol.seen.filter((m) => m.channel_id === group && !m.content.system);
    await until("carol's copy of the flood", () => posts().length >= acks.length);
    expect(posts()).toHaveLength(acks.length);
    expect(new Set(posts().map((m) => m.client_msg_id)).size).toBe(acks.length);

    const slowdownFrames = senders.flatMap((s) => s.wire.received.filter((r) => r.frame.type === T.SLOWDOWN));
    expect(slowdownFrames.length).toBeGreaterThan(0);
    console.log("flood:", JSON.stringify(Object.fromEntries(senders.map((s) => [s.name, {
      sends: s.wire.sent.filter((x) => x.frame.type === T.SEND).length,
      slowdowns: s.wire.received.filter((r) => r.frame.type === T.SLOWDOWN).map((r) => r.frame.slowdown?.delay_ms),
      errors: s.wire.received.filter((r) => r.frame.type === T.ERROR).map((r) => r.frame.error?.code),
    }]))));
    for (const s of senders) {
      // Exactly one answer (SEND_ACK or ERROR) per SEND frame.
      const answers = new Map<number, number>();
      for (const r of s.wire.received) {
        if (r.frame.type === T.SEND_ACK || r.frame.type === T.ERROR) answers.set(r.frame.request_id, (answers.get(r.frame.request_id) ?? 0) + 1);
      }
      const sends = s.wire.sent.filter((x) => x.frame.type === T.SEND);
      expect(sends.length).toBeGreaterThanOrEqual(perSender);
      for (const x of sends) expect(answers.get(x.frame.request_id), `${s.name} request ${x.frame.request_id}`).toBe(1);
      // Honoured: no SEND leaves during a pause the device was asked for (a timer may fire a few ms early).
      for (const r of s.wire.received.filter((y) => y.frame.type === T.SLOWDOWN)) {
        const pauseEnd = r.at + (r.frame.slowdown?.delay_ms ?? 0);
        const during = sends.filter((x) => x.at > r.at && x.at < pauseEnd - 5);
        expect(during.map((x) => x.frame.send?.client_msg_id), `${s.name}: SENDs during a SLOWDOWN`).toEqual([]);
      }
      // Every pause the SDK announced, it also announces the end of (the last may still be running now).
      if (s.slowdowns.length > 0) await until(`${s.name}'s pause to end`, () => s.slowdowns.at(-1)?.sending_slowly === false, 10_000);
      expect(s.client.sendingSlowly).toBe(false);
    }
    expect(senders.some((s) => s.slowdowns.some((e) => e.sending_slowly))).toBe(true);
  }, 240_000);

  it("follows one message's trace id from its SEND to every DELIVER in the dev server's log output", async () => {
    const ack = await bob.client.send(group, "follow this one");
    const trace = ack.trace_id!;
    expect(trace).toMatch(/^[0-9a-f]{32}$/);
    await until("carol's copy", () => carol.seen.some((m) => m.seq === ack.seq));
    const lines = () => server.log.filter((l) => l.includes(trace));
    const events = (event: string) => lines().filter((l) => l.includes(`"event":"${event}"`));
    // One deliver per member's UserObject: alice (two devices), carol, and bob's own (from his append's answer, decision 033).
    await until("the log lines", () => events("send.acked").length > 0 && events("message.stored").length > 0 && events("deliver.message").length >= 3, 60_000);
    expect(events("send.acked")[0]).toContain(`"seq":${ack.seq}`);
    expect(events("message.stored")[0]).toContain(`"channel_id":"${group}"`);
    const recipients = new Set(events("deliver.message").map((l) => /"id":"([^"]+)"/.exec(l)?.[1]));
    expect(recipients.size).toBe(3);
    expect(events("deliver.message").filter((l) => l.includes('"to":"devices"')).length).toBeGreaterThanOrEqual(2);
  }, 120_000);

  afterAll(() => {
    for (const d of [laptop, phone, bob, carol]) d?.client.disconnect();
  });
});
