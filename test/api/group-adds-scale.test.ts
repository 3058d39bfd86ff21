/**
 * Creating a large group asks only the people who restrict who may add them (docs/decisions/024):
 * each account row carries a copy of the user's `group_adds` policy, read with the profiles, so a
 * 1,000-member group of people who allow everyone costs no call to their UserObjects. The copy is
 * written by the user's own object, in the order that never leaves "everyone" in the row while the
 * object says "contacts"; a row that does not know (accounts from before migration 0003) means
 * "ask", and the object then fills it in. Counts, never time.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { channelStub, userStub } from "../../shared/routing.js";
import { memoryRecorder, recordMetricsWith } from "../../shared/metrics.js";
import { call, createDm, register, uniqueName, type ChannelBody, type TestUser } from "../helpers/api.js";

type Failure = { code: string; message: string; retryable: boolean; user_ids?: string[] };

/** Accounts straight into the directory (no password work, no UserObject): `policy` null = a row from before 0003. */
async function seedAccounts(n: number, policy: "everyone" | "contacts" | null): Promise<string[]> {
  const ids = Array.from({ length: n }, () => `u_g_${crypto.randomUUID().replaceAll("-", "").slice(0, 26)}`);
  const now = Date.now();
  for (let i = 0; i < ids.length; i += 50) {
    await env.ACCOUNTS.batch(ids.slice(i, i + 50).map((id) => env.ACCOUNTS.prepare(
      "INSERT INTO accounts (user_id, username, username_lower, display_name, password_hash, jurisdiction, created_at, group_adds) VALUES (?, ?, ?, '', 'x', '', ?, ?)",
    ).bind(id, id, id, now, policy)));
  }
  return ids;
}

/** The group_adds column of `userId`'s row in `db` (undefined: no row). */
async function rowPolicy(db: D1Database, userId: string): Promise<string | null | undefined> {
  const row = await db.prepare("SELECT group_adds FROM accounts WHERE user_id = ?").bind(userId).first<{ group_adds: string | null }>();
  return row === null ? undefined : row.group_adds;
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Runs `work` and returns its result with how many UserObjects were asked about group_adds meanwhile. */
async function asked<T>(work: () => Promise<T>): Promise<{ result: T; asked: number }> {
  const seen = memoryRecorder();
  const restore = recordMetricsWith(seen);
  try {
    const result = await work();
    return { result, asked: seen.total("user.group_adds_asked") };
  } finally {
    restore();
  }
}

const createGroupOf = (owner: TestUser, members: string[], name = "Big") =>
  call<ChannelBody & Failure>("POST", "/v1/channels", { token: owner.access_token, body: { type: "group", name, members } });
const setGroupAdds = (user: TestUser, group_adds: "everyone" | "contacts") =>
  call<Record<string, unknown> & Failure>("PATCH", "/v1/me/settings", { token: user.access_token, body: { group_adds } });

/**
 * Stops the channel's notice pump (it tells each new member later, off the create's path: decision
 * 013, tested with the channels and broadcast tests). Waking 1,000 fresh user objects here would
 * only slow the rest of this file down on a busy machine. Returns how many were still to be told.
 */
async function holdNotices(channelId: string): Promise<number> {
  return runInDurableObject(channelStub(env, channelId), (_o, state) =>
    state.storage.sql.exec("UPDATE members SET notified = 1 WHERE notified = 0").rowsWritten);
}

/** Replaces how `user`'s object writes its account row (a D1 outage, for this object only). */
async function rowWrites(user: TestUser, write: ((policy: string) => Promise<void>) | "restore"): Promise<void> {
  await runInDurableObject(userStub(env, user.user_id), (instance) => {
    const row = (instance as unknown as { settings: { groupAddsRow: { deps: { write: (p: string) => Promise<void> }; original?: (p: string) => Promise<void> } } }).settings.groupAddsRow;
    row.original ??= row.deps.write;
    row.deps.write = write === "restore" ? row.original : write;
  });
}

describe("creating a large group", () => {
  it("asks no member's UserObject when every one of 999 allows everyone", async () => {
    const alice = await register("alice");
    const members = await seedAccounts(999, "everyone");
    const { result: r, asked: n } = await asked(() => createGroupOf(alice, members));
    expect(r.status).toBe(201);
    expect(r.body.channel.member_count).toBe(1000);
    expect(n).toBe(0);
    // The members hear of it from the notice pump, off the request's path: most are still to be told.
    expect(await holdNotices(r.body.channel.channel_id)).toBeGreaterThan(0);
    // Adding people later is the same: 200 more into a group of two, no call to any of them.
    const small = await createGroupOf(alice, [members[0]!], "Small");
    expect(small.status).toBe(201);
    await holdNotices(small.body.channel.channel_id);
    const add = await asked(() => call<ChannelBody>("POST", `/v1/channels/${small.body.channel.channel_id}/members`, { token: alice.access_token, body: { members: members.slice(1, 201) } }));
    expect([add.result.status, add.result.body.channel?.member_count, add.asked]).toEqual([200, 202, 0]);
    await holdNotices(small.body.channel.channel_id);
  }, 240_000);

  it("asks only the one who allows contacts, and refuses them until they share a conversation", async () => {
    const alice = await register("alice"), bob = await register("bob");
    expect((await setGroupAdds(bob, "contacts")).status).toBe(200);
    const others = await seedAccounts(98, "everyone");
    const refused = await asked(() => createGroupOf(alice, [...others, bob.user_id]));
    expect(refused.result.status).toBe(403);
    expect(refused.result.body).toMatchObject({ code: "forbidden", user_ids: [bob.user_id] });
    expect(refused.result.body.message).toContain(bob.username);
    expect(refused.asked).toBe(1);
    await createDm(alice, bob);
    const created = await asked(() => createGroupOf(alice, [...others, bob.user_id]));
    expect([created.result.status, created.result.body.channel?.member_count, created.asked]).toEqual([201, 100, 1]);
    await holdNotices(created.result.body.channel.channel_id);
  }, 240_000);
});

describe("the account row's copy of group_adds", () => {
  it("follows the setting: new accounts allow everyone, each change is in D1 when the answer comes", async () => {
    const bob = await register("bob");
    expect(await rowPolicy(env.ACCOUNTS, bob.user_id)).toBe("everyone");
    expect((await setGroupAdds(bob, "contacts")).body).toMatchObject({ group_adds: "contacts" });
    expect(await rowPolicy(env.ACCOUNTS, bob.user_id)).toBe("contacts");
    expect((await setGroupAdds(bob, "everyone")).body).toMatchObject({ group_adds: "everyone" });
    expect(await rowPolicy(env.ACCOUNTS, bob.user_id)).toBe("everyone");
    // Other settings leave the row alone.
    expect((await call("PATCH", "/v1/me/settings", { token: bob.access_token, body: { read_receipts: true } })).status).toBe(200);
    expect(await rowPolicy(env.ACCOUNTS, bob.user_id)).toBe("everyone");
  }, 120_000);

  it("is kept where an EU account lives, not in the global directory", async () => {
    const reg = await call<TestUser>("POST", "/v1/auth/register", { body: { username: uniqueName("eu"), password: "correct horse battery", jurisdiction: "eu" } });
    expect(reg.status).toBe(201);
    const eu = reg.body;
    expect(await rowPolicy(env.ACCOUNTS_EU, eu.user_id)).toBe("everyone");
    expect(await rowPolicy(env.ACCOUNTS, eu.user_id)).toBeNull(); // the routing-only row
    await setGroupAdds(eu, "contacts");
    expect(await rowPolicy(env.ACCOUNTS_EU, eu.user_id)).toBe("contacts");
    expect(await rowPolicy(env.ACCOUNTS, eu.user_id)).toBeNull();
    // Read from there: a stranger is refused, after asking eu's object.
    const stranger = await register("stranger");
    const r = await asked(() => createGroupOf(stranger, [eu.user_id]));
    expect([r.result.status, r.result.body.code, r.asked]).toEqual([403, "forbidden", 1]);
  }, 120_000);

  it("treats a row from before the column as unknown: asks once, then the object fills it in", async () => {
    const alice = await register("alice"), dave = await register("dave");
    await env.ACCOUNTS.prepare("UPDATE accounts SET group_adds = NULL WHERE user_id = ?").bind(dave.user_id).run();
    const first = await asked(() => createGroupOf(alice, [dave.user_id]));
    expect([first.result.status, first.asked]).toEqual([201, 1]); // the setting's default: everyone
    await eventually("the row filled in", async () => (await rowPolicy(env.ACCOUNTS, dave.user_id)) === "everyone");
    const second = await asked(() => createGroupOf(alice, [dave.user_id]));
    expect([second.result.status, second.asked]).toEqual([201, 0]);
  }, 120_000);

  it("still refuses someone who chose contacts before the column existed", async () => {
    const carol = await register("carol"), stranger = await register("stranger");
    await setGroupAdds(carol, "contacts");
    await env.ACCOUNTS.prepare("UPDATE accounts SET group_adds = NULL WHERE user_id = ?").bind(carol.user_id).run();
    const r = await asked(() => createGroupOf(stranger, [carol.user_id]));
    expect([r.result.status, r.result.body.code, r.result.body.user_ids, r.asked]).toEqual([403, "forbidden", [carol.user_id], 1]);
    await eventually("the row filled in", async () => (await rowPolicy(env.ACCOUNTS, carol.user_id)) === "contacts");
  }, 120_000);

  it("changes nothing when D1 cannot be marked 'contacts', and says so", async () => {
    const bob = await register("bob"), stranger = await register("stranger");
    await rowWrites(bob, async () => { throw new Error("D1 is down"); });
    const r = await setGroupAdds(bob, "contacts");
    expect(r.status).toBe(503);
    expect(r.body).toMatchObject({ code: "unavailable", retryable: true });
    expect((await call("GET", "/v1/me/settings", { token: bob.access_token })).body).toMatchObject({ group_adds: "everyone" });
    expect(await rowPolicy(env.ACCOUNTS, bob.user_id)).toBe("everyone");
    // Retried once D1 is back: in force in both places.
    await rowWrites(bob, "restore");
    expect((await setGroupAdds(bob, "contacts")).status).toBe(200);
    expect(await rowPolicy(env.ACCOUNTS, bob.user_id)).toBe("contacts");
    expect((await createGroupOf(stranger, [bob.user_id])).status).toBe(403);
  }, 120_000);

  it("fails safe when D1 cannot be set back to 'everyone': the row keeps 'contacts', the object is asked and says yes", async () => {
    const bob = await register("bob"), stranger = await register("stranger");
    await setGroupAdds(bob, "contacts");
    await rowWrites(bob, async () => { throw new Error("D1 is down"); });
    expect((await setGroupAdds(bob, "everyone")).body).toMatchObject({ group_adds: "everyone" });
    expect(await rowPolicy(env.ACCOUNTS, bob.user_id)).toBe("contacts");
    const r = await asked(() => createGroupOf(stranger, [bob.user_id]));
    expect([r.result.status, r.asked]).toEqual([201, 1]);
    // Once D1 is back, the next ask puts the row right, and later creates skip bob's object.
    await rowWrites(bob, "restore");
    expect((await createGroupOf(stranger, [bob.user_id])).status).toBe(201);
    await eventually("the row put right", async () => (await rowPolicy(env.ACCOUNTS, bob.user_id)) === "everyone");
    expect((await asked(() => createGroupOf(stranger, [bob.user_id]))).asked).toBe(0);
  }, 120_000);
});
