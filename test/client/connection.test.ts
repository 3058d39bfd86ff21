/**
 * Connection lifecycle: backoff with jitter and its reset, heartbeat, GOAWAY, ERROR hints and the
 * close codes 4401 / 4409 / 4009 / 4403.
 */
import { describe, expect, it } from "vitest";
import { channelState, connectReady, fakeFetch, harness, openAndHello, T } from "./fakes.js";

const session = (n: number) => ({
  user_id: "u_g_0000000000000000000000000a", username: "me", display_name: "Me",
  access_token: `token-${n}`, refresh_token: `refresh-${n}`, expires_in: 900, session_id: "s1",
});

describe("reconnect backoff", () => {
  it("waits 1 s × 2^attempt × jitter between failed attempts, capped at 60 s", async () => {
    const draws = [0, 0.999, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5];
    let i = 0;
    const h = harness({ random: () => draws[i++] ?? 0.5 });
    await connectReady(h, []);
    const delays: number[] = [];
    h.client.on("connectionState", (c) => {
      if (c.state === "reconnecting" && c.retryInMs !== undefined) delays.push(c.retryInMs);
    });
    for (let n = 0; n < 9; n++) {
      h.socket().serverClose(1006);
      await h.time.advance(delays.at(-1)!);
    }
    expect(delays).toEqual([500, 2998, 4000, 8000, 16000, 32000, 60000, 60000, 60000]);
    expect(h.sockets).toHaveLength(10);
  });

  it("does not reconnect before the jittered delay is over", async () => {
    const h = harness({ random: () => 0.9 });
    await connectReady(h, []);
    h.socket().serverClose(1011);
    await h.time.advance(1_399);
    expect(h.sockets).toHaveLength(1);
    await h.time.advance(1);
    expect(h.sockets).toHaveLength(2);
  });

  it("resets the backoff after a successful RESUMED", async () => {
    const h = harness();
    await connectReady(h, []);
    for (const expected of [1_000, 2_000, 4_000]) {
      h.socket().serverClose(1006);
      expect(h.events.connectionState.at(-1)).toMatchObject({ state: "reconnecting", retryInMs: expected });
      await h.time.advance(expected);
    }
    const s = await openAndHello(h);
    s.receive({ type: T.RESUMED, resumed: { channels: [] } });
    s.serverClose(1006);
    expect(h.events.connectionState.at(-1)).toMatchObject({ state: "reconnecting", retryInMs: 1_000 });
  });

  it("a socket that opened but never resumed does not reset the backoff", async () => {
    const h = harness();
    await connectReady(h, []);
    h.socket().serverClose(1006);
    await h.time.advance(1_000);
    await openAndHello(h);
    h.socket().serverClose(1006);
    expect(h.events.connectionState.at(-1)).toMatchObject({ state: "reconnecting", retryInMs: 2_000 });
  });

  it("honours ERROR.backoff_hint_ms when the socket then drops", async () => {
    const h = harness();
    const s = await connectReady(h, []);
    s.receive({ type: T.ERROR, error: { code: "unavailable", message: "overloaded", retryable: true, backoff_hint_ms: 7_000 } });
    expect(h.events.error.map((e) => e.code)).toEqual(["unavailable"]);
    s.serverClose(1011);
    expect(h.events.connectionState.at(-1)).toMatchObject({ state: "reconnecting", retryInMs: 7_000 });
  });

  it("gives up on a socket that does not open within the connect timeout", async () => {
    const h = harness({ connectTimeoutMs: 5_000 });
    void h.client.connect();
    await h.time.advance(5_000);
    expect(h.sockets[0]?.closedWith?.code).toBe(4000);
    expect(h.client.state).toBe("reconnecting");
    await h.time.advance(1_000);
    expect(h.sockets).toHaveLength(2);
  });
});

describe("heartbeat", () => {
  it("sends a text ping every 30 s and stays up while pongs come back", async () => {
    const h = harness();
    const s = await connectReady(h, []);
    for (let i = 1; i <= 4; i++) {
      await h.time.advance(30_000);
      expect(s.pings()).toBe(i);
      s.receiveText("pong");
    }
    expect(h.client.state).toBe("ready");
    expect(h.events.error).toEqual([]); // "pong" is not a frame
  });

  it("declares the socket dead when nothing answers a ping within the timeout, and reconnects", async () => {
    const h = harness();
    const s = await connectReady(h, []);
    await h.time.advance(30_000);
    expect(s.pings()).toBe(1);
    await h.time.advance(9_999);
    expect(s.closedWith).toBeUndefined();
    await h.time.advance(1);
    expect(s.closedWith?.code).toBe(4000);
    expect(h.events.connectionState.at(-1)).toMatchObject({ state: "reconnecting", reason: "no pong within 10000 ms of a ping" });
    await h.time.advance(1_000);
    expect(h.sockets).toHaveLength(2);
  });

  it("any frame after a ping answers it", async () => {
    const h = harness();
    const s = await connectReady(h, [channelState("c1", 0)]);
    await h.time.advance(30_000);
    for (let i = 0; i < 6; i++) {
      await h.time.advance(5_000);
      s.receive({ type: T.PRESENCE, presence: { user_id: "u", status: "online" } });
      await h.time.advance(25_000);
    }
    expect(s.pings()).toBe(7);
    expect(s.closedWith).toBeUndefined();
    expect(h.client.state).toBe("ready");
  });

  it("pings at once when the network goes offline, and gives a silent socket up within the timeout", async () => {
    const h = harness({ heartbeatTimeoutMs: 4_000 });
    const s = await connectReady(h, []);
    await h.time.advance(1_000);
    (globalThis as unknown as EventTarget).dispatchEvent(new Event("offline"));
    expect(s.pings()).toBe(1);
    await h.time.advance(4_000);
    expect(s.closedWith?.code).toBe(4000);
    expect(h.events.connectionState.at(-1)).toMatchObject({ state: "reconnecting" });
  });

  it("a socket that answers the offline probe stays", async () => {
    const h = harness();
    const s = await connectReady(h, []);
    (globalThis as unknown as EventTarget).dispatchEvent(new Event("online"));
    expect(s.pings()).toBe(1);
    s.receiveText("pong");
    await h.time.advance(10_000);
    expect(s.closedWith).toBeUndefined();
    expect(h.client.state).toBe("ready");
  });
});

describe("server-directed reconnects", () => {
  it("GOAWAY: keeps the socket until reconnect_after_ms plus jitter, then moves to a new one at once", async () => {
    const h = harness({ random: () => 0.5 });
    const s = await connectReady(h, []);
    s.receive({ type: T.GOAWAY, goaway: { reconnect_after_ms: 10_000, reason: "drain" } });
    await h.time.advance(12_499);
    expect(s.closedWith).toBeUndefined();
    expect(h.client.state).toBe("ready");
    expect(h.sockets).toHaveLength(1);
    await h.time.advance(1);
    expect(s.closedWith?.code).toBe(1000);
    await h.time.advance(0);
    expect(h.sockets).toHaveLength(2);
  });

  it("GOAWAY then a close from the server: the reconnect still waits for the moment it was given", async () => {
    const h = harness({ random: () => 0.5 });
    const s = await connectReady(h, []);
    s.receive({ type: T.GOAWAY, goaway: { reconnect_after_ms: 10_000, reason: "deploy" } });
    await h.time.advance(2_500);
    s.serverClose(1001, "going away");
    expect(h.events.connectionState.at(-1)).toMatchObject({ state: "reconnecting", retryInMs: 10_000 });
    await h.time.advance(9_999);
    expect(h.sockets).toHaveLength(1);
    await h.time.advance(1);
    expect(h.sockets).toHaveLength(2);
  });

  it("GOAWAY does not count as a failed attempt", async () => {
    const h = harness({ random: () => 0.5 });
    const s = await connectReady(h, []);
    s.receive({ type: T.GOAWAY, goaway: { reconnect_after_ms: 0 } });
    await h.time.advance(500);
    const s2 = await openAndHello(h);
    s2.serverClose(1006);
    expect(h.events.connectionState.at(-1)).toMatchObject({ retryInMs: 1_000 });
  });

  it("4409 (replaced by another connection of this device): closed, error, no reconnect", async () => {
    const h = harness();
    const s = await connectReady(h, []);
    s.receive({ type: T.CONFLICT, conflict: { device_id: "dev-1", reason: "newer connection" } });
    s.serverClose(4409, "replaced");
    expect(h.client.state).toBe("closed");
    expect(h.events.error.map((e) => e.code)).toEqual(["replaced"]);
    await h.time.advance(600_000);
    expect(h.sockets).toHaveLength(1);
  });

  it("CONFLICT followed by an abnormal close still does not reconnect", async () => {
    const h = harness();
    const s = await connectReady(h, []);
    s.receive({ type: T.CONFLICT, conflict: { device_id: "dev-1" } });
    s.serverClose(1006);
    expect(h.client.state).toBe("closed");
    await h.time.advance(600_000);
    expect(h.sockets).toHaveLength(1);
  });

  it("4009 (too many devices): connect() rejects, no reconnect", async () => {
    const h = harness();
    const ready = h.client.connect();
    const s = await openAndHello(h);
    s.receive({ type: T.ERROR, error: { code: "too_many_devices", message: "10 devices already" } });
    s.serverClose(4009, "too many devices");
    await expect(ready).rejects.toMatchObject({ code: "too_many_devices" });
    expect(h.client.state).toBe("closed");
    expect(h.events.error.map((e) => e.code)).toEqual(["too_many_devices"]);
    await h.time.advance(600_000);
    expect(h.sockets).toHaveLength(1);
  });

  it("4403 (page origin not allowed): connect() rejects, no reconnect", async () => {
    const h = harness();
    const ready = h.client.connect();
    const s = await openAndHello(h);
    s.serverClose(4403, "forbidden");
    await expect(ready).rejects.toMatchObject({ code: "forbidden" });
    expect(h.client.state).toBe("closed");
    await h.time.advance(600_000);
    expect(h.sockets).toHaveLength(1);
  });

  it("4410 (the session was signed out): stops for good, forgets tokens and credentials, says signedOut once", async () => {
    const api = fakeFetch({
      "POST /v1/auth/login": () => ({ status: 200, body: session(1) }),
      "GET /v1/me": () => ({ status: 401, body: { code: "unauthorized", message: "no token" } }),
    });
    const h = harness({ fetch: api.fetch, token: undefined, credentials: { username: "alice", password: "pw" } });
    const s = await connectReady(h, []);
    s.receive({ type: T.ERROR, error: { code: "session_revoked", message: "This session was signed out; log in again." } });
    s.serverClose(4410, "signed out");
    await h.time.advance(0);
    expect(h.client.state).toBe("closed");
    expect(h.events.signedOut.map((e) => e.code)).toEqual(["session_revoked"]);
    expect(h.events.error).toEqual([]);
    expect(h.client.session()).toBeUndefined();
    await h.time.advance(600_000);
    expect(h.sockets).toHaveLength(1);
    // It does not sign itself back in with the credentials it was given.
    await expect(h.client.me()).rejects.toMatchObject({ code: "unauthorized" });
    expect(api.calls.filter((c) => c.path === "/v1/auth/login")).toHaveLength(1);
    // Signing in again is the app's call, and works.
    await h.client.login({ username: "alice", password: "pw" });
    expect(h.client.session()?.access_token).toBe("token-1");
  });

  it("a connect refused because the session was signed out rejects with session_revoked", async () => {
    const h = harness();
    const ready = h.client.connect();
    await h.time.advance(0);
    const s = h.socket();
    s.open();
    s.receive({ type: T.ERROR, error: { code: "session_revoked", message: "signed out" } });
    s.serverClose(4410, "session_revoked");
    await expect(ready).rejects.toMatchObject({ code: "session_revoked" });
    expect(h.events.signedOut).toHaveLength(1);
  });

  it("4401: refreshes the token, then reconnects at once with the new one", async () => {
    const api = fakeFetch({ "POST /v1/auth/refresh": () => ({ status: 200, body: session(2) }) });
    const h = harness({ fetch: api.fetch, refreshToken: "refresh-1" });
    const s = await connectReady(h, []);
    s.receive({ type: T.ERROR, error: { code: "token_expired", message: "expired" } });
    s.serverClose(4401, "token expired");
    await h.time.advance(0);
    expect(api.calls.map((c) => [c.path, c.body])).toEqual([["/v1/auth/refresh", { refresh_token: "refresh-1" }]]);
    expect(h.sockets).toHaveLength(2);
    expect(h.socket().params.get("access_token")).toBe("token-2");
    expect(h.events.session.map((x) => x.refresh_token)).toEqual(["refresh-2"]);
    expect(h.events.error).toEqual([]);
  });

  it("reconnects with the RESUME_HINT token once the access token is stale, without a refresh first", async () => {
    const api = fakeFetch({ "POST /v1/auth/refresh": () => ({ status: 200, body: session(2) }) });
    // FakeTime starts at 1,000 s: an access token good for 15 min, a resume token good for an hour.
    const h = harness({ fetch: api.fetch, refreshToken: "refresh-1", token: jwtExpiringAt(1_000 + 900) });
    const s = await connectReady(h, []);
    const resume = jwtExpiringAt(1_000 + 3_600);
    s.receive({ type: T.RESUME_HINT, resume_hint: { session_token: resume } });
    h.client.disconnect();
    await h.time.advance(20 * 60_000); // the laptop slept: the access token expired meanwhile
    void h.client.connect().catch(() => {});
    await h.time.advance(0);
    expect(h.sockets).toHaveLength(2);
    expect(h.socket().params.get("resume_token")).toBe(resume);
    expect(h.socket().params.get("access_token")).toBeNull();
    expect(api.calls).toEqual([]);
    // Refused (signed out meanwhile, say): the next attempt renews the access token instead.
    h.socket().serverClose(4401, "unauthorized");
    await h.time.advance(0);
    expect(api.calls.map((c) => c.path)).toEqual(["/v1/auth/refresh"]);
    expect(h.socket().params.get("access_token")).toBe("token-2");
    expect(h.socket().params.get("resume_token")).toBeNull();
  });

  it("uses a fresh access token rather than the resume token, and an expired resume token never", async () => {
    const api = fakeFetch({ "POST /v1/auth/refresh": () => ({ status: 200, body: session(2) }) });
    const h = harness({ fetch: api.fetch, refreshToken: "refresh-1", token: jwtExpiringAt(1_000 + 900) });
    const s = await connectReady(h, []);
    s.receive({ type: T.RESUME_HINT, resume_hint: { session_token: jwtExpiringAt(1_000 + 600) } });
    h.client.disconnect();
    await h.time.advance(5 * 60_000);
    void h.client.connect().catch(() => {});
    await h.time.advance(0);
    expect(h.socket().params.get("resume_token")).toBeNull();
    expect(h.socket().params.get("access_token")).toBe(jwtExpiringAt(1_000 + 900));
    h.client.disconnect();
    await h.time.advance(20 * 60_000);
    void h.client.connect().catch(() => {});
    await h.time.advance(0);
    expect(h.socket().params.get("resume_token")).toBeNull();
    expect(h.socket().params.get("access_token")).toBe("token-2");
  });

  it("4401 with a refresh the server refuses: closed + error, no reconnect", async () => {
    const api = fakeFetch({ "POST /v1/auth/refresh": () => ({ status: 401, body: { code: "unauthorized", message: "session revoked", retryable: false } }) });
    const h = harness({ fetch: api.fetch, refreshToken: "refresh-1" });
    const s = await connectReady(h, []);
    s.serverClose(4401);
    await h.time.advance(0);
    expect(h.client.state).toBe("closed");
    expect(h.events.error.map((e) => e.code)).toEqual(["unauthorized"]);
    await h.time.advance(600_000);
    expect(h.sockets).toHaveLength(1);
  });

  it("4401 with nothing to refresh with: closed + error", async () => {
    const h = harness();
    const ready = h.client.connect();
    const s = await openAndHello(h);
    s.serverClose(4401);
    await expect(ready).rejects.toMatchObject({ code: "unauthorized" });
    expect(h.client.state).toBe("closed");
  });

  it("4401 while the refresh endpoint is unreachable: keeps retrying with backoff", async () => {
    let up = false;
    const api = fakeFetch({
      "POST /v1/auth/refresh": () => (up ? { status: 200, body: session(3) } : { status: 503, body: { code: "unavailable", retryable: true } }),
    });
    const h = harness({ fetch: api.fetch, refreshToken: "refresh-1" });
    const s = await connectReady(h, []);
    s.serverClose(4401);
    await h.time.advance(0);
    expect(h.client.state).toBe("reconnecting");
    up = true;
    await h.time.advance(1_000);
    expect(h.socket().params.get("access_token")).toBe("token-3");
  });

  it("disconnect() closes with 1000 and stays closed; connect() resumes", async () => {
    const h = harness();
    const s = await connectReady(h, [channelState("c1", 3)]);
    h.client.disconnect();
    expect(s.closedWith?.code).toBe(1000);
    expect(h.client.state).toBe("closed");
    await h.time.advance(600_000);
    expect(h.sockets).toHaveLength(1);
    const again = h.client.connect();
    const s2 = await openAndHello(h);
    expect(s2.framesOfType(T.RESUME)[0]?.resume?.cursors?.map((c) => [c.channel_id, c.last_seq])).toEqual([["c1", 3]]);
    s2.receive({ type: T.RESUMED, resumed: { channels: [channelState("c1", 3)] } });
    await again;
    expect(h.client.state).toBe("ready");
  });

  it("disconnect() before ready rejects connect()", async () => {
    const h = harness();
    const ready = h.client.connect();
    h.client.disconnect();
    await expect(ready).rejects.toMatchObject({ code: "disconnected" });
  });

  it("connect() without any WebSocket implementation rejects clearly", async () => {
    const h = harness({ WebSocket: undefined });
    const g = globalThis as { WebSocket?: unknown };
    const saved = g.WebSocket;
    try {
      g.WebSocket = undefined;
      const { createClient } = await import("../../client/index.js");
      const client = createClient({ url: "https://chat.test", deviceId: "d", token: "t" });
      await expect(client.connect()).rejects.toMatchObject({ code: "invalid_argument" });
    } finally {
      g.WebSocket = saved;
    }
    expect(h.sockets).toHaveLength(0);
  });
});

/** A JWT-shaped token (unsigned: the client only reads its expiry) that expires at `expSeconds`. */
function jwtExpiringAt(expSeconds: number): string {
  const b64 = (o: unknown) => btoa(JSON.stringify(o)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
  return `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ exp: expSeconds })}.sig`;
}

