/**
 * The UserObject's push state with a controlled clock: PushNotifier over the object's real SQLite
 * (runInDurableObject), its jobs captured instead of queued.
 */
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { inject } from "vitest";
import type { UserObject } from "../../durable-objects/user/UserObject.js";
import { PushNotifier, missedMessages, type MissedMessage } from "../../durable-objects/user/push-notifier.js";
import { PushSubscriptions } from "../../durable-objects/user/push-subscriptions.js";
import type { PushJob } from "../../queues/push-jobs.js";
import { userStub } from "../../shared/routing.js";
import { call, createGroup, register, type TestUser } from "../helpers/api.js";

const W = 30_000;

async function subscribe(user: TestUser, deviceId: string): Promise<void> {
  const sub = await (await fetch(`${inject("fakePushUrl")}/__subscribe`, { method: "POST", body: JSON.stringify({ name: `${deviceId}-${user.user_id.slice(-6)}` }) })).json();
  const r = await call("POST", "/v1/devices", { token: user.access_token, body: { device_id: deviceId, name: "Phone", platform: "web", push: sub } });
  expect(r.status).toBe(201);
}

/** Runs `body` inside alice's UserObject with a notifier on a clock the test moves. */
function withNotifier(user: TestUser, body: (n: PushNotifier, clock: { now: number }, jobs: PushJob[], sql: SqlStorage) => void): Promise<void> {
  return runInDurableObject(userStub(env, user.user_id), (_instance: UserObject, state) => {
    const clock = { now: 1_000_000 };
    const jobs: PushJob[] = [];
    const n = new PushNotifier(state.storage.sql, new PushSubscriptions(state.storage.sql), () => user.user_id, {
      windowMs: W, now: () => clock.now, dispatch: (j) => jobs.push(...j),
    });
    body(n, clock, jobs, state.storage.sql);
  });
}

const missed = (channelId: string, seq: number, preview: string | null = `hello ${seq}`): MissedMessage => ({
  channelId, channelName: "Team", channelType: "group", seq, senderUserId: "u_bob", senderName: "Bob", preview, sentAt: seq,
});

describe("PushNotifier (UserObject state, controlled clock)", () => {
  it("3 messages in one window: one push at once, one merged update at the window's end, a clear on read", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(bob, [alice]);
    await subscribe(alice, "phone");
    await subscribe(alice, "tablet");
    await withNotifier(alice, (n, clock, jobs) => {
      expect(n.missed([missed(channel, 2)])).toBeUndefined(); // pushed at once, nothing pending
      expect(jobs.map((j) => [j.device_id, j.payload.type, j.payload.type === "message" && j.payload.count])).toEqual([["phone", "message", 1], ["tablet", "message", 1]]);
      clock.now += 5_000;
      expect(n.missed([missed(channel, 3)])).toBe(1_000_000 + W);
      clock.now += 5_000;
      n.missed([missed(channel, 4, "newest")]);
      expect(jobs).toHaveLength(2);
      clock.now = 1_000_000 + W - 1;
      expect(n.flushDue()).toBe(1_000_000 + W); // the alarm came early: nothing yet
      expect(jobs).toHaveLength(2);
      clock.now = 1_000_000 + W;
      expect(n.flushDue()).toBeUndefined();
      expect(jobs.slice(2).map((j) => j.payload)).toEqual([
        expect.objectContaining({ type: "message", seq: 4, count: 3, preview: "newest", sender_name: "Bob", channel_id: channel }),
        expect.objectContaining({ type: "message", seq: 4, count: 3 }),
      ]);
      n.read(channel, 3); // partial: the notification still stands for seq 4
      expect(jobs).toHaveLength(4);
      n.read(channel, 4);
      expect(jobs.slice(4).map((j) => [j.device_id, j.payload])).toEqual([
        ["phone", { v: 1, type: "clear", channel_id: channel, read_seq: 4 }],
        ["tablet", { v: 1, type: "clear", channel_id: channel, read_seq: 4 }],
      ]);
      n.read(channel, 5); // nothing stands any more: no second clear
      expect(jobs).toHaveLength(6);
    });
  });

  it("a read during the window drops the pending update", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(bob, [alice]);
    await subscribe(alice, "phone");
    await withNotifier(alice, (n, clock, jobs) => {
      n.missed([missed(channel, 2), missed(channel, 3)]);
      expect(jobs).toHaveLength(1);
      n.read(channel, 3);
      expect(jobs.at(-1)!.payload.type).toBe("clear");
      clock.now += W;
      expect(n.flushDue()).toBeUndefined();
      expect(jobs).toHaveLength(2);
    });
  });

  it("muted channels get no push; users without a subscription pay nothing", async () => {
    const alice = await register("alice"), bob = await register("bob"), carol = await register("carol");
    const channel = await createGroup(bob, [alice, carol]);
    await subscribe(alice, "phone");
    const muted = await call("PATCH", `/v1/me/channels/${channel}`, { token: alice.access_token, body: { muted: true } });
    expect(muted).toMatchObject({ status: 200, body: { channel: { channel_id: channel, muted: true } } });
    await withNotifier(alice, (n, _clock, jobs, sql) => {
      expect(n.missed([missed(channel, 2)])).toBeUndefined();
      expect(jobs).toEqual([]);
      expect(sql.exec("SELECT count(*) AS n FROM push_windows").one().n).toBe(0);
    });
    await withNotifier(carol, (n, _clock, jobs, sql) => {
      n.missed([missed(channel, 2)]);
      expect(jobs).toEqual([]);
      expect(sql.exec("SELECT count(*) AS n FROM push_windows").one().n).toBe(0);
    });
    const list = await call<{ channels: { channel_id: string; muted: boolean }[] }>("GET", "/v1/channels", { token: alice.access_token });
    expect(list.body.channels.find((c) => c.channel_id === channel)?.muted).toBe(true);
  });

  it("a read of a channel without a window runs no statement after the first (every message the user sends reads its channel)", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const channel = await createGroup(bob, [alice]);
    await subscribe(alice, "phone");
    await runInDurableObject(userStub(env, alice.user_id), (_instance: UserObject, state) => {
      const statements: string[] = [];
      const sql = {
        exec: (query: string, ...bindings: unknown[]) => { statements.push(query); return state.storage.sql.exec(query, ...bindings); },
        get databaseSize() { return state.storage.sql.databaseSize; },
      } as SqlStorage;
      const clock = { now: 1_000_000 };
      const jobs: PushJob[] = [];
      const n = new PushNotifier(sql, new PushSubscriptions(state.storage.sql), () => alice.user_id, { windowMs: W, now: () => clock.now, dispatch: (j) => jobs.push(...j) });
      n.read(channel, 1);
      const first = statements.length;
      for (let seq = 2; seq <= 20; seq++) n.read(channel, seq);
      expect(statements.length).toBe(first); // no window: nothing read, nothing written
      n.missed([missed(channel, 21)]); // pushed at once: the window now exists
      n.missed([missed(channel, 22)]); // merged: pending
      const before = statements.length;
      n.read(channel, 22); // the read clears what stands and drops what is pending
      expect(statements.length).toBeGreaterThan(before);
      expect(jobs.map((j) => j.payload.type)).toEqual(["message", "clear"]);
      expect(state.storage.sql.exec("SELECT count(*) AS n FROM push_windows").one().n).toBe(0);
    });
  });

  it("previews: the user's setting, never for encrypted or non-text content, cut at 140 characters", () => {
    const members = [{ user_id: "u_bob", username: "bob", display_name: "Bob B" }, { user_id: "u_me", username: "me", display_name: "Me" }];
    const batch = {
      channel: { channel_id: "c_1", type: "dm" as const, name: "", member_count: 2, members, last_seq: 6, last_hlc: "" },
      removed_user_ids: [],
      messages: [
        { seq: 1, content: { text: { text: "hi\n  there" } } },
        { seq: 2, content: { encrypted: { ciphertext: new Uint8Array([1]) } } },
        { seq: 3, content: { text: { text: "x".repeat(300) } } },
        { seq: 4, content: { system: { event: "member_added" } } },
        { seq: 5, content: { update: { target_seq: 1, kind: "edited" } } },
        { seq: 6, content: { text: { text: "mine" } }, sender_user_id: "u_me" },
      ].map((m) => ({ channel_id: "c_1", server_msg_id: "", hlc: "", client_msg_id: "", sender_user_id: "u_bob", sender_device_id: "", server_ts: 7, ...m })),
    };
    const on = missedMessages(batch as never, "u_me", true);
    expect(on.map((m) => [m.seq, m.preview?.length ?? null])).toEqual([[1, 8], [2, null], [3, 140]]);
    expect(on[0]).toMatchObject({ preview: "hi there", channelName: "Bob B", senderName: "Bob B" });
    expect(missedMessages(batch as never, "u_me", false).map((m) => m.preview)).toEqual([null, null, null]);
  });
});
