/**
 * A user's privacy settings (seed Q10: read receipts are the user's choice, off unless they opt
 * in), kept in the profile row. Only what the user chose is stored; everything else follows the
 * operator's defaults (`READ_RECEIPTS_DEFAULT`), so changing a default reaches every user who
 * never chose, and an explicit choice is never overwritten by one.
 */
import type { UserSettings } from "../../protocol/types.js";

export type { UserSettings };

/** The defaults for users who did not choose: receipts off unless READ_RECEIPTS_DEFAULT is "on". */
export function defaultSettings(env: { READ_RECEIPTS_DEFAULT?: string }): UserSettings {
  return { read_receipts: env.READ_RECEIPTS_DEFAULT?.trim().toLowerCase() === "on", share_presence: true, push_previews: true, group_adds: "everyone" };
}

/** The known settings in `input`; anything else is ignored so old and new clients can coexist. */
export function pickSettings(input: unknown): Partial<UserSettings> {
  const out: Partial<UserSettings> = {};
  if (typeof input !== "object" || input === null) return out;
  const v = input as Record<string, unknown>;
  if (typeof v.read_receipts === "boolean") out.read_receipts = v.read_receipts;
  if (typeof v.share_presence === "boolean") out.share_presence = v.share_presence;
  if (typeof v.push_previews === "boolean") out.push_previews = v.push_previews;
  if (v.group_adds === "everyone" || v.group_adds === "contacts") out.group_adds = v.group_adds;
  return out;
}

/** The choices stored in the profile row (JSON). */
export function storedChoices(json: string | undefined): Partial<UserSettings> {
  try {
    return pickSettings(JSON.parse(json ?? "{}"));
  } catch {
    return {};
  }
}

/** What applies: the user's choices over the defaults. */
export function effectiveSettings(choices: Partial<UserSettings>, defaults: UserSettings): UserSettings {
  return { ...defaults, ...choices };
}

function readChoices(sql: SqlStorage): Partial<UserSettings> {
  const row = sql.exec<{ settings: string }>("SELECT settings FROM profile WHERE id = 1").toArray()[0];
  return storedChoices(row?.settings);
}

export function readSettings(sql: SqlStorage, defaults: UserSettings): UserSettings {
  return effectiveSettings(readChoices(sql), defaults);
}

/** Stores the known settings in `patch` as the user's choices; returns what now applies. */
export function updateSettings(sql: SqlStorage, patch: unknown, defaults: UserSettings): UserSettings {
  const choices = { ...readChoices(sql), ...pickSettings(patch) };
  sql.exec("UPDATE profile SET settings = ? WHERE id = 1", JSON.stringify(choices));
  return effectiveSettings(choices, defaults);
}
