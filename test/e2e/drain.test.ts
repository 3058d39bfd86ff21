/**
 * Draining under traffic, end to end: a real `wrangler dev`, SDK clients on real WebSockets, the
 * operator's POST /v1/admin/drain while messages flow. Every device moves to a new connection at
 * its own moment inside the window, RESUMEs, and the conversation on each device is complete:
 * every message once, in seq order, from the first frame on.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { createClient, type ChatMessage, type EdgechatClient, type WebSocketConstructor } from "../../client/index.js";
import { startDevServer, type DevServer } from "../support/dev-server.js";

const ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef0123456789";
const PASSWORD = "correct horse battery";
let server: DevServer;
beforeAll(async () => { server = await startDevServer({ vars: { ADMIN_TOKEN } }); });
afterAll(async () => { await server?.stop(); });

function sdk(username: string, deviceId: string): { client: EdgechatClient; seen: ChatMessage[]; moves: number } {
  const client = createClient({
    url: server.url, deviceId, credentials: { username, password: PASSWORD },
    WebSocket: WebSocket as unknown as WebSocketConstructor,
  });
  const d = { client, seen: [] as ChatMessage[], moves: 0 };
  client.on("message", (m) => d.seen.push(m));
  client.on("connectionState", (s) => { if (s.state === "reconnecting" && s.reason === "goaway") d.moves++; });
  return d;
}

async function until(what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !check();) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("drain", () => {
  it("moves every device to a new connection within the window, and nothing is lost or repeated", async () => {
    const suffix = Math.random().toString(36).slice(2, 7);
    const alice = sdk(`alice_${suffix}`, "alice-phone"), bob = sdk(`bob_${suffix}`, "bob-phone");
    await alice.client.register({ username: `alice_${suffix}`, password: PASSWORD });
    await bob.client.register({ username: `bob_${suffix}`, password: PASSWORD });
    const dm = (await alice.client.channels.create({ type: "dm", member: `bob_${suffix}` })).channel_id;
    await Promise.all([alice.client.connect(), bob.client.connect()]);

    const total = 60;
    const acks: number[] = [];
    const sending = (async () => {
      for (let i = 0; i < total; i++) {
        acks.push((await bob.client.send(dm, `during the drain ${i}`)).seq);
        await new Promise((r) => setTimeout(r, 40));
      }
    })();

    // Presence learns of a device just after its HELLO: drain until both sockets were asked.
    let asked = 0;
    for (const deadline = Date.now() + 30_000; asked < 2;) {
      const res = await fetch(`${server.url}/v1/admin/drain`, {
        method: "POST", headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
        body: JSON.stringify({ window_ms: 1_500 }),
      });
      expect(res.status).toBe(200);
      asked = ((await res.json()) as { sockets: number }).sockets;
      if (Date.now() > deadline) throw new Error(`the drain reached ${asked} of 2 sockets`);
      if (asked < 2) await new Promise((r) => setTimeout(r, 200));
    }
    await until("both devices to move to a new connection", () => alice.moves > 0 && bob.moves > 0);
    await sending;
    const last = acks.at(-1)!;
    await until("alice to have every message", () => alice.seen.some((m) => m.channel_id === dm && m.seq === last));
    await until("both to be connected again", () => alice.client.state === "ready" && bob.client.state === "ready");

    // From the first frame: every seq once, in order, no gap (the DM's opening notice is seq 1).
    const seqs = alice.seen.filter((m) => m.channel_id === dm).map((m) => m.seq);
    expect(seqs).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    expect(seqs.slice(-total)).toEqual(acks);
    alice.client.disconnect();
    bob.client.disconnect();
  });
});
