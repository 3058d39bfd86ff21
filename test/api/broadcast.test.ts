/**
 * Broadcast channels (docs/decisions/018): only the owner and admins post; typing is dropped and
 * read receipts are not shared; subscribers join by the bulk route, which is idempotent, counted
 * and all-or-nothing, and wakes no subscriber's UserObject on its path.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { pb } from "../../protocol/codec.js";
import { LIMITS } from "../../protocol/limits.js";
import { channelStub, relayShardOf } from "../../shared/routing.js";
import { memoryRecorder, recordMetricsWith } from "../../shared/metrics.js";
import { call, createGroup, register, waitListed, type TestUser } from "../helpers/api.js";
import { onlineDevice, type TestDevice } from "../helpers/socket.js";
import { until } from "../support/until.js";
import type { ChannelObject } from "../../durable-objects/channel/ChannelObject.js";

const T = pb.FrameType;

interface Details { channel: { channel_id: string; type: string; name: string; description?: string; member_count: number; my_role?: string; member_list: { user_id: string; role: string }[]; member_user_ids: string[] } }
interface Bulk { code?: string; added: number; already: number; unknown: number; refused: number; member_count: number; unknown_user_ids: string[] }

async function createBroadcast(owner: TestUser, name = "News", description?: string): Promise<string> {
  const r = await call<Details>("POST", "/v1/channels", { token: owner.access_token, body: { type: "broadcast", name, ...(description ? { description } : {}) } });
  if (r.status !== 201) throw new Error(`create broadcast failed: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.channel.channel_id;
}

/** Waits for the DELIVER carrying the post `text`. */
async function delivered(d: TestDevice, text: string): Promise<void> {
  await d.take((f) => f.type === T.DELIVER && (f.deliver?.messages ?? []).some((m) => m.content?.text?.text === text), 10_000);
}

async function bulk(owner: TestUser, id: string, userIds: string[]) {
  return call<Bulk>("POST", `/v1/channels/${id}/members/bulk`, { token: owner.access_token, body: { user_ids: userIds } });
}

describe("broadcast channels", () => {
  it("are created with a name and description; the owner is its owner, the list shows it", async () => {
    const alice = await register("alice");
    const r = await call<Details>("POST", "/v1/channels", { token: alice.access_token, body: { type: "broadcast", name: "Launch news", description: "Release notes" } });
    expect(r.status).toBe(201);
    expect(r.body.channel).toMatchObject({ type: "broadcast", name: "Launch news", description: "Release notes", member_count: 1, my_role: "owner" });
    const list = await call<{ channels: { channel_id: string; type: string }[] }>("GET", "/v1/channels", { token: alice.access_token });
    expect(list.body.channels).toContainEqual(expect.objectContaining({ channel_id: r.body.channel.channel_id, type: "broadcast" }));
    const noName = await call("POST", "/v1/channels", { token: alice.access_token, body: { type: "broadcast", name: "" } });
    expect([noName.status, noName.body.code]).toEqual([400, "invalid_argument"]);
  });

  it("lets the owner and admins post; a subscriber's SEND and REST post get forbidden; typing and receipts stay off", async () => {
    const [alice, bob, carol] = await Promise.all([register("alice"), register("bob"), register("carol")]);
    const id = await createBroadcast(alice);
    expect((await bulk(alice, id, [bob.user_id, carol.user_id])).body).toMatchObject({ added: 2, already: 0, unknown: 0 });
    await Promise.all([waitListed(bob, id), waitListed(carol, id)]);
    const [a, b] = await Promise.all([onlineDevice(alice.access_token, "a"), onlineDevice(bob.access_token, "b")]);

    const refused = await b.sendText(id, "can I post?");
    expect(refused.type).toBe(T.ERROR);
    expect(refused.error).toMatchObject({ code: "forbidden" });
    expect(refused.error?.retryable ?? false).toBe(false);
    const rest = await call("POST", `/v1/channels/${id}/messages`, { token: bob.access_token, body: { client_msg_id: "b-1", content: { text: { text: "hi" } } } });
    expect([rest.status, rest.body.code, rest.body.retryable]).toEqual([403, "forbidden", false]);

    const posted = await a.sendText(id, "first announcement");
    expect(posted.type).toBe(T.SEND_ACK);
    await delivered(b, "first announcement");
    // A subscriber cannot react (a reaction is logged like a post).
    const react = await call("PUT", `/v1/channels/${id}/messages/${posted.send_ack!.seq}/reactions/${encodeURIComponent("👍")}`, { token: bob.access_token });
    expect([react.status, react.body.code]).toEqual([403, "forbidden"]);

    // Only the owner changes roles; carol, made admin, posts.
    const notOwner = await call("PATCH", `/v1/channels/${id}/members/${carol.user_id}`, { token: bob.access_token, body: { role: "admin" } });
    expect([notOwner.status, notOwner.body.code]).toEqual([403, "forbidden"]);
    const promoted = await call("PATCH", `/v1/channels/${id}/members/${carol.user_id}`, { token: alice.access_token, body: { role: "admin" } });
    expect(promoted).toMatchObject({ status: 200, body: { member: { user_id: carol.user_id, role: "admin" } } });
    const fromAdmin = await call("POST", `/v1/channels/${id}/messages`, { token: carol.access_token, body: { client_msg_id: "c-1", content: { text: { text: "from an admin" } } } });
    expect(fromAdmin.status).toBe(201);
    await delivered(b, "from an admin");
    const badRole = await call("PATCH", `/v1/channels/${id}/members/${alice.user_id}`, { token: alice.access_token, body: { role: "member" } });
    expect([badRole.status, badRole.body.code]).toEqual([400, "invalid_argument"]);
    const demoted = await call("PATCH", `/v1/channels/${id}/members/${carol.user_id}`, { token: alice.access_token, body: { role: "member" } });
    expect(demoted.status).toBe(200);
    const afterDemotion = await call("POST", `/v1/channels/${id}/messages`, { token: carol.access_token, body: { client_msg_id: "c-2", content: { text: { text: "still admin?" } } } });
    expect([afterDemotion.status, afterDemotion.body.code]).toEqual([403, "forbidden"]);

    // Typing is dropped without an error; a read is not shared as a receipt. The marker after
    // both proves nothing was on its way to alice before it.
    b.send({ type: T.TYPING, typing: { channel_id: id, is_typing: true } });
    b.send({ type: T.READ, read: { channel_id: id, up_to_seq: posted.send_ack!.seq } });
    const marker = await a.sendText(id, "marker");
    expect(marker.type).toBe(T.SEND_ACK);
    await delivered(b, "marker");
    expect(a.frames.filter((f) => f.type === T.TYPING || f.type === T.READ)).toEqual([]);
    expect(b.frames.filter((f) => f.type === T.ERROR)).toEqual([]);

    // Subscribers see the channel, not each other.
    const bobsView = await call<Details>("GET", `/v1/channels/${id}`, { token: bob.access_token });
    expect(bobsView.body.channel).toMatchObject({ member_count: 3, my_role: "member", member_list: [], member_user_ids: [] });
    const members = await call("GET", `/v1/channels/${id}/members`, { token: bob.access_token });
    expect([members.status, members.body.code]).toEqual([403, "forbidden"]);
    const ownersView = await call<{ members: { user_id: string }[] }>("GET", `/v1/channels/${id}/members`, { token: alice.access_token });
    expect(ownersView.body.members.map((m) => m.user_id).sort()).toEqual([alice.user_id, bob.user_id, carol.user_id].sort());
    // Unread is last_seq − read cursor.
    const list = await call<{ channels: { channel_id: string; unread_count: number; last_read_seq: number; last_seq: number }[] }>("GET", "/v1/channels", { token: carol.access_token });
    const row = list.body.channels.find((c) => c.channel_id === id)!;
    expect(row.unread_count).toBe(row.last_seq - row.last_read_seq);
    for (const d of [a, b]) d.close();
  });
});

describe("uploads in a broadcast channel", () => {
  it("are declared by the owner and admins only: a subscriber's presign gets the same forbidden as their SEND", async () => {
    const [alice, bob, carol] = await Promise.all([register("alice"), register("bob"), register("carol")]);
    const id = await createBroadcast(alice);
    expect((await bulk(alice, id, [bob.user_id, carol.user_id])).body).toMatchObject({ added: 2 });
    const presign = (u: TestUser, filename: string) => call<{ attachment_id?: string; code?: string; message?: string; retryable?: boolean }>(
      "POST", "/v1/attachments/presign", { token: u.access_token, body: { channel_id: id, filename, content_type: "image/png", size_bytes: 10 } },
    );
    const refused = await presign(bob, "from-a-subscriber.png");
    expect([refused.status, refused.body.code, refused.body.retryable]).toEqual([403, "forbidden", false]);
    expect(refused.body.message).toBe("Only the channel's owner and admins can post in a broadcast channel.");
    // Nothing was recorded for the refused declaration.
    const rows = await runInDurableObject(channelStub(env, id), (_o: ChannelObject, state) =>
      state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM attachments").one().n);
    expect(rows).toBe(0);

    expect((await presign(alice, "from-the-owner.png")).status).toBe(201);
    expect((await call("PATCH", `/v1/channels/${id}/members/${carol.user_id}`, { token: alice.access_token, body: { role: "admin" } })).status).toBe(200);
    const fromAdmin = await presign(carol, "from-an-admin.png");
    expect(fromAdmin.status).toBe(201);
    expect(fromAdmin.body.attachment_id).toBeTruthy();
  });
});

describe("bulk adds", () => {
  it("adds idempotently, counts unknown ids, refuses non-admins, and are for broadcast channels only", async () => {
    const [alice, bob, carol, dave] = await Promise.all([register("alice"), register("bob"), register("carol"), register("dave")]);
    const id = await createBroadcast(alice);
    const ghost = "u_g_" + "0".repeat(26);
    const first = await bulk(alice, id, [bob.user_id, carol.user_id, ghost, bob.user_id, "not-an-id"]);
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ added: 2, already: 0, unknown: 2, refused: 0, member_count: 3 });
    expect(first.body.unknown_user_ids.sort()).toEqual([ghost, "not-an-id"].sort());
    const again = await bulk(alice, id, [bob.user_id, carol.user_id, alice.user_id]);
    expect(again.body).toMatchObject({ added: 0, already: 3, unknown: 0, member_count: 3 });
    // The notice pump tells each subscriber, off the route's path.
    await Promise.all([waitListed(bob, id), waitListed(carol, id)]);

    const bySubscriber = await bulk(bob, id, [dave.user_id]);
    expect([bySubscriber.status, bySubscriber.body.code]).toEqual([403, "forbidden"]);
    const byStranger = await bulk(dave, id, [dave.user_id]);
    expect([byStranger.status, byStranger.body.code]).toEqual([404, "not_found"]);
    const tooMany = await bulk(alice, id, Array.from({ length: LIMITS.maxBulkAdd + 1 }, (_, i) => `u_g_${String(i).padStart(26, "0")}`));
    expect([tooMany.status, tooMany.body.code]).toEqual([400, "invalid_argument"]);
    const empty = await bulk(alice, id, []);
    expect([empty.status, empty.body.code]).toEqual([400, "invalid_argument"]);
    const group = await createGroup(alice, [bob], "Team");
    const toGroup = await bulk(alice, group, [carol.user_id]);
    expect([toGroup.status, toGroup.body.code]).toEqual([400, "invalid_argument"]);
  });

  it("adds no one when a batch would pass the subscriber cap (all or nothing)", async () => {
    const [alice, bob, carol, dave] = await Promise.all([register("alice"), register("bob"), register("carol"), register("dave")]);
    const id = await createBroadcast(alice);
    await runInDurableObject(channelStub(env, id), (obj: ChannelObject) => {
      (obj as unknown as { subscriberCap: number }).subscriberCap = 3;
    });
    const over = await bulk(alice, id, [bob.user_id, carol.user_id, dave.user_id]);
    expect([over.status, over.body.code]).toEqual([400, "invalid_argument"]);
    const owners = await call<Details>("GET", `/v1/channels/${id}`, { token: alice.access_token });
    expect(owners.body.channel.member_count).toBe(1);
    const fits = await bulk(alice, id, [bob.user_id, carol.user_id]);
    expect(fits.body).toMatchObject({ added: 2, member_count: 3 });
  });
});

interface Invite { code: string; url: string; max_uses: number; expires_at: number; uses: number }
interface Preview { channel: { channel_id: string; name: string; type: string; member_count: number }; member: boolean }

describe("invite links", () => {
  it("are created by admins, previewed and joined by anyone signed in, and revoked", async () => {
    const [alice, bob, carol] = await Promise.all([register("alice"), register("bob"), register("carol")]);
    const id = await createBroadcast(alice, "Announcements");
    const made = await call<Invite>("POST", `/v1/channels/${id}/invites`, { token: alice.access_token, body: {} });
    expect(made.status).toBe(201);
    expect(made.body.url).toBe(`http://edgechat.test/#/join/${made.body.code}`);
    const code = encodeURIComponent(made.body.code);

    const preview = await call<Preview>("GET", `/v1/invites/${code}`, { token: bob.access_token });
    expect(preview.body).toEqual({ channel: { channel_id: id, name: "Announcements", type: "broadcast", member_count: 1 }, member: false });
    const anonymous = await call("GET", `/v1/invites/${code}`);
    expect(anonymous.status).toBe(401);

    const joined = await call<{ channel: { channel_id: string; my_role: string; member_list: unknown[] }; joined: boolean }>("POST", `/v1/invites/${code}/join`, { token: bob.access_token });
    expect(joined.status).toBe(201);
    expect(joined.body).toMatchObject({ joined: true, channel: { channel_id: id, my_role: "member", member_list: [] } });
    // The joiner's list shows it at once; a second join is a no-op.
    const bobList = await call<{ channels: { channel_id: string }[] }>("GET", "/v1/channels", { token: bob.access_token });
    expect(bobList.body.channels.map((c) => c.channel_id)).toContain(id);
    const twice = await call<{ joined: boolean }>("POST", `/v1/invites/${code}/join`, { token: bob.access_token });
    expect([twice.status, twice.body.joined]).toEqual([200, false]);

    // Subscribers cannot manage links.
    const bySubscriber = await call("POST", `/v1/channels/${id}/invites`, { token: bob.access_token, body: {} });
    expect([bySubscriber.status, bySubscriber.body.code]).toEqual([403, "forbidden"]);
    const listBySubscriber = await call("GET", `/v1/channels/${id}/invites`, { token: bob.access_token });
    expect([listBySubscriber.status, listBySubscriber.body.code]).toEqual([403, "forbidden"]);
    const listed = await call<{ invites: Invite[] }>("GET", `/v1/channels/${id}/invites`, { token: alice.access_token });
    expect(listed.body.invites).toEqual([expect.objectContaining({ code: made.body.code, uses: 1, max_uses: 0, expires_at: 0 })]);

    const revoked = await call("DELETE", `/v1/channels/${id}/invites/${code}`, { token: alice.access_token });
    expect(revoked.status).toBe(200);
    const gone = await call("GET", `/v1/invites/${code}`, { token: carol.access_token });
    expect([gone.status, gone.body.code]).toEqual([404, "not_found"]);
    const late = await call("POST", `/v1/invites/${code}/join`, { token: carol.access_token });
    expect([late.status, late.body.code]).toEqual([404, "not_found"]);
    expect((await call<{ invites: Invite[] }>("GET", `/v1/channels/${id}/invites`, { token: alice.access_token })).body.invites).toEqual([]);

    const forged = await call("GET", `/v1/invites/${encodeURIComponent(`${id}.${"A".repeat(22)}`)}`, { token: carol.access_token });
    expect([forged.status, forged.body.code]).toEqual([404, "not_found"]);
    const garbage = await call("POST", `/v1/invites/not-a-code/join`, { token: carol.access_token });
    expect([garbage.status, garbage.body.code]).toEqual([404, "not_found"]);
  });

  it("stop working when used up or expired", async () => {
    const [alice, bob, carol] = await Promise.all([register("alice"), register("bob"), register("carol")]);
    const id = await createBroadcast(alice);
    const once = await call<Invite>("POST", `/v1/channels/${id}/invites`, { token: alice.access_token, body: { max_uses: 1 } });
    expect((await call("POST", `/v1/invites/${encodeURIComponent(once.body.code)}/join`, { token: bob.access_token })).status).toBe(201);
    const usedUp = await call("POST", `/v1/invites/${encodeURIComponent(once.body.code)}/join`, { token: carol.access_token });
    expect([usedUp.status, usedUp.body.code, usedUp.body.message]).toEqual([404, "not_found", "This invite link has been used up."]);

    const soon = await call<Invite>("POST", `/v1/channels/${id}/invites`, { token: alice.access_token, body: { expires_in_s: 60 } });
    expect(soon.body.expires_at).toBeGreaterThan(Date.now());
    // Let the clock pass the expiry: move it back in the channel's own table.
    await runInDurableObject(channelStub(env, id), (_obj, state) => {
      state.storage.sql.exec("UPDATE invites SET expires_at = ?", Date.now() - 1);
    });
    const expired = await call("POST", `/v1/invites/${encodeURIComponent(soon.body.code)}/join`, { token: carol.access_token });
    expect([expired.status, expired.body.code, expired.body.message]).toEqual([404, "not_found", "This invite link has expired."]);

    const bad = await call("POST", `/v1/channels/${id}/invites`, { token: alice.access_token, body: { max_uses: 0, expires_in_s: 5 } });
    expect([bad.status, bad.body.code]).toEqual([400, "invalid_argument"]);
  });

  it("work for groups too (with a notice in the log), and refuse a user whose data must stay elsewhere", async () => {
    const [alice, bob] = await Promise.all([register("alice"), register("bob")]);
    const eu = await call<TestUser>("POST", "/v1/auth/register", { body: { username: `eu${Date.now()}`, password: "correct horse battery", jurisdiction: "eu" } });
    expect(eu.status).toBe(201);
    const group = await createGroup(alice, [], "Open group");
    const link = await call<Invite>("POST", `/v1/channels/${group}/invites`, { token: alice.access_token, body: {} });
    const code = encodeURIComponent(link.body.code);
    const conflict = await call("POST", `/v1/invites/${code}/join`, { token: eu.body.access_token });
    expect([conflict.status, conflict.body.code]).toEqual([403, "jurisdiction_conflict"]);
    const joined = await call<{ channel: { member_count: number; member_list: { user_id: string }[] } }>("POST", `/v1/invites/${code}/join`, { token: bob.access_token });
    expect(joined.status).toBe(201);
    expect(joined.body.channel.member_list.map((m) => m.user_id)).toContain(bob.user_id);
    const page = await call<{ messages: { content: { system?: { event: string; actor_user_id: string } } }[] }>("GET", `/v1/channels/${group}/messages?after=0`, { token: bob.access_token });
    expect(page.body.messages.map((m) => m.content.system?.event)).toEqual(["created", "member_joined"]);
    expect(page.body.messages[1]!.content.system?.actor_user_id).toBe(bob.user_id);
    const dm = await call<{ channel: { channel_id: string } }>("POST", "/v1/channels", { token: alice.access_token, body: { type: "dm", member: bob.user_id } });
    const dmLink = await call("POST", `/v1/channels/${dm.body.channel.channel_id}/invites`, { token: alice.access_token, body: {} });
    expect([dmLink.status, dmLink.body.code]).toEqual([400, "invalid_argument"]);
  });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Accounts straight into the directory (no password work): ids the bulk route will know. */
async function seedAccounts(n: number): Promise<string[]> {
  const ids = Array.from({ length: n }, () => `u_g_${crypto.randomUUID().replaceAll("-", "").slice(0, 26)}`);
  const now = Date.now();
  for (let i = 0; i < ids.length; i += 50) {
    await env.ACCOUNTS.batch(ids.slice(i, i + 50).map((id) => env.ACCOUNTS.prepare(
      "INSERT INTO accounts (user_id, username, username_lower, display_name, password_hash, jurisdiction, created_at) VALUES (?, ?, ?, '', 'x', '', ?)",
    ).bind(id, id, id, now)));
  }
  return ids;
}

async function noticesDone(channelId: string): Promise<void> {
  for (let i = 0; i < 2400; i++) {
    const pending = await runInDurableObject(channelStub(env, channelId), (_o, state) =>
      state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM members WHERE notified = 0").one().n);
    if (pending === 0) return;
    await sleep(25);
  }
  throw new Error("notices still pending");
}

function channelRow(channelId: string, query: string): Promise<{ n: number }> {
  return runInDurableObject(channelStub(env, channelId), (_o, state) => state.storage.sql.exec<{ n: number }>(query).one());
}

/** The channel has recorded its last round: every shard answered for every stored message. */
function roundRecorded(channelId: string): Promise<unknown> {
  return until("the round recorded", async () => (await channelRow(channelId, "SELECT (fanout_seq = last_seq) AS n FROM channel")).n === 1, 60_000);
}

/** Work for one post by the owner with one connected subscriber and `offline` subscribers who never connect. */
async function workForOnePost(offline: number) {
  const [alice, bob] = await Promise.all([register("alice"), register("bob")]);
  const id = await createBroadcast(alice);
  const ids = [bob.user_id, ...(await seedAccounts(offline))];
  for (let i = 0; i < ids.length; i += LIMITS.maxBulkAdd) {
    const r = await bulk(alice, id, ids.slice(i, i + LIMITS.maxBulkAdd));
    expect(r.body.unknown).toBe(0);
  }
  await noticesDone(id);
  const a = await onlineDevice(alice.access_token, "a");
  const b = await onlineDevice(bob.access_token, "b");
  // Both watchers delivered by their relay shard (registration happens between rounds: counted
  // inside one run's window and not the other's, the two runs' work differed once).
  await until("both watchers registered at their shard", async () => (await channelRow(id, "SELECT count(*) AS n FROM watchers WHERE active = 1 AND at_relay = 1")).n === 2, 60_000);
  const warm = await a.sendText(id, "warm-up");
  expect(warm.type).toBe(T.SEND_ACK);
  await delivered(b, "warm-up");
  await roundRecorded(id);
  const seen = memoryRecorder();
  const restore = recordMetricsWith(seen);
  try {
    const counted = await a.sendText(id, "counted");
    expect(counted.type).toBe(T.SEND_ACK);
    await delivered(b, "counted");
    // The round's own bookkeeping (fanout_seq, written once every shard answered) inside the window, always.
    await roundRecorded(id);
  } finally {
    restore();
  }
  a.close(); b.close();
  // The channel calls each relay shard that holds a watcher: one or two here, as alice's and bob's
  // fresh ids hash (one run in 64 puts both on one shard), whatever the subscribers.
  const { n: shardCount } = await channelRow(id, "SELECT relay_shards AS n FROM channel");
  const shards = new Set([alice.user_id, bob.user_id].map((u) => relayShardOf(u, shardCount))).size;
  expect(seen.total("fanout.rpc", { from: "channel", to: "relay" })).toBe(shards);
  return {
    channelToUser: seen.total("fanout.rpc", { from: "channel", to: "user" }),
    relayToUser: seen.total("fanout.rpc", { from: "relay", to: "user" }),
    channelWrites: seen.total("sql.write", { object: "channel" }),
    notices: seen.total("notice.rpc"),
  };
}

describe("work per post in a broadcast channel", () => {
  it("is the same with 0 and with 200 offline subscribers added in bulk", async () => {
    const none = await workForOnePost(0);
    const many = await workForOnePost(200);
    console.log("broadcast work per post (0 and 200 offline subscribers):", JSON.stringify({ none, many }));
    expect(many).toEqual(none);
    expect(none.notices).toBe(0);
  }, 300_000);
});
