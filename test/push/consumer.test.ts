/**
 * The push queue consumer and the dead-letter consumer, driven with the queue test helpers
 * (createMessageBatch / getQueueResult) against the loopback fake providers, which check every
 * request: VAPID signature and aes128gcm decryption, FCM's OAuth assertion, APNs' provider JWT.
 */
import { createExecutionContext, createMessageBatch, env, getQueueResult } from "cloudflare:test";
import { describe, expect, inject, it } from "vitest";
import worker from "../../workers/main.js";
import type { PushPayload, PushSubscriptionInput } from "../../protocol/push.js";
import type { PushJob } from "../../queues/push-jobs.js";
import { retryDelaySeconds } from "../../queues/push-consumer.js";
import { memoryRecorder, recordMetricsWith } from "../../shared/metrics.js";
import { collapseKey } from "../../queues/providers/outcome.js";
import { pushesTo } from "../support/push-records.js";
import { call, register, type TestUser } from "../helpers/api.js";

const fakeUrl = inject("fakePushUrl");
/** The Worker's env with FCM and APNs pointed at the fake (Web Push endpoints point there themselves). */
const testEnv = {
  ...env,
  FCM_API_BASE_URL: `${fakeUrl}/fcm`, FCM_TOKEN_URL: `${fakeUrl}/fcm/token`, APNS_BASE_URL: `${fakeUrl}/apns`, APNS_SANDBOX_BASE_URL: `${fakeUrl}/apns-sandbox`,
} as Env;

let n = 0;
const unique = (prefix: string) => `${prefix}${++n}${Math.random().toString(36).slice(2, 8)}`;

async function fake<T>(path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${fakeUrl}${path}`, body === undefined ? {} : { method: "POST", body: JSON.stringify(body) });
  return (res.status === 204 ? undefined : await res.json()) as T;
}
const script = (target: string, statuses: number[]) => fake("/__script", { target, statuses });
const webPushSub = (name: string) => fake<PushSubscriptionInput>("/__subscribe", { name });
const fcmSub = (): PushSubscriptionInput => ({ type: "fcm", token: unique("fcmtoken") });
const apnsSub = (): PushSubscriptionInput => ({ type: "apns", token: Array.from({ length: 64 }, () => "0123456789abcdef"[Math.floor(Math.random() * 16)]).join(""), topic: "dev.edgechat.app" });
const targetOf = (s: PushSubscriptionInput) => (s.type === "webpush" ? s.endpoint.split("/").pop()! : s.token);

const message = (channel = "c_test", seq = 7): PushPayload => ({
  v: 1, type: "message", channel_id: channel, channel_name: "Launch", channel_type: "group", seq, count: 3,
  sender_user_id: "u_bob", sender_name: "Bob", preview: "see you at 10", sent_at: 1,
});

function job(user: TestUser | string, deviceId: string, subscription: PushSubscriptionInput, payload: PushPayload = message(), createdAt = Date.now()): PushJob {
  return { v: 1, user_id: typeof user === "string" ? user : user.user_id, device_id: deviceId, subscription, payload, created_at: createdAt };
}

async function run(queue: string, bodies: unknown[], attempts = 1) {
  const batch = createMessageBatch(queue, bodies.map((body, i) => ({ id: `m${i}`, timestamp: new Date(), attempts, body })));
  const ctx = createExecutionContext();
  await worker.queue(batch, testEnv, ctx);
  return getQueueResult(batch, ctx);
}

async function userWithDevice(sub: PushSubscriptionInput, deviceId = "phone"): Promise<TestUser> {
  const user = await register("pushy");
  const r = await call("POST", "/v1/devices", { token: user.access_token, body: { device_id: deviceId, name: "Phone", platform: "test", push: sub } });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return user;
}

async function devicePush(user: TestUser, deviceId = "phone") {
  const r = await call<{ devices: { device_id: string; push: { type: string; failures: number } | null }[] }>("GET", "/v1/devices", { token: user.access_token });
  return r.body.devices.find((d) => d.device_id === deviceId)?.push;
}

describe("push consumer", () => {
  it("Web Push: a VAPID-signed, aes128gcm-encrypted request the fake push service verifies and decrypts", async () => {
    const sub = await webPushSub(unique("wp"));
    const result = await run("edgechat-push", [job("u_x", "phone", sub)]);
    expect(result.explicitAcks).toEqual(["m0"]);
    expect(result.retryMessages).toEqual([]);
    const [r] = await pushesTo(fakeUrl, targetOf(sub));
    expect(r).toMatchObject({ provider: "webpush", status: 201, payload: message(), collapseKey: await collapseKey("c_test") });
    expect(r!.error).toBeUndefined();
    expect(r!.collapseKey).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(r!.headers).toMatchObject({ urgency: "high", "content-encoding": "aes128gcm" });
  });

  it("429/5xx: retried through the queue with backoff (Retry-After wins); then sent", async () => {
    const a = await webPushSub(unique("wp")), b = await webPushSub(unique("wp"));
    await script(targetOf(a), [500]);
    await script(targetOf(b), [429]);
    const first = await run("edgechat-push", [job("u_x", "d1", a), job("u_x", "d2", b)]);
    expect(first.explicitAcks).toEqual([]);
    // (getQueueResult does not report delaySeconds; retryDelaySeconds is the consumer's only source of it.)
    expect(first.retryMessages.map((m: { msgId: string }) => m.msgId).sort()).toEqual(["m0", "m1"]);
    expect(retryDelaySeconds(3, 5)).toBe(20);
    expect(retryDelaySeconds(4, 5, 120)).toBe(120);
    expect(retryDelaySeconds(20, 5)).toBe(600);
    const second = await run("edgechat-push", [job("u_x", "d1", a, { v: 1, type: "clear", channel_id: "c_test", read_seq: 7 })], 2);
    expect(second.explicitAcks).toEqual(["m0"]);
    expect((await pushesTo(fakeUrl, targetOf(a))).map((r) => r.status)).toEqual([500, 201]);
  });

  it("404/410: the subscription is removed from the user's device (and only that very subscription)", async () => {
    const sub = await webPushSub(unique("wp"));
    const user = await userWithDevice(sub);
    expect(await devicePush(user)).toEqual({ type: "webpush", failures: 0 });
    await script(targetOf(sub), [410]);
    expect((await run("edgechat-push", [job(user, "phone", sub)])).explicitAcks).toEqual(["m0"]);
    expect(await devicePush(user)).toBeNull();

    // A subscription replaced meanwhile survives the old one's 410.
    const old = await webPushSub(unique("wp")), fresh = await webPushSub(unique("wp"));
    const other = await userWithDevice(fresh);
    await script(targetOf(old), [410]);
    await run("edgechat-push", [job(other, "phone", old)]);
    expect(await devicePush(other)).toEqual({ type: "webpush", failures: 0 });
  });

  it("FCM: OAuth assertion → access token (cached), v1 send with collapse_key; 500 then 200; 404 removes", async () => {
    const before = (await fake<{ tokenRequests: number }>("/__stats")).tokenRequests;
    const sub = fcmSub();
    const user = await userWithDevice(sub);
    await script(targetOf(sub), [500]);
    expect((await run("edgechat-push", [job(user, "phone", sub)])).retryMessages).toEqual([{ msgId: "m0" }]);
    expect((await run("edgechat-push", [job(user, "phone", sub)], 2)).explicitAcks).toEqual(["m0"]);
    const rs = await pushesTo(fakeUrl, targetOf(sub));
    expect(rs.map((r) => r.status)).toEqual([500, 200]);
    expect(rs[1]).toMatchObject({ provider: "fcm", collapseKey: await collapseKey("c_test"), payload: { type: "message", seq: 7, count: 3, preview: "see you at 10" } });
    await script(targetOf(sub), [404]);
    expect((await run("edgechat-push", [job(user, "phone", sub)])).explicitAcks).toEqual(["m0"]);
    expect(await devicePush(user)).toBeNull();
    expect((await fake<{ tokenRequests: number }>("/__stats")).tokenRequests - before).toBeLessThanOrEqual(1);
  });

  it("APNs: ES256 provider JWT, topic, push type and collapse id; 410 removes; 400 BadDeviceToken does not", async () => {
    const sub = apnsSub();
    const user = await userWithDevice(sub);
    await script(targetOf(sub), [500]);
    expect((await run("edgechat-push", [job(user, "phone", sub)])).retryMessages).toHaveLength(1);
    expect((await run("edgechat-push", [job(user, "phone", sub, { v: 1, type: "clear", channel_id: "c_test", read_seq: 9 })], 2)).explicitAcks).toEqual(["m0"]);
    const rs = await pushesTo(fakeUrl, targetOf(sub));
    expect(rs.map((r) => [r.status, r.headers["apns-push-type"]])).toEqual([[500, "alert"], [200, "background"]]);
    expect(rs[1]).toMatchObject({ collapseKey: await collapseKey("c_test"), payload: { type: "clear", read_seq: 9 } });
    expect(rs[1]!.headers["apns-topic"]).toBe("dev.edgechat.app");
    await script(targetOf(sub), [400]);
    expect((await run("edgechat-push", [job(user, "phone", sub)])).explicitAcks).toEqual(["m0"]);
    expect(await devicePush(user)).toEqual({ type: "apns", failures: 0 });
    await script(targetOf(sub), [410]);
    await run("edgechat-push", [job(user, "phone", sub)]);
    expect(await devicePush(user)).toBeNull();
  });

  it("drops jobs older than an hour and bodies that are not jobs, without calling any provider", async () => {
    const sub = await webPushSub(unique("wp"));
    const result = await run("edgechat-push", [job("u_x", "phone", sub, message(), Date.now() - 3601_000), { hello: "world" }, "text"]);
    expect(result.explicitAcks.sort()).toEqual(["m0", "m1", "m2"]);
    expect(await pushesTo(fakeUrl, targetOf(sub))).toEqual([]);
  });

  it("a retried message push the user has read meanwhile is not sent (no stale notification)", async () => {
    const sub = await webPushSub(unique("wp"));
    const user = await userWithDevice(sub);
    const bob = await register("bob");
    const created = await call<{ channel: { channel_id: string } }>("POST", "/v1/channels", { token: bob.access_token, body: { type: "group", name: "G", members: [user.user_id] } });
    const channel = created.body.channel.channel_id;
    expect((await call("POST", `/v1/channels/${channel}/read`, { token: user.access_token, body: { up_to_seq: 1 } })).status).toBe(200);
    expect((await run("edgechat-push", [job(user, "phone", sub, message(channel, 1))], 3)).explicitAcks).toEqual(["m0"]);
    expect(await pushesTo(fakeUrl, targetOf(sub))).toEqual([]);
  });

  it("dead letters: counted on the device, logged, never sent", async () => {
    const sub = await webPushSub(unique("wp"));
    const user = await userWithDevice(sub);
    const metrics = memoryRecorder();
    const restore = recordMetricsWith(metrics);
    const result = await run("edgechat-push-dlq", [job(user, "phone", sub), job(user, "phone", sub), 42]).finally(restore);
    expect(result.explicitAcks.sort()).toEqual(["m0", "m1", "m2"]);
    expect(metrics.total("push.dead_letter", { provider: "webpush" })).toBe(2);
    expect(await devicePush(user)).toEqual({ type: "webpush", failures: 2 });
    expect(await pushesTo(fakeUrl, targetOf(sub))).toEqual([]);
  });
});
