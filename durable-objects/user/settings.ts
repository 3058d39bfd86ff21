/** Per-user privacy settings (seed Q10: read receipts are the user's choice), kept in the profile row. */
import type { UserSettings } from "../../protocol/types.js";

export type { UserSettings };

export const DEFAULT_SETTINGS: Required<UserSettings> = { read_receipts: true, share_presence: true, push_previews: true };

/** The known settings in `input`; anything else is ignored so old and new clients can coexist. */
export function pickSettings(input: unknown): Partial<UserSettings> {
  const out: Partial<UserSettings> = {};
  if (typeof input !== "object" || input === null) return out;
  const v = input as Record<string, unknown>;
  if (typeof v.read_receipts === "boolean") out.read_receipts = v.read_receipts;
  if (typeof v.share_presence === "boolean") out.share_presence = v.share_presence;
  if (typeof v.push_previews === "boolean") out.push_previews = v.push_previews;
  return out;
}

export function parseSettings(json: string | undefined): Required<UserSettings> {
  try {
    return { ...DEFAULT_SETTINGS, ...pickSettings(JSON.parse(json ?? "{}")) };
  } catch {
    return { ...DEFAULT_SETTINGS };
  }
}

export function readSettings(sql: SqlStorage): Required<UserSettings> {
  const row = sql.exec<{ settings: string }>("SELECT settings FROM profile WHERE id = 1").toArray()[0];
  return parseSettings(row?.settings);
}

/** Merges the known settings in `patch` into the stored ones; returns the result. */
export function updateSettings(sql: SqlStorage, patch: unknown): Required<UserSettings> {
  const next = { ...readSettings(sql), ...pickSettings(patch) };
  sql.exec("UPDATE profile SET settings = ? WHERE id = 1", JSON.stringify(next));
  return next;
}
