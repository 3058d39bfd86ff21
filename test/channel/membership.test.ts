/**
 * Membership on its own: the members table (ids only), roles, the not-found/not-member rule,
 * hand-over, paging, and the versions the notice pump works from.
 */
import { describe, expect, it } from "vitest";
import { Membership, uniqueIds } from "../../durable-objects/channel/membership.js";
import { inFreshChannel } from "../helpers/object-sql.js";

/** A members table needs its channel row (the member count and version live there). */
function membership(sql: SqlStorage): Membership {
  sql.exec("INSERT INTO channel (id, channel_id, type, name, created_by, created_at) VALUES (1, 'c_x', 'group', 'T', 'u_alice', 0)");
  const m = new Membership(sql);
  m.load();
  return m;
}

const pending = (sql: SqlStorage) =>
  sql.exec<{ user_id: string; version: number }>("SELECT user_id, version FROM members WHERE notified = 0 ORDER BY version").toArray();

describe("Membership", () => {
  it("lets only the owner and admins of a broadcast channel post; everyone posts elsewhere", async () => {
    await inFreshChannel((sql) => {
      const m = membership(sql);
      m.add("u_alice", "owner", 1, 0);
      m.add("u_bob", "member", 2, 0);
      expect(m.requirePoster("broadcast", "u_alice")).toBeUndefined();
      expect(m.requirePoster("broadcast", "u_bob")).toMatchObject({ ok: false, code: "forbidden" });
      expect(m.requirePoster("group", "u_bob")).toBeUndefined();
      expect(m.requirePoster("dm", "u_bob")).toBeUndefined();
    });
  });

  it("tells a stranger the channel does not exist and a former member that they left", async () => {
    await inFreshChannel((sql) => {
      const m = membership(sql);
      m.add("u_alice", "owner", 1, 0);
      m.add("u_bob", "member", 2, 0);
      expect(m.require("u_alice")).toBeUndefined();
      expect(m.require("u_carol")).toMatchObject({ ok: false, code: "not_found" });
      m.remove("u_bob", 3);
      expect(m.has("u_bob")).toBe(false);
      expect(m.require("u_bob")).toMatchObject({ ok: false, code: "not_member", retryable: false });
      expect(m.size).toBe(1);
    });
  });

  it("answers membership and the first ids without SQL between changes, and afresh after each", async () => {
    await inFreshChannel((sql) => {
      let reads = 0;
      const counted = { exec: (query: string, ...args: unknown[]) => { if (query.startsWith("SELECT")) reads++; return sql.exec(query, ...args); } } as SqlStorage;
      const m = membership(counted);
      m.add("u_alice", "owner", 1, 0);
      m.add("u_bob", "member", 2, 0);
      expect([m.require("u_bob"), m.firstIds(50)]).toEqual([undefined, ["u_alice", "u_bob"]]);
      const before = reads;
      for (let i = 0; i < 100; i++) expect([m.require("u_bob"), m.firstIds(50)]).toEqual([undefined, ["u_alice", "u_bob"]]);
      expect(reads).toBe(before); // a hundred messages' checks, no read
      m.remove("u_bob", 3);
      expect(m.require("u_bob")).toMatchObject({ ok: false, code: "not_member" });
      expect(m.firstIds(50)).toEqual(["u_alice"]);
      m.add("u_bob", "member", 4, 0);
      m.add("u_carol", "member", 5, 0);
      expect([m.require("u_bob"), m.firstIds(50)]).toEqual([undefined, ["u_alice", "u_bob", "u_carol"]]);
      // Rows deleted behind its back (an erased account) count once the counters are read again.
      sql.exec("DELETE FROM members WHERE user_id = 'u_carol'");
      m.load();
      expect(m.require("u_carol")).toMatchObject({ ok: false, code: "not_found" });
    });
  });

  it("starts a new member's read cursor at the seq they joined at, only moves it forward, and keeps no profile", async () => {
    await inFreshChannel((sql) => {
      const m = membership(sql);
      m.add("u_alice", "member", 1, 7);
      expect(m.get("u_alice")).toMatchObject({ last_read_seq: 7, joined_seq: 8 });
      expect(m.moveReadCursor("u_alice", 5)).toBe(false);
      expect(m.moveReadCursor("u_alice", 9)).toBe(true);
      expect(m.moveReadCursor("u_nobody", 9)).toBe(false);
      expect(sql.exec("SELECT username, display_name FROM members").toArray()).toEqual([{ username: "", display_name: "" }]);
    });
  });

  it("brings a former member back with a cursor at the seq they rejoined at, never behind their old one", async () => {
    await inFreshChannel((sql) => {
      const m = membership(sql);
      m.add("u_bob", "member", 1, 0);
      m.moveReadCursor("u_bob", 4);
      m.remove("u_bob", 2);
      expect(m.add("u_bob", "member", 3, 20)).toBe(true);
      expect(m.get("u_bob")).toMatchObject({ last_read_seq: 20, joined_seq: 21 });
      expect(m.add("u_bob", "member", 4, 30)).toBe(false);
    });
  });

  it("hands ownership to the longest-standing member when the owner leaves", async () => {
    await inFreshChannel((sql) => {
      const m = membership(sql);
      m.add("u_owner", "owner", 1, 0);
      m.add("u_late", "member", 20, 0);
      m.add("u_early", "member", 10, 0);
      m.remove("u_owner", 30);
      expect(m.get("u_early")?.role).toBe("owner");
      expect(m.isAdmin("u_early")).toBe(true);
      expect(m.get("u_late")?.role).toBe("member");
      const reloaded = new Membership(sql);
      reloaded.load();
      expect(reloaded.size).toBe(2);
    });
  });

  it("hands ownership to the longest-standing admin before any plain member", async () => {
    await inFreshChannel((sql) => {
      const m = membership(sql);
      m.add("u_owner", "owner", 1, 0);
      m.add("u_subscriber", "member", 2, 0);
      m.add("u_admin_late", "admin", 30, 0);
      m.add("u_admin", "admin", 20, 0);
      m.remove("u_owner", 40);
      expect([m.get("u_admin")?.role, m.get("u_admin_late")?.role, m.get("u_subscriber")?.role]).toEqual(["owner", "admin", "member"]);
    });
  });

  it("pages members in the order they joined, with a cursor, skipping those who left", async () => {
    await inFreshChannel((sql) => {
      const m = membership(sql);
      for (let i = 0; i < 7; i++) m.add(`u_${i}`, i === 0 ? "owner" : "member", i, 0);
      m.remove("u_3", 10);
      const seen: string[] = [];
      let cursor = "";
      let pages = 0;
      do {
        const page = m.page(cursor, 2);
        seen.push(...page.members.map((x) => x.user_id));
        cursor = page.next_cursor;
        pages++;
      } while (cursor !== "");
      expect(seen).toEqual(["u_0", "u_1", "u_2", "u_4", "u_5", "u_6"]);
      expect(pages).toBe(3);
      expect(m.page("", 100).members[0]).toEqual({ user_id: "u_0", role: "owner", joined_at: 0, last_read_seq: 0 });
      expect(m.page("not a cursor", 2).members.map((x) => x.user_id)).toEqual(["u_0", "u_1"]);
      expect(m.firstIds(3)).toEqual(["u_0", "u_1", "u_2"]);
    });
  });

  it("gives every change the channel's next version and marks the member for a notice", async () => {
    await inFreshChannel((sql) => {
      const m = membership(sql);
      m.add("u_a", "owner", 1, 0);
      m.add("u_b", "member", 1, 0);
      m.remove("u_b", 2);
      expect(pending(sql)).toEqual([{ user_id: "u_a", version: 1 }, { user_id: "u_b", version: 3 }]);
      expect(m.versionOf("u_b")).toBe(3);
      const reloaded = new Membership(sql);
      reloaded.load();
      reloaded.add("u_c", "member", 3, 0);
      expect(reloaded.versionOf("u_c")).toBe(4);
    });
  });

  it("keeps the first of repeated ids", () => {
    expect(uniqueIds(["u_a", "u_b", "u_a"])).toEqual(["u_a", "u_b"]);
  });
});
