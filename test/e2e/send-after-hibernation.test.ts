/**
 * A connection's SEND order survives the UserObject hibernating between two SENDs.
 *
 * With production presence timings nothing wakes an idle UserObject for tens of seconds, so the
 * runtime hibernates it while the device's socket stays open; the next frame is handed to a new
 * instance. Everything that instance needs to take the connection's next send_seq must come from
 * the socket's attachment or from storage, not from the memory of the instance that went away.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startDevServer, type DevServer } from "../support/dev-server.js";

let server: DevServer;
beforeAll(async () => {
  // Production presence timings: the keep-alive alarm fires every 200 s, not every 0.7 s.
  server = await startDevServer({ vars: { PRESENCE_TTL_MS: "600000", PRESENCE_OFFLINE_GRACE_MS: "15000" } });
});
afterAll(async () => { await server?.stop(); });

async function post<T>(path: string, body: unknown, token?: string): Promise<T> {
  const res = await fetch(server.url + path, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const json = await res.json() as T;
  if (res.status >= 300) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

type JsonFrame = { type: string; request_id?: number; payload?: Record<string, unknown> };

/** A raw JSON-subprotocol device: every frame it received, and a way to wait for one. */
async function jsonDevice(token: string, deviceId: string) {
  const ws = new WebSocket(`${server.wsUrl}/v1/connect?device_id=${deviceId}&access_token=${token}`, "edgechat.v1.json");
  const frames: JsonFrame[] = [];
  let wake = () => {};
  ws.on("message", (data) => { frames.push(JSON.parse(String(data)) as JsonFrame); wake(); });
  const take = async (pred: (f: JsonFrame) => boolean, timeoutMs: number): Promise<JsonFrame> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = frames.findIndex(pred);
      if (i >= 0) return frames.splice(i, 1)[0]!;
      if (Date.now() > deadline) throw new Error(`no matching frame in ${timeoutMs} ms; got ${frames.map((f) => f.type).join(",")}`);
      await new Promise<void>((r) => { wake = r; setTimeout(r, 200); });
    }
  };
  await take((f) => f.type === "HELLO", 20_000);
  return { ws, take };
}

const send = (channel_id: string, n: number) => JSON.stringify({
  type: "SEND", request_id: n, payload: { channel_id, client_msg_id: `m${n}`, send_seq: n, content: { text: { text: `#${n}` } } },
});

const wokeLines = (userId: string) => server.log.filter((l) => l.includes('"event":"user.woke"') && l.includes(userId)).length;

describe("SEND order across hibernation", () => {
  it("acks send_seq 2 sent after the object hibernated with the socket open", async () => {
    const tag = Math.random().toString(36).slice(2, 7);
    const alice = await post<{ user_id: string; access_token: string }>("/v1/auth/register", { username: `alice${tag}`, password: "correct horse battery" });
    const bob = await post<{ user_id: string }>("/v1/auth/register", { username: `bob${tag}`, password: "correct horse battery" });
    const dm = await post<{ channel: { channel_id: string } }>("/v1/channels", { type: "dm", member: bob.user_id }, alice.access_token);
    const channel = dm.channel.channel_id;
    const device = await jsonDevice(alice.access_token, "phone");

    device.ws.send(send(channel, 1));
    const first = await device.take((f) => f.request_id === 1, 20_000);
    expect(first.type).toBe("SEND_ACK");

    // Idle long enough for the runtime to hibernate the object (about 10 s without an event).
    const woke = wokeLines(alice.user_id);
    await new Promise((r) => setTimeout(r, 25_000));
    device.ws.send(send(channel, 2));
    const answer = await device.take((f) => f.request_id === 2, 20_000).catch(() => undefined);
    // The object really was hibernated: a new instance started with the socket already open.
    expect(wokeLines(alice.user_id), "the UserObject did not hibernate while idle; the test proves nothing").toBeGreaterThan(woke);
    expect(answer?.type, "send_seq 2 was never answered").toBe("SEND_ACK");
    expect(answer?.payload).toMatchObject({ client_msg_id: "m2", seq: Number(first.payload!.seq) + 1 });
    device.ws.close();
  }, 120_000);

  it("a close that wakes the hibernated object re-reads nothing: the socket says the list was written (decision 035)", async () => {
    const tag = Math.random().toString(36).slice(2, 7);
    const alice = await post<{ user_id: string; access_token: string }>("/v1/auth/register", { username: `carol${tag}`, password: "correct horse battery" });
    const bob = await post<{ user_id: string }>("/v1/auth/register", { username: `dave${tag}`, password: "correct horse battery" });
    const dm = await post<{ channel: { channel_id: string } }>("/v1/channels", { type: "dm", member: bob.user_id }, alice.access_token);
    const device = await jsonDevice(alice.access_token, "phone");
    device.ws.send(send(dm.channel.channel_id, 1));
    const ack = await device.take((f) => f.request_id === 1, 20_000);
    expect(ack.type).toBe("SEND_ACK");
    const resyncs = () => server.log.filter((l) => l.includes('"event":"user.list_resync"') && l.includes(alice.user_id)).length;
    // The post changed the list under the socket's cover; the flush comes 5 s later, then the
    // object hibernates with the socket open.
    await new Promise((r) => setTimeout(r, 25_000));
    const woke = wokeLines(alice.user_id);
    device.ws.close();
    // The close wakes a new instance. A later request of alice's is the marker that it is done.
    await new Promise<void>((resolve) => device.ws.once("close", () => resolve()));
    const res = await fetch(`${server.url}/v1/channels`, { headers: { authorization: `Bearer ${alice.access_token}` } });
    expect(res.status).toBe(200);
    const row = ((await res.json()) as { channels: { channel_id: string; last_seq: number }[] }).channels.find((c) => c.channel_id === dm.channel.channel_id);
    expect(row?.last_seq).toBe(Number(ack.payload!.seq));
    console.log(`close after hibernation: ${wokeLines(alice.user_id) - woke} woke line(s), ${resyncs()} list re-sync(s)`);
    // The close woke a new instance that still listed the closing socket (its attachment read).
    expect(wokeLines(alice.user_id), "the UserObject did not hibernate while idle; the test proves nothing").toBeGreaterThan(woke);
    expect(resyncs()).toBe(0);
  }, 120_000);
});
