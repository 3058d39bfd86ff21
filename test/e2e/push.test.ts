/**
 * Push end to end: a real `wrangler dev` (queue producer and consumer included) and loopback fake
 * push services that check every request for real (VAPID signature, aes128gcm decryption, FCM's
 * OAuth assertion, APNs' provider JWT). A user whose devices are all offline receives 3 messages
 * in one channel: exactly one push at once, then one merged update at the window's end; FCM
 * answers 500 then 200 (retried through the queue), APNs 410 (the subscription is removed);
 * reading on another device sends a clear.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { createClient, type EdgechatClient, type WebSocketConstructor } from "../../client/index.js";
import { startDevServer, type DevServer } from "../support/dev-server.js";
import { devPushKeys, startFakePush, type FakePush, type PushRecord } from "../support/fake-push.js";

/** Short enough for a test, long enough that 3 sends on a loaded machine land in one window. */
const WINDOW_MS = 10_000;
const PASSWORD = "correct horse battery";

let server: DevServer;
let fake: FakePush;
beforeAll(async () => {
  fake = await startFakePush(devPushKeys());
  server = await startDevServer({
    vars: { ...devPushKeys(), ...fake.baseUrls, PUSH_ALLOW_HTTP_LOOPBACK: "true", PUSH_WINDOW_MS: String(WINDOW_MS), PUSH_RETRY_BASE_SECONDS: "1" },
  });
});
afterAll(async () => {
  await server?.stop();
  await fake?.close();
});

function client(username: string, deviceId: string): EdgechatClient {
  return createClient({ url: server.url, deviceId, encoding: "json", credentials: { username, password: PASSWORD }, WebSocket: WebSocket as unknown as WebSocketConstructor });
}

const ofChannel = (target: string, channelId: string) => fake.records.filter((r) => r.target === target && r.payload?.channel_id === channelId);
const kinds = (rs: PushRecord[]) => rs.map((r) => (r.payload?.type === "clear" ? "clear" : `message:${String(r.payload?.count)}`));

describe("push under wrangler dev", () => {
  it("3 messages to an offline user: one push, one merged update; FCM 500→200, APNs 410; a clear on read", async () => {
    const suffix = Math.random().toString(36).slice(2, 7);
    const [aliceName, bobName] = [`alice_${suffix}`, `bob_${suffix}`];
    const alice = client(aliceName, "laptop");
    const bob = client(bobName, "bob-phone");
    await alice.register({ username: aliceName, password: PASSWORD });
    await bob.register({ username: bobName, password: PASSWORD });

    const browser = fake.webPushSubscription(`browser_${suffix}`);
    const android = { type: "fcm" as const, token: `fcm_${suffix}` };
    const iphone = { type: "apns" as const, token: "c0ffee".repeat(11).slice(0, 64), topic: "dev.edgechat.app" };
    fake.script(android.token, [500]);
    fake.script(iphone.token, [410]);
    await alice.devices.register({ device_id: "browser", name: "Firefox", platform: "web", push: browser });
    await alice.devices.register({ device_id: "android", platform: "android", push: android });
    await alice.devices.register({ device_id: "iphone", platform: "ios", push: iphone });

    const group = await bob.channels.create({ type: "group", name: "Launch", members: [aliceName] });
    const channelId = group.channel_id;
    await bob.connect();
    const acks = [];
    for (const text of ["one", "two", "three"]) acks.push(await bob.send(channelId, text));
    const lastSeq = acks.at(-1)!.seq;

    const browserTarget = browser.endpoint.split("/").pop()!;
    // Leading edge: the first message at once, decrypted by the fake push service.
    const first = await fake.waitFor((r) => r.target === browserTarget && r.payload?.channel_id === channelId);
    expect(first).toMatchObject({ status: 201, payload: { type: "message", count: 1, preview: "one", sender_name: bobName, channel_name: "Launch" } });
    expect(first.error).toBeUndefined();
    // The window's end: one update for the other two, replacing the first (same Topic).
    const merged = await fake.waitFor((r) => r.target === browserTarget && r.payload?.count === 3, WINDOW_MS + 30_000);
    expect(merged.payload).toMatchObject({ type: "message", seq: lastSeq, preview: "three" });
    expect(merged.collapseKey).toBe(first.collapseKey);
    expect(merged.at - first.at).toBeGreaterThanOrEqual(WINDOW_MS - 1_000);

    // FCM: 500, retried through the queue, then 200; the update went too.
    await fake.waitFor((r) => r.target === android.token && r.status === 200 && r.payload?.count === 1, 60_000);
    await fake.waitFor((r) => r.target === android.token && r.payload?.count === 3, 60_000);
    expect(ofChannel(android.token, channelId).map((r) => [r.status, r.payload?.count])).toEqual([[500, 1], [200, 1], [200, 3]]);
    // APNs: 410 removed the subscription, so the update was not sent there.
    expect(ofChannel(iphone.token, channelId).map((r) => r.status)).toEqual([410]);
    const devices = await alice.devices.list();
    expect(devices.find((d) => d.device_id === "iphone")?.push).toBeNull();
    expect(devices.find((d) => d.device_id === "browser")?.push).toEqual({ type: "webpush", failures: 0 });

    // Reading on another device: a clear, with the same collapse key, and nothing else in between.
    await alice.connect();
    await alice.markRead(channelId, lastSeq);
    const clear = await fake.waitFor((r) => r.target === browserTarget && r.payload?.type === "clear", 30_000);
    expect(clear.payload).toMatchObject({ channel_id: channelId, read_seq: lastSeq });
    expect(clear.collapseKey).toBe(first.collapseKey);
    await fake.waitFor((r) => r.target === android.token && r.payload?.type === "clear", 30_000);
    expect(kinds(ofChannel(browserTarget, channelId))).toEqual(["message:1", "message:3", "clear"]);
    expect(fake.records.filter((r) => r.error)).toEqual([]);

    alice.disconnect();
    bob.disconnect();
  });
});
