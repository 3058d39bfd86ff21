/**
 * The notice pump's page as an operator setting (NOTICE_PAGE_SIZE, docs/decisions/025): the var's
 * parsing, a smaller page, and a paused pump that sends nothing, keeps every notice pending and
 * looks again a minute later; set back, it sends them. Real channel storage; the members' objects
 * are the pump's NoticeEndpoint seam, answering at once.
 */
import { describe, expect, it } from "vitest";
import { Membership } from "../../durable-objects/channel/membership.js";
import { Notices, NOTICE_PAGE, NOTICE_PAUSED_RECHECK_MS, noticePageFromEnv } from "../../durable-objects/channel/notices.js";
import type { MembershipNotice } from "../../durable-objects/channel/types.js";
import { inFreshChannel } from "../helpers/object-sql.js";

const pending = (sql: SqlStorage) => sql.exec<{ n: number }>("SELECT count(*) AS n FROM members WHERE notified = 0").one().n;

function pump(sql: SqlStorage, pageSize: number | undefined) {
  const told: string[] = [];
  const wakes: number[] = [];
  const notices = new Notices({
    sql, pageSize,
    id: () => "c_g_00000000000000000000000000",
    stateFor: (userId) => ({ channel_id: "c_g_00000000000000000000000000", member: true, user_id: userId }) as unknown as MembershipNotice["state"],
    userStub: (userId) => ({ membershipChanged: async () => { told.push(userId); } }),
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
