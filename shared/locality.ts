/**
 * The locality policy: every decision about where edgechat keeps data is made here, from ids.
 * User and channel ids carry their jurisdiction (shared/ids.ts), so any code holding an id knows
 * where its object lives without a lookup; this module decides which jurisdiction a new object
 * gets and who may be placed where. docs/decisions/016-locality-policy.md explains the rules.
 *
 * Rules, in one place:
 * - A user is *pinned* to "eu" or "fedramp" when they registered there; "" (global) pins nothing.
 * - A DM lives in the jurisdiction of whichever member is pinned (the stricter one), so both
 *   sides get the same conversation whoever opens it. Two users pinned to different jurisdictions
 *   cannot share a DM.
 * - A group or broadcast channel lives where every pinned member's data may live: the one
 *   jurisdiction its pinned members share, or the creator's when nobody is pinned.
 * - A pinned user may join only channels in their own jurisdiction; a global user may join any.
 * - An object refuses to serve when the jurisdiction it stored differs from the one in the id it
 *   was reached by: that would mean data crossed a boundary.
 */
import { fail, type Failure } from "./errors.js";
import { parseId, type Jurisdiction } from "./ids.js";

export type Placement = { ok: true; jurisdiction: Jurisdiction } | Failure;

/** Where a user's data must stay ("" = anywhere). */
export function jurisdictionOf(id: string): Jurisdiction {
  const parsed = parseId(id);
  if (!parsed) throw new TypeError(`Not an edgechat id: ${String(id).slice(0, 40)}`);
  return parsed.jurisdiction;
}

const label = (j: Jurisdiction) => (j === "" ? "global" : j);

/** The one jurisdiction all of `userIds` may be stored in, or a conflict naming the two pins. */
function shared(userIds: readonly string[], fallback: Jurisdiction): Placement {
  let pinned: Jurisdiction = "";
  for (const id of userIds) {
    const j = jurisdictionOf(id);
    if (j === "") continue;
    if (pinned !== "" && pinned !== j) {
      const [x, y] = [label(pinned), label(j)].sort();
      return fail("jurisdiction_conflict", `Members whose data must stay in ${x} and in ${y} cannot share a conversation.`);
    }
    pinned = j;
  }
  return { ok: true, jurisdiction: pinned === "" ? fallback : pinned };
}

/** The DM between `a` and `b`: the same jurisdiction from either side. */
export function placeDm(a: string, b: string): Placement {
  return shared([a, b], "");
}

/** A new group or broadcast channel created by `creator` with `members`. */
export function placeChannel(creator: string, members: readonly string[]): Placement {
  return shared([creator, ...members], jurisdictionOf(creator));
}

/** Whether `userId` may become a member of `channelId`: their data must be allowed to live there. */
export function mayJoin(channelId: string, userId: string): boolean {
  const user = jurisdictionOf(userId);
  return user === "" || user === jurisdictionOf(channelId);
}

/** The refusal for users `mayJoin` said no to. */
export function cannotJoin(channelId: string, userIds: readonly string[]): Failure {
  return fail("jurisdiction_conflict",
    `${userIds.join(", ")} must keep their data in ${label(jurisdictionOf(userIds[0]!))}; this channel is stored in ${label(jurisdictionOf(channelId))}.`);
}

/**
 * Checked by an object on wake: the jurisdiction it stored when it was created against the one in
 * the id it was reached by. A mismatch is a routing bug that would move data across a boundary.
 */
export function storedMatches(objectId: string, stored: string): boolean {
  return stored === jurisdictionOf(objectId);
}
