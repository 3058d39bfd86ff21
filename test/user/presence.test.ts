/**
 * Presence end to end through the gateway: a user's devices fold into one status in their
 * PresenceObject shard, and the people they share a DM or small group with are told of changes.
 * Test timings (vitest.config.ts): TTL 2 s, offline grace 200 ms.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { LIMITS } from "../../protocol/limits.js";
import { presenceStub, userStub } from "../../shared/routing.js";
import { pb, type Frame } from "../../protocol/codec.js";
import { aggregateStatus } from "../../durable-objects/user/presence-link.js";
import { patchSocketInfo } from "../../durable-objects/user/socket-protocol.js";
import type { PresenceObject } from "../../durable-objects/presence/PresenceObject.js";
import type { PresenceTimings } from "../../durable-objects/presence/settings.js";
import { call, createDm, createGroup, register, type TestUser } from "../helpers/api.js";
import { helloDevice, type TestDevice } from "../helpers/socket.js";

const T = pb.FrameType;
const GRACE_MS = 200; // PRESENCE_OFFLINE_GRACE_MS in vitest.config.ts

/** The next PRESENCE frame about `userId`. */
function presenceOf(d: TestDevice, userId: string, timeoutMs = 5000): Promise<Frame> {
  return d.take((f) => f.type === T.PRESENCE && f.presence?.user_id === userId, timeoutMs);
}

/**
 * After this, `user`'s contacts have heard everything they will hear about what happened so far,
 * so the next change `device` makes is the next PRESENCE they get (a positive marker in place of
 * "wait and see that nothing comes"). A RESUME's presence snapshot goes through the same ordered
 * queue of shard calls as the UserObject's reports (presence-link.ts), so once it arrives every
 * earlier report has reached the shard; then any offline among them is let past its grace, and
 * the shard's alarm is run in case it has not run on its own.
 */
async function presenceSettled(user: TestUser, device: TestDevice, contact: TestUser): Promise<void> {
  await reportsFlushed(device, contact);
  await graceRunOut(user);
}

/** Every report `device`'s UserObject made so far has reached the shard (see presenceSettled). */
async function reportsFlushed(device: TestDevice, contact: TestUser): Promise<void> {
  await device.resume();
  await presenceOf(device, contact.user_id);
}

/** Any offline `user` reported so far is past its grace and published (see presenceSettled). */
async function graceRunOut(user: TestUser): Promise<void> {
  await new Promise((r) => setTimeout(r, GRACE_MS));
  await runDurableObjectAlarm(presenceStub(env, user.user_id));
}

/**
 * Sets the offline grace of `user`'s presence shard as the running object holds it (the test
 * config's 200 ms is shorter than a reconnect takes on a loaded machine).
 */
async function setGrace(user: TestUser, ms: number): Promise<void> {
  await runInDurableObject(presenceStub(env, user.user_id), (o: PresenceObject) => {
    (o as unknown as { timings: PresenceTimings }).timings.offlineGraceMs = ms;
  });
}

async function lookup(as: TestUser, ids: string[]) {
  const r = await call<{ presence: { user_id: string; status: string; last_seen: number }[] }>("GET", `/v1/presence?user_ids=${ids.join(",")}`, { token: as.access_token });
  expect(r.status).toBe(200);
  return r.body.presence;
}

/** alice and bob share a DM; bob's device is connected and has had alice's first presence. */
async function bobWatchesAlice() {
  const alice = await register("alice"), bob = await register("bob");
  await createDm(alice, bob);
  const b = await helloDevice(bob.access_token, "b");
  await b.resume();
  await presenceOf(b, alice.user_id);
  return { alice, bob, b };
}

describe("presence", () => {
  it("folds devices into one status: online beats away, none is offline, not sharing is hidden", () => {
    expect(aggregateStatus([], true)).toBe("offline");
    expect(aggregateStatus(["away", "online"], true)).toBe("online");
    expect(aggregateStatus(["away", "away"], true)).toBe("away");
    expect(aggregateStatus(["online"], false)).toBe("hidden");
    expect(aggregateStatus([], false)).toBe("offline");
  });

  it("tells a contact when a user comes online, goes away, and leaves (after the grace), with last seen", async () => {
    const alice = await register("alice"), bob = await register("bob");
    await createDm(alice, bob);
    const b = await helloDevice(bob.access_token, "b");
    await b.resume();
    // The snapshot after RESUME: alice has never been online.
    const first = await presenceOf(b, alice.user_id);
    expect(first.presence).toMatchObject({ status: "offline" });
    expect(Number(first.presence?.last_seen ?? 0)).toBe(0);

    const a1 = await helloDevice(alice.access_token, "a1");
    expect((await presenceOf(b, alice.user_id)).presence?.status).toBe("online");
    // A second device in the background changes nothing; the first going to the background does.
    const a2 = await helloDevice(alice.access_token, "a2");
    a2.send({ type: T.PRESENCE_HEARTBEAT, presence_heartbeat: { status: "away" } });
    a1.send({ type: T.PRESENCE_HEARTBEAT, presence_heartbeat: { status: "away" } });
    expect((await presenceOf(b, alice.user_id)).presence?.status).toBe("away");
    a1.send({ type: T.PRESENCE_HEARTBEAT, presence_heartbeat: { status: "online" } });
    expect((await presenceOf(b, alice.user_id)).presence?.status).toBe("online");

    const before = Date.now();
    a1.close(); a2.close();
    const gone = await presenceOf(b, alice.user_id);
    expect(gone.presence?.status).toBe("offline");
    expect(Number(gone.presence?.last_seen)).toBeGreaterThanOrEqual(before - 1000);
    // Nobody is told about themselves.
    expect(b.frames.filter((f) => f.type === T.PRESENCE && f.presence?.user_id === bob.user_id)).toEqual([]);
    expect((await lookup(bob, [alice.user_id]))[0]).toMatchObject({ user_id: alice.user_id, status: "offline" });
    b.close();
  });

  it("does not show a quick reconnect as leaving", async () => {
    const { alice, bob, b } = await bobWatchesAlice();
    const a = await helloDevice(alice.access_token, "a");
    expect((await presenceOf(b, alice.user_id)).presence?.status).toBe("online");
    // Quick, however slow this machine: while alice reconnects, her shard's grace is a minute.
    await setGrace(alice, 60_000);
    a.close();
    const again = await helloDevice(alice.access_token, "a"); // back within the grace
    await reportsFlushed(again, bob); // her offline and her online have both reached the shard
    await setGrace(alice, GRACE_MS);
    await graceRunOut(alice); // an offline still pending would be published now
    // The marker: bob hears alice go away next; he never heard her leave.
    again.send({ type: T.PRESENCE_HEARTBEAT, presence_heartbeat: { status: "away" } });
    expect((await presenceOf(b, alice.user_id)).presence?.status).toBe("away");
    expect((await lookup(bob, [alice.user_id]))[0]?.status).toBe("away");
    again.close(); b.close();
  });

  it("stays online past the TTL while connected (the UserObject keeps the report alive)", async () => {
    const alice = await register("alice"), bob = await register("bob");
    await createDm(alice, bob);
    const a = await helloDevice(alice.access_token, "a");
    await a.resume();
    await new Promise((r) => setTimeout(r, 3000)); // TTL is 2 s in tests
    expect((await lookup(bob, [alice.user_id]))[0]?.status).toBe("online");
    a.close();
  });

  it("hides a user who turns presence sharing off: offline, never seen", async () => {
    const alice = await register("alice"), bob = await register("bob");
    await createGroup(alice, [bob]);
    const b = await helloDevice(bob.access_token, "b");
    await b.resume();
    await presenceOf(b, alice.user_id);
    const a = await helloDevice(alice.access_token, "a");
    expect((await presenceOf(b, alice.user_id)).presence?.status).toBe("online");
    const off = await call("PATCH", "/v1/me/settings", { token: alice.access_token, body: { share_presence: false } });
    expect(off.body).toEqual({ read_receipts: false, share_presence: false, push_previews: true, group_adds: "everyone" });
    const hidden = await presenceOf(b, alice.user_id);
    expect(hidden.presence?.status).toBe("offline");
    expect(Number(hidden.presence?.last_seen ?? 0)).toBe(0);
    expect((await lookup(bob, [alice.user_id]))[0]).toMatchObject({ status: "offline", last_seen: 0 });
    a.close(); b.close();
  });

  it("starts watching the members of a channel joined while online", async () => {
    const alice = await register("alice"), carol = await register("carol");
    const c = await helloDevice(carol.access_token, "c");
    await c.resume();
    const a = await helloDevice(alice.access_token, "a");
    await a.resume();
    await createDm(alice, carol);
    expect((await presenceOf(a, carol.user_id)).presence?.status).toBe("online");
    expect((await presenceOf(c, alice.user_id)).presence?.status).toBe("online");
    a.close(); c.close();
  });

  it("closes a socket that went silent (no frame, no ping) and shows its user offline", async () => {
    const { alice, bob, b } = await bobWatchesAlice();
    const [gone, alive] = await Promise.all([helloDevice(alice.access_token, "lost-phone"), helloDevice(alice.access_token, "laptop")]);
    expect((await presenceOf(b, alice.user_id)).presence?.status).toBe("online");
    // The phone lost its network without a goodbye: its last frame is long ago and it never pinged.
    const stub = userStub(env, alice.user_id);
    await runInDurableObject(stub, (_o, state) => {
      for (const ws of state.getWebSockets("lost-phone")) {
        patchSocketInfo(ws, { activeAt: Date.now() - LIMITS.idleTimeoutMs - 1000 });
      }
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);
    expect((await gone.waitClosed()).code).toBe(4408);
    expect(alive.closed).toBeUndefined();
    // The laptop keeps alice online: the next thing bob hears is the laptop going away (the marker).
    await presenceSettled(alice, alive, bob);
    alive.send({ type: T.PRESENCE_HEARTBEAT, presence_heartbeat: { status: "away" } });
    expect((await presenceOf(b, alice.user_id)).presence?.status).toBe("away");
    // Once the laptop goes silent too, she goes offline.
    await runInDurableObject(stub, (_o, state) => {
      for (const ws of state.getWebSockets("laptop")) patchSocketInfo(ws, { activeAt: 0 });
    });
    await runDurableObjectAlarm(stub);
    expect((await alive.waitClosed()).code).toBe(4408);
    expect((await presenceOf(b, alice.user_id)).presence?.status).toBe("offline");
    b.close();
  });

  it("refuses a bad heartbeat and bad lookups with a reason", async () => {
    const alice = await register("alice");
    const a = await helloDevice(alice.access_token, "a");
    const id = a.send({ type: T.PRESENCE_HEARTBEAT, presence_heartbeat: { status: "invisible" } });
    const err = await a.take((f) => f.request_id === id && f.type === T.ERROR);
    expect(err.error).toMatchObject({ code: "invalid_argument", retryable: false });
    for (const qs of ["", "user_ids=", "user_ids=bob", `user_ids=${Array.from({ length: 201 }, () => alice.user_id).map((u, i) => u.slice(0, -3) + String(i).padStart(3, "0")).join(",")}`]) {
      const r = await call("GET", `/v1/presence?${qs}`, { token: alice.access_token });
      expect([r.status, r.body.code], qs).toEqual([400, "invalid_argument"]);
    }
    a.close();
  });
});
