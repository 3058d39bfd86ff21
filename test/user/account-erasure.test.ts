/**
 * The account erasure job's steps on their own (durable-objects/user/erasure.ts), driven over a
 * recording host: the order of the steps, what each deletes, the channel cursor, a duplicate step,
 * a late call after the wipe, and the alarm's re-drive. test/api/erasure.test.ts runs the whole job.
 */
import { describe, expect, it } from "vitest";
import { AccountErasure, type ErasureHost, type ErasureStep } from "../../durable-objects/user/erasure.js";
import { Devices } from "../../durable-objects/user/devices.js";
import { PushSubscriptions } from "../../durable-objects/user/push-subscriptions.js";
import type { ErasureProgress } from "../../durable-objects/channel/erasure.js";
import { inFreshUser } from "../helpers/object-sql.js";

const ME = "u_me";

/** A host whose every outside effect is a line in `calls`. */
function recordingHost(sql: SqlStorage, opts: { channels?: string[]; erase?: (channelId: string) => ErasureProgress } = {}) {
  const calls: string[] = [];
  let clock = 1_000;
  let wiped = false;
  const wakes: number[] = [];
  const host: ErasureHost = {
    sql,
    pushSubscriptions: new PushSubscriptions(sql),
    directory: {
      markErasing: async (userId) => void calls.push(`markErasing ${userId}`),
      record: async (_userId, step, counts) => void calls.push(`record ${step} ${JSON.stringify(counts)}`),
      finish: async (userId) => void calls.push(`finish ${userId}`),
    },
    userId: () => (wiped ? undefined : ME),
    wiped: () => wiped,
    endSessions: () => (calls.push("endSessions"), 2),
    forgetPresence: async (userId) => void calls.push(`forgetPresence ${userId}`),
    channelIds: () => opts.channels ?? [],
    eraseInChannel: async (channelId, userId, limit) => {
      calls.push(`erase ${channelId} ${userId} ${limit}`);
      return opts.erase?.(channelId) ?? { done: true, tombstoned: 1, attachments: 0 };
    },
    deleteAvatar: async (userId) => void calls.push(`deleteAvatar ${userId}`),
    wipe: async () => {
      calls.push("wipe");
      wiped = true;
    },
    redrive: async (userId) => void calls.push(`redrive ${userId}`),
    waitUntil: () => {},
    wakeAt: (at) => void wakes.push(at),
    now: () => clock,
    log: () => {},
    batchSize: 50,
    redriveMs: 30_000,
  };
  return { host, calls, wakes, tick: (ms: number) => (clock += ms) };
}

async function runToEnd(erasure: AccountErasure): Promise<ErasureStep[]> {
  const steps: ErasureStep[] = [];
  for (let i = 0; i < 20; i++) {
    const r = await erasure.step();
    steps.push(r.step);
    if (r.done) return steps;
  }
  throw new Error("the job did not finish");
}

describe("AccountErasure", () => {
  it("ends the sessions at start, then runs devices, one call per channel in id order, avatar and wipe", async () => {
    await inFreshUser(async (sql) => {
      const devices = new Devices(sql);
      devices.register("phone", "", "", new Set());
      devices.register("laptop", "", "", new Set());
      devices.recordDelivered("phone", "c1", 3);
      const { host, calls, wakes } = recordingHost(sql, { channels: ["c_b", "c_a"] });
      const erasure = new AccountErasure(host);
      expect(await erasure.step()).toEqual({ done: true, step: "done" }); // no job yet
      const started = erasure.start();
      expect(started).toMatchObject({ created: true, state: { step: "devices", counts: { sessions: 2 } } });
      expect(erasure.start().created).toBe(false);
      expect(wakes[0]).toBe(1_000 + 30_000);

      expect(await runToEnd(erasure)).toEqual(["channels", "channels", "channels", "avatar", "wipe", "done"]);
      expect(sql.exec("SELECT * FROM devices").toArray()).toEqual([]);
      expect(sql.exec("SELECT * FROM device_cursors").toArray()).toEqual([]);
      expect(calls.filter((c) => !c.startsWith("record"))).toEqual([
        "endSessions", "endSessions",
        `markErasing ${ME}`, `forgetPresence ${ME}`,
        `erase c_a ${ME} 50`, `erase c_b ${ME} 50`,
        `deleteAvatar ${ME}`, `finish ${ME}`, "wipe",
      ]);
      expect(calls.at(-3)).toBe(`record wipe ${JSON.stringify({ sessions: 2, devices: 2, channels: 2, messages: 2, attachments: 0 })}`);
      // Wiped: a late (duplicate) call finds nothing to do.
      expect(await erasure.step()).toEqual({ done: true, step: "done" });
    });
  });

  it("stays on a channel until its call is done, and counts each channel once however often it is called", async () => {
    await inFreshUser(async (sql) => {
      let left = 3;
      const { host, calls } = recordingHost(sql, {
        channels: ["c1"],
        erase: () => (left-- > 1 ? { done: false, tombstoned: 50, attachments: 0 } : { done: true, tombstoned: 7, attachments: 2 }),
      });
      const erasure = new AccountErasure(host);
      erasure.start();
      await erasure.step(); // devices
      expect(erasure.state()?.step).toBe("channels");
      await erasure.step();
      await erasure.step();
      expect(erasure.state()).toMatchObject({ step: "channels", channel_cursor: "", counts: { channels: 0, messages: 100 } });
      await erasure.step();
      expect(erasure.state()).toMatchObject({ step: "channels", channel_cursor: "c1", counts: { channels: 1, messages: 107, attachments: 2 } });
      expect(calls.filter((c) => c.startsWith("erase"))).toHaveLength(3);
      await erasure.step();
      expect(erasure.state()?.step).toBe("avatar");
    });
  });

  it("a duplicate step that ran alongside does not count the channel twice", async () => {
    await inFreshUser(async (sql) => {
      let erasure!: AccountErasure;
      const { host } = recordingHost(sql, {
        channels: ["c1"],
        // The other message's step finished this channel while this call was out.
        erase: () => {
          erasure.job.advance("channels", "c1", { channels: 1 }, 2_000);
          return { done: true, tombstoned: 0, attachments: 0 };
        },
      });
      erasure = new AccountErasure(host);
      erasure.start();
      await erasure.step();
      await erasure.step();
      expect(erasure.state()).toMatchObject({ step: "channels", channel_cursor: "c1", counts: { channels: 1 } });
    });
  });

  it("the alarm sends the queue message again only for a job that stood still for the re-drive interval", async () => {
    await inFreshUser(async (sql) => {
      const { host, calls, tick } = recordingHost(sql);
      const erasure = new AccountErasure(host);
      expect(erasure.onAlarm(host.now(), ME)).toBeUndefined(); // no job
      erasure.start();
      tick(10_000);
      expect(erasure.onAlarm(host.now(), ME)).toBe(host.now() + 30_000);
      expect(calls).not.toContain(`redrive ${ME}`);
      tick(25_000);
      erasure.onAlarm(host.now(), ME);
      expect(calls).toContain(`redrive ${ME}`);
      expect(erasure.onAlarm(host.now(), undefined)).toBeUndefined(); // no one here any more
    });
  });
});
