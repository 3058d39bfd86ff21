/** Devices' push subscriptions over REST: shapes, replace, remove, the 10-device cap, the VAPID key. */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { call, register } from "../helpers/api.js";

const p256dh = `B${"A".repeat(86)}`; // 65 bytes of base64url
const auth = "A".repeat(22); // 16 bytes
const webpush = (endpoint = "https://push.example.com/send/abc") => ({ type: "webpush", endpoint, keys: { p256dh, auth } });

describe("devices with push subscriptions", () => {
  it("registers, lists (without secrets), replaces and removes a subscription", async () => {
    const u = await register("dev");
    const created = await call("POST", "/v1/devices", { token: u.access_token, body: { device_id: "phone", name: "Pixel", platform: "android", push: { type: "fcm", token: "fcm:tok-1" } } });
    expect(created).toMatchObject({ status: 201, body: { device: { device_id: "phone", push: { type: "fcm", failures: 0 } } } });
    const listed = await call<{ devices: unknown[] }>("GET", "/v1/devices", { token: u.access_token });
    expect(JSON.stringify(listed.body)).not.toContain("tok-1");
    const patched = await call("PATCH", "/v1/devices/phone", { token: u.access_token, body: { push: { type: "apns", token: "ab".repeat(32), topic: "dev.edgechat.app", sandbox: true } } });
    expect(patched).toMatchObject({ status: 200, body: { device: { name: "Pixel", push: { type: "apns" } } } });
    const renamed = await call("PATCH", "/v1/devices/phone", { token: u.access_token, body: { name: "Pixel 9" } });
    expect(renamed).toMatchObject({ status: 200, body: { device: { name: "Pixel 9", push: { type: "apns" } } } });
    const cleared = await call("PATCH", "/v1/devices/phone", { token: u.access_token, body: { push: null } });
    expect(cleared).toMatchObject({ status: 200, body: { device: { push: null } } });
    expect((await call("PATCH", "/v1/devices/nope", { token: u.access_token, body: { name: "x" } })).status).toBe(404);
    expect((await call("DELETE", "/v1/devices/phone", { token: u.access_token })).status).toBe(204);
  });

  it("refuses malformed subscriptions with a clear 400 and writes nothing", async () => {
    const u = await register("dev");
    const bad: [unknown, RegExp][] = [
      [{ type: "webpush", endpoint: "ftp://x", keys: { p256dh, auth } }, /endpoint must be an https URL/],
      [{ type: "webpush", endpoint: "http://push.example.com/x", keys: { p256dh, auth } }, /https/],
      [{ type: "webpush", endpoint: "https://push.example.com/x", keys: { p256dh: "AAAA", auth } }, /keys.p256dh.*65 bytes/],
      [{ type: "webpush", endpoint: "https://push.example.com/x", keys: { p256dh, auth: "!!" } }, /keys.auth/],
      [{ type: "fcm", token: "" }, /token/],
      [{ type: "apns", token: "not-hex", topic: "dev.edgechat.app" }, /token must be the device token in hex/],
      [{ type: "apns", token: "ab".repeat(32) }, /topic/],
      [{ type: "sms", token: "x" }, /type/],
    ];
    for (const [push, message] of bad) {
      const r = await call<{ code: string; message: string }>("POST", "/v1/devices", { token: u.access_token, body: { device_id: "d1", push } });
      expect(r.status, JSON.stringify(push)).toBe(400);
      expect(r.body.code).toBe("invalid_argument");
      expect(r.body.message).toMatch(message);
    }
    const list = await call<{ devices: unknown[] }>("GET", "/v1/devices", { token: u.access_token });
    expect(list.body.devices).toEqual([]);
    expect((await call("PATCH", "/v1/devices/d1", { token: u.access_token, body: { bogus: 1 } })).status).toBe(400);
  });

  it("admits http://127.0.0.1 endpoints only where PUSH_ALLOW_HTTP_LOOPBACK is on (tests, dev)", async () => {
    expect(env.PUSH_ALLOW_HTTP_LOOPBACK).toBe("true");
    const u = await register("dev");
    const ok = await call("POST", "/v1/devices", { token: u.access_token, body: { device_id: "d1", push: webpush("http://127.0.0.1:9/wp/x") } });
    expect(ok.status).toBe(201);
  });

  it("keeps the 10-device cap with push subscriptions", async () => {
    const u = await register("dev");
    for (let i = 0; i < 10; i++) {
      expect((await call("POST", "/v1/devices", { token: u.access_token, body: { device_id: `d${i}`, push: webpush(`https://push.example.com/${i}`) } })).status).toBe(201);
    }
    const r = await call("POST", "/v1/devices", { token: u.access_token, body: { device_id: "d10", push: webpush() } });
    expect(r).toMatchObject({ status: 409, body: { code: "too_many_devices" } });
  });

  it("serves the VAPID public key and the configured providers", async () => {
    const u = await register("dev");
    const r = await call("GET", "/v1/push/config", { token: u.access_token });
    expect(r).toMatchObject({ status: 200, body: { vapid_public_key: env.VAPID_PUBLIC_KEY, providers: ["webpush", "fcm", "apns"] } });
    expect((await call("GET", "/v1/push/config")).status).toBe(401);
  });

  it("push previews are a setting, on by default; mute needs a channel in the list", async () => {
    const u = await register("dev");
    expect((await call("GET", "/v1/me/settings", { token: u.access_token })).body).toMatchObject({ push_previews: true });
    expect((await call("PATCH", "/v1/me/settings", { token: u.access_token, body: { push_previews: false } })).body).toMatchObject({ push_previews: false });
    expect((await call("PATCH", "/v1/me/channels/not-a-channel", { token: u.access_token, body: { muted: true } })).status).toBe(404);
  });
});
