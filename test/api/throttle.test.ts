/**
 * Throttling at the edge: sign-in backoff per username and per client address, registrations per
 * address, channel creations per user. Refusals are 429 rate_limited with backoff_hint_ms; what
 * was refused was not done. Each test uses addresses of its own (CF-Connecting-IP, as Cloudflare's
 * edge sets it), so tests never share a limit.
 */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { BASE, register, uniqueName } from "../helpers/api.js";

const PASSWORD = "correct horse battery";
let addresses = 0;
/** A client address no other test uses (TEST-NET-2). */
const newAddress = () => `198.51.100.${++addresses}`;

async function post(path: string, body: unknown, address: string | null, token?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (address) headers["CF-Connecting-IP"] = address;
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await SELF.fetch(`${BASE}${path}`, { method: "POST", headers, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const login = (username: string, password: string, address: string | null = null) => post("/v1/auth/login", { username, password }, address);

function expectLimited(r: { status: number; body: Record<string, unknown> }): number {
  expect(r.status).toBe(429);
  expect(r.body).toMatchObject({ code: "rate_limited", retryable: true });
  expect(r.body.backoff_hint_ms).toBeGreaterThan(0);
  return r.body.backoff_hint_ms as number;
}

describe("sign-in backoff", () => {
  it("locks a username after 5 failures, refuses even the right password while locked, and lets it in after the hinted wait", async () => {
    const alice = await register("alice", PASSWORD);
    for (let i = 0; i < 5; i++) expect((await login(alice.username, `wrong ${i}`)).status).toBe(401);
    // The 6th failure is counted and locks the username for 1 s.
    expect((await login(alice.username, "wrong 6")).status).toBe(401);
    const hint = expectLimited(await login(alice.username, PASSWORD));
    expect(hint).toBeLessThanOrEqual(1_000);
    // From another address too: the lock is the username's.
    expectLimited(await login(alice.username, PASSWORD, newAddress()));
    await new Promise((r) => setTimeout(r, hint + 50));
    expect((await login(alice.username, PASSWORD)).status).toBe(200);
    // A success clears the username: 5 more failures are free again.
    for (let i = 0; i < 5; i++) expect((await login(alice.username, `wrong again ${i}`)).status).toBe(401);
    expect((await login(alice.username, PASSWORD)).status).toBe(200);
  });

  it("doubles the lockout with each further failure, up to the cap, and forgets failures after a quiet hour (controlled clock)", async () => {
    const key = env.THROTTLE.get(env.THROTTLE.idFromName(`login-user:${uniqueName("clock")}`));
    const rule = { free: 5, baseMs: 1_000, maxMs: 8_000, forgetMs: 3_600_000 };
    const t0 = Date.now(); // in the future of the real clock only, so the clean-up alarm stays away
    const locks: number[] = [];
    for (let i = 0; i < 10; i++) locks.push(await key.loginResult(false, rule, true, t0 + i * 10_000));
    expect(locks).toEqual([0, 0, 0, 0, 0, 1_000, 2_000, 4_000, 8_000, 8_000]);
    expect(await key.loginWait(t0 + 90_000 + 500)).toBe(7_500);
    // An hour after the last failure the count starts again.
    expect(await key.loginResult(false, rule, true, t0 + 90_000 + 3_600_000)).toBe(0);
  });

  it("locks a client address guessing at many usernames, and no other address", async () => {
    const address = newAddress();
    const carol = await register("carol", PASSWORD);
    // 20 failures spread over 20 usernames (none of them locked on its own) …
    for (let i = 0; i < 20; i++) expect((await login(uniqueName("nobody"), "guess", address)).status).toBe(401);
    expect((await login(uniqueName("nobody"), "guess", address)).status).toBe(401); // the 21st locks the address
    // … lock the address, even for an account with the right password …
    expectLimited(await login(carol.username, PASSWORD, address));
    // … and only that address.
    expect((await login(carol.username, PASSWORD, newAddress())).status).toBe(200);
  });
});

describe("registration and channel creation limits", () => {
  it("lets one address register 10 accounts at once, refuses the 11th without creating it, and leaves other addresses alone", async () => {
    const address = newAddress();
    for (let i = 0; i < 10; i++) expect((await post("/v1/auth/register", { username: uniqueName("reg"), password: PASSWORD }, address)).status).toBe(201);
    const refused = uniqueName("reg");
    expectLimited(await post("/v1/auth/register", { username: refused, password: PASSWORD }, address));
    expect((await login(refused, PASSWORD, newAddress())).status).toBe(401); // no such account
    expect((await post("/v1/auth/register", { username: uniqueName("reg"), password: PASSWORD }, newAddress())).status).toBe(201);
  });

  it("lets a user create 20 channels at once and refuses the 21st; others are unaffected", async () => {
    const dave = await register("dave", PASSWORD), erin = await register("erin", PASSWORD);
    for (let i = 0; i < 20; i++) {
      expect((await post("/v1/channels", { type: "group", name: `g${i}`, members: [erin.user_id] }, null, dave.access_token)).status).toBe(201);
    }
    expectLimited(await post("/v1/channels", { type: "group", name: "one too many", members: [erin.user_id] }, null, dave.access_token));
    const list = await SELF.fetch(`${BASE}/v1/channels`, { headers: { authorization: `Bearer ${erin.access_token}` } });
    expect(((await list.json()) as { channels: unknown[] }).channels).toHaveLength(20);
    expect((await post("/v1/channels", { type: "group", name: "mine", members: [dave.user_id] }, null, erin.access_token)).status).toBe(201);
  });
});
