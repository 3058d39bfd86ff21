import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { signAccessToken } from "../../workers/auth/tokens.js";
import { call, register, uniqueName, type TestUser } from "../helpers/api.js";

describe("REST auth", () => {
  it("registers, logs in and reads /v1/me with the access token", async () => {
    const username = uniqueName("Alice");
    const reg = await call<TestUser & { expires_in: number; token_type: string }>("POST", "/v1/auth/register", {
      body: { username, password: "correct horse battery", display_name: "Alice Liddell" },
    });
    expect(reg.status).toBe(201);
    expect(reg.body).toMatchObject({ username, display_name: "Alice Liddell", token_type: "Bearer", expires_in: 900 });
    expect(reg.body.user_id).toMatch(/^u_g_[0-9a-z]{26}$/);
    const login = await call<TestUser>("POST", "/v1/auth/login", { body: { username: username.toUpperCase(), password: "correct horse battery" } });
    expect(login.status).toBe(200);
    expect(login.body.user_id).toBe(reg.body.user_id);
    const me = await call("GET", "/v1/me", { token: login.body.access_token });
    expect(me.body).toEqual({ user_id: reg.body.user_id, username, display_name: "Alice Liddell" });
  });

  it("rejects bad registrations and logins with a code and a message", async () => {
    const taken = await register("taken");
    const cases: [string, unknown, number, string][] = [
      ["/v1/auth/register", { username: taken.username, password: "another password" }, 409, "username_taken"],
      ["/v1/auth/register", { username: "x", password: "long enough" }, 400, "invalid_argument"],
      ["/v1/auth/register", { username: "has space", password: "long enough" }, 400, "invalid_argument"],
      ["/v1/auth/register", { username: uniqueName(), password: "short" }, 400, "invalid_argument"],
      ["/v1/auth/register", { username: uniqueName() }, 400, "invalid_argument"],
      ["/v1/auth/register", "not an object", 400, "invalid_argument"],
      ["/v1/auth/login", { username: taken.username, password: "wrong password" }, 401, "unauthorized"],
      ["/v1/auth/login", { username: "nobody_here", password: "whatever1" }, 401, "unauthorized"],
      ["/v1/auth/refresh", { refresh_token: "garbage" }, 401, "unauthorized"],
    ];
    for (const [path, body, status, code] of cases) {
      const r = await call(path === "x" ? "GET" : "POST", path, { body });
      expect([r.status, r.body.code], JSON.stringify(body)).toEqual([status, code]);
      expect(r.body.retryable).toBe(false);
      expect(typeof r.body.message).toBe("string");
    }
    const broken = await call("POST", "/v1/auth/login", { rawBody: "{not json" });
    expect([broken.status, broken.body.code]).toEqual([400, "invalid_argument"]);
    const huge = await call("POST", "/v1/auth/register", { rawBody: JSON.stringify({ username: "a", password: "x".repeat(70_000) }) });
    expect([huge.status, huge.body.code]).toEqual([413, "content_too_large"]);
  });

  it("rotates refresh tokens and revokes a session whose old token is replayed", async () => {
    const user = await register("rot");
    const first = await call<TestUser>("POST", "/v1/auth/refresh", { body: { refresh_token: user.refresh_token } });
    expect(first.status).toBe(200);
    expect(first.body.refresh_token).not.toBe(user.refresh_token);
    expect((await call("GET", "/v1/me", { token: first.body.access_token })).status).toBe(200);
    // Replaying the rotated token: someone else has it. The whole session goes.
    const replay = await call("POST", "/v1/auth/refresh", { body: { refresh_token: user.refresh_token } });
    expect([replay.status, replay.body.code]).toEqual([401, "session_revoked"]);
    const after = await call("POST", "/v1/auth/refresh", { body: { refresh_token: first.body.refresh_token } });
    expect([after.status, after.body.code]).toEqual([401, "session_revoked"]);
    // ...and so do its access tokens, the fresh one included.
    const me = await call("GET", "/v1/me", { token: first.body.access_token });
    expect([me.status, me.body.code]).toEqual([401, "session_revoked"]);
  });

  it("logs out by revoking the refresh session", async () => {
    const user = await register("bye");
    expect((await call("POST", "/v1/auth/logout", { body: { refresh_token: user.refresh_token } })).status).toBe(204);
    expect((await call("POST", "/v1/auth/refresh", { body: { refresh_token: user.refresh_token } })).status).toBe(401);
    expect((await call("GET", "/v1/me", { token: user.access_token })).body.code).toBe("session_revoked");
  });

  it("requires a valid, unexpired access token on every other endpoint", async () => {
    const user = await register("tok");
    const expired = await signAccessToken(env, { userId: user.user_id, username: user.username, sessionId: "s" }, -1);
    const [h, p] = user.access_token.split(".");
    for (const path of ["/v1/me", "/v1/channels", "/v1/devices", `/v1/users?username=${user.username}`]) {
      expect((await call("GET", path)).body.code, path).toBe("unauthorized");
      expect((await call("GET", path, { token: expired })).body.code, path).toBe("token_expired");
      expect((await call("GET", path, { token: `${h}.${p}.AAAA` })).status, path).toBe(401);
    }
    expect((await call("GET", "/v1/health")).status).toBe(200);
    expect((await call("GET", "/v1/nothing-here", { token: user.access_token })).body.code).toBe("not_found");
  });
});
