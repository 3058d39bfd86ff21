/**
 * A user's privacy settings (seed Q10: read receipts are the user's choice, off unless they opt
 * in), kept in the profile row. Only what the user chose is stored; everything else follows the
 * operator's defaults (`READ_RECEIPTS_DEFAULT`), so changing a default reaches every user who
 * never chose, and an explicit choice is never overwritten by one.
 *
 * `Settings` is the object's view: read, update (with the account row's `group_adds`), and the
 * "may this person add me to a group" answer.
 */
import type { GroupAdds, UserSettings } from "../../protocol/types.js";
import { fail, type Result } from "../../shared/errors.js";
import { count } from "../../shared/metrics.js";
import { GroupAddsRow, mayBeAddedBy } from "./group-adds.js";

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

export interface SettingsHost {
  sql: SqlStorage;
  /** The operator's defaults (defaultSettings(env)). */
  defaults: UserSettings;
  userId(): string | undefined;
  /** Writes `group_adds` into the user's account row in D1 (shared/group-adds-row.ts); throws when D1 fails. */
  writeGroupAdds(userId: string, policy: GroupAdds): Promise<void>;
  /** A setting changed (`share_presence` shows at once). */
  changed(): void;
  log(event: string, err: unknown): void;
}

/** The user's settings in their UserObject, with the account row's copy of `group_adds` kept in step (decision 024). */
export class Settings {
  /** The account row's copy of `group_adds` (group-adds.ts). */
  readonly groupAddsRow: GroupAddsRow;

  constructor(private readonly host: SettingsHost) {
    this.groupAddsRow = new GroupAddsRow({
      write: async (policy) => {
        // No profile, no account row to write: nobody can name this user in a group.
        const me = host.userId();
        if (me) await host.writeGroupAdds(me, policy);
      },
      current: () => this.get().group_adds ?? "everyone",
      log: (event, err) => host.log(event, err),
    });
  }

  get(): UserSettings {
    return readSettings(this.host.sql, this.host.defaults);
  }

  /**
   * Stores the settings in `patch` as the user's choices; unknown keys are ignored so old and new
   * clients can coexist. Settings not chosen keep following the operator's defaults.
   */
  async update(patch: Partial<UserSettings>): Promise<Result<{ settings: UserSettings }>> {
    const save = () => {
      const next = updateSettings(this.host.sql, patch, this.host.defaults);
      this.host.changed();
      return next;
    };
    const groupAdds = pickSettings(patch).group_adds;
    if (groupAdds === undefined) return { ok: true, settings: save() };
    // Who may add this user changes: the account row the Worker reads changes with it (024).
    const settings = await this.groupAddsRow.change(groupAdds, save);
    if (!settings) return fail("unavailable", "Your settings could not be saved just now; nothing changed. Try again shortly.", 1000);
    return { ok: true, settings };
  }

  /**
   * May `adderId` add this user to a group? Everyone may, unless the user chose `group_adds:
   * "contacts"`: then only someone they share a channel with (`adderChannelIds`: the adder's).
   * `listed` is what the account row says, when the Worker passes it: a wrong row is put right.
   */
  mayBeAddedBy(adderId: string, adderChannelIds: string[], listed?: GroupAdds | null): boolean {
    count("user.group_adds_asked");
    // The Worker asked because the account row does not say "everyone": put it right if it is wrong.
    if (listed !== undefined) this.groupAddsRow.reconcile(listed === "everyone" || listed === "contacts" ? listed : null);
    if (adderId === this.host.userId()) return true;
    return mayBeAddedBy(this.host.sql, this.get().group_adds, Array.isArray(adderChannelIds) ? adderChannelIds : []);
  }
}
