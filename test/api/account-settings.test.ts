/**
 * Account settings: PATCH /v1/me (display name, removing the avatar), PUT /v1/me/avatar and the
 * avatar route, POST /v1/me/password (every other session signed out, the caller's kept). All
 * through the Worker's fetch handler, with real sockets, D1 and R2.
 */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { pb } from "../../protocol/codec.js";
import { CLOSE } from "../../shared/frames.js";
import { avatarKey } from "../../shared/avatars.js";
import { BASE, call, createDm, register, type TestUser } from "../helpers/api.js";
import { onlineDevice } from "../helpers/socket.js";

const T = pb.FrameType;
const PASSWORD = "correct horse battery";
/** The 8-byte PNG signature and a little more: R2 stores bytes, it does not decode them. */
const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3, 4, 5, 6, 7, 8]);

type Profile = { user_id: string; username: string; display_name: string; avatar_url?: string };

async function profileOf(viewer: TestUser, userId: string): Promise<Profile | undefined> {
  const r = await call<{ users: Profile[] }>("GET", `/v1/users?ids=${userId}`, { token: viewer.access_token });
  expect(r.status).toBe(200);
  return r.body.users[0];
}

async function putAvatar(token: string, bytes: Uint8Array, type: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await SELF.fetch(`${BASE}/v1/me/avatar`, { method: "PUT", headers: { Authorization: `Bearer ${token}`, "Content-Type": type }, body: bytes });
  return { status: res.status, body: await res.json() as Record<string, unknown> };
}

async function loginAgain(user: TestUser, password = PASSWORD): Promise<{ status: number; body: TestUser & { code?: string } }> {
  return call<TestUser & { code?: string }>("POST", "/v1/auth/login", { body: { username: user.username, password } });
}

describe("PATCH /v1/me", () => {
  it("refuses what is not a rename or an avatar removal, with a code and a message that says why", async () => {
    const alice = await register("alice");
    for (const body of [{}, { display_name: "" }, { display_name: "x".repeat(65) }, { display_name: 5 }, { username: "other" }, { avatar: "x" }, { display_name: "\u202e\u200b" }]) {
      const r = await call("PATCH", "/v1/me", { token: alice.access_token, body });
      expect([r.status, r.body.code], JSON.stringify(body)).toEqual([400, "invalid_argument"]);
      expect(typeof r.body.message).toBe("string");
    }
    const bad = await call("PATCH", "/v1/me", { token: alice.access_token, rawBody: '{"display_name":"\\ud800"}' });
    expect([bad.status, bad.body.code]).toEqual([400, "invalid_text"]);
    expect((await profileOf(alice, alice.user_id))?.display_name).toBe(alice.username);
  });

  it("renames: the new name is in every profile read, the user's devices and the DM partner's devices are told to read it again", async () => {
    const alice = await register("alice"), bob = await register("bob");
    await createDm(alice, bob);
    const aliceLaptop = await onlineDevice(alice.access_token, "alice-laptop");
    const bobPhone = await onlineDevice(bob.access_token, "bob-phone");

    const r = await call<Profile>("PATCH", "/v1/me", { token: alice.access_token, body: { display_name: "  Alice\u200b Liddell " } });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ user_id: alice.user_id, username: alice.username, display_name: "Alice Liddell" });

    expect((await profileOf(bob, alice.user_id))?.display_name).toBe("Alice Liddell");
    expect((await call<Profile>("GET", "/v1/me", { token: alice.access_token })).body.display_name).toBe("Alice Liddell");
    for (const device of [aliceLaptop, bobPhone]) {
      const update = await device.take((f) => f.type === T.PROFILE_UPDATE, 10_000);
      expect(update.profile_update?.user_id).toBe(alice.user_id);
    }
    // The name is read from profiles, never pushed: the frame holds the id only.
    aliceLaptop.close(); bobPhone.close();
  });
});

describe("avatars", () => {
  it("stores an image on R2, serves it at the profile's avatar_url, and removes it with avatar: null", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const put = await putAvatar(alice.access_token, PNG, "image/png");
    expect(put.status).toBe(200);
    const url = put.body.avatar_url as string;
    expect(url).toMatch(new RegExp(`^/v1/users/${alice.user_id}/avatar\\?v=\\d+$`));
    expect((await profileOf(bob, alice.user_id))?.avatar_url).toBe(url);

    const got = await SELF.fetch(`${BASE}${url}`, { headers: { Authorization: `Bearer ${bob.access_token}` } });
    expect(got.status).toBe(200);
    expect(got.headers.get("content-type")).toBe("image/png");
    expect(got.headers.get("x-content-type-options")).toBe("nosniff");
    expect(new Uint8Array(await got.arrayBuffer())).toEqual(PNG);

    const removed = await call<Profile>("PATCH", "/v1/me", { token: alice.access_token, body: { avatar: null } });
    expect(removed.status).toBe(200);
    expect(removed.body.avatar_url).toBeUndefined();
    expect((await profileOf(bob, alice.user_id))?.avatar_url).toBeUndefined();
    const gone = await SELF.fetch(`${BASE}${url}`, { headers: { Authorization: `Bearer ${bob.access_token}` } });
    expect([gone.status, ((await gone.json()) as { code: string }).code]).toEqual([404, "not_found"]);
    expect(await env.ATTACHMENTS.head(avatarKey(alice.user_id))).toBeNull();
  });

  it("accepts images only, within the size cap, and needs a token", async () => {
    const alice = await register("alice");
    const svg = await putAvatar(alice.access_token, new TextEncoder().encode("<svg/>"), "image/svg+xml");
    expect([svg.status, svg.body.code]).toEqual([415, "unsupported_media_type"]);
    const text = await putAvatar(alice.access_token, PNG, "text/plain");
    expect([text.status, text.body.code]).toEqual([415, "unsupported_media_type"]);
    const big = await putAvatar(alice.access_token, new Uint8Array(Number(env.AVATAR_MAX_BYTES) + 1), "image/png");
    expect([big.status, big.body.code]).toEqual([413, "content_too_large"]);
    const empty = await putAvatar(alice.access_token, new Uint8Array(0), "image/png");
    expect([empty.status, empty.body.code]).toEqual([400, "invalid_argument"]);
    const anonymous = await SELF.fetch(`${BASE}/v1/me/avatar`, { method: "PUT", headers: { "Content-Type": "image/png" }, body: PNG });
    expect(anonymous.status).toBe(401);
    expect(await env.ATTACHMENTS.head(avatarKey(alice.user_id))).toBeNull();
    const none = await call("GET", `/v1/users/${alice.user_id}/avatar`, { token: alice.access_token });
    expect([none.status, none.body.code]).toEqual([404, "not_found"]);
  });
});

describe("POST /v1/me/password", () => {
  it("refuses a wrong current password (403 forbidden) and a weak new one (400), changing nothing", async () => {
    const alice = await register("alice");
    const wrong = await call("POST", "/v1/me/password", { token: alice.access_token, body: { current_password: "not it at all", new_password: "a new long password" } });
    expect([wrong.status, wrong.body.code, wrong.body.retryable]).toEqual([403, "forbidden", false]);
    const weak = await call("POST", "/v1/me/password", { token: alice.access_token, body: { current_password: PASSWORD, new_password: "short" } });
    expect([weak.status, weak.body.code]).toEqual([400, "invalid_argument"]);
    expect((await loginAgain(alice)).status).toBe(200);
  });

  it("is throttled like sign-in: after the free failures even the right password is refused for a while", async () => {
    const alice = await register("alice");
    const free = Number(env.LOGIN_FREE_FAILURES_PER_USERNAME);
    // The free failures, then one more that is counted and locks the username (as sign-in does).
    for (let i = 0; i <= free; i++) {
      const r = await call("POST", "/v1/me/password", { token: alice.access_token, body: { current_password: `guess ${i}`, new_password: "a new long password" } });
      expect(r.status).toBe(403);
    }
    const locked = await call("POST", "/v1/me/password", { token: alice.access_token, body: { current_password: PASSWORD, new_password: "a new long password" } });
    expect([locked.status, locked.body.code]).toEqual([429, "rate_limited"]);
    expect(locked.body.backoff_hint_ms).toBeGreaterThan(0);
  });

  it("changes the password and signs out every other session (sockets 4410, refresh refused); the caller's session stays", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const dm = await createDm(alice, bob);
    const other = (await loginAgain(alice)).body;
    const otherSocket = await onlineDevice(other.access_token, "old-phone");
    const mySocket = await onlineDevice(alice.access_token, "laptop");

    const r = await call<{ sessions_ended: number }>("POST", "/v1/me/password", {
      token: alice.access_token, body: { current_password: PASSWORD, new_password: "a brand new passphrase" },
    });
    expect(r.status).toBe(200);
    expect(r.body.sessions_ended).toBe(1);

    const closed = await otherSocket.waitClosed(10_000);
    expect(closed.code).toBe(CLOSE.sessionRevoked);
    const refresh = await call("POST", "/v1/auth/refresh", { body: { refresh_token: other.refresh_token } });
    expect([refresh.status, refresh.body.code]).toEqual([401, "session_revoked"]);
    const rest = await call("GET", "/v1/channels", { token: other.access_token });
    expect([rest.status, rest.body.code]).toEqual([401, "session_revoked"]);

    // The caller's session goes on: REST, its socket (a message from bob arrives) and its refresh token.
    expect((await call("GET", "/v1/channels", { token: alice.access_token })).status).toBe(200);
    const bobPhone = await onlineDevice(bob.access_token, "bob-phone");
    await bobPhone.sendText(dm, "still there?");
    await mySocket.take((f) => f.type === T.DELIVER && !!f.deliver?.messages?.some((m) => m.content?.text?.text === "still there?"), 10_000);
    expect(mySocket.closed).toBeUndefined();
    expect((await call("POST", "/v1/auth/refresh", { body: { refresh_token: alice.refresh_token } })).status).toBe(200);

    expect((await loginAgain(alice)).status).toBe(401);
    expect((await loginAgain(alice, "a brand new passphrase")).status).toBe(200);
    mySocket.close(); bobPhone.close();
  });
});
