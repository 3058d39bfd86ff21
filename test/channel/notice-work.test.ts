/**
 * What telling a member they joined costs, counted (docs/decisions/030): creating a group of
 * people who signed up (their objects exist) and of accounts whose objects never woke (a bulk
 * import), the channel's notice pump makes one RPC per member and marks each page of told members
 * with one statement; in each member's object the notice writes the one list row (a first wake also
 * stores its schema version) and asks nothing back: no channel state, no watch, no directory read.
 * Then each member's list shows the group exactly once, and the pump has nothing left to send.
 * A page told but not marked (the channel restarted before its one statement) is told again, and
 * the lists still show the group once. Counts, never time.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { channelStub, userStub } from "../../shared/routing.js";
import { memoryRecorder, recordMetricsWith, type MemoryRecorder } from "../../shared/metrics.js";
import { call, register, type ChannelBody, type TestUser } from "../helpers/api.js";

const SIGNED_UP = 3;
const NEVER_WOKEN = 40;

/** Accounts straight into the directory: their UserObjects have never run. */
async function seedAccounts(n: number): Promise<string[]> {
  const ids = Array.from({ length: n }, () => `u_g_${crypto.randomUUID().replaceAll("-", "").slice(0, 26)}`);
  const now = Date.now();
  await env.ACCOUNTS.batch(ids.map((id) => env.ACCOUNTS.prepare(
    "INSERT INTO accounts (user_id, username, username_lower, display_name, password_hash, jurisdiction, created_at, group_adds) VALUES (?, ?, ?, '', 'x', '', ?, 'everyone')",
  ).bind(id, id, id, now)));
  return ids;
}

const pendingNotices = (channelId: string) => runInDurableObject(channelStub(env, channelId), (_o, state) =>
  state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM members WHERE notified = 0").one().n);

async function untilNonePending(channelId: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while ((await pendingNotices(channelId)) > 0) {
    if (Date.now() > deadline) throw new Error("the notice pump did not finish within 60 s");
    await new Promise((r) => setTimeout(r, 25));
  }
}

function writes(seen: MemoryRecorder, object: string): Record<string, number> {
  const byTable: Record<string, number> = {};
  for (const p of seen.points) {
    if (p.name === "sql.write" && p.tags?.object === object) byTable[p.tags.table!] = (byTable[p.tags.table!] ?? 0) + p.n;
  }
  return byTable;
}

/** Rows for `channelId` in the user's list that say they are in it. */
const listRows = (userId: string, channelId: string) => runInDurableObject(userStub(env, userId), (_o, state) =>
  state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM channels WHERE channel_id = ? AND left = 0", channelId).one().n);

/** Creates a group of `owner` and `members` (ids) and waits until the pump has told everyone. */
async function groupOf(owner: TestUser, members: string[]): Promise<string> {
  const r = await call<ChannelBody>("POST", "/v1/channels", { token: owner.access_token, body: { type: "group", name: "Big", members } });
  expect(r.status).toBe(201);
  await untilNonePending(r.body.channel.channel_id);
  return r.body.channel.channel_id;
}

describe("the work of one membership notice", () => {
  it("is one RPC, one list row in the member's object and nothing asked back, for signed-up and never-woken members alike", async () => {
    const owner = await register("owner");
    const signedUp: TestUser[] = [];
    for (let i = 0; i < SIGNED_UP; i++) signedUp.push(await register("m"));
    const neverWoken = await seedAccounts(NEVER_WOKEN);
    const everyone = 1 + SIGNED_UP + NEVER_WOKEN;

    const seen = memoryRecorder();
    const restore = recordMetricsWith(seen);
    let channelId: string;
    try {
      const r = await call<ChannelBody>("POST", "/v1/channels", {
        token: owner.access_token, body: { type: "group", name: "Big", members: [...signedUp.map((u) => u.user_id), ...neverWoken] },
      });
      expect(r.status).toBe(201);
      channelId = r.body.channel.channel_id;
      await untilNonePending(channelId);
    } finally {
      restore();
    }

    // The pump tells everyone once, the creator too (the Worker told them at once; the pump is the
    // durable word), and the objects ask nothing back while nobody is connected.
    expect(seen.total("notice.rpc")).toBe(everyone);
    expect(seen.total("notice.failed")).toBe(0);
    expect(seen.total("user.state") + seen.total("user.watch") + seen.total("channel.watch")).toBe(0);
    expect(seen.total("user.group_adds_asked")).toBe(0);
    // Members' objects: the list row per notice (+1: the Worker's notice to the creator), and the
    // schema version each never-woken object stores on its first wake. Nothing else.
    expect(writes(seen, "user")).toEqual({ channels: everyone + 1, _schema: NEVER_WOKEN });
    // The channel: a row per member when it is created, then one statement marks the page told
    // (everyone fits one page of NOTICE_PAGE).
    expect(writes(seen, "channel").members).toBe(everyone + 1);

    // Exactly once: each list has one row for the group, and another alarm sends nothing.
    for (const id of [owner.user_id, ...signedUp.map((u) => u.user_id), ...neverWoken]) expect(await listRows(id, channelId)).toBe(1);
    const again = memoryRecorder();
    const restoreAgain = recordMetricsWith(again);
    try {
      await runDurableObjectAlarm(channelStub(env, channelId));
    } finally {
      restoreAgain();
    }
    expect(again.total("notice.rpc")).toBe(0);
    // The ones who can sign in see it over REST.
    for (const u of signedUp) {
      const list = await call<{ channels: { channel_id: string }[] }>("GET", "/v1/channels", { token: u.access_token });
      expect(list.body.channels.filter((c) => c.channel_id === channelId)).toHaveLength(1);
    }
  });
});

describe("a page told again", () => {
  it("after a restart lost its mark, rewrites each member's one row and lists the group once", async () => {
    const owner = await register("owner");
    const neverWoken = await seedAccounts(20);
    const channelId = await groupOf(owner, neverWoken);
    // As if the channel restarted after the calls and before the page's statement (its alarm,
    // set before the page, is still there).
    await runInDurableObject(channelStub(env, channelId), async (_o, state) => {
      state.storage.sql.exec("UPDATE members SET notified = 0");
      await state.storage.setAlarm(Date.now());
    });
    const seen = memoryRecorder();
    const restore = recordMetricsWith(seen);
    try {
      await runDurableObjectAlarm(channelStub(env, channelId));
      await untilNonePending(channelId);
    } finally {
      restore();
    }
    expect(seen.total("notice.rpc")).toBe(21);
    expect(writes(seen, "user")).toEqual({ channels: 21 });
    for (const id of [owner.user_id, ...neverWoken]) expect(await listRows(id, channelId)).toBe(1);
    const list = await call<{ channels: { channel_id: string; member_count: number }[] }>("GET", "/v1/channels", { token: owner.access_token });
    expect(list.body.channels.filter((c) => c.channel_id === channelId).map((c) => c.member_count)).toEqual([21]);
  });
});
