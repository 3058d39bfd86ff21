/**
 * Authorization matrix: every REST endpoint and every client frame type, tried with no token, an
 * expired token, a forged one, a non-member's token and a member without the needed role. Each
 * attempt must be refused (401/403/404 or an ERROR frame) and must change nothing: histories,
 * member lists, read cursors, device lists and settings are snapshotted before and compared after.
 * No answer may carry another user's channels, messages or devices.
 */
import { env } from "cloudflare:test";
import { SignJWT } from "jose";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { frameTypeName, type Frame, type FrameInit } from "../../protocol/codec.js";
import { api } from "../../workers/api/app.js";
import { signAccessToken } from "../../workers/auth/tokens.js";
import { dmChannelId } from "../../shared/ids.js";
import { call, createDm, createGroup, register, type TestUser } from "../helpers/api.js";
import { connectProbe, expectErrorBody, fullHistory, probeHello, probeOnline, rawCall, sleep, T, type ProbeDevice } from "./support.js";

const SECRET = "edgechat-test-secret-0123456789abcdef0123456789";
/** The matrices make a few hundred requests per test: time for that on a loaded machine. */
const MATRIX = { timeout: 120_000 };

let alice: TestUser, bob: TestUser, carol: TestUser, dave: TestUser;
/** alice (owner) + bob + dave (members); carol is in none of alice's channels. */
let group: string;
/** A well-formed invite code for alice's group that no one made. */
const forgedInvite = () => encodeURIComponent(`${group}.${"A".repeat(22)}`);
/** alice <-> bob */
let dm: string;
/** carol's own group with dave, so carol has something of her own that must not leak the other way. */
let carolsGroup: string;
let aliceDevice: ProbeDevice;
/** A file alice uploaded to the group and sent there. */
let attachment: string;
let bobDevice: ProbeDevice;
/** bob's group with alice for markers only (see afterMarker); left out of the snapshots. */
let markers: string;

const secretText = `secret-${crypto.randomUUID()}`;

type Tok = { name: string; token: () => Promise<string | undefined>; codes: string[] };

/** The ways to present a bad token. */
const badTokens: Tok[] = [
  { name: "no token", token: async () => undefined, codes: ["unauthorized"] },
  { name: "empty bearer", token: async () => "", codes: ["unauthorized"] },
  { name: "garbage", token: async () => "not.a.jwt", codes: ["unauthorized"] },
  {
    name: "expired (signAccessToken, negative ttl)",
    token: () => signAccessToken(env, { userId: alice.user_id, username: alice.username, sessionId: "s" }, -60),
    codes: ["token_expired"],
  },
  {
    name: "expired (jose, test secret)",
    token: () => new SignJWT({ name: alice.username, sid: "s" }).setProtectedHeader({ alg: "HS256" }).setSubject(alice.user_id)
      .setIssuer("edgechat").setAudience("edgechat-api").setIssuedAt(Math.floor(Date.now() / 1000) - 3600)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 1800).sign(new TextEncoder().encode(SECRET)),
    codes: ["token_expired"],
  },
  {
    name: "forged signature (other secret)",
    token: () => new SignJWT({ name: alice.username, sid: "s" }).setProtectedHeader({ alg: "HS256" }).setSubject(alice.user_id)
      .setIssuer("edgechat").setAudience("edgechat-api").setIssuedAt().setExpirationTime("10m")
      .sign(new TextEncoder().encode("attacker-secret-0123456789abcdef0123456789")),
    codes: ["unauthorized"],
  },
  {
    name: "tampered payload (alice's signature, carol's sub)",
    token: async () => {
      const [h, , s] = alice.access_token.split(".");
      const payload = btoa(JSON.stringify({ sub: carol.user_id, name: carol.username, sid: "s", iss: "edgechat", aud: "edgechat-api", exp: Math.floor(Date.now() / 1000) + 600 }))
        .replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
      return `${h}.${payload}.${s}`;
    },
    codes: ["unauthorized"],
  },
  {
    name: "alg none",
    token: async () => {
      const enc = (o: object) => btoa(JSON.stringify(o)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
      return `${enc({ alg: "none", typ: "JWT" })}.${enc({ sub: alice.user_id, name: alice.username, sid: "s", iss: "edgechat", aud: "edgechat-api", exp: Math.floor(Date.now() / 1000) + 600 })}.`;
    },
    codes: ["unauthorized"],
  },
  {
    name: "wrong audience",
    token: () => new SignJWT({ name: alice.username, sid: "s" }).setProtectedHeader({ alg: "HS256" }).setSubject(alice.user_id)
      .setIssuer("edgechat").setAudience("someone-else").setIssuedAt().setExpirationTime("10m").sign(new TextEncoder().encode(SECRET)),
    codes: ["unauthorized"],
  },
  {
    name: "refresh token used as access token",
    token: async () => alice.refresh_token,
    codes: ["unauthorized"],
  },
];

interface Endpoint {
  method: string;
  /** The Hono route pattern this row covers. */
  route: string;
  path: () => string;
  body?: () => unknown;
}

/** Every authenticated REST endpoint, aimed at alice's data wherever it takes an id. */
const authed: Endpoint[] = [
  { method: "GET", route: "/v1/me", path: () => "/v1/me" },
  { method: "GET", route: "/v1/me/settings", path: () => "/v1/me/settings" },
  { method: "GET", route: "/v1/me/export", path: () => "/v1/me/export" },
  { method: "PATCH", route: "/v1/me", path: () => "/v1/me", body: () => ({ display_name: "renamed by an intruder" }) },
  { method: "PUT", route: "/v1/me/avatar", path: () => "/v1/me/avatar", body: () => ({}) },
  { method: "GET", route: "/v1/users/:id/avatar", path: () => `/v1/users/${alice.user_id}/avatar` },
  { method: "POST", route: "/v1/me/password", path: () => "/v1/me/password", body: () => ({ current_password: "correct horse battery", new_password: "taken over by an intruder" }) },
  { method: "DELETE", route: "/v1/me", path: () => "/v1/me", body: () => ({ password: "correct horse battery" }) },
  { method: "PATCH", route: "/v1/me/settings", path: () => "/v1/me/settings", body: () => ({ read_receipts: false }) },
  { method: "GET", route: "/v1/users", path: () => `/v1/users?username=${alice.username}` },
  { method: "GET", route: "/v1/users/:id", path: () => `/v1/users/${alice.user_id}` },
  { method: "GET", route: "/v1/presence", path: () => `/v1/presence?user_ids=${alice.user_id}` },
  { method: "POST", route: "/v1/channels", path: () => "/v1/channels", body: () => ({ type: "group", name: "intruders", members: [alice.user_id] }) },
  { method: "GET", route: "/v1/channels", path: () => "/v1/channels" },
  { method: "GET", route: "/v1/channels/:id", path: () => `/v1/channels/${group}` },
  { method: "PATCH", route: "/v1/channels/:id", path: () => `/v1/channels/${group}`, body: () => ({ retention_ms: 3_600_000 }) },
  { method: "GET", route: "/v1/channels/:id/members", path: () => `/v1/channels/${group}/members?limit=10` },
  { method: "POST", route: "/v1/channels/:id/members", path: () => `/v1/channels/${group}/members`, body: () => ({ members: [carol.user_id] }) },
  { method: "DELETE", route: "/v1/channels/:id/members/:userId", path: () => `/v1/channels/${group}/members/${bob.user_id}` },
  { method: "POST", route: "/v1/channels/:id/members/bulk", path: () => `/v1/channels/${group}/members/bulk`, body: () => ({ user_ids: [carol.user_id] }) },
  { method: "PATCH", route: "/v1/channels/:id/members/:userId", path: () => `/v1/channels/${group}/members/${bob.user_id}`, body: () => ({ role: "admin" }) },
  { method: "POST", route: "/v1/channels/:id/invites", path: () => `/v1/channels/${group}/invites`, body: () => ({}) },
  { method: "GET", route: "/v1/channels/:id/invites", path: () => `/v1/channels/${group}/invites` },
  { method: "DELETE", route: "/v1/channels/:id/invites/:code", path: () => `/v1/channels/${group}/invites/${forgedInvite()}` },
  { method: "GET", route: "/v1/invites/:code", path: () => `/v1/invites/${forgedInvite()}` },
  { method: "POST", route: "/v1/invites/:code/join", path: () => `/v1/invites/${forgedInvite()}/join` },
  { method: "GET", route: "/v1/channels/:id/messages", path: () => `/v1/channels/${group}/messages?after=0&limit=200` },
  { method: "POST", route: "/v1/channels/:id/read", path: () => `/v1/channels/${group}/read`, body: () => ({ up_to_seq: 1_000_000 }) },
  { method: "PATCH", route: "/v1/channels/:id/messages/:seq", path: () => `/v1/channels/${group}/messages/2`, body: () => ({ text: "edited by an intruder" }) },
  { method: "DELETE", route: "/v1/channels/:id/messages/:seq", path: () => `/v1/channels/${group}/messages/2?for=everyone` },
  { method: "PUT", route: "/v1/channels/:id/messages/:seq/reactions/:emoji", path: () => `/v1/channels/${group}/messages/2/reactions/${encodeURIComponent("👍")}` },
  { method: "DELETE", route: "/v1/channels/:id/messages/:seq/reactions/:emoji", path: () => `/v1/channels/${group}/messages/2/reactions/${encodeURIComponent("👍")}` },
  { method: "POST", route: "/v1/channels/:id/messages", path: () => `/v1/channels/${group}/messages`, body: () => ({ client_msg_id: "intruder-1", content: { text: { text: "hi" } } }) },
  { method: "POST", route: "/v1/attachments/presign", path: () => "/v1/attachments/presign", body: () => ({ channel_id: group, filename: "x.png", content_type: "image/png", size_bytes: 10 }) },
  { method: "GET", route: "/v1/attachments/:id/upload", path: () => `/v1/attachments/${attachment}/upload` },
  { method: "POST", route: "/v1/attachments/:id/complete", path: () => `/v1/attachments/${attachment}/complete`, body: () => ({}) },
  { method: "DELETE", route: "/v1/attachments/:id", path: () => `/v1/attachments/${attachment}` },
  { method: "GET", route: "/v1/attachments/:id", path: () => `/v1/attachments/${attachment}` },
  { method: "GET", route: "/v1/devices", path: () => "/v1/devices" },
  { method: "POST", route: "/v1/devices", path: () => "/v1/devices", body: () => ({ device_id: "intruder-device" }) },
  { method: "DELETE", route: "/v1/devices/:deviceId", path: () => `/v1/devices/${aliceDevice.deviceId}` },
  { method: "PATCH", route: "/v1/devices/:deviceId", path: () => `/v1/devices/${aliceDevice.deviceId}`, body: () => ({ name: "renamed by an intruder", push: null }) },
  { method: "PATCH", route: "/v1/me/channels/:id", path: () => `/v1/me/channels/${group}`, body: () => ({ muted: true }) },
  { method: "GET", route: "/v1/push/config", path: () => "/v1/push/config" },
  { method: "GET", route: "/v1/sessions", path: () => "/v1/sessions" },
  { method: "POST", route: "/v1/sessions/logout-others", path: () => "/v1/sessions/logout-others" },
  { method: "DELETE", route: "/v1/sessions/:sessionId", path: () => `/v1/sessions/${alice.refresh_token.split(".")[1]}` },
];

/** Endpoints that take no access token; covered by their own tests below (the operator's drain and erasure progress, which take ADMIN_TOKEN instead: test/api/drain.test.ts, test/api/erasure.test.ts). */
const PUBLIC_ROUTES = ["GET /v1/health", "POST /v1/auth/register", "POST /v1/auth/login", "POST /v1/auth/refresh", "POST /v1/auth/logout", "POST /v1/admin/drain", "GET /v1/admin/erasures/:userId"];

interface Snapshot {
  group: unknown[];
  dm: unknown[];
  groupMembers: unknown;
  dmMembers: unknown;
  aliceChannels: unknown;
  bobChannels: unknown;
  aliceDevices: unknown;
  bobDevices: unknown;
  aliceSettings: unknown;
  aliceProfile: unknown;
}

/** Everything an attack could change, read as the legitimate owners. */
async function snapshot(): Promise<Snapshot> {
  const get = async (path: string, user: TestUser) => {
    const r = await call("GET", path, { token: user.access_token });
    expect(r.status, path).toBe(200);
    return r.body;
  };
  const withoutMarkers = (list: unknown) => {
    const l = list as { channels: { channel_id: string }[] };
    return { ...l, channels: l.channels.filter((c) => c.channel_id !== markers) };
  };
  const stripVolatile = (devices: unknown) =>
    (devices as { devices: { device_id: string; connected: boolean; name: string; platform: string }[] }).devices
      .map(({ device_id, connected, name, platform }) => ({ device_id, connected, name, platform }));
  return {
    group: await fullHistory(alice, group),
    dm: await fullHistory(alice, dm),
    groupMembers: await get(`/v1/channels/${group}`, alice),
    dmMembers: await get(`/v1/channels/${dm}`, bob),
    aliceChannels: withoutMarkers(await get("/v1/channels", alice)),
    bobChannels: withoutMarkers(await get("/v1/channels", bob)),
    aliceDevices: stripVolatile(await get("/v1/devices", alice)),
    bobDevices: stripVolatile(await get("/v1/devices", bob)),
    aliceSettings: await get("/v1/me/settings", alice),
    aliceProfile: await get("/v1/me", alice),
  };
}

/**
 * A positive marker in place of "wait a little, then see that nothing came": `from` says
 * something in the marker channel and `to` receives it. Whatever was on its way to `to` before
 * arrives first: the frames still queued on `to` once the marker is taken are returned, for the
 * test to check.
 */
async function afterMarker(from: ProbeDevice, to: ProbeDevice): Promise<Frame[]> {
  const text = `marker ${crypto.randomUUID()}`;
  expect((await from.sendText(markers, text)).type).toBe(T.SEND_ACK);
  await to.take((f) => f.type === T.DELIVER && !!f.deliver?.messages?.some((m) => m.content?.text?.text === text), 10_000, "the marker");
  return to.queued();
}

/** Nothing in `text` may name what carol must not see. */
function expectNoLeak(text: string, context: string): void {
  for (const secret of [secretText, group, dm, aliceDevice.deviceId, bobDevice.deviceId]) {
    expect(text.includes(secret), `${context} leaks ${secret.slice(0, 12)}…`).toBe(false);
  }
}

beforeAll(async () => {
  [alice, bob, carol, dave] = await Promise.all([register("alice"), register("bob"), register("carol"), register("dave")]);
  group = await createGroup(alice, [bob, dave], "Private");
  dm = await createDm(alice, bob);
  carolsGroup = await createGroup(carol, [dave], "Carol's");
  markers = await createGroup(bob, [alice], "Markers");
  aliceDevice = await probeHello(alice.access_token, "alice-phone");
  bobDevice = await probeHello(bob.access_token, "bob-phone");
  await aliceDevice.resume([]);
  await bobDevice.resume([]);
  for (const ch of [group, dm]) {
    const ack = await aliceDevice.sendText(ch, `${secretText} in ${ch}`);
    expect(ack.type).toBe(T.SEND_ACK);
  }
  const presigned = await call<{ attachment_id: string; upload_url: string }>("POST", "/v1/attachments/presign", {
    token: alice.access_token, body: { channel_id: group, filename: "plan.png", content_type: "image/png", size_bytes: 4 },
  });
  attachment = presigned.body.attachment_id;
  expect((await rawCall("PUT", new URL(presigned.body.upload_url).pathname + new URL(presigned.body.upload_url).search, { body: "abcd", contentType: "image/png" })).status).toBe(200);
  const sent = await call("POST", `/v1/channels/${group}/messages`, { token: alice.access_token, body: { client_msg_id: crypto.randomUUID(), content: { attachment: { attachment_id: attachment, size_bytes: 4 } } } });
  expect(sent.status).toBe(201);
  // Sent over REST, so every device of alice's gets it too: let it arrive before the attacks.
  const seq = (sent.body as { ack: { seq: number } }).ack.seq;
  for (const d of [aliceDevice, bobDevice]) {
    await d.take((f) => f.type === T.DELIVER && (f.deliver?.messages ?? []).some((m) => Number(m.seq) === seq), 10_000, "the attachment message");
    d.drainDelivered();
  }
  // bob reads the group: a cursor the attacks below must not move back or forward.
  expect((await call("POST", `/v1/channels/${group}/read`, { token: bob.access_token, body: { up_to_seq: 1 } })).status).toBe(200);
}, 30_000);

// The probe devices stay connected for the whole file. Like real clients they ping, or the
// server's idle sweep (90 s without a frame) closes them when a slow machine stretches the file.
beforeEach(() => {
  for (const d of [aliceDevice, bobDevice]) if (d && !d.closed) d.raw("ping");
});

describe("authorization matrix: REST", MATRIX, () => {
  it("covers every registered REST route", () => {
    const registered = api.routes.filter((r) => r.method !== "ALL").map((r) => `${r.method} ${r.path}`);
    const covered = new Set([...authed.map((e) => `${e.method} ${e.route}`), ...PUBLIC_ROUTES]);
    const missing = registered.filter((r) => !covered.has(r));
    expect(missing, "routes without an authorization row in this file: add them to `authed`").toEqual([]);
  });

  // Every bad token against every endpoint: a few hundred requests, slow on a loaded machine.
  it("refuses every authenticated endpoint without a valid token (401), and nothing changes", { timeout: 90_000 }, async () => {
    const before = await snapshot();
    let tried = 0;
    // One token at a time, its endpoints all at once: 200 calls one after another outlasted the
    // test's 20 s on a loaded machine.
    for (const tok of badTokens) {
      const token = await tok.token();
      await Promise.all(authed.map(async (e) => {
        const body = e.body?.();
        const headers: Record<string, string> = {};
        if (token !== undefined) headers.Authorization = `Bearer ${token}`;
        const r = await rawCall(e.method, e.path(), {
          headers, body: body === undefined ? undefined : JSON.stringify(body), contentType: body === undefined ? undefined : "application/json",
        });
        const what = `${tok.name}: ${e.method} ${e.route}`;
        expect(r.status, what).toBe(401);
        expectErrorBody(r.json, what);
        expect(tok.codes, what).toContain((r.json as { code: string }).code);
        expectNoLeak(r.text, what);
        tried++;
      }));
    }
    expect(tried).toBe(badTokens.length * authed.length);
    // Other header shapes: a token in the query string is not accepted by REST, nor a Basic scheme.
    const shapes: Record<string, string>[] = [{ Authorization: `Basic ${btoa("alice:pw")}` }, { Authorization: alice.access_token }, { "X-Access-Token": alice.access_token }];
    for (const headers of shapes) {
      const r = await rawCall("GET", "/v1/channels", { headers });
      expect(r.status, JSON.stringify(Object.keys(headers))).toBe(401);
    }
    expect((await rawCall("GET", `/v1/channels?access_token=${alice.access_token}`)).status).toBe(401);
    expect(await snapshot()).toEqual(before);
  });

  it("refuses a non-member on every channel endpoint (403/404), leaks nothing, and nothing changes", MATRIX, async () => {
    const before = await snapshot();
    const attempts: [string, string, unknown?][] = [];
    for (const ch of [group, dm]) {
      attempts.push(
        ["GET", `/v1/channels/${ch}`],
        ["GET", `/v1/channels/${ch}/messages`],
        ["GET", `/v1/channels/${ch}/members`],
        ["GET", `/v1/channels/${ch}/messages?after=0&limit=200`],
        ["GET", `/v1/channels/${ch}/messages?before=100&limit=200`],
        ["POST", `/v1/channels/${ch}/members`, { members: [carol.user_id] }], // adding oneself
        ["POST", `/v1/channels/${ch}/members`, { members: [dave.username] }],
        ["DELETE", `/v1/channels/${ch}/members/${bob.user_id}`],
        ["DELETE", `/v1/channels/${ch}/members/${alice.user_id}`],
        ["DELETE", `/v1/channels/${ch}/members/${carol.user_id}`], // "leaving" a channel one is not in
        ["POST", `/v1/channels/${ch}/members/bulk`, { user_ids: [carol.user_id] }],
        ["PATCH", `/v1/channels/${ch}/members/${carol.user_id}`, { role: "admin" }],
        ["PATCH", `/v1/channels/${ch}/members/${bob.user_id}`, { role: "member" }],
        ["POST", `/v1/channels/${ch}/invites`, {}],
        ["GET", `/v1/channels/${ch}/invites`],
        ["DELETE", `/v1/channels/${ch}/invites/${encodeURIComponent(`${ch}.${"A".repeat(22)}`)}`],
        // A guessed invite code for the channel: the random half is checked, so it opens nothing.
        ["GET", `/v1/invites/${encodeURIComponent(`${ch}.${"A".repeat(22)}`)}`],
        ["POST", `/v1/invites/${encodeURIComponent(`${ch}.${"A".repeat(22)}`)}/join`],
        ["POST", `/v1/channels/${ch}/read`, { up_to_seq: 1_000_000 }],
        ["POST", `/v1/channels/${ch}/read`, { up_to_seq: 0 }],
        ["PATCH", `/v1/channels/${ch}/messages/2`, { text: "edited by carol" }],
        ["DELETE", `/v1/channels/${ch}/messages/2?for=everyone`],
        ["DELETE", `/v1/channels/${ch}/messages/2?for=me`],
        ["PUT", `/v1/channels/${ch}/messages/2/reactions/${encodeURIComponent("👍")}`],
        ["DELETE", `/v1/channels/${ch}/messages/2/reactions/${encodeURIComponent("👍")}`],
        ["POST", `/v1/channels/${ch}/messages`, { client_msg_id: crypto.randomUUID(), content: { text: { text: "carol was here" } } }],
        ["POST", "/v1/attachments/presign", { channel_id: ch, filename: "x.png", content_type: "image/png", size_bytes: 10 }],
      );
    }
    attempts.push(
      ["GET", `/v1/attachments/${attachment}`],
      ["GET", `/v1/attachments/${attachment}/upload`],
      ["POST", `/v1/attachments/${attachment}/complete`, {}],
      ["DELETE", `/v1/attachments/${attachment}`],
    );
    await Promise.all(attempts.map(async ([method, path, body]) => {
      const r = await call(method, path, { token: carol.access_token, body });
      const what = `carol ${method} ${path}`;
      expect([403, 404], what).toContain(r.status);
      expect(["not_member", "not_found", "forbidden"], what).toContain(r.body.code);
      expectErrorBody(r.body, what);
      expectNoLeak(JSON.stringify(r.body), what);
    }));
    // carol's own views hold nothing of alice's.
    for (const path of ["/v1/channels", "/v1/devices", "/v1/me", "/v1/me/settings"]) {
      const r = await call("GET", path, { token: carol.access_token });
      expect(r.status, path).toBe(200);
      expectNoLeak(JSON.stringify(r.body), `carol GET ${path}`);
    }
    const carolsList = await call<{ channels: { channel_id: string }[] }>("GET", "/v1/channels", { token: carol.access_token });
    expect(carolsList.body.channels.map((c) => c.channel_id)).toEqual([carolsGroup]);
    // Device ids are per user: carol deleting "alice-phone" touches her own (empty) list only.
    const del = await call("DELETE", `/v1/devices/${aliceDevice.deviceId}`, { token: carol.access_token });
    expect([del.status, del.body.code]).toEqual([404, "not_found"]);
    // Sessions too: carol cannot sign alice out, and her "everywhere else" is her own.
    const signOut = await call("DELETE", `/v1/sessions/${alice.refresh_token.split(".")[1]}`, { token: carol.access_token });
    expect([signOut.status, signOut.body.code]).toEqual([404, "not_found"]);
    expect((await call("POST", "/v1/sessions/logout-others", { token: carol.access_token })).status).toBe(200);
    expect((await call("GET", "/v1/me", { token: alice.access_token })).status).toBe(200);
    expect(aliceDevice.closed).toBeUndefined();
    // Public profile lookups answer with the profile only.
    const profile = await call("GET", `/v1/users/${alice.user_id}`, { token: carol.access_token });
    expect(Object.keys(profile.body).sort()).toEqual(["display_name", "user_id", "username"]);
    expect(await snapshot()).toEqual(before);
  });

  it("refuses a member without the needed role (403), and nothing changes", async () => {
    const before = await snapshot();
    const attempts: [string, string, unknown?, string?][] = [
      ["POST", `/v1/channels/${group}/members`, { members: [carol.user_id] }, "forbidden"],
      ["DELETE", `/v1/channels/${group}/members/${alice.user_id}`, undefined, "forbidden"], // the owner
      ["DELETE", `/v1/channels/${group}/members/${dave.user_id}`, undefined, "forbidden"], // a peer
      ["PATCH", `/v1/channels/${group}/messages/2`, { text: "bob rewrites alice" }, "forbidden"], // someone else's message
      ["DELETE", `/v1/channels/${group}/messages/2?for=everyone`, undefined, "forbidden"], // a member is no moderator
    ];
    for (const [method, path, body, code] of attempts) {
      const r = await call(method, path, { token: bob.access_token, body });
      expect([r.status, r.body.code], `bob ${method} ${path}`).toEqual([403, code]);
      expectErrorBody(r.body);
    }
    // A DM's members are fixed even for its members.
    for (const [user, body] of [[alice, { members: [carol.user_id] }], [bob, { members: [dave.user_id] }]] as const) {
      const r = await call("POST", `/v1/channels/${dm}/members`, { token: user.access_token, body });
      expect(r.status, `${user.username} adds to a DM`).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
    }
    const kick = await call("DELETE", `/v1/channels/${dm}/members/${bob.user_id}`, { token: alice.access_token });
    expect(kick.status).toBeGreaterThanOrEqual(400);
    expect(kick.status).toBeLessThan(500);
    expect(await snapshot()).toEqual(before);
  });

  it("keeps refresh tokens to their owner: a wrong secret neither refreshes nor logs out another session", async () => {
    const [uid, sid] = bob.refresh_token.split(".");
    const forged = `${uid}.${sid}.${"A".repeat(43)}`;
    const refreshed = await call("POST", "/v1/auth/refresh", { body: { refresh_token: forged } });
    expect([refreshed.status, refreshed.body.code]).toEqual([401, "unauthorized"]);
    const crossUser = `${alice.user_id}.${sid}.${bob.refresh_token.split(".")[2]}`; // bob's secret on alice's id
    expect((await call("POST", "/v1/auth/refresh", { body: { refresh_token: crossUser } })).status).toBe(401);
    const logout = await call("POST", "/v1/auth/logout", { body: { refresh_token: forged } });
    expect(logout.status).toBe(204); // says nothing either way
    // bob's real session still works, and rotates.
    const ok = await call<TestUser>("POST", "/v1/auth/refresh", { body: { refresh_token: bob.refresh_token } });
    expect(ok.status).toBe(200);
    bob = { ...bob, ...ok.body };
    const wrongPassword = await call("POST", "/v1/auth/login", { body: { username: alice.username, password: "wrong password!" } });
    expect([wrongPassword.status, wrongPassword.body.code]).toEqual([401, "unauthorized"]);
    const noUser = await call("POST", "/v1/auth/login", { body: { username: "nobody_" + crypto.randomUUID().slice(0, 8), password: "whatever123" } });
    expect([noUser.status, withoutTrace(noUser.body)]).toEqual([wrongPassword.status, withoutTrace(wrongPassword.body)]); // no account enumeration
    const taken = await call("POST", "/v1/auth/register", { body: { username: alice.username, password: "another password" } });
    expect([taken.status, taken.body.code]).toEqual([409, "username_taken"]);
    const still = await call("POST", "/v1/auth/login", { body: { username: alice.username, password: "correct horse battery" } });
    expect(still.status).toBe(200);
  });

  it("a DM between two other users is indistinguishable from a DM that does not exist", async () => {
    const existing = await dmChannelId(alice.user_id, bob.user_id, "");
    const missing = await dmChannelId(alice.user_id, carol.user_id, "");
    expect(existing).toBe(dm);
    for (const suffix of ["", "/messages"]) {
      const a = await call("GET", `/v1/channels/${existing}${suffix}`, { token: dave.access_token });
      const b = await call("GET", `/v1/channels/${missing}${suffix}`, { token: dave.access_token });
      expect([a.status, withoutTrace(a.body)], `GET /v1/channels/{dm}${suffix}`).toEqual([b.status, withoutTrace(b.body)]);
    }
  });
});

/** A device of `user` that sends one of each client frame type at `channel`. */
function clientFrames(channel: string): FrameInit[] {
  return [
    { type: T.SEND, send: { channel_id: channel, client_msg_id: crypto.randomUUID(), content: { text: { text: "let me in" } } } },
    { type: T.DELIVER_ACK, deliver_ack: { channel_id: channel, seq: 1 } },
    { type: T.TYPING, typing: { channel_id: channel, is_typing: true } },
    { type: T.READ, read: { channel_id: channel, up_to_seq: 1_000_000 } },
    { type: T.PRESENCE_HEARTBEAT, presence_heartbeat: { status: "online" } },
    { type: T.PULL_HISTORY, pull_history: { channel_id: channel, after_seq: 0, limit: 200 } },
    { type: T.PULL_HISTORY, pull_history: { channel_id: channel } },
    { type: T.REACT, react: { channel_id: channel, seq: 1, emoji: "👍", op: "add" } },
    { type: T.EDIT, edit: { channel_id: channel, seq: 2, content: { text: { text: "edited by carol" } } } },
    { type: T.DELETE, delete: { channel_id: channel, seq: 2, for_everyone: true } },
    { type: T.RESUME, resume: { cursors: [{ channel_id: channel, last_seq: 0 }], full: true } },
  ];
}

describe("authorization matrix: WebSocket", MATRIX, () => {
  it("refuses the connection for every bad token: ERROR then close 4401, no HELLO, frames sent anyway do nothing", async () => {
    const before = await snapshot();
    // Every bad token at once (20 connections one after another outlasted 20 s on a loaded machine).
    await Promise.all(badTokens.map(async (tok) => {
      const token = await tok.token();
      for (const bearer of [false, true]) {
        if (token === undefined && bearer) continue;
        const d = await connectProbe(token, `bad-${crypto.randomUUID().slice(0, 6)}`, { bearer });
        // Frames sent before the refusal lands must not reach anything.
        for (const f of clientFrames(group)) { try { d.send(f); } catch { /* closing */ } }
        const closed = await d.waitClosed(5000);
        const what = `${tok.name}${bearer ? " (Authorization header)" : ""}`;
        expect(closed.code, what).toBe(4401);
        const err = d.log.find((f) => f.type === T.ERROR);
        expect(tok.codes, what).toContain(err?.error?.code);
        expect(d.log.map((f) => frameTypeName(f.type)), what).toEqual(["ERROR"]);
      }
    }));
    const beforeMarker = await afterMarker(bobDevice, aliceDevice);
    expect(beforeMarker.filter((f) => f.type === T.DELIVER), "alice's device got nothing").toEqual([]);
    expect(await snapshot()).toEqual(before);
  });

  it("answers a non-member's every client frame type with an ERROR (or an empty RESUME), tells members nothing, and nothing changes", async () => {
    const before = await snapshot();
    aliceDevice.clear(); bobDevice.clear();
    const c = await probeOnline(carol.access_token, "carol-laptop");
    for (const channel of [group, dm]) {
      for (const frame of clientFrames(channel)) {
        const id = c.send(frame);
        const what = `carol ${frameTypeName(frame.type!)} → ${channel === group ? "group" : "dm"}`;
        if (frame.type === T.RESUME) {
          const resumed = await c.take((f) => f.request_id === id && f.type === T.RESUMED, 5000, "RESUMED");
          expect(resumed.resumed?.channels?.map((s) => s.channel_id), what).toEqual([carolsGroup]);
          expect(c.drainDelivered().filter((m) => m.channel_id === channel), what).toEqual([]);
          continue;
        }
        if (frame.type === T.DELIVER_ACK || frame.type === T.PRESENCE_HEARTBEAT) {
          // Neither answers on success; DELIVER_ACK for a foreign channel is tested below.
          const reply = await c.maybeTake((f) => f.request_id === id, 300);
          if (reply) expect(reply.type, what).toBe(T.ERROR);
          continue;
        }
        const reply = await c.reply(id, 5000);
        expect(frameTypeName(reply.type), what).toBe("ERROR");
        expect(["not_member", "not_found", "forbidden", "not_implemented"], what).toContain(reply.error?.code);
        expect(reply.error?.retryable, what).toBe(false);
      }
    }
    // Whatever carol got (errors, her own RESUMED) names nothing of alice's channels.
    for (const f of c.log) {
      if (f.type === T.ERROR) continue; // errors echo the ids carol sent herself
      expectNoLeak(JSON.stringify(f.toJSON()), `carol got ${frameTypeName(f.type)}`);
    }
    // Markers both ways: whatever carol's frames set off has reached alice and bob before them.
    const told: [ProbeDevice, Frame[]][] = [[aliceDevice, await afterMarker(bobDevice, aliceDevice)], [bobDevice, await afterMarker(aliceDevice, bobDevice)]];
    for (const [d, before] of told) {
      // Channel updates and the presence of their own contacts (late from their RESUME) are not carol's doing.
      const got = before.filter((f) => f.type !== T.CHANNEL_UPDATE && !(f.type === T.PRESENCE && f.presence?.user_id !== carol.user_id));
      expect(got.map((f) => frameTypeName(f.type)), `${d.deviceId} was told something by carol's frames`).toEqual([]);
    }
    c.close();
    expect(await snapshot()).toEqual(before);
  });

  it("keeps a removed member out from the moment of removal, over the socket as over REST", async () => {
    const erin = await register("erin");
    const ch = await createGroup(alice, [erin], "Temporary");
    const e = await probeHello(erin.access_token, "erin-phone");
    await e.resume([]);
    expect((await call("DELETE", `/v1/channels/${ch}/members/${erin.user_id}`, { token: alice.access_token })).status).toBe(200);
    const after = await aliceDevice.sendText(ch, `${secretText} after erin left`);
    expect(after.type).toBe(T.SEND_ACK);
    for (const frame of clientFrames(ch)) {
      if (frame.type === T.RESUME || frame.type === T.DELIVER_ACK || frame.type === T.PRESENCE_HEARTBEAT) continue;
      const id = e.send(frame);
      const reply = await e.reply(id);
      expect(reply.type, frameTypeName(frame.type!)).toBe(T.ERROR);
    }
    const resumed = await e.resume([{ channel_id: ch, last_seq: 0 }]);
    expect(resumed.messages.filter((m) => m.content?.text?.text?.includes(secretText))).toEqual([]);
    // The marker: alice writes to erin where erin is a member; anything sent to erin before arrives first.
    const marker = `marker ${crypto.randomUUID()}`;
    expect((await aliceDevice.sendText(await createDm(alice, erin), marker)).type).toBe(T.SEND_ACK);
    await e.take((f) => f.type === T.DELIVER && !!f.deliver?.messages?.some((m) => m.content?.text?.text === marker), 10_000, "the marker");
    const leaked = e.log.flatMap((f) => f.deliver?.messages ?? []).filter((m) => m.content?.text?.text?.includes(secretText));
    expect(leaked, "erin received a message sent after her removal").toEqual([]);
    const rest = await call("GET", `/v1/channels/${ch}/messages?after=0`, { token: erin.access_token });
    expect(rest.status).toBe(403);
    e.close();
  });

  it("a DELIVER_ACK for a channel one is not in gets an ERROR", async () => {
    const c = await probeOnline(carol.access_token, "carol-ack");
    const id = c.send({ type: T.DELIVER_ACK, deliver_ack: { channel_id: group, seq: 5 } });
    const reply = await c.reply(id, 1000);
    c.close();
    // not_found, like every other request from someone who was never in the channel.
    expect(reply.error?.code).toBe("not_found");
  });
});

/** An error body without its trace id, which differs on every request by design. */
function withoutTrace(body: unknown): unknown {
  if (typeof body !== "object" || body === null) return body;
  const { trace_id: _trace, ...rest } = body as Record<string, unknown>;
  return rest;
}
