/**
 * The notice pump's page as an operator setting (NOTICE_PAGE_SIZE, docs/decisions/025): the var's
 * parsing, a smaller page, and a paused pump that sends nothing, keeps every notice pending and
 * looks again a minute later; set back, it sends them. What a page writes (docs/decisions/030):
 * one statement marks its told members, whatever the page's size; a member whose call failed stays
 * pending with a later retry. Real channel storage; the members' objects are the pump's
 * NoticeEndpoint seam, answering at once (or failing).
 */
import { describe, expect, it } from "vitest";
import { countedSql } from "../../durable-objects/counted-sql.js";
import { Membership } from "../../durable-objects/channel/membership.js";
import { Notices, NOTICE_PAGE, NOTICE_PAUSED_RECHECK_MS, noticePageFromEnv } from "../../durable-objects/channel/notices.js";
import type { MembershipNotice } from "../../durable-objects/channel/types.js";
import { memoryRecorder, recordMetricsWith } from "../../shared/metrics.js";
import { inFreshChannel } from "../helpers/object-sql.js";

const pending = (sql: SqlStorage) => sql.exec<{ n: number }>("SELECT count(*) AS n FROM members WHERE notified = 0").one().n;

function pump(sql: SqlStorage, pageSize: number | undefined, failing: ReadonlySet<string> = new Set()) {
  const told: string[] = [];
  const wakes: number[] = [];
  const notices = new Notices({
    sql, pageSize,
    id: () => "c_g_00000000000000000000000000",
    stateFor: (userId) => ({ channel_id: "c_g_00000000000000000000000000", member: true, user_id: userId }) as unknown as MembershipNotice["state"],
    userStub: (userId) => ({
      membershipChanged: async () => {
        if (failing.has(userId)) throw new Error("unreachable");
        told.push(userId);
      },
    }),
    wakeAt: (at) => wakes.push(at),
  });
  return { notices, told, wakes };
}

function members(sql: SqlStorage, n: number): void {
  new Membership(sql).addMany(Array.from({ length: n }, (_, i) => `u_${i}`), "member", Date.now() - 1, 0);
}

describe("NOTICE_PAGE_SIZE", () => {
  it("defaults to 100 and falls back to it for values that are not an integer in 0..1,000", () => {
    expect(NOTICE_PAGE).toBe(100);
    for (const v of [undefined, "", " ", "-1", "1.5", "abc", "1001"]) expect(noticePageFromEnv({ NOTICE_PAGE_SIZE: v })).toBe(NOTICE_PAGE);
    expect(noticePageFromEnv({ NOTICE_PAGE_SIZE: "0" })).toBe(0);
    expect(noticePageFromEnv({ NOTICE_PAGE_SIZE: "25" })).toBe(25);
  });

  it("sends at most one page per tick", async () => {
    await inFreshChannel(async (sql) => {
      members(sql, 7);
      const { notices, told } = pump(sql, 3);
      await notices.kick();
      expect(told).toHaveLength(3);
      expect(pending(sql)).toBe(4);
    });
  });

  it("paused, sends nothing, keeps the notices pending and looks again a minute later; resumed, sends them", async () => {
    await inFreshChannel(async (sql) => {
      members(sql, 5);
      const paused = pump(sql, 0);
      const before = Date.now();
      await paused.notices.kick();
      expect(paused.told).toEqual([]);
      expect(pending(sql)).toBe(5);
      expect(paused.wakes.length).toBeGreaterThan(0);
      expect(Math.min(...paused.wakes)).toBeGreaterThanOrEqual(before + NOTICE_PAUSED_RECHECK_MS);
      expect(paused.notices.nextDue()).toBeGreaterThanOrEqual(before + NOTICE_PAUSED_RECHECK_MS);

      const resumed = pump(sql, undefined);
      expect(resumed.notices.nextDue()).toBeLessThanOrEqual(Date.now());
      await resumed.notices.kick();
      expect(resumed.told.sort()).toEqual(["u_0", "u_1", "u_2", "u_3", "u_4"]);
      expect(pending(sql)).toBe(0);
      expect(resumed.notices.nextDue()).toBeUndefined();
    });
  });
});

describe("what a page writes", () => {
  /** Runs one tick over counted storage: the members told and the channel's writes, by table. */
  async function countedTick(sql: SqlStorage, pageSize: number, failing: ReadonlySet<string> = new Set()) {
    const seen = memoryRecorder();
    const restore = recordMetricsWith(seen);
    try {
      const { notices, told, wakes } = pump(countedSql(sql, "channel"), pageSize, failing);
      await notices.kick();
      return { told, wakes, memberWrites: seen.total("sql.write", { object: "channel", table: "members" }), rpcs: seen.total("notice.rpc") };
    } finally {
      restore();
    }
  }

  it("marks a page's told members in one statement, at any page size", async () => {
    for (const size of [1, 10, 100]) {
      await inFreshChannel(async (sql) => {
        members(sql, size);
        const { told, memberWrites, rpcs } = await countedTick(sql, size);
        expect(told).toHaveLength(size);
        expect(rpcs).toBe(size);
        expect(memberWrites).toBe(1);
        expect(pending(sql)).toBe(0);
      });
    }
  });

  it("keeps a member whose call failed pending, with a later retry, and marks the others; the retry tells only that member", async () => {
    await inFreshChannel(async (sql) => {
      members(sql, 5);
      const before = Date.now();
      const first = await countedTick(sql, 10, new Set(["u_3"]));
      expect(first.told.sort()).toEqual(["u_0", "u_1", "u_2", "u_4"]);
      // One statement for the four told, one for the retry of the fifth.
      expect(first.memberWrites).toBe(2);
      const row = sql.exec<{ notified: number; notice_attempts: number; notice_at: number }>(
        "SELECT notified, notice_attempts, notice_at FROM members WHERE user_id = 'u_3'",
      ).one();
      expect(row).toMatchObject({ notified: 0, notice_attempts: 1 });
      expect(row.notice_at).toBeGreaterThan(before);
      expect(Math.min(...first.wakes)).toBe(row.notice_at);

      sql.exec("UPDATE members SET notice_at = 0 WHERE user_id = 'u_3'");
      const retry = await countedTick(sql, 10);
      expect(retry.told).toEqual(["u_3"]);
      expect(pending(sql)).toBe(0);
    });
  });

  it("marks only the version it told: a change made during the page stays pending", async () => {
    await inFreshChannel(async (sql) => {
      members(sql, 2);
      const told: string[] = [];
      const notices = new Notices({
        sql, pageSize: 10,
        id: () => "c_g_00000000000000000000000000",
        stateFor: (userId) => ({ channel_id: "c_g_00000000000000000000000000", member: true, user_id: userId }) as unknown as MembershipNotice["state"],
        userStub: (userId) => ({
          membershipChanged: async () => {
            told.push(userId);
            // u_1 leaves while its join is being told: the leave is a newer version.
            if (userId === "u_1") sql.exec("UPDATE members SET left_at = ?, version = version + 1, notified = 0 WHERE user_id = 'u_1'", Date.now());
          },
        }),
        wakeAt: () => {},
      });
      await notices.kick();
      expect(told.sort()).toEqual(["u_0", "u_1"]);
      expect(sql.exec<{ user_id: string }>("SELECT user_id FROM members WHERE notified = 0").toArray().map((r) => r.user_id)).toEqual(["u_1"]);
    });
  });
});
