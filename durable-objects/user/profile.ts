/**
 * The user's profile row in their UserObject: id, username, display name and the jurisdiction
 * their data lives in (written once at registration; only the display name changes later), and
 * the PROFILE_UPDATE notice to the people they talk to when it changes. Channels and channel
 * lists keep ids only, so a rename shows everywhere once clients read the profile again.
 */
import { pb, type FrameInit } from "../../protocol/codec.js";
import { eachLimited, withDeadline } from "../../shared/deadline.js";
import { parseId } from "../../shared/ids.js";
import { log } from "../../shared/log.js";
import type { Placement } from "../placement.js";
import { userStub } from "../../shared/routing.js";
import { WATCH_DEADLINE_MS } from "./live-channels.js";

export type Profile = {
  user_id: string;
  username: string;
  display_name: string;
  jurisdiction: string;
};

export function readProfile(sql: SqlStorage): Profile | undefined {
  return sql.exec<Profile>("SELECT user_id, username, display_name, jurisdiction FROM profile WHERE id = 1").toArray()[0];
}

/** Registration: the row is created; a second call changes the display name only. Returns the row as stored. */
export function writeProfile(sql: SqlStorage, profile: Profile, now: number): Profile {
  sql.exec(
    `INSERT INTO profile (id, user_id, username, display_name, jurisdiction, created_at) VALUES (1, ?, ?, ?, ?, ?)
     ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name`,
    profile.user_id, profile.username, profile.display_name, profile.jurisdiction, now,
  );
  return readProfile(sql)!;
}

/**
 * Registration (UserObject.init): written only where the profile's id says, with the jurisdiction
 * its id says (placement.ts `require` throws elsewhere). Later calls change the display name only.
 */
export function initProfile(sql: SqlStorage, placement: Pick<Placement, "require">, profile: Profile, now: number): Profile {
  placement.require(profile.jurisdiction, profile.user_id);
  placement.require(profile.jurisdiction, profile.user_id, parseId(profile.user_id)?.jurisdiction);
  return writeProfile(sql, profile, now);
}

/** PATCH /v1/me: the new display name; answers the profile as now stored. */
export function renameProfile(sql: SqlStorage, profile: Profile, displayName: string): Profile {
  sql.exec("UPDATE profile SET display_name = ? WHERE id = 1", displayName);
  return { ...profile, display_name: displayName };
}

/** A profile an older release re-created with jurisdiction "" gets the one its id names. */
export function repairJurisdiction(sql: SqlStorage, profile: Profile, jurisdiction: string): void {
  sql.exec("UPDATE profile SET jurisdiction = ? WHERE id = 1", jurisdiction);
  profile.jurisdiction = jurisdiction;
}

/**
 * On wake: the profile's jurisdiction and its id's against where this instance was reached
 * (placement.ts; a mismatch marks `self` misplaced). A profile that an older release re-created
 * with jurisdiction "" in the right place (its id and this instance agree) is repaired, not
 * refused: its data never left the jurisdiction.
 */
export function verifyPlacement(sql: SqlStorage, self: object, placement: Pick<Placement, "reached" | "verify">, profile: Profile | undefined): void {
  if (!profile) return;
  const own = parseId(profile.user_id)?.jurisdiction ?? "";
  if (profile.jurisdiction === "" && own !== "" && own === placement.reached) {
    repairJurisdiction(sql, profile, own);
    log("warn", "placement.repaired", { object: "user", id: profile.user_id, stored: "", reached: own });
  }
  if (placement.verify(self, own, profile.user_id)) placement.verify(self, profile.jurisdiction, profile.user_id);
}

/** What the user's devices and contacts get when `userId` changed their profile: read it again. */
export function profileUpdate(userId: string): FrameInit {
  return { type: pb.FrameType.PROFILE_UPDATE, profile_update: { user_id: userId } };
}

/**
 * Tells each contact's UserObject that `userId` changed their profile (their devices read it
 * again), eight at a time, each call with a deadline. Best effort: their clients re-read profiles
 * after a few minutes anyway (client/profiles.ts).
 */
export function tellContacts(env: Env, userId: string, contacts: string[]): Promise<void> {
  return eachLimited(contacts.filter((id) => id !== userId), 8, async (id) => {
    try {
      await withDeadline(userStub(env, id).contactProfileChanged(userId), WATCH_DEADLINE_MS, "profile update");
    } catch (err) {
      log("warn", "profile.notify_failed", { object: "user", user_id: userId, to: id }, err);
    }
  });
}
