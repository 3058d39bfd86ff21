/**
 * Erasure (DELETE /v1/me, docs/decisions/020), end to end inside workerd: the password check and
 * its throttle, the job driven by the real local queue one step per message (vitest.config.ts
 * sets ERASURE_STEPS_PER_MESSAGE = 1 and 3 messages per channel batch), the operator's progress
 * route, a restart of every object halfway, and what is left afterwards: tombstones with ids, no
 * name, no text, no file, a free username, an empty UserObject.
 */
import { abortAllDurableObjects, env, runInDurableObject, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { pb } from "../../protocol/codec.js";
import { CLOSE } from "../../shared/frames.js";
import { avatarKey } from "../../shared/avatars.js";
import { channelStub, userStub } from "../../shared/routing.js";
import { api } from "../../workers/api/app.js";
import { BASE, call, createDm, createGroup, register, type TestUser } from "../helpers/api.js";
import { onlineDevice, type TestDevice } from "../helpers/socket.js";

const T = pb.FrameType;
const PASSWORD = "correct horse battery";
const ADMIN = "erasure-test-admin-token-0123456789abcdef";

type Progress = { user_id: string; step: string; counts: Record<string, number>; started_at: number; updated_at: number; finished_at: number | null; finished: boolean };
type Message = { seq: number; sender_user_id: string; sender_device_id: string; deleted?: boolean; content: Record<string, any> };

async function progress(userId: string): Promise<{ status: number; body: Progress & { code?: string } }> {
  const res = await api.request(`/v1/admin/erasures/${userId}`, { headers: { Authorization: `Bearer ${ADMIN}` } }, { ...env, ADMIN_TOKEN: ADMIN });
  return { status: res.status, body: await res.json() as Progress & { code?: string } };
}

async function until<T>(what: string, read: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (done(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what} not within ${timeoutMs} ms; last: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const finished = (userId: string) => until(`erasure of ${userId}`, () => progress(userId), (p) => p.status === 200 && p.body.finished);

async function history(viewer: TestUser, channelId: string): Promise<Message[]> {
  const out: Message[] = [];
  for (let after = 0; ;) {
    const r = await call<{ messages: Message[]; has_more: boolean }>("GET", `/v1/channels/${channelId}/messages?after=${after}&limit=200`, { token: viewer.access_token });
    expect(r.status).toBe(200);
    out.push(...r.body.messages);
    if (!r.body.has_more || r.body.messages.length === 0) return out;
    after = r.body.messages.at(-1)!.seq;
  }
}

async function erase(user: TestUser, password = PASSWORD) {
  return call<{ status?: string; started_at?: number; code?: string }>("DELETE", "/v1/me", { token: user.access_token, body: { password } });
}

async function uploadAndSend(user: TestUser, channelId: string): Promise<string> {
  const data = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
  const p = await call<{ attachment_id: string; upload_url: string }>("POST", "/v1/attachments/presign", {
    token: user.access_token, body: { channel_id: channelId, filename: "holiday.png", content_type: "image/png", size_bytes: data.byteLength },
  });
  expect(p.status).toBe(201);
  const put = await SELF.fetch(p.body.upload_url, { method: "PUT", body: data, headers: { "content-length": String(data.byteLength) } });
  expect(put.status).toBe(200);
  const sent = await call("POST", `/v1/channels/${channelId}/messages`, {
    token: user.access_token, body: { client_msg_id: crypto.randomUUID(), content: { attachment: { attachment_id: p.body.attachment_id, size_bytes: data.byteLength } } },
  });
  expect(sent.status, JSON.stringify(sent.body)).toBe(201);
  return p.body.attachment_id;
}

/** Nothing in `value` names `user` or repeats what they wrote. */
function expectNothingOf(value: unknown, user: TestUser, texts: string[], context: string): void {
  const json = JSON.stringify(value);
  for (const secret of [user.username, ...texts]) expect(json, `${context} holds "${secret}"`).not.toContain(secret);
}

describe("DELETE /v1/me", () => {
  it("needs the password: a wrong one is 403 forbidden, and repeated guesses are throttled like sign-in", async () => {
    const alice = await register("alice");
    const missing = await call("DELETE", "/v1/me", { token: alice.access_token, body: {} });
    expect([missing.status, missing.body.code]).toEqual([400, "invalid_argument"]);
    const wrong = await erase(alice, "not my password");
    expect([wrong.status, wrong.body.code]).toEqual([403, "forbidden"]);
    const free = Number(env.LOGIN_FREE_FAILURES_PER_USERNAME);
    for (let i = 0; i < free; i++) await erase(alice, `guess ${i}`);
    const locked = await erase(alice, PASSWORD);
    expect([locked.status, locked.body.code]).toEqual([429, "rate_limited"]);
    // Nothing started: the account is whole.
    expect((await call("GET", "/v1/me", { token: alice.access_token })).status).toBe(200);
    expect((await progress(alice.user_id)).status).toBe(404);
  });

  it("signs every device out at once, runs the job over many queue steps and leaves tombstones with ids, no name, no content, no file", { timeout: 120_000 }, async () => {
    const alice = await register("alice"), bob = await register("bob"), carol = await register("carol");
    const dm = await createDm(alice, bob);
    const group = await createGroup(alice, [bob, carol], "Alice's book club");
    const phone = await onlineDevice(alice.access_token, "alices-phone");
    const laptop = await onlineDevice(alice.access_token, "alices-laptop");
    const bobPhone = await onlineDevice(bob.access_token, "bob-phone");
    const texts = Array.from({ length: 7 }, (_, i) => `alice secret ${i}`);
    for (const text of texts.slice(0, 5)) await phone.sendText(dm, text);
    for (const text of texts.slice(5)) await laptop.sendText(group, text);
    await bobPhone.sendText(dm, "bob's own words");
    const attachment = await uploadAndSend(alice, group);
    const avatar = await SELF.fetch(`${BASE}/v1/me/avatar`, { method: "PUT", headers: { Authorization: `Bearer ${alice.access_token}`, "Content-Type": "image/png" }, body: new Uint8Array([1, 2, 3]) });
    expect(avatar.status).toBe(200);
    expect(await env.ATTACHMENTS.head(attachment)).not.toBeNull();

    const started = await erase(alice);
    expect([started.status, started.body.status]).toEqual([202, "erasing"]);

    // Every device at once: ERROR session_revoked saying why, then close 4410.
    for (const device of [phone, laptop] as TestDevice[]) {
      expect((await device.waitClosed(10_000)).code).toBe(CLOSE.sessionRevoked);
      expect(device.frames.find((f) => f.type === T.ERROR)?.error).toMatchObject({ code: "session_revoked", message: "This account is being deleted." });
    }
    // From the start: no profile, no sign-in, the token is dead, but the username is still taken.
    expect((await call<{ users: unknown[] }>("GET", `/v1/users?ids=${alice.user_id}`, { token: bob.access_token })).body.users).toEqual([]);
    expect((await call("POST", "/v1/auth/login", { body: { username: alice.username, password: PASSWORD } })).status).toBe(401);
    expect((await call("GET", "/v1/me", { token: alice.access_token })).status).toBe(401);
    const early = await call("POST", "/v1/auth/register", { body: { username: alice.username, password: "someone else entirely" } });
    const p = await progress(alice.user_id);
    if (!p.body.finished) expect([early.status, early.body.code]).toEqual([409, "username_taken"]);

    // The operator's view while it runs: step and counts, never a name or content.
    expect(p.status).toBe(200);
    expectNothingOf(p.body, alice, texts, "progress");
    const done = await finished(alice.user_id);
    expect(done.body).toMatchObject({
      user_id: alice.user_id, step: "done", finished: true,
      counts: { sessions: 1, devices: 2, channels: 2, messages: 8, attachments: 1 },
    });
    expect(done.body.finished_at).toBeGreaterThanOrEqual(done.body.started_at);

    // The DM and the group, as the others see them: alice's messages are tombstones that keep
    // seq and sender id; their text, device names and file are gone; she is no longer a member.
    for (const [channelId, viewer] of [[dm, bob], [group, carol]] as const) {
      const messages = await history(viewer, channelId);
      const hers = messages.filter((m) => m.sender_user_id === alice.user_id && !m.content.system && !m.content.update);
      expect(hers.length).toBeGreaterThan(0);
      for (const m of hers) expect(m).toMatchObject({ deleted: true, content: {}, sender_device_id: "" });
      expect(messages.filter((m) => m.content.system?.event === "account_deleted")).toHaveLength(1);
      expectNothingOf(messages, alice, [...texts, "alices-phone", "alices-laptop", "holiday.png"], `history of ${channelId}`);
      const details = await call<{ channel: { member_list: { user_id: string }[] } }>("GET", `/v1/channels/${channelId}`, { token: viewer.access_token });
      expect(details.body.channel.member_list.map((m) => m.user_id)).not.toContain(alice.user_id);
    }
    expect((await history(bob, dm)).some((m) => m.content.text?.text === "bob's own words")).toBe(true);
    // bob's device heard of it live.
    await bobPhone.take((f) => f.type === T.DELIVER && !!f.deliver?.messages?.some((m) => m.content?.system?.event === "account_deleted"), 10_000);

    // Files and the avatar are gone from R2; the directory row and the object's storage too.
    expect(await env.ATTACHMENTS.head(attachment)).toBeNull();
    expect(await env.ATTACHMENTS.head(avatarKey(alice.user_id))).toBeNull();
    expect(await env.ACCOUNTS.prepare("SELECT 1 FROM accounts WHERE user_id = ?").bind(alice.user_id).first()).toBeNull();
    const rows = await runInDurableObject(userStub(env, alice.user_id), (_o, state) => {
      // Only the schema is left (a woken object migrates its empty storage): _schema, the platform's
      // _cf_ tables, and live_state's one row of zeros.
      const tables = state.storage.sql.exec<{ name: string }>(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, 1) != '_' AND name NOT LIKE 'sqlite%' AND name != 'live_state'",
      ).toArray();
      return tables.reduce((n, t) => n + state.storage.sql.exec<{ n: number }>(`SELECT count(*) AS n FROM "${t.name}"`).one().n, 0);
    });
    expect(rows).toBe(0);

    // Export with the old token: 401. The username is free again, for someone new.
    const exported = await SELF.fetch(`${BASE}/v1/me/export`, { headers: { Authorization: `Bearer ${alice.access_token}` } });
    expect(exported.status).toBe(401);
    const again = await call<TestUser>("POST", "/v1/auth/register", { body: { username: alice.username, password: "someone else entirely" } });
    expect(again.status).toBe(201);
    expect(again.body.user_id).not.toBe(alice.user_id);
    bobPhone.close();
  });

  it("every step can run again without harm: the channel step, the whole job, and a job that has finished", { timeout: 90_000 }, async () => {
    const alice = await register("alice"), bob = await register("bob");
    const dm = await createDm(alice, bob);
    const phone = await onlineDevice(alice.access_token, "phone");
    for (let i = 0; i < 4; i++) await phone.sendText(dm, `hello ${i}`);
    phone.close();
    // Extra drivers alongside the queue: duplicate messages do the next piece, never twice the same.
    expect((await erase(alice)).status).toBe(202);
    const user = userStub(env, alice.user_id);
    await Promise.all([user.eraseStep(), user.eraseStep(), user.eraseStep()]);
    const done = await finished(alice.user_id);
    expect(done.body.counts).toMatchObject({ channels: 1, messages: 4 });
    const before = await history(bob, dm);
    // Run again after the end: nothing changes, nothing is written.
    expect(await channelStub(env, dm).eraseMember(alice.user_id, 3)).toEqual({ done: true, tombstoned: 0, attachments: 0 });
    expect(await user.eraseStep()).toEqual({ done: true, step: "done" });
    expect(await history(bob, dm)).toEqual(before);
    expect(before.filter((m) => m.content.system?.event === "account_deleted")).toHaveLength(1);
    expect((await progress(alice.user_id)).body).toMatchObject({ step: "done", finished: true, counts: done.body.counts });
  });

  it("resumes after every object restarts halfway, and finishes with every message tombstoned once", { timeout: 120_000 }, async () => {
    const alice = await register("alice"), bob = await register("bob"), carol = await register("carol");
    const dm = await createDm(alice, bob);
    const group = await createGroup(bob, [alice, carol], "Team");
    const phone = await onlineDevice(alice.access_token, "phone");
    const sent = await phone.sendTexts([
      ...Array.from({ length: 18 }, (_, i) => ({ channelId: dm, text: `dm secret ${i}` })),
      ...Array.from({ length: 9 }, (_, i) => ({ channelId: group, text: `group secret ${i}` })),
    ]);
    expect(sent.every((f) => f.type === T.SEND_ACK)).toBe(true);
    phone.close();

    expect((await erase(alice)).status).toBe(202);
    await until("halfway", () => progress(alice.user_id), (p) => p.body.step === "channels" && (p.body.counts.messages ?? 0) > 0);
    await abortAllDurableObjects();
    const done = await finished(alice.user_id);
    expect(done.body.counts).toMatchObject({ channels: 2, messages: 27 });
    for (const [channelId, viewer] of [[dm, bob], [group, carol]] as const) {
      const messages = await history(viewer, channelId);
      const hers = messages.filter((m) => m.sender_user_id === alice.user_id && !m.content.system && !m.content.update);
      expect(hers).toHaveLength(channelId === dm ? 18 : 9);
      expect(hers.every((m) => m.deleted === true)).toBe(true);
      expect(messages.filter((m) => m.content.system?.event === "account_deleted")).toHaveLength(1);
      expectNothingOf(messages, alice, ["dm secret", "group secret"], `history of ${channelId}`);
    }
  });

  it("an EU user: renamed, pictured and erased in the EU stores (ACCOUNTS_EU, ATTACHMENTS_EU), and the directory row goes last", { timeout: 90_000 }, async () => {
    const r = await call<TestUser>("POST", "/v1/auth/register", { body: { username: `emilie${Math.random().toString(36).slice(2, 8)}`, password: PASSWORD, jurisdiction: "eu" } });
    expect(r.status).toBe(201);
    const eu = r.body;
    expect((await call("PATCH", "/v1/me", { token: eu.access_token, body: { display_name: "Émilie Dupont" } })).status).toBe(200);
    const pic = await SELF.fetch(`${BASE}/v1/me/avatar`, { method: "PUT", headers: { Authorization: `Bearer ${eu.access_token}`, "Content-Type": "image/png" }, body: new Uint8Array([1, 2, 3]) });
    expect(pic.status).toBe(200);
    const euRow = () => env.ACCOUNTS_EU.prepare("SELECT display_name, avatar_version FROM accounts WHERE user_id = ?").bind(eu.user_id).first<{ display_name: string; avatar_version: number }>();
    expect(await euRow()).toMatchObject({ display_name: "Émilie Dupont" });
    expect((await env.ACCOUNTS.prepare("SELECT display_name FROM accounts WHERE user_id = ?").bind(eu.user_id).first<{ display_name: string }>())?.display_name).toBe("");
    expect(await env.ATTACHMENTS_EU.head(avatarKey(eu.user_id))).not.toBeNull();

    expect((await erase(eu)).status).toBe(202);
    await finished(eu.user_id);
    expect(await euRow()).toBeNull();
    expect(await env.ACCOUNTS.prepare("SELECT 1 FROM accounts WHERE user_id = ?").bind(eu.user_id).first()).toBeNull();
    expect(await env.ATTACHMENTS_EU.head(avatarKey(eu.user_id))).toBeNull();
    expect((await call("POST", "/v1/auth/register", { body: { username: eu.username, password: "someone else entirely", jurisdiction: "eu" } })).status).toBe(201);
  });

  it("shows an operator the job only with ADMIN_TOKEN, and says 404 for a user with no job", async () => {
    const alice = await register("alice");
    const noToken = await api.request(`/v1/admin/erasures/${alice.user_id}`, {}, { ...env, ADMIN_TOKEN: ADMIN });
    expect(noToken.status).toBe(401);
    const userToken = await api.request(`/v1/admin/erasures/${alice.user_id}`, { headers: { Authorization: `Bearer ${alice.access_token}` } }, { ...env, ADMIN_TOKEN: ADMIN });
    expect(userToken.status).toBe(401);
    expect((await progress(alice.user_id)).body.code).toBe("not_found");
    const bad = await api.request("/v1/admin/erasures/not-a-user", { headers: { Authorization: `Bearer ${ADMIN}` } }, { ...env, ADMIN_TOKEN: ADMIN });
    expect(bad.status).toBe(400);
  });
});
