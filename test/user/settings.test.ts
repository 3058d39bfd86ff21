/**
 * The user's settings in their object (durable-objects/user/settings.ts `Settings`) over real
 * SQLite with a recording account-row writer: defaults, choices kept, and `group_adds` written to
 * the row in the order decision 024 needs (a failed row write saves nothing).
 */
import { describe, expect, it } from "vitest";
import { defaultSettings, Settings } from "../../durable-objects/user/settings.js";
import { writeProfile } from "../../durable-objects/user/profile.js";
import { inFreshUser } from "../helpers/object-sql.js";

function setup(sql: SqlStorage, rowWrite: (policy: string) => Promise<void>) {
  writeProfile(sql, { user_id: "u_me", username: "me", display_name: "Me", jurisdiction: "" }, 1);
  const events: string[] = [];
  const settings = new Settings({
    sql,
    defaults: defaultSettings({ READ_RECEIPTS_DEFAULT: "on" }),
    userId: () => "u_me",
    writeGroupAdds: async (_userId, policy) => {
      events.push(`row ${policy}`);
      await rowWrite(policy);
    },
    changed: () => void events.push("changed"),
    log: (event) => void events.push(event),
  });
  return { settings, events };
}

describe("Settings", () => {
  it("follows the operator's defaults until the user chooses, and keeps a choice", async () => {
    await inFreshUser(async (sql) => {
      const { settings, events } = setup(sql, async () => {});
      expect(settings.get()).toEqual({ read_receipts: true, share_presence: true, push_previews: true, group_adds: "everyone" });
      expect(await settings.update({ read_receipts: false, bogus: 1 } as never)).toMatchObject({ ok: true, settings: { read_receipts: false } });
      expect(settings.get().read_receipts).toBe(false);
      expect(events).toEqual(["changed"]);
    });
  });

  it("group_adds: the row first on the way to contacts (a failed write saves nothing), the object first on the way back", async () => {
    await inFreshUser(async (sql) => {
      let fail = true;
      const { settings, events } = setup(sql, async () => {
        if (fail) throw new Error("D1 down");
      });
      expect(await settings.update({ group_adds: "contacts" })).toMatchObject({ ok: false, code: "unavailable" });
      expect(settings.get().group_adds).toBe("everyone");
      fail = false;
      expect(await settings.update({ group_adds: "contacts" })).toMatchObject({ ok: true, settings: { group_adds: "contacts" } });
      expect(await settings.update({ group_adds: "everyone" })).toMatchObject({ ok: true });
      expect(events).toEqual(["row contacts", "group_adds.row_write_failed", "row contacts", "changed", "changed", "row everyone"]);
    });
  });

  it("with group_adds contacts, only someone who shares a channel (or the user) may add them", async () => {
    await inFreshUser(async (sql) => {
      const { settings } = setup(sql, async () => {});
      await settings.update({ group_adds: "contacts" });
      sql.exec("INSERT INTO channels (channel_id, type, name, left) VALUES ('c_shared', 'dm', '', 0)");
      expect(settings.mayBeAddedBy("u_me", [])).toBe(true);
      expect(settings.mayBeAddedBy("u_bob", ["c_other"])).toBe(false);
      expect(settings.mayBeAddedBy("u_bob", ["c_other", "c_shared"])).toBe(true);
    });
  });
});
