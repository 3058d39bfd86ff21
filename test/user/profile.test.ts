/** The profile row on its own (durable-objects/user/profile.ts): written once, renamed, repaired. */
import { describe, expect, it } from "vitest";
import { readProfile, renameProfile, repairJurisdiction, writeProfile } from "../../durable-objects/user/profile.js";
import { inFreshUser } from "../helpers/object-sql.js";

describe("profile row", () => {
  it("is written once at registration; a second write changes only the display name", async () => {
    await inFreshUser((sql) => {
      expect(readProfile(sql)).toBeUndefined();
      const first = writeProfile(sql, { user_id: "u_1", username: "alice", display_name: "Alice", jurisdiction: "eu" }, 1);
      expect(first).toEqual({ user_id: "u_1", username: "alice", display_name: "Alice", jurisdiction: "eu" });
      const again = writeProfile(sql, { user_id: "u_2", username: "mallory", display_name: "Alice L.", jurisdiction: "" }, 2);
      expect(again).toEqual({ user_id: "u_1", username: "alice", display_name: "Alice L.", jurisdiction: "eu" });
      renameProfile(sql, "A.");
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
});
