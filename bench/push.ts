/**
 * Push figures for BENCHMARKS.md (a one-off: `npx tsx bench/push.ts`), against a real `wrangler
 * dev` and the loopback fake push service (test/support/fake-push.ts), which verifies the VAPID
 * JWT and decrypts every body, so it costs what a checking push service costs.
 *  1. Consumer throughput: one user with 10 Web Push devices, offline, in G groups; one message to
 *     each group = G × 10 push jobs through the queue and the consumer. Jobs/s from the first
 *     request the fake push service receives to the last.
 *  2. send→ack with push on vs off: SENDs awaited one by one, alternating between a DM whose other
 *     member is offline with 10 push subscriptions (push on) and one whose member has none (off),
 *     so both see the same machine load.
 */
import WebSocket from "ws";
import { createClient, type EdgechatClient, type WebSocketConstructor } from "../client/index.js";
import { startDevServer } from "../test/support/dev-server.js";
import { devPushKeys, startFakePush } from "../test/support/fake-push.js";
import { summarize } from "./load/percentiles.js";

const GROUPS = Number(process.env.PUSH_BENCH_GROUPS ?? 100);
const SENDS = Number(process.env.PUSH_BENCH_SENDS ?? 600);
const PASSWORD = "correct horse battery";

const fake = await startFakePush(devPushKeys());
const server = await startDevServer({ vars: { ...devPushKeys(), ...fake.baseUrls, PUSH_ALLOW_HTTP_LOOPBACK: "true" } });
const clients: EdgechatClient[] = [];
try {
  const suffix = Math.random().toString(36).slice(2, 7);
  const client = (name: string) => {
    const c = createClient({ url: server.url, deviceId: `${name}-bench`, credentials: { username: name, password: PASSWORD }, WebSocket: WebSocket as unknown as WebSocketConstructor });
    clients.push(c);
    return c;
  };
  const [alice, carol, bob] = ["alice", "carol", "bob"].map((n) => `${n}_${suffix}`);
  const a = client(alice!), c = client(carol!), b = client(bob!);
  for (const [cl, name] of [[a, alice], [c, carol], [b, bob]] as const) await cl.register({ username: name!, password: PASSWORD });
  const targets: string[] = [];
  for (let i = 0; i < 10; i++) {
    const sub = fake.webPushSubscription(`bench_${suffix}_${i}`);
    targets.push(sub.endpoint.split("/").pop()!);
    await a.devices.register({ device_id: `phone${i}`, push: sub });
  }
  await b.connect();

  // 1. Consumer throughput.
  const groups: string[] = [];
  for (let i = 0; i < GROUPS; i++) groups.push((await b.channels.create({ type: "group", name: `g${i}`, members: [alice!] })).channel_id);
  const already = fake.records.length;
  const started = Date.now();
  await Promise.all(groups.map((g) => b.send(g, "ping")));
  const jobs = GROUPS * 10;
  await fake.waitFor(() => fake.records.length - already >= jobs, 300_000);
  const mine = fake.records.slice(already);
  const failed = mine.filter((r) => r.error || r.status !== 201).length;
  const first = mine[0]!.at, last = mine[jobs - 1]!.at;
  const lag = mine.slice(0, jobs).map((r) => r.at - Number(r.payload?.sent_at ?? r.at));
  const lagS = summarize(lag)!;
  console.log(`message stored → push request at the fake: p50 ${lagS.p50} ms, p90 ${lagS.p90} ms, max ${lagS.max} ms`);
  console.log(`consumer: ${jobs} jobs, ${(((jobs - 1) * 1000) / Math.max(1, last - first)).toFixed(0)} jobs/s (first→last request at the fake), ${(last - started) / 1000} s from the first SEND, ${failed} failed checks`);

  // 2. send→ack, push on (alice: 10 subscriptions, offline) vs off (carol: none, offline).
  const on = (await b.channels.create({ type: "dm", member: alice! })).channel_id;
  const off = (await b.channels.create({ type: "dm", member: carol! })).channel_id;
  const samples: Record<"on" | "off", number[]> = { on: [], off: [] };
  for (let i = 0; i < SENDS; i++) {
    const which = i % 2 === 0 ? "on" : "off";
    const t = performance.now();
    await b.send(which === "on" ? on : off, `m${i}`);
    samples[which].push(performance.now() - t);
  }
  for (const which of ["off", "on"] as const) {
    const s = summarize(samples[which])!;
    console.log(`send→ack push ${which}: n=${samples[which].length} p50 ${s.p50.toFixed(2)} ms, p90 ${s.p90.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms`);
  }
} finally {
  for (const cl of clients) cl.disconnect();
  await server.stop();
  await fake.close();
}
