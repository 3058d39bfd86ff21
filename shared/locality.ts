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
 * The jurisdiction an object was reached in, read from its own DurableObjectId inside the object.
 *
 * Simulated (`JURISDICTIONS = "simulated"`: local dev, tests): the `eu/` or `fedramp/` prefix of
 * the name shared/routing.ts gave it, "" without one.
 *
 * Production: `ctx.id.jurisdiction`, which the runtime sets for objects made through
 * `namespace.jurisdiction(j)` (Cloudflare changelog, 2026-03-26). It is undefined both for the
 * plain namespace and for an object woken by an alarm scheduled before 2026-03-15, so undefined
 * proves "global" only when the object's name is a global id (`c_g_…`, `u_g_…`): an EU object
 * has an EU name. Otherwise the answer is `undefined`, and the check cannot be made: refusing
 * there would take EU objects offline over a missing label.
 */
export function reachedJurisdiction(env: { JURISDICTIONS?: string }, id: Pick<DurableObjectId, "name" | "jurisdiction">): Jurisdiction | undefined {
  if (env.JURISDICTIONS === "simulated") {
    if (id.name === undefined) return undefined;
    const prefix = /^(eu|fedramp)\//.exec(id.name)?.[1];
    return (prefix ?? "") as Jurisdiction;
  }
  if (id.jurisdiction !== undefined) return id.jurisdiction as Jurisdiction;
  return parseId(id.name)?.jurisdiction === "" ? "" : undefined;
}

/**
 * The one check every Durable Object makes (ChannelObject, UserObject, presence shards, relay
 * shards): `stored` is the jurisdiction its data belongs to (what it wrote at creation, or what
 * the id it is asked to hold names), `reached` where the runtime placed this instance. A mismatch
 * is a routing bug that would serve or write data in the wrong place: the call is refused with
 * `misplaced`. `undefined` (the id does not say) passes; durable-objects/placement.ts logs it.
 */
export function checkPlacement(stored: string, reached: Jurisdiction | undefined): Failure | undefined {
  if (reached === undefined || stored === reached) return undefined;
  return fail("misplaced",
    `This data belongs in ${label(stored as Jurisdiction)} but was reached in ${label(reached)}; edgechat refuses to serve it from the wrong place.`);
}

const TAGS: Record<Jurisdiction, string> = { "": "g", eu: "eu", fedramp: "fr" };

/**
 * For a DM the policy no longer names — created before decision 016, when a DM took its
 * creator's jurisdiction and one pair could get two (`c_eu_H` and `c_g_H`, the same pair hash
 * `H`) — the DM it does name; undefined for a DM that is canonical (or members the policy keeps
 * apart). docs/decisions/021-jurisdiction-bindings.md: the old one stays readable, read-only.
 */
export function canonicalDm(channelId: string, memberIds: readonly string[]): string | undefined {
  const [a, b] = memberIds;
  const m = /^c_(g|eu|fr)_([0-9a-z]{26})$/.exec(channelId);
  if (!m || a === undefined || b === undefined) return undefined;
  const placed = placeDm(a, b);
  if (!placed.ok) return undefined;
  const tag = TAGS[placed.jurisdiction];
  return tag === m[1] ? undefined : `c_${tag}_${m[2]}`;
}

