import { abortAllDurableObjects, env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { pb, type Frame } from "../../protocol/codec.js";
import { newId } from "../../shared/ids.js";
import { fnv1a32, PRESENCE_SHARDS, presenceShardKey, presenceStub } from "../../shared/routing.js";
import { MAX_PRESENCE_SUBSCRIBERS, MAX_PRESENCE_TARGETS, type PresenceObject } from "../../durable-objects/presence/PresenceObject.js";
import type { PresenceState } from "../../protocol/types.js";
import { register } from "../helpers/api.js";
import { onlineDevice, type TestDevice } from "../helpers/socket.js";
import { until } from "../support/until.js";

const T = pb.FrameType;
// vitest.config.ts shortens the timings: PRESENCE_TTL_MS = 2000, PRESENCE_OFFLINE_GRACE_MS = 200.
const TTL_MS = 2000;
const GRACE_MS = 200;

/** A fresh user id that lives in the same shard as `userId` (so one publisher orders both). */
function sameShardAs(userId: string): string {
  const key = presenceShardKey(userId);
  for (;;) {
    const id = newId("u");
    if (presenceShardKey(id) === key) return id;
  }
}

/** A registered user with one connected device, to watch others and receive PRESENCE frames. */
async function watcher(): Promise<{ id: string; device: TestDevice }> {
  const user = await register("watcher");
  return { id: user.user_id, device: await onlineDevice(user.access_token) };
}

const offline = (user_id: string, last_seen = 0): PresenceState => ({ user_id, status: "offline", last_seen });

/** The frame's payload in PresenceState shape (proto3 leaves a 0 last_seen out). */
function stateOf(f: Frame): PresenceState {
  const p = f.presence!;
  return { user_id: p.user_id!, status: p.status as PresenceState["status"], last_seen: Number(p.last_seen ?? 0) };
}

/** A watcher with a live socket, and a fresh user it watches who just came online at `t0`. */
async function watchedOnline(agoMs: number) {
  const s = await watcher();
  const target = newId("u");
  const stub = presenceStub(env, target);
  await stub.watch(s.id, [target]);
  const t0 = Date.now() - agoMs;
  await stub.report(target, "online", t0);
  expect((await nextAbout(s.device, target)).status).toBe("online");
  return { s, target, stub, t0 };
}

/** The next PRESENCE frame about any of `userIds`. */
async function nextAbout(device: TestDevice, ...userIds: string[]): Promise<PresenceState> {
  return stateOf(await device.take((f) => f.type === T.PRESENCE && userIds.includes(f.presence?.user_id ?? "")));
}

function framesAbout(device: TestDevice, userId: string): Frame[] {
  return device.frames.filter((f) => f.type === T.PRESENCE && f.presence?.user_id === userId);
}

type PresenceRow = { status: string; last_seen: number; expires_at: number | null; offline_since: number | null; published_status: string };

function presenceRow(userId: string): Promise<PresenceRow | undefined> {
  return runInDurableObject(presenceStub(env, userId), (_o, state) => state.storage.sql.exec<PresenceRow>(
    "SELECT status, last_seen, expires_at, offline_since, published_status FROM presence WHERE user_id = ?", userId,
  ).toArray()[0]);
}

function subscriptions(target: string): Promise<{ subscriber_user_id: string; expires_at: number }[]> {
  return runInDurableObject(presenceStub(env, target), (_o, state) => state.storage.sql.exec<{ subscriber_user_id: string; expires_at: number }>(
    "SELECT subscriber_user_id, expires_at FROM subscriptions WHERE target_user_id = ?", target,
  ).toArray());
}

describe("PresenceObject: report, lookup, watch", () => {
  it("answers with current states in the order asked; unknown users are offline, last seen 0", async () => {
    const a = newId("u"), b = sameShardAs(a);
    const stub = presenceStub(env, a);
    const at = Date.now() - 50;
    await stub.report(a, "online", at);
    expect(await stub.lookup([b, a, b])).toEqual([offline(b), { user_id: a, status: "online", last_seen: at }]);
    const s = newId("u");
    expect(await stub.watch(s, [a, b])).toEqual([{ user_id: a, status: "online", last_seen: at }, offline(b)]);
    await stub.report(a, "away", at + 10);
    expect(await stub.lookup([a])).toEqual([{ user_id: a, status: "away", last_seen: at + 10 }]);
  });

  it("ignores a report that arrives after a newer one", async () => {
    const a = newId("u");
    const stub = presenceStub(env, a);
    const now = Date.now();
    await stub.report(a, "away", now - 10);
    await stub.report(a, "online", now - 20); // sent earlier, delivered later
    expect(await stub.lookup([a])).toEqual([{ user_id: a, status: "away", last_seen: now - 10 }]);
  });
});

describe("PresenceObject: deltas to subscribers", () => {
  it("pushes online → away → online to a subscriber's devices at once", async () => {
    const s = await watcher();
    const target = newId("u");
    const stub = presenceStub(env, target);
    expect(await stub.watch(s.id, [target])).toEqual([offline(target)]);
    const t0 = Date.now() - 30;
    await stub.report(target, "online", t0);
    expect(await nextAbout(s.device, target)).toEqual({ user_id: target, status: "online", last_seen: t0 });
    await stub.report(target, "away", t0 + 10);
    expect(await nextAbout(s.device, target)).toEqual({ user_id: target, status: "away", last_seen: t0 + 10 });
    await stub.report(target, "online", t0 + 20);
    expect(await nextAbout(s.device, target)).toEqual({ user_id: target, status: "online", last_seen: t0 + 20 });
    s.device.close();
  });

  it("publishes offline only after the grace, last seen when they left", async () => {
    const { s, target, stub, t0 } = await watchedOnline(1000);
    // One turn, so the grace cannot run out between the report and the checks.
    const pending = await runInDurableObject(stub, async (o: PresenceObject, state) => {
      const left = Date.now();
      o.report(target, "offline", left);
      const row = state.storage.sql.exec<PresenceRow>("SELECT offline_since, published_status FROM presence WHERE user_id = ?", target).one();
      return { left, seen: o.lookup([target]), row, alarm: await state.storage.getAlarm() };
    });
    const { left } = pending;
    // Not told yet: contacts still see them online, and an alarm is due by the end of the grace
    // (earlier if another user of this shard has an earlier deadline).
    expect(pending.seen).toEqual([{ user_id: target, status: "online", last_seen: left }]);
    expect(pending.row).toMatchObject({ offline_since: left, published_status: "online" });
    expect(pending.alarm).not.toBeNull();
    expect(pending.alarm!).toBeLessThanOrEqual(left + GRACE_MS);
    // The alarm fires on its own once the grace is over.
    expect(await nextAbout(s.device, target)).toEqual(offline(target, left));
    expect(await stub.lookup([target])).toEqual([offline(target, left)]);
    s.device.close();
  });

  it("publishes nothing for a blip: offline and back within the grace", async () => {
    const { s, target, stub, t0 } = await watchedOnline(1000);
    // One turn, so no alarm can run in between whatever the machine's speed.
    const back = Date.now() - 5;
    await runInDurableObject(stub, (o: PresenceObject) => {
      o.report(target, "offline", back - 1);
      o.report(target, "online", back);
    });
    await runDurableObjectAlarm(stub);
    await stub.report(target, "away", back + 1);
    // The next thing the contact hears is the away; they never saw the user leave.
    expect(await nextAbout(s.device, target)).toEqual({ user_id: target, status: "away", last_seen: back + 1 });
    expect(framesAbout(s.device, target)).toHaveLength(0);
    s.device.close();
  });

  it("takes a user whose reports stop offline after the TTL, last seen at their last report", async () => {
    const s = await watcher();
    const target = newId("u");
    const stub = presenceStub(env, target);
    await stub.watch(s.id, [target]);
    const last = Date.now() - TTL_MS - 500; // the UserObject died right after this report
    await stub.report(target, "online", last);
    expect(await nextAbout(s.device, target)).toEqual({ user_id: target, status: "online", last_seen: last });
    await runDurableObjectAlarm(stub); // may have fired on its own already: both are fine
    expect(await nextAbout(s.device, target)).toEqual(offline(target, last));
    expect(await stub.lookup([target])).toEqual([offline(target, last)]);
    s.device.close();
  });

  it("extends the TTL on every keep-alive without publishing anything", async () => {
    const s = await watcher();
    const target = newId("u"), fence = sameShardAs(target);
    const stub = presenceStub(env, target);
    await stub.watch(s.id, [target, fence]);
    const t0 = Date.now() - 100;
    await stub.report(target, "away", t0);
    expect((await nextAbout(s.device, target)).status).toBe("away");
    await stub.report(target, "away", t0 + 50);
    expect(await presenceRow(target)).toMatchObject({ status: "away", last_seen: t0 + 50, expires_at: t0 + 50 + TTL_MS });
    await stub.report(fence, "online", t0 + 60);
    expect((await nextAbout(s.device, target, fence)).user_id).toBe(fence);
    s.device.close();
  });

  it("shows a hidden user as offline, last seen 0, at once and until a later report", async () => {
    const { s, target, stub, t0 } = await watchedOnline(100);
    await stub.report(target, "hidden", t0 + 10);
    expect(await nextAbout(s.device, target)).toEqual(offline(target, 0));
    expect(await stub.lookup([target])).toEqual([offline(target, 0)]);
    expect(await stub.watch(s.id, [target])).toEqual([offline(target, 0)]);
    expect(await presenceRow(target)).toMatchObject({ status: "hidden", expires_at: null, offline_since: null });
    // Hidden has no TTL: long after its report it is still hidden.
    const quiet = sameShardAs(target);
    await stub.report(quiet, "hidden", Date.now() - 10 * TTL_MS);
    await runDurableObjectAlarm(stub);
    expect(await stub.lookup([quiet, target])).toEqual([offline(quiet, 0), offline(target, 0)]);
    expect((await presenceRow(quiet))?.status).toBe("hidden");
    // Their last device going away does not reveal when it went.
    await stub.report(target, "offline", Date.now() - 5);
    await runDurableObjectAlarm(stub);
    expect(await stub.lookup([target])).toEqual([offline(target, 0)]);
    expect(await presenceRow(target)).toMatchObject({ status: "hidden", offline_since: null });
    const back = Date.now() - 5;
    await stub.report(target, "online", back);
    expect(await nextAbout(s.device, target)).toEqual({ user_id: target, status: "online", last_seen: back });
    s.device.close();
  });

  it("stops deltas after unwatch", async () => {
    const s = await watcher();
    const target = newId("u"), fence = sameShardAs(target);
    const stub = presenceStub(env, target);
    await stub.watch(s.id, [target, fence]);
    await stub.unwatch(s.id);
    expect(await subscriptions(target)).toEqual([]);
    await stub.watch(s.id, [fence]);
    const t0 = Date.now() - 50;
    await stub.report(target, "online", t0);
    await stub.report(fence, "online", t0);
    // One publisher per shard, in rounds: anything sent about `target` would have come first.
    expect((await nextAbout(s.device, target, fence)).user_id).toBe(fence);
    expect(framesAbout(s.device, target)).toHaveLength(0);
    s.device.close();
  });

  it("keeps a subscription for 2 × TTL, sends nothing after it expires, and prunes it", async () => {
    const s = await watcher();
    const target = newId("u"), fence = sameShardAs(target);
    const stub = presenceStub(env, target);
    const before = Date.now();
    await stub.watch(s.id, [target, fence]);
    const after = Date.now();
    const [sub] = await subscriptions(target);
    expect(sub?.subscriber_user_id).toBe(s.id);
    expect(sub!.expires_at).toBeGreaterThanOrEqual(before + 2 * TTL_MS);
    expect(sub!.expires_at).toBeLessThanOrEqual(after + 2 * TTL_MS);
    // Let the watch on `target` lapse (the subscriber stopped renewing it).
    await runInDurableObject(stub, (_o, state) => {
      state.storage.sql.exec("UPDATE subscriptions SET expires_at = ? WHERE target_user_id = ?", Date.now() - 1, target);
    });
    const t0 = Date.now() - 50;
    await stub.report(target, "online", t0);
    await stub.report(fence, "online", t0);
    expect((await nextAbout(s.device, target, fence)).user_id).toBe(fence);
    expect(framesAbout(s.device, target)).toHaveLength(0);
    await runDurableObjectAlarm(stub);
    expect(await subscriptions(target)).toEqual([]);
    expect((await subscriptions(fence)).map((r) => r.subscriber_user_id)).toEqual([s.id]);
    s.device.close();
  });

  it("never sends users their own presence", async () => {
    const s = await watcher();
    const other = sameShardAs(s.id);
    const stub = presenceStub(env, s.id);
    const states = await stub.watch(s.id, [s.id, other]);
    expect(states.map((p) => p.user_id)).toEqual([s.id, other]);
    expect((await subscriptions(s.id)).map((r) => r.subscriber_user_id)).not.toContain(s.id);
    const t0 = Date.now() - 50;
    await stub.report(s.id, "away", t0);
    await stub.report(other, "online", t0);
    expect((await nextAbout(s.device, s.id, other)).user_id).toBe(other);
    expect(framesAbout(s.device, s.id)).toHaveLength(0);
    s.device.close();
  });

  it(`caps live subscribers per user at ${MAX_PRESENCE_SUBSCRIBERS}; watch past the cap still answers`, async () => {
    const target = newId("u");
    const stub = presenceStub(env, target);
    const at = Date.now() - 50;
    await stub.report(target, "online", at);
    const first = newId("u");
    const late = await runInDurableObject(stub, (o: PresenceObject, state) => {
      o.watch(first, [target]);
      for (let i = 1; i < MAX_PRESENCE_SUBSCRIBERS; i++) o.watch(newId("u"), [target]);
      const answer = o.watch(newId("u"), [target]);
      const count = () => state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM subscriptions WHERE target_user_id = ?", target).one().n;
      const full = count();
      o.watch(first, [target]); // an existing subscriber may always renew
      const afterRenew = count();
      // Otherwise the target's TTL expiry publishes to 1000 made-up users, a new UserObject each,
      // which loads this file's later tests on a slow machine.
      state.storage.sql.exec("DELETE FROM subscriptions WHERE target_user_id = ?", target);
      return { answer, full, afterRenew };
    });
    expect(late.answer).toEqual([{ user_id: target, status: "online", last_seen: at }]);
    expect(late.full).toBe(MAX_PRESENCE_SUBSCRIBERS);
    expect(late.afterRenew).toBe(MAX_PRESENCE_SUBSCRIBERS);
  });
});

describe("PresenceObject: defensive input", () => {
  it("ignores junk without throwing", async () => {
    const a = newId("u");
    const stub = presenceStub(env, a);
    const junk = (v: unknown) => v as never;
    await stub.report(junk(42), "online", Date.now());
    await stub.report("u_nope", "online", Date.now());
    await stub.report(a, junk("busy"), Date.now());
    for (const at of [NaN, Infinity, -1, 0, "now", null]) await stub.report(a, "online", junk(at));
    expect(await stub.lookup([a])).toEqual([offline(a)]);
    expect(await stub.watch(junk(null), [a])).toEqual([]);
    expect(await stub.watch(newId("u"), junk("u_g_00000000000000000000000000"))).toEqual([]);
    expect(await stub.watch(newId("u"), junk([1, null, {}, "c_g_00000000000000000000000000", "x".repeat(10_000), a, a]))).toEqual([offline(a)]);
    expect(await stub.lookup(junk(undefined))).toEqual([]);
    expect(await stub.lookup(junk({ length: 3 }))).toEqual([]);
    await stub.unwatch(junk(42));
    const many = Array.from({ length: MAX_PRESENCE_TARGETS + 500 }, () => newId("u"));
    const states = await stub.lookup(many);
    expect(states).toHaveLength(MAX_PRESENCE_TARGETS);
    expect(states.map((p) => p.user_id)).toEqual(many.slice(0, MAX_PRESENCE_TARGETS));
    // Still healthy afterwards.
    await stub.report(a, "online", Date.now() - 10);
    expect((await stub.lookup([a]))[0]?.status).toBe("online");
  });
});

describe("presence shard routing", () => {
  it("hashes with FNV-1a, stably, and spreads ids over every shard", () => {
    expect(fnv1a32("")).toBe(0x811c9dc5);
    expect(fnv1a32("a")).toBe(0xe40c292c);
    expect(fnv1a32("foobar")).toBe(0xbf9cf968);
    const id = "u_g_0123456789abcdefghjkmnpqrs";
    expect(presenceShardKey(id)).toBe(`presence:${fnv1a32(id) % PRESENCE_SHARDS}`);
    expect(presenceShardKey(id)).toBe(presenceShardKey(id));
    const counts = new Map<string, number>();
    const n = 100 * PRESENCE_SHARDS;
    for (let i = 0; i < n; i++) {
      const key = presenceShardKey(newId("u"));
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    expect(counts.size).toBe(PRESENCE_SHARDS);
    // Each shard's share is Binomial(3200, 1/32): mean 100, sd ≈ 10. Far tails only.
    for (const c of counts.values()) expect(c).toBeGreaterThan(40);
  });

  it("keeps each user's shard in their jurisdiction and gives equal keys the same object", () => {
    const eu = newId("u", "eu");
    expect(presenceShardKey(eu)).toMatch(/^eu\/presence:\d+$/);
    expect(presenceShardKey(newId("u", "fedramp"))).toMatch(/^fedramp\/presence:\d+$/);
    const a = newId("u"), b = sameShardAs(a);
    expect(presenceStub(env, a).id.toString()).toBe(presenceStub(env, b).id.toString());
    // Same shard index, other jurisdiction: another object.
    let euTwin = newId("u", "eu");
    while (presenceShardKey(euTwin) !== `eu/${presenceShardKey(a)}`) euTwin = newId("u", "eu");
    expect(presenceStub(env, euTwin).id.toString()).not.toBe(presenceStub(env, a).id.toString());
    expect(() => presenceShardKey("c_g_0123456789abcdefghjkmnpqrs")).toThrow(TypeError);
    expect(() => presenceStub(env, "nope")).toThrow(TypeError);
  });
});

describe("PresenceObject: bounded", () => {
  // vitest.config.ts: PRESENCE_MIN_INTERVAL_MS = 300.
  const MIN_INTERVAL_MS = 300;

  it("damps a user flipping online/away 100 times to a few deltas, the last one being the latest state", async () => {
    const s = await watcher();
    const target = newId("u");
    const stub = presenceStub(env, target);
    await stub.watch(s.id, [target]);
    const started = Date.now();
    let last = 0;
    for (let i = 0; i < 100; i++) {
      // Renew the watch as a UserObject would: on a slow machine the flood outlasts the test's 4 s watch.
      if (i % 20 === 0) await stub.watch(s.id, [target]);
      last = Date.now();
      await stub.report(target, i % 2 === 0 ? "online" : "away", last);
    }
    const elapsed = Date.now() - started;
    // The latest report (away) reaches the watcher: the positive marker. (Away, or offline at that
    // same last_seen if this machine was so slow that the 2 s test TTL ran out first.)
    await s.device.take((f) => f.type === T.PRESENCE && f.presence?.user_id === target && Number(f.presence.last_seen) === last && f.presence.status !== "online", 10_000);
    const deltas = framesAbout(s.device, target).length + 1;
    // One delta at once, then at most one per interval the flood lasted, plus the held last one:
    // before damping, about one per report.
    expect(deltas).toBeLessThanOrEqual(2 + Math.ceil(elapsed / MIN_INTERVAL_MS));
    expect(deltas).toBeLessThan(30);
    s.device.close();
  });

  it("still reaches the other subscribers when one never answers, round after round", async () => {
    const [fast, slow] = await Promise.all([watcher(), watcher()]);
    const target = newId("u");
    const stub = presenceStub(env, target);
    await stub.watch(fast.id, [target]);
    await stub.watch(slow.id, [target]);
    // The slow subscriber's UserObject takes every delta and never answers.
    await runInDurableObject(stub, (o: PresenceObject) => {
      const own = (o as unknown as { userStub(id: string): unknown }).userStub.bind(o);
      (o as unknown as { userStub(id: string): unknown }).userStub = (id: string) => id === slow.id ? { presence: () => new Promise(() => {}) } : own(id);
    });
    await stub.report(target, "online", Date.now());
    expect(await nextAbout(fast.device, target)).toMatchObject({ status: "online" });
    // The first round waits on the slow call until its deadline; then the next round runs. (The
    // away report may have expired by then under this config's 2 s TTL: offline, last seen at it.)
    const away = Date.now();
    await stub.report(target, "away", away);
    const next = await nextAbout(fast.device, target);
    expect(next.last_seen).toBe(away);
    expect(["away", "offline"]).toContain(next.status);
    fast.device.close(); slow.device.close();
  });

  it("deletes the rows of users offline longer than the retention, and keeps the others", async () => {
    const gone = newId("u"), recent = sameShardAs(gone);
    const stub = presenceStub(env, gone);
    const monthAgo = Date.now() - 31 * 24 * 3_600_000;
    await stub.report(gone, "online", monthAgo - 1_000);
    await stub.report(gone, "offline", monthAgo);
    await stub.report(recent, "online", Date.now() - 1_000);
    await stub.report(recent, "offline", Date.now() - 500);
    // Grace over for both, a held delta sent, then the sweep: each from an alarm (which may also
    // fire on its own: both are fine).
    for (let i = 0; (await presenceRow(gone)) !== undefined && i < 100; i++) {
      await new Promise((r) => setTimeout(r, 50));
      await runDurableObjectAlarm(stub);
    }
    expect(await presenceRow(gone)).toBeUndefined();
    expect(await presenceRow(recent)).toMatchObject({ status: "offline", published_status: "offline" });
    expect(await stub.lookup([gone])).toEqual([offline(gone)]);
    // The next sweep is armed for when the recent one's retention runs out (or something earlier).
    // An alarm run that is under way (the object's own, next to the test's) has no alarm set until
    // it sets the next one: look again for a moment rather than at one instant.
    const alarm = await until("the next sweep armed", async () =>
      (await runInDurableObject(stub, (_o, state) => state.storage.getAlarm())) ?? undefined, 5_000, 50);
    expect(alarm).not.toBeNull();
  });
});

// Last: abortAllDurableObjects restarts every object in this file.
describe("PresenceObject: restart", () => {
  it("keeps pending deadlines in storage and re-arms a lost alarm when it wakes", async () => {
    // An eu user: a shard no other test here reports to, so every deadline in it is this test's
    // (another user's deadline re-armed the alarm elsewhere in a shared shard).
    const target = newId("u", "eu");
    const stub = presenceStub(env, target);
    const left = Date.now() - 10;
    const crashed = await runInDurableObject(stub, async (o: PresenceObject, state) => {
      o.report(target, "online", left - 1000);
      o.report(target, "offline", left);
      // Lost, e.g. by a crash while it was being set (one turn with the reports: never armed).
      await state.storage.deleteAlarm();
      const row = state.storage.sql.exec<PresenceRow>("SELECT offline_since, published_status FROM presence WHERE user_id = ?", target).one();
      return { row, alarm: await state.storage.getAlarm() };
    });
    // The deadline lives only in the row: no alarm, and contacts still see them online.
    expect(crashed).toEqual({ row: { offline_since: left, published_status: "online" }, alarm: null });
    await abortAllDurableObjects();
    const woken = presenceStub(env, target);
    // Waking re-arms the alarm for the end of the grace. On a slow machine that is past by now:
    // then the alarm is due at once (the runtime keeps a past time as the moment it was set), or
    // it has run already and nothing is left to arm.
    const alarm = await runInDurableObject(woken, (_o, state) => state.storage.getAlarm());
    if (alarm !== null) {
      expect(alarm).toBeGreaterThanOrEqual(left + GRACE_MS);
      expect(alarm).toBeLessThanOrEqual(Math.max(left + GRACE_MS, Date.now()));
    }
    // Only the re-armed alarm publishes this: offline, last seen when they left (the kept row).
    // It fires once the grace is over; wait for that, running it in case it is late.
    const deadline = Date.now() + 10_000;
    let state = (await woken.lookup([target]))[0];
    while (state?.status !== "offline" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      if (Date.now() > left + GRACE_MS) await runDurableObjectAlarm(woken);
      state = (await woken.lookup([target]))[0];
    }
    expect(state).toEqual(offline(target, left));
  });
});
