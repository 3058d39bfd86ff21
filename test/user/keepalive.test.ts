/**
 * What a connected, idle user costs and what the keep-alive still guarantees (docs/decisions/028):
 * one keep-alive (a report and one watch per contacts' shard) per TTL/3 and nothing on the wakes
 * in between, the due time kept on the sockets through hibernation; a user whose sockets were lost
 * with their object's instance turns offline at the next alarm, not at the lease's end; contacts'
 * watches outlive their 2 × TTL while the watcher stays connected; a silent socket is closed, with
 * the slack a late alarm gives it. Test timings (vitest.config.ts): TTL 2 s, offline grace 200 ms.
 */
import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { pb, type Frame } from "../../protocol/codec.js";
import { LIMITS } from "../../protocol/limits.js";
import { presenceStub, userStub } from "../../shared/routing.js";
import { memoryRecorder, recordMetricsWith } from "../../shared/metrics.js";
import { closeIdleSockets, patchSocketInfo, socketInfo } from "../../durable-objects/user/socket-protocol.js";
import { keepAliveMs } from "../../durable-objects/user/presence.js";
import { DEFAULT_PRESENCE_TIMINGS, type PresenceTimings } from "../../durable-objects/presence/settings.js";
import type { PresenceObject } from "../../durable-objects/presence/PresenceObject.js";
import type { UserObject } from "../../durable-objects/user/UserObject.js";
import { call, createDm, register, type TestUser } from "../helpers/api.js";
import { helloDevice, type TestDevice } from "../helpers/socket.js";

const T = pb.FrameType;
const TTL_MS = 2000; // PRESENCE_TTL_MS in vitest.config.ts

/** The object's private parts these tests reach into (as a restart or hibernation would leave them). */
type Inside = {
  ownPresence: { ttlMs: number; keepAliveAt: number | undefined; nextDue(): number | undefined };
  live: { state: { epoch: number; offline_at: number } };
};
const inside = (o: UserObject) => o as unknown as Inside;

function presenceOf(d: TestDevice, userId: string, timeoutMs = 5000): Promise<Frame> {
  return d.take((f) => f.type === T.PRESENCE && f.presence?.user_id === userId, timeoutMs);
}

async function lookup(as: TestUser, id: string) {
  const r = await call<{ presence: { user_id: string; status: string }[] }>("GET", `/v1/presence?user_ids=${id}`, { token: as.access_token });
  return r.body.presence[0]?.status;
}

/** Runs the user's alarm now (set a minute ahead so that it cannot fire by itself first). */
async function alarmNow(user: TestUser): Promise<void> {
  const stub = userStub(env, user.user_id);
  await runInDurableObject(stub, async (_o, state) => { await state.storage.setAlarm(Date.now() + 60_000); });
  expect(await runDurableObjectAlarm(stub)).toBe(true);
}

describe("presence keep-alive", () => {
  it("costs one report and one watch per keep-alive period, and nothing on the wakes in between (even after hibernation)", async () => {
    const alice = await register("alice"), bob = await register("bob");
    await createDm(alice, bob);
    const a = await helloDevice(alice.access_token, "a");
    await a.resume();
    await presenceOf(a, bob.user_id); // RESUMED's states: bob is watched
    const stub = userStub(env, alice.user_id);
    // Production's period (TTL 600 s: every 200 s), the keep-alive due now.
    const period = keepAliveMs(DEFAULT_PRESENCE_TIMINGS.ttlMs);
    await runInDurableObject(stub, (o: UserObject, state) => {
      inside(o).ownPresence.ttlMs = DEFAULT_PRESENCE_TIMINGS.ttlMs;
      inside(o).ownPresence.keepAliveAt = undefined;
      for (const ws of state.getWebSockets()) patchSocketInfo(ws, { keepAliveAt: 0 });
    });
    const seen = memoryRecorder();
    const restore = recordMetricsWith(seen);
    try {
      const t0 = Date.now();
      await alarmNow(alice);
      expect(seen.total("presence.rpc", { op: "report" })).toBe(1);
      expect(seen.total("presence.rpc", { op: "watch" })).toBe(1); // bob's shard
      const due = await runInDurableObject(stub, (o: UserObject, state) => {
        // Kept on the socket too: what a new instance after hibernation reads.
        expect(state.getWebSockets().map((ws) => socketInfo(ws).keepAliveAt)).toEqual([inside(o).ownPresence.nextDue()]);
        return inside(o).ownPresence.nextDue()!;
      });
      expect(due).toBeGreaterThanOrEqual(t0 + period);
      // Five more wakes before it is due (deliveries, list flushes, push windows), each as a
      // fresh instance would see it (nothing in memory): no call to any shard.
      for (let i = 0; i < 5; i++) {
        await runInDurableObject(stub, (o: UserObject) => { inside(o).ownPresence.keepAliveAt = undefined; });
        await alarmNow(alice);
      }
      expect(seen.total("presence.rpc")).toBe(2);
      expect(await lookup(bob, alice.user_id)).toBe("online");
    } finally {
      restore();
      a.close();
    }
  });

  it("turns a user offline at the next alarm when their sockets were lost with the object's instance (a restart, a deploy)", async () => {
    const alice = await register("alice"), bob = await register("bob");
    await createDm(alice, bob);
    // Production's 10-minute lease at her shard: only the explicit report can turn her offline in time.
    await runInDurableObject(presenceStub(env, alice.user_id), (o: PresenceObject) => {
      (o as unknown as { timings: PresenceTimings }).timings.ttlMs = DEFAULT_PRESENCE_TIMINGS.ttlMs;
    });
    // As the lost instance left it: the shard holds alice online on her lease, her storage says she
    // is live (an odd epoch), and no socket is open any more.
    await presenceStub(env, alice.user_id).report(alice.user_id, "online", Date.now());
    await runInDurableObject(userStub(env, alice.user_id), (o: UserObject, state) => {
      state.storage.sql.exec("UPDATE live_state SET epoch = epoch + 1, offline_at = 0 WHERE id = 1 AND epoch % 2 = 0");
      inside(o).live.state = state.storage.sql.exec<{ epoch: number; offline_at: number }>("SELECT epoch, offline_at FROM live_state WHERE id = 1").one();
      expect(state.getWebSockets()).toHaveLength(0);
    });
    const b = await helloDevice(bob.access_token, "b");
    await b.resume();
    expect((await presenceOf(b, alice.user_id)).presence?.status).toBe("online");
    // Long before her lease runs out, the alarm finds nobody connected and says so.
    await alarmNow(alice);
    expect((await presenceOf(b, alice.user_id, 5000)).presence?.status).toBe("offline");
    expect(await lookup(bob, alice.user_id)).toBe("offline");
    // Said once: another alarm finds her not live and reports nothing.
    const seen = memoryRecorder();
    const restore = recordMetricsWith(seen);
    try {
      await alarmNow(alice);
      expect(seen.total("presence.rpc")).toBe(0);
    } finally {
      restore();
      b.close();
    }
  });

  it("keeps a connected user's watches alive past their 2 × TTL", async () => {
    const alice = await register("alice"), bob = await register("bob");
    await createDm(alice, bob);
    const b = await helloDevice(bob.access_token, "b");
    await b.resume();
    expect((await presenceOf(b, alice.user_id)).presence?.status).toBe("offline");
    // Bob's watch of alice was set for 2 × TTL; his keep-alives renew it while he stays connected.
    await new Promise((r) => setTimeout(r, 2 * TTL_MS + 1500));
    const a = await helloDevice(alice.access_token, "a");
    expect((await presenceOf(b, alice.user_id, 10_000)).presence?.status).toBe("online");
    a.close(); b.close();
  });

  it("closes a silent socket, allowing for an alarm that runs late (the server behind on its reads)", async () => {
    const alice = await register("alice");
    const phone = await helloDevice(alice.access_token, "phone");
    const stub = userStub(env, alice.user_id);
    const now = Date.now();
    const kept = await runInDurableObject(stub, (_o, state) => {
      for (const ws of state.getWebSockets("phone")) patchSocketInfo(ws, { activeAt: now - LIMITS.idleTimeoutMs - 10_000 });
      // Silent for 100 s, but the alarm runs 60 s late: its pings may be waiting unread.
      return closeIdleSockets(state, now, 60_000);
    });
    expect(kept).toEqual([]);
    expect(phone.closed).toBeUndefined();
    const closed = await runInDurableObject(stub, (_o, state) => closeIdleSockets(state, now, 0));
    expect(closed).toEqual([{ deviceId: "phone", activeAgoMs: LIMITS.idleTimeoutMs + 10_000, pingedAgoMs: null }]);
    expect((await phone.waitClosed()).code).toBe(4408);
  });
});
