/** Membership on its own: the members table, roles, the not-found/not-member rule, hand-over. */
import { describe, expect, it } from "vitest";
import { Membership, uniqueProfiles } from "../../durable-objects/channel/membership.js";
import { inFreshChannel } from "../helpers/object-sql.js";

const p = (name: string) => ({ user_id: `u_${name}`, username: name, display_name: name.toUpperCase() });

describe("Membership", () => {
  it("tells a stranger the channel does not exist and a former member that they left", async () => {
    await inFreshChannel((sql) => {
      const m = new Membership(sql);
      m.add(p("alice"), "owner", 1, 0);
      m.add(p("bob"), "member", 2, 0);
      expect(m.require("u_alice")).toBeUndefined();
      expect(m.require("u_carol")).toMatchObject({ ok: false, code: "not_found" });
      m.remove("u_bob", 3);
      expect(m.has("u_bob")).toBe(false);
      expect(m.require("u_bob")).toMatchObject({ ok: false, code: "not_member", retryable: false });
      expect(m.size).toBe(1);
    });
  });

  it("starts a new member's read cursor at the seq they joined at, and only moves it forward", async () => {
    await inFreshChannel((sql) => {
      const m = new Membership(sql);
      m.add(p("alice"), "member", 1, 7);
      expect(m.get("u_alice")?.last_read_seq).toBe(7);
      expect(m.moveReadCursor("u_alice", 5)).toBe(false);
      expect(m.moveReadCursor("u_alice", 9)).toBe(true);
      expect(m.moveReadCursor("u_nobody", 9)).toBe(false);
      const reloaded = new Membership(sql);
      reloaded.load();
      expect(reloaded.get("u_alice")?.last_read_seq).toBe(9);
    });
  });

  it("brings a returning member back with their old read cursor", async () => {
    await inFreshChannel((sql) => {
      const m = new Membership(sql);
      m.add(p("alice"), "member", 1, 0);
      m.moveReadCursor("u_alice", 4);
      m.remove("u_alice", 2);
      m.add(p("alice"), "member", 3, 10);
      expect(m.get("u_alice")).toMatchObject({ role: "member", joined_at: 3, last_read_seq: 4 });
      expect(m.require("u_alice")).toBeUndefined();
    });
  });

  it("hands a group whose owner leaves to the longest-standing member, in memory and in the table", async () => {
    await inFreshChannel((sql) => {
      const m = new Membership(sql);
      m.add(p("owner"), "owner", 1, 0);
      m.add(p("late"), "member", 30, 0);
      m.add(p("early"), "admin", 20, 0);
      expect(m.isAdmin("u_early")).toBe(true);
      expect(m.isAdmin("u_late")).toBe(false);
      m.remove("u_owner", 40);
      expect(m.get("u_early")?.role).toBe("owner");
      const reloaded = new Membership(sql);
      reloaded.load();
      expect(reloaded.list().map((x) => [x.user_id, x.role]).sort()).toEqual([["u_early", "owner"], ["u_late", "member"]]);
      expect(reloaded.profiles().map((x) => x.display_name).sort()).toEqual(["EARLY", "LATE"]);
    });
  });

  it("keeps the first profile of a user given twice", () => {
    expect(uniqueProfiles([p("a"), { ...p("a"), display_name: "other" }, p("b")]).map((x) => x.display_name)).toEqual(["A", "B"]);
  });
});
