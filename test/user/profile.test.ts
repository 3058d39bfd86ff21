/** The profile row on its own (durable-objects/user/profile.ts): written once, renamed, repaired. */
import { describe, expect, it } from "vitest";
import { initProfile, readProfile, renameProfile, repairJurisdiction, verifyPlacement, writeProfile } from "../../durable-objects/user/profile.js";
import { newId } from "../../shared/ids.js";
import { inFreshUser } from "../helpers/object-sql.js";

describe("profile row", () => {
  it("is written once at registration; a second write changes only the display name", async () => {
    await inFreshUser((sql) => {
      expect(readProfile(sql)).toBeUndefined();
      const first = writeProfile(sql, { user_id: "u_1", username: "alice", display_name: "Alice", jurisdiction: "eu" }, 1);
      expect(first).toEqual({ user_id: "u_1", username: "alice", display_name: "Alice", jurisdiction: "eu" });
      const again = writeProfile(sql, { user_id: "u_2", username: "mallory", display_name: "Alice L.", jurisdiction: "" }, 2);
      expect(again).toEqual({ user_id: "u_1", username: "alice", display_name: "Alice L.", jurisdiction: "eu" });
      expect(renameProfile(sql, again, "A.")).toEqual({ ...again, display_name: "A." });
      expect(readProfile(sql)?.display_name).toBe("A.");
    });
  });

  it("repairs a jurisdiction an older release left empty, in the row and the object held", async () => {
    await inFreshUser((sql) => {
      const profile = writeProfile(sql, { user_id: "u_1", username: "alice", display_name: "Alice", jurisdiction: "" }, 1);
      repairJurisdiction(sql, profile, "eu");
      expect(profile.jurisdiction).toBe("eu");
      expect(readProfile(sql)?.jurisdiction).toBe("eu");
    });
  });

  it("on wake: repaired where its id and the instance agree, checked against where the instance was reached otherwise", async () => {
    await inFreshUser((sql) => {
      const checked: [string, string][] = [];
      const placement = (reached: string | undefined, ok = true) => ({
        reached: reached as never,
        verify: (_self: object, stored: string, id: string) => (checked.push([stored, id]), ok),
      });
      const id = newId("u", "eu");
      const profile = writeProfile(sql, { user_id: id, username: "alice", display_name: "Alice", jurisdiction: "" }, 1);
      verifyPlacement(sql, {}, placement("fedramp"), profile);
      expect(readProfile(sql)?.jurisdiction).toBe("");
      verifyPlacement(sql, {}, placement("eu"), profile);
      expect(readProfile(sql)?.jurisdiction).toBe("eu");
      expect(checked).toEqual([["eu", id], ["", id], ["eu", id], ["eu", id]]);
      // A mismatch on the id stops the second check (the object is marked misplaced already).
      checked.length = 0;
      verifyPlacement(sql, {}, placement("eu", false), profile);
      expect(checked).toEqual([["eu", id]]);
    });
  });

  it("registration writes a profile only where its id and this instance agree", async () => {
    await inFreshUser((sql) => {
      const checked: [string, string | undefined][] = [];
      const placement = (refuse: string) => ({
        require: (jurisdiction: string, _id: string, against?: string) => {
          checked.push([jurisdiction, against]);
          if (jurisdiction === refuse) throw new Error("misplaced");
        },
      });
      const id = newId("u", "eu");
      expect(() => initProfile(sql, placement("eu"), { user_id: id, username: "a", display_name: "A", jurisdiction: "eu" }, 1)).toThrow("misplaced");
      expect(readProfile(sql)).toBeUndefined();
      expect(initProfile(sql, placement(""), { user_id: id, username: "a", display_name: "A", jurisdiction: "eu" }, 1)).toMatchObject({ user_id: id, jurisdiction: "eu" });
      // Checked against where the instance was reached, then against the id's own jurisdiction.
      expect(checked.slice(1)).toEqual([["eu", undefined], ["eu", "eu"]]);
    });
  });
});
