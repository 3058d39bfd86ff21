/**
 * Fuzzing every REST endpoint's body, query and path parameters (fast-check, inside workerd).
 *
 * Whatever arrives, the answer is never a 5xx and never a crash: either a success (2xx, for the
 * rare fuzzed input that happens to be valid) or a 4xx JSON body of exactly {code, message,
 * retryable}. Inputs that cannot be valid (not JSON, not an object, a missing required field, a
 * bad query number) must be a 4xx. Afterwards the API still answers normally.
 */
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { api } from "../../workers/api/app.js";
import { call, createGroup, register, type TestUser } from "../helpers/api.js";
import { expectErrorBody, expectWellFormedLog, fullHistory, rawCall } from "../reliability/support.js";

const RUNS = Number(process.env.EDGECHAT_FUZZ_RUNS ?? 100);
/** Each property stops after this long even if it has runs left (a loaded machine), and passes if nothing failed. */
const TIME_LIMIT_MS = Number(process.env.EDGECHAT_FUZZ_TIME_LIMIT_MS ?? 8000);
const budget = (numRuns: number) => ({ numRuns, interruptAfterTimeLimit: TIME_LIMIT_MS, markInterruptAsFailure: false });

let alice: TestUser, bob: TestUser;
let group: string;
const statuses = new Map<number, number>();

/** Any JSON value, biased towards objects with the endpoints' own field names and wrong types. */
const FIELD_NAMES = ["user_ids", "role", "max_uses", "expires_in_s", "description", "username", "password", "display_name", "jurisdiction", "refresh_token", "type", "name", "member", "members", "up_to_seq", "device_id", "platform", "read_receipts", "text",
  "client_msg_id", "content", "channel_id", "filename", "content_type", "size_bytes", "sha256", "parts", "retention_ms"];
const evil: fc.Arbitrary<unknown> = fc.oneof(
  { maxDepth: 2 },
  fc.string({ maxLength: 40 }), fc.string({ unit: "binary", maxLength: 20 }), fc.boolean(), fc.constant(null),
  fc.constantFrom(-1, -0, 0.5, 2 ** 31, 2 ** 53 + 2, 2 ** 64, 1e308, -1e308, Number.MAX_SAFE_INTEGER, 0, 1),
  fc.integer(), fc.constantFrom("dm", "group", "eu", "fedramp", "", "x".repeat(300), "__proto__", "constructor"),
  fc.array(fc.oneof(fc.string({ maxLength: 10 }), fc.integer(), fc.constant(null)), { maxLength: 5 }),
);
const body = fc.oneof(
  { weight: 4, arbitrary: fc.dictionary(fc.oneof(fc.constantFrom(...FIELD_NAMES), fc.string({ maxLength: 10 })), evil, { maxKeys: 5 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: evil },
).map((v) => JSON.stringify(v) ?? "null");
const notJson = fc.oneof(
  fc.string({ maxLength: 100 }).filter((s) => { try { JSON.parse(s); return false; } catch { return true; } }),
  fc.constantFrom("", "{", "{\"username\":", "[1,2", "\u0000", "undefined", "NaN", "{'a':1}", "\"unterminated"),
);
const queryValue = fc.oneof(
  fc.string({ maxLength: 20 }), fc.constantFrom("", "-1", "0", "1", "1.5", "1e3", "1e400", "NaN", "Infinity", "-Infinity", "0x10", " 5", "9007199254740993", "18446744073709551616", "null", "[]", "%00", "200", "201"),
  fc.integer().map(String),
);
const pathSegment = fc.oneof(
  fc.string({ minLength: 1, maxLength: 60 }), fc.constantFrom("c_g_" + "0".repeat(26), "u_g_" + "0".repeat(26), "c_eu_" + "1".repeat(26), "..", ".", "%2e%2e", "me", "a".repeat(2000)),
).map((s) => encodeURIComponent(s));

/** A well-formed attachment id in the group that names no upload. */
const attachment = () => `a_${group.slice(2)}_${"0".repeat(26)}`;

interface Target { method: string; route: string; path: () => string; takesBody: boolean; requiredBody: boolean; auth: boolean }

const targets: Target[] = [
  { method: "POST", route: "/v1/auth/register", path: () => "/v1/auth/register", takesBody: true, requiredBody: true, auth: false },
  { method: "POST", route: "/v1/auth/login", path: () => "/v1/auth/login", takesBody: true, requiredBody: true, auth: false },
  { method: "POST", route: "/v1/auth/refresh", path: () => "/v1/auth/refresh", takesBody: true, requiredBody: true, auth: false },
  { method: "POST", route: "/v1/auth/logout", path: () => "/v1/auth/logout", takesBody: true, requiredBody: true, auth: false },
  { method: "GET", route: "/v1/health", path: () => "/v1/health", takesBody: false, requiredBody: false, auth: false },
  { method: "GET", route: "/v1/me", path: () => "/v1/me", takesBody: false, requiredBody: false, auth: true },
  { method: "GET", route: "/v1/me/settings", path: () => "/v1/me/settings", takesBody: false, requiredBody: false, auth: true },
  { method: "GET", route: "/v1/me/export", path: () => "/v1/me/export", takesBody: false, requiredBody: false, auth: true },
  // Off without the ADMIN_TOKEN secret (as here): every body gets the same well-formed 403.
  { method: "POST", route: "/v1/admin/drain", path: () => "/v1/admin/drain", takesBody: true, requiredBody: false, auth: false },
  { method: "GET", route: "/v1/admin/erasures/:userId", path: () => `/v1/admin/erasures/${alice.user_id}`, takesBody: false, requiredBody: false, auth: false },
  { method: "PATCH", route: "/v1/me", path: () => "/v1/me", takesBody: true, requiredBody: true, auth: true },
  // Bytes, not JSON: a JSON body is refused as an unsupported media type.
  { method: "PUT", route: "/v1/me/avatar", path: () => "/v1/me/avatar", takesBody: true, requiredBody: false, auth: true },
  { method: "GET", route: "/v1/users/:id/avatar", path: () => `/v1/users/${alice.user_id}/avatar`, takesBody: false, requiredBody: false, auth: true },
  // The password is alice's only by chance: fuzzed ones are refused (403, then 429 once locked).
  { method: "POST", route: "/v1/me/password", path: () => "/v1/me/password", takesBody: true, requiredBody: true, auth: true },
  { method: "DELETE", route: "/v1/me", path: () => "/v1/me", takesBody: true, requiredBody: true, auth: true },
  { method: "PATCH", route: "/v1/me/settings", path: () => "/v1/me/settings", takesBody: true, requiredBody: true, auth: true },
  { method: "GET", route: "/v1/users", path: () => "/v1/users", takesBody: false, requiredBody: false, auth: true },
  { method: "GET", route: "/v1/presence", path: () => `/v1/presence?user_ids=${alice.user_id}`, takesBody: false, requiredBody: false, auth: true },
  { method: "GET", route: "/v1/users/:id", path: () => `/v1/users/${alice.user_id}`, takesBody: false, requiredBody: false, auth: true },
  { method: "POST", route: "/v1/channels", path: () => "/v1/channels", takesBody: true, requiredBody: true, auth: true },
  { method: "GET", route: "/v1/channels", path: () => "/v1/channels", takesBody: false, requiredBody: false, auth: true },
  { method: "GET", route: "/v1/channels/:id", path: () => `/v1/channels/${group}`, takesBody: false, requiredBody: false, auth: true },
  { method: "PATCH", route: "/v1/channels/:id", path: () => `/v1/channels/${group}`, takesBody: true, requiredBody: true, auth: true },
  { method: "GET", route: "/v1/channels/:id/members", path: () => `/v1/channels/${group}/members`, takesBody: false, requiredBody: false, auth: true },
  { method: "POST", route: "/v1/channels/:id/members", path: () => `/v1/channels/${group}/members`, takesBody: true, requiredBody: true, auth: true },
  { method: "DELETE", route: "/v1/channels/:id/members/:userId", path: () => `/v1/channels/${group}/members/u_g_${"0".repeat(26)}`, takesBody: false, requiredBody: false, auth: true },
  { method: "POST", route: "/v1/channels/:id/members/bulk", path: () => `/v1/channels/${group}/members/bulk`, takesBody: true, requiredBody: true, auth: true },
  { method: "PATCH", route: "/v1/channels/:id/members/:userId", path: () => `/v1/channels/${group}/members/${bob.user_id}`, takesBody: true, requiredBody: true, auth: true },
  { method: "POST", route: "/v1/channels/:id/invites", path: () => `/v1/channels/${group}/invites`, takesBody: true, requiredBody: true, auth: true },
  { method: "GET", route: "/v1/channels/:id/invites", path: () => `/v1/channels/${group}/invites`, takesBody: false, requiredBody: false, auth: true },
  { method: "DELETE", route: "/v1/channels/:id/invites/:code", path: () => `/v1/channels/${group}/invites/${encodeURIComponent(`${group}.${"A".repeat(22)}`)}`, takesBody: false, requiredBody: false, auth: true },
  { method: "GET", route: "/v1/invites/:code", path: () => `/v1/invites/${encodeURIComponent(`${group}.${"A".repeat(22)}`)}`, takesBody: false, requiredBody: false, auth: true },
  { method: "POST", route: "/v1/invites/:code/join", path: () => `/v1/invites/${encodeURIComponent(`${group}.${"A".repeat(22)}`)}/join`, takesBody: false, requiredBody: false, auth: true },
  { method: "GET", route: "/v1/channels/:id/messages", path: () => `/v1/channels/${group}/messages`, takesBody: false, requiredBody: false, auth: true },
  { method: "PATCH", route: "/v1/channels/:id/messages/:seq", path: () => `/v1/channels/${group}/messages/1`, takesBody: true, requiredBody: true, auth: true },
  { method: "DELETE", route: "/v1/channels/:id/messages/:seq", path: () => `/v1/channels/${group}/messages/1`, takesBody: false, requiredBody: false, auth: true },
  { method: "PUT", route: "/v1/channels/:id/messages/:seq/reactions/:emoji", path: () => `/v1/channels/${group}/messages/1/reactions/${encodeURIComponent("👍")}`, takesBody: false, requiredBody: false, auth: true },
  { method: "DELETE", route: "/v1/channels/:id/messages/:seq/reactions/:emoji", path: () => `/v1/channels/${group}/messages/1/reactions/${encodeURIComponent("👍")}`, takesBody: false, requiredBody: false, auth: true },
  { method: "POST", route: "/v1/channels/:id/read", path: () => `/v1/channels/${group}/read`, takesBody: true, requiredBody: true, auth: true },
  { method: "POST", route: "/v1/channels/:id/messages", path: () => `/v1/channels/${group}/messages`, takesBody: true, requiredBody: true, auth: true },
  { method: "POST", route: "/v1/attachments/presign", path: () => "/v1/attachments/presign", takesBody: true, requiredBody: true, auth: true },
  { method: "GET", route: "/v1/attachments/:id/upload", path: () => `/v1/attachments/${attachment()}/upload`, takesBody: false, requiredBody: false, auth: true },
  { method: "POST", route: "/v1/attachments/:id/complete", path: () => `/v1/attachments/${attachment()}/complete`, takesBody: true, requiredBody: false, auth: true },
  { method: "DELETE", route: "/v1/attachments/:id", path: () => `/v1/attachments/${attachment()}`, takesBody: false, requiredBody: false, auth: true },
  { method: "GET", route: "/v1/attachments/:id", path: () => `/v1/attachments/${attachment()}`, takesBody: false, requiredBody: false, auth: true },
  { method: "GET", route: "/v1/devices", path: () => "/v1/devices", takesBody: false, requiredBody: false, auth: true },
  { method: "POST", route: "/v1/devices", path: () => "/v1/devices", takesBody: true, requiredBody: true, auth: true },
  { method: "DELETE", route: "/v1/devices/:deviceId", path: () => "/v1/devices/no-such-device", takesBody: false, requiredBody: false, auth: true },
  { method: "PATCH", route: "/v1/devices/:deviceId", path: () => "/v1/devices/no-such-device", takesBody: true, requiredBody: true, auth: true },
  { method: "PATCH", route: "/v1/me/channels/:id", path: () => `/v1/me/channels/${group}`, takesBody: true, requiredBody: true, auth: true },
  { method: "GET", route: "/v1/push/config", path: () => "/v1/push/config", takesBody: false, requiredBody: false, auth: true },
  { method: "GET", route: "/v1/sessions", path: () => "/v1/sessions", takesBody: false, requiredBody: false, auth: true },
  { method: "DELETE", route: "/v1/sessions/:sessionId", path: () => "/v1/sessions/no-such-session", takesBody: false, requiredBody: false, auth: true },
  { method: "POST", route: "/v1/sessions/logout-others", path: () => "/v1/sessions/logout-others", takesBody: false, requiredBody: false, auth: true },
];

async function hit(method: string, path: string, opts: { body?: string; contentType?: string; auth?: boolean; token?: string }, context: string) {
  const r = await rawCall(method, path, {
    token: opts.auth === false ? undefined : (opts.token ?? alice.access_token),
    body: opts.body, contentType: opts.body === undefined ? undefined : (opts.contentType ?? "application/json"),
  });
  statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
  const what = `${context} → ${r.status} ${r.text.slice(0, 200)}`;
  expect(r.status, what).toBeLessThan(500);
  expect(r.status, what).toBeGreaterThanOrEqual(200);
  if (r.status >= 400) {
    expect(r.contentType, what).toContain("application/json");
    expectErrorBody(r.json, what);
  }
  return r;
}

beforeAll(async () => {
  [alice, bob] = await Promise.all([register("alice"), register("bob")]);
  group = await createGroup(alice, [bob], "REST fuzz");
}, 30_000);

describe("fuzzing REST", { timeout: 30_000 }, () => {
  it("covers every registered route", () => {
    const registered = api.routes.filter((r) => r.method !== "ALL").map((r) => `${r.method} ${r.path}`);
    const covered = new Set(targets.map((t) => `${t.method} ${t.route}`));
    expect(registered.filter((r) => !covered.has(r)), "routes this file does not fuzz: add them to `targets`").toEqual([]);
  });

  it("answers fuzzed JSON bodies on every endpoint with a 2xx or a well-formed 4xx, never a 5xx", async () => {
    const bodyTargets = targets.filter((t) => t.takesBody);
    await fc.assert(fc.asyncProperty(fc.constantFrom(...bodyTargets), body, async (t, b) => {
      await hit(t.method, t.path(), { body: b, auth: t.auth }, `${t.method} ${t.route} ${b.slice(0, 120)}`);
    }), budget(RUNS * 2));
  });

  // One property per endpoint that needs a body (each up to TIME_LIMIT_MS / 4): it grows with the routes.
  it("answers bodies that are not JSON, or not JSON objects, with a 4xx on every endpoint that needs one", { timeout: 120_000 }, async () => {
    for (const t of targets.filter((x) => x.requiredBody)) {
      await fc.assert(fc.asyncProperty(fc.oneof(notJson, fc.constantFrom("null", "[]", "42", "\"x\"", "true")), fc.constantFrom("application/json", "text/plain", "application/x-www-form-urlencoded", ""), async (b, ct) => {
        const r = await hit(t.method, t.path(), { body: b, auth: t.auth, contentType: ct || "application/json" }, `${t.method} ${t.route} ${JSON.stringify(b)}`);
        expect(r.status, `${t.method} ${t.route} ${JSON.stringify(b)}`).toBeGreaterThanOrEqual(400);
      }), { ...budget(Math.ceil(RUNS / 10)), interruptAfterTimeLimit: TIME_LIMIT_MS / 4 });
      // No body at all.
      const none = await hit(t.method, t.path(), { auth: t.auth }, `${t.method} ${t.route} without a body`);
      expect(none.status).toBeGreaterThanOrEqual(400);
      // Over the 64 KiB body limit.
      const big = await hit(t.method, t.path(), { body: JSON.stringify({ username: "x".repeat(70_000) }), auth: t.auth }, `${t.method} ${t.route} 70 KB body`);
      expect([big.status, (big.json as { code: string }).code]).toEqual([413, "content_too_large"]);
    }
  });

  it("answers bad query parameters on the query endpoints with a 4xx, and good ones with a 200", async () => {
    await fc.assert(fc.asyncProperty(
      fc.dictionary(fc.oneof(fc.constantFrom("before", "after", "limit"), fc.string({ maxLength: 6 })), queryValue, { maxKeys: 4 }),
      async (q) => {
        const qs = new URLSearchParams(q as Record<string, string>).toString();
        const r = await hit("GET", `/v1/channels/${group}/messages?${qs}`, {}, `history ?${qs}`);
        const num = (k: string) => (q[k] === undefined ? undefined : Number(q[k]));
        const bad = ["before", "after", "limit"].some((k) => {
          const v = num(k);
          if (v === undefined) return false;
          if (q[k]!.trim() === "") return false; // an empty value reads as 0 (zod coerce); lenient but harmless
          if (!Number.isInteger(v) || v < 0 || v > Number.MAX_SAFE_INTEGER) return true;
          return k === "limit" && (v < 1 || v > 200);
        });
        if (bad) expect(r.status, `?${qs}`).toBe(400);
      },
    ), budget(RUNS));
    await fc.assert(fc.asyncProperty(fc.oneof(queryValue, fc.string({ maxLength: 80 })), async (u) => {
      await hit("GET", `/v1/users?username=${encodeURIComponent(u)}`, {}, `users ?username=${u}`);
    }), budget(RUNS / 2));
    for (const qs of ["", "username=", "username=" + "a".repeat(65), "user=alice", "username=a&username=b"]) {
      await hit("GET", `/v1/users?${qs}`, {}, `users ?${qs}`);
    }
    await fc.assert(fc.asyncProperty(fc.array(fc.oneof(queryValue, fc.constant(alice.user_id)), { maxLength: 5 }), async (ids) => {
      const qs = `user_ids=${ids.map(encodeURIComponent).join(",")}`;
      const r = await hit("GET", `/v1/presence?${qs}`, {}, `presence ?${qs}`);
      if (ids.some((id) => id !== alice.user_id && id !== "")) expect(r.status, qs).toBe(400);
    }), budget(RUNS / 2));
  });

  it("answers bad profile lookups and member-page queries with a 4xx", async () => {
    await fc.assert(fc.asyncProperty(fc.array(fc.oneof(queryValue, fc.constant(alice.user_id)), { maxLength: 5 }), async (ids) => {
      const qs = `ids=${ids.map(encodeURIComponent).join(",")}`;
      const r = await hit("GET", `/v1/users?${qs}`, {}, `users ?${qs}`);
      if (ids.some((id) => id !== alice.user_id && id !== "")) expect(r.status, qs).toBe(400);
    }), budget(RUNS / 2));
    await fc.assert(fc.asyncProperty(fc.dictionary(fc.constantFrom("cursor", "limit"), queryValue, { maxKeys: 2 }), async (q) => {
      const qs = new URLSearchParams(q as Record<string, string>).toString();
      await hit("GET", `/v1/channels/${group}/members?${qs}`, {}, `members ?${qs}`);
    }), budget(RUNS / 2));
  });

  it("answers fuzzed path parameters with a 4xx (never a 5xx from a malformed id)", async () => {
    const shapes: ((s: string) => [string, string, string?])[] = [
      (s) => ["GET", `/v1/channels/${s}`],
      (s) => ["GET", `/v1/channels/${s}/messages?after=0`],
      (s) => ["GET", `/v1/channels/${s}/members`],
      (s) => ["POST", `/v1/channels/${s}/members`, JSON.stringify({ members: [bob.user_id] })],
      (s) => ["DELETE", `/v1/channels/${s}/members/${bob.user_id}`],
      (s) => ["DELETE", `/v1/channels/${group}/members/${s}`],
      (s) => ["POST", `/v1/channels/${s}/members/bulk`, JSON.stringify({ user_ids: [bob.user_id] })],
      (s) => ["PATCH", `/v1/channels/${group}/members/${s}`, JSON.stringify({ role: "admin" })],
      (s) => ["GET", `/v1/invites/${s}`],
      (s) => ["POST", `/v1/invites/${s}/join`],
      (s) => ["DELETE", `/v1/channels/${group}/invites/${s}`],
      (s) => ["POST", `/v1/channels/${s}/read`, JSON.stringify({ up_to_seq: 1 })],
      (s) => ["GET", `/v1/users/${s}`],
      (s) => ["DELETE", `/v1/devices/${s}`],
      (s) => ["GET", `/v1/attachments/${s}`],
      (s) => ["POST", `/v1/attachments/${s}/complete`, "{}"],
      (s) => ["DELETE", `/v1/sessions/${s}`],
      (s) => ["GET", `/v1/${s}`],
      (s) => ["POST", `/v1/auth/${s}`, "{}"],
    ];
    await fc.assert(fc.asyncProperty(fc.constantFrom(...shapes), pathSegment, async (shape, seg) => {
      const [method, path, b] = shape(seg);
      const r = await hit(method, path, { body: b }, `${method} ${path.slice(0, 120)}`);
      // A fuzzed segment can name something real by accident (GET /v1/users/<username>, GET /v1/me);
      // everything else must be refused.
      const mayExist = method === "GET" && (path.startsWith("/v1/users/") || /^\/v1\/[^/]*$/.test(path));
      if (!mayExist) expect(r.status, `${method} ${path}`).toBeGreaterThanOrEqual(400);
    }), budget(RUNS));
    // Methods a route does not have.
    for (const [m, p] of [["PUT", "/v1/channels"], ["DELETE", "/v1/me"], ["PATCH", `/v1/channels/${group}`], ["GET", "/v1/auth/login"], ["POST", "/v1/health"]] as const) {
      const r = await hit(m, p, { body: m === "GET" ? undefined : "{}" }, `${m} ${p}`);
      expect(r.status, `${m} ${p}`).toBeGreaterThanOrEqual(400);
    }
  });

  it("still works normally afterwards: the fuzzed group is intact and the API answers", async () => {
    const detail = await call<{ channel: { member_list: { user_id: string }[] } }>("GET", `/v1/channels/${group}`, { token: alice.access_token });
    expect(detail.status).toBe(200);
    expect(detail.body.channel.member_list.map((m) => m.user_id).sort()).toEqual([alice.user_id, bob.user_id].sort());
    expectWellFormedLog(await fullHistory(alice, group));
    expect((await call("GET", "/v1/channels", { token: bob.access_token })).status).toBe(200);
    console.log(`REST fuzz: answers by status ${JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))}`);
  });
});
