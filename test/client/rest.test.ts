/** REST helpers: auth flows, automatic refresh on 401, error mapping, history fallback. */
import { describe, expect, it } from "vitest";
import { EdgechatError } from "../../client/errors.js";
import { endpoints } from "../../client/rest.js";
import { jwtExpiry } from "../../client/auth.js";
import { channelState, connectReady, fakeFetch, harness, message, T } from "./fakes.js";

const session = (n: number, extra: Record<string, unknown> = {}) => ({
  user_id: "u_g_0000000000000000000000000a", username: "alice", display_name: "Alice",
  access_token: `token-${n}`, refresh_token: `refresh-${n}`, expires_in: 900, session_id: "s1", ...extra,
});

function jwt(expSeconds: number): string {
  const b64 = (o: object) => btoa(JSON.stringify(o)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
  return `${b64({ alg: "HS256" })}.${b64({ sub: "u", exp: expSeconds })}.sig`;
}

describe("endpoints", () => {
  it("derives the REST base and the WebSocket URL from one url", () => {
    expect(endpoints("https://chat.example.com")).toEqual({ rest: "https://chat.example.com", socket: "wss://chat.example.com/v1/connect" });
    expect(endpoints("http://127.0.0.1:8787/")).toEqual({ rest: "http://127.0.0.1:8787", socket: "ws://127.0.0.1:8787/v1/connect" });
    expect(endpoints("wss://h/base/v1/connect")).toEqual({ rest: "https://h/base", socket: "wss://h/base/v1/connect" });
    expect(() => endpoints("ftp://h")).toThrow(EdgechatError);
  });
});

describe("auth", () => {
  it("logs in with credentials before the first connect and uses that token", async () => {
    const api = fakeFetch({ "POST /v1/auth/login": () => ({ status: 200, body: session(1) }) });
    const h = harness({ fetch: api.fetch, token: undefined, credentials: { username: "alice", password: "pw" } });
    await connectReady(h, []);
    expect(api.calls.map((c) => [c.method, c.path, c.body])).toEqual([["POST", "/v1/auth/login", { username: "alice", password: "pw" }]]);
    expect(h.sockets[0]?.params.get("access_token")).toBe("token-1");
    expect(h.events.session).toHaveLength(1);
    expect(h.client.session()?.refresh_token).toBe("refresh-1");
  });

  it("register() signs in and stores the tokens", async () => {
    const api = fakeFetch({
      "POST /v1/auth/register": () => ({ status: 201, body: session(1) }),
      "GET /v1/me": (c) => ({ status: 200, body: { user_id: "u_g_0000000000000000000000000a", username: "alice", display_name: c.headers.authorization ?? "" } }),
    });
    const h = harness({ fetch: api.fetch, token: undefined });
    const s = await h.client.register({ username: "alice", password: "pw", display_name: "Alice" });
    expect(s.user_id).toMatch(/^u_/);
    expect((await h.client.me()).display_name).toBe("Bearer token-1");
  });

  it("refreshes once on 401 token_expired and retries the request", async () => {
    let valid = "token-1";
    const api = fakeFetch({
      "GET /v1/channels": (c) => c.headers.authorization === `Bearer ${valid}`
        ? { status: 200, body: { channels: [channelState("c1", 9, { unread_count: 4 })] } }
        : { status: 401, body: { code: "token_expired", message: "expired", retryable: false } },
      "POST /v1/auth/refresh": () => ({ status: 200, body: session(2) }),
    });
    const h = harness({ fetch: api.fetch, token: "token-1", refreshToken: "refresh-1" });
    valid = "token-2";
    const list = await h.client.channels.list();
    expect(list).toEqual([expect.objectContaining({ channel_id: "c1", last_seq: 9, unread_count: 4, muted: false })]);
    expect(api.calls.map((c) => c.path)).toEqual(["/v1/channels", "/v1/auth/refresh", "/v1/channels"]);
  });

  it("concurrent 401s share one refresh (rotated refresh tokens are single-use)", async () => {
    let valid = "token-1";
    const api = fakeFetch({
      "GET /v1/devices": (c) => (c.headers.authorization === `Bearer ${valid}` ? { status: 200, body: { devices: [] } } : { status: 401, body: { code: "token_expired" } }),
      "POST /v1/auth/refresh": () => ({ status: 200, body: session(2) }),
    });
    const h = harness({ fetch: api.fetch, token: "token-1", refreshToken: "refresh-1" });
    valid = "token-2";
    await Promise.all([h.client.devices.list(), h.client.devices.list(), h.client.devices.list()]);
    expect(api.calls.filter((c) => c.path === "/v1/auth/refresh")).toHaveLength(1);
  });

  it("falls back to logging in when the refresh token is refused", async () => {
    const api = fakeFetch({
      "POST /v1/auth/refresh": () => ({ status: 401, body: { code: "unauthorized", message: "revoked" } }),
      "POST /v1/auth/login": () => ({ status: 200, body: session(5) }),
    });
    const h = harness({ fetch: api.fetch, refreshToken: "refresh-old", credentials: { username: "alice", password: "pw" } });
    expect((await h.client.refresh()).access_token).toBe("token-5");
  });

  it("a signed-out session: no refresh, no login with the credentials, one signedOut event", async () => {
    const api = fakeFetch({
      "GET /v1/channels": () => ({ status: 401, body: { code: "session_revoked", message: "This session was signed out; log in again.", retryable: false } }),
      "POST /v1/auth/refresh": () => ({ status: 200, body: session(2) }),
      "POST /v1/auth/login": () => ({ status: 200, body: session(3) }),
    });
    const h = harness({ fetch: api.fetch, token: "token-1", refreshToken: "refresh-1", credentials: { username: "alice", password: "pw" } });
    await expect(h.client.channels.list()).rejects.toMatchObject({ code: "session_revoked", status: 401 });
    expect(api.calls.map((c) => c.path)).toEqual(["/v1/channels"]);
    expect(h.events.signedOut.map((e) => e.code)).toEqual(["session_revoked"]);
    expect(h.client.session()).toBeUndefined();
  });

  it("a refresh the server answers with session_revoked does not fall back to logging in", async () => {
    const api = fakeFetch({
      "POST /v1/auth/refresh": () => ({ status: 401, body: { code: "session_revoked", message: "already used" } }),
      "POST /v1/auth/login": () => ({ status: 200, body: session(5) }),
    });
    const h = harness({ fetch: api.fetch, refreshToken: "refresh-old", credentials: { username: "alice", password: "pw" } });
    await expect(h.client.refresh()).rejects.toMatchObject({ code: "session_revoked" });
    expect(api.calls.map((c) => c.path)).toEqual(["/v1/auth/refresh"]);
    expect(h.events.signedOut).toHaveLength(1);
  });

  it("lists sessions and signs one or all others out", async () => {
    const api = fakeFetch({
      "GET /v1/sessions": () => ({ status: 200, body: { sessions: [
        { session_id: "s1", created_at: 1, last_used_at: 2, expires_at: 3, current: true },
        { session_id: "s2", created_at: 1, last_used_at: 5, expires_at: 9, current: false, device_id: "laptop" },
      ] } }),
      "DELETE /v1/sessions/s2": () => ({ status: 204 }),
      "POST /v1/sessions/logout-others": () => ({ status: 200, body: { signed_out: 2 } }),
      "GET /v1/devices": () => ({ status: 200, body: { devices: [{ device_id: "laptop", connected: true, session_id: "s2" }] } }),
    });
    const h = harness({ fetch: api.fetch });
    expect(await h.client.sessions.list()).toEqual([
      { session_id: "s1", created_at: 1, last_used_at: 2, expires_at: 3, current: true },
      { session_id: "s2", created_at: 1, last_used_at: 5, expires_at: 9, current: false, device_id: "laptop" },
    ]);
    expect((await h.client.devices.list())[0]?.session_id).toBe("s2");
    await h.client.sessions.signOut("s2");
    expect(await h.client.sessions.signOutOthers()).toBe(2);
    expect(api.calls.map((c) => `${c.method} ${c.path}`)).toEqual(["GET /v1/sessions", "GET /v1/devices", "DELETE /v1/sessions/s2", "POST /v1/sessions/logout-others"]);
  });

  it("refreshes an access token that is about to expire before using it", async () => {
    const api = fakeFetch({
      "POST /v1/auth/refresh": () => ({ status: 200, body: session(2) }),
      "GET /v1/me": () => ({ status: 200, body: { user_id: "u", username: "alice", display_name: "" } }),
    });
    const h = harness({ fetch: api.fetch, token: jwt(1_000_010), refreshToken: "refresh-1" }); // fake clock: 1,000,000 ms
    expect(jwtExpiry(jwt(1_000_010))).toBe(1_000_010_000);
    await h.client.me();
    expect(api.calls.map((c) => c.path)).toEqual(["/v1/me"]);
    const soon = harness({ fetch: api.fetch, token: jwt(1_010), refreshToken: "refresh-1" }); // expires 10 s after "now"
    await soon.client.me();
    expect(api.calls.map((c) => c.path)).toEqual(["/v1/me", "/v1/auth/refresh", "/v1/me"]);
  });
});

describe("REST helpers", () => {
  it("map error bodies to EdgechatError with the server's code", async () => {
    const api = fakeFetch({
      "POST /v1/channels/c1/members": () => ({ status: 403, body: { code: "forbidden", message: "Only owners and admins can add members.", retryable: false } }),
      "GET /v1/users": () => ({ status: 429, body: { code: "rate_limited", message: "slow", retryable: true, backoff_hint_ms: 1500 } }),
    });
    const h = harness({ fetch: api.fetch });
    await expect(h.client.channels.addMembers("c1", ["bob"])).rejects.toMatchObject({ code: "forbidden", status: 403, retryable: false });
    await expect(h.client.users.lookup("bob")).rejects.toMatchObject({ code: "rate_limited", retryable: true, backoffHintMs: 1500 });
    expect(api.calls[1]?.path).toBe("/v1/users?username=bob");
  });

  it("turn a network failure into a retryable network_error", async () => {
    const h = harness({ fetch: async () => { throw new TypeError("fetch failed"); } });
    await expect(h.client.channels.list()).rejects.toMatchObject({ code: "network_error", retryable: true });
  });

  it("speak the documented paths and bodies", async () => {
    const channel = { channel: { channel_id: "c1", type: "group", name: "team", member_count: 2, members: [{ user_id: "u1", username: "bob", display_name: "Bob", role: "member" }] } };
    const api = fakeFetch({
      "POST /v1/channels": () => ({ status: 201, body: channel }),
      "GET /v1/channels/c1": () => ({ status: 200, body: channel }),
      "DELETE /v1/channels/c1/members/u1": () => ({ status: 200, body: channel }),
      "POST /v1/devices": (c) => ({ status: 201, body: { device: { ...(c.body as object), created_at: 1, last_seen_at: 2, connected: false } } }),
      "DELETE /v1/devices/old": () => ({ status: 204 }),
    });
    const h = harness({ fetch: api.fetch });
    expect(await h.client.channels.create({ type: "group", name: "team", members: ["bob"] })).toMatchObject({ channel_id: "c1", members: [{ username: "bob", role: "member" }] });
    expect((await h.client.channels.get("c1")).member_count).toBe(2);
    await h.client.channels.removeMember("c1", "u1");
    expect(await h.client.devices.register({ name: "laptop" })).toMatchObject({ device_id: "dev-1", name: "laptop" });
    await h.client.devices.remove("old");
    expect(api.calls.map((c) => `${c.method} ${c.path}`)).toEqual([
      "POST /v1/channels", "GET /v1/channels/c1", "DELETE /v1/channels/c1/members/u1", "POST /v1/devices", "DELETE /v1/devices/old",
    ]);
    expect(api.calls[0]?.body).toEqual({ type: "group", name: "team", members: ["bob"] });
    expect(api.calls.every((c) => c.headers.authorization === "Bearer token-1")).toBe(true);
  });
});

describe("history", () => {
  it("uses REST when not connected", async () => {
    const api = fakeFetch({
      "GET /v1/channels/c1/messages": () => ({ status: 200, body: { channel_id: "c1", messages: [message("c1", 8), message("c1", 9)], next_cursor: 8, has_more: true, last_seq: 20 } }),
    });
    const h = harness({ fetch: api.fetch });
    const page = await h.client.history("c1", { before: 10, limit: 2 });
    expect(api.calls[0]?.path).toBe("/v1/channels/c1/messages?before=10&limit=2");
    expect(page).toMatchObject({ channel_id: "c1", next_cursor: 8, has_more: true, last_seq: 20 });
    expect(page.messages.map((m) => [m.seq, m.content.text?.text])).toEqual([[8, "msg 8"], [9, "msg 9"]]);
    expect(h.events.message).toEqual([]); // scrollback is not the live stream
  });

  it("uses PULL_HISTORY when ready", async () => {
    const api = fakeFetch({});
    const h = harness({ fetch: api.fetch });
    const s = await connectReady(h, [channelState("c1", 20)]);
    const pending = h.client.history("c1", { before: 10, limit: 2 });
    const pull = s.framesOfType(T.PULL_HISTORY)[0]!;
    expect(pull.pull_history).toMatchObject({ channel_id: "c1", before_seq: 10, limit: 2 });
    s.receive({ type: T.HISTORY_PAGE, request_id: pull.request_id, history_page: { channel_id: "c1", messages: [message("c1", 8), message("c1", 9)], next_cursor: 8, has_more: true, last_seq: 20 } });
    expect((await pending).messages.map((m) => m.seq)).toEqual([8, 9]);
    expect(api.calls).toEqual([]);
    expect(h.events.message).toEqual([]);
  });

  it("falls back to REST if the socket drops mid-request", async () => {
    const api = fakeFetch({ "GET /v1/channels/c1/messages": () => ({ status: 200, body: { channel_id: "c1", messages: [], last_seq: 0 } }) });
    const h = harness({ fetch: api.fetch });
    const s = await connectReady(h, [channelState("c1", 0)]);
    const pending = h.client.history("c1");
    s.serverClose(1006);
    expect((await pending).messages).toEqual([]);
    expect(api.calls.map((c) => c.path)).toEqual(["/v1/channels/c1/messages"]);
  });

  it("rejects a PULL_HISTORY the server refuses", async () => {
    const h = harness();
    const s = await connectReady(h, []);
    const pending = h.client.history("c_x");
    const pull = s.framesOfType(T.PULL_HISTORY)[0]!;
    s.receive({ type: T.ERROR, request_id: pull.request_id, error: { code: "not_member", message: "no" } });
    await expect(pending).rejects.toMatchObject({ code: "not_member", requestId: pull.request_id });
  });
});

describe("settings and presence", () => {
  it("reads and updates the privacy settings, and pulls presence for a list of users", async () => {
    let stored = { read_receipts: true, share_presence: true };
    const api = fakeFetch({
      "GET /v1/me/settings": () => ({ status: 200, body: stored }),
      "PATCH /v1/me/settings": (call) => {
        stored = { ...stored, ...(call.body as object) };
        return { status: 200, body: stored };
      },
      "GET /v1/presence": () => ({ status: 200, body: { presence: [{ user_id: "u_b", status: "online" }, { user_id: "u_c", status: "offline", last_seen: 5 }] } }),
    });
    const h = harness({ fetch: api.fetch });
    expect(await h.client.settings.get()).toEqual({ read_receipts: true, share_presence: true });
    expect(await h.client.settings.update({ share_presence: false })).toEqual({ read_receipts: true, share_presence: false });
    expect(api.calls[1]).toMatchObject({ method: "PATCH", path: "/v1/me/settings", body: { share_presence: false } });
    // proto3 JSON leaves defaults out: a missing last_seen reads as 0.
    expect(await h.client.users.presence(["u_b", "u_c"])).toEqual([
      { user_id: "u_b", status: "online", last_seen: 0 },
      { user_id: "u_c", status: "offline", last_seen: 5 },
    ]);
    expect(api.calls[2]?.path).toBe("/v1/presence?user_ids=u_b,u_c");
  });
});
