/**
 * Adding people to a group respects each one's `group_adds` setting: someone who accepts groups
 * only from people they already share a conversation with cannot be put in one by a stranger.
 * The request is refused as a whole, naming who and why, so nothing is half created.
 */
import { fail, type Failure } from "../../shared/errors.js";
import { DEADLINES, mapLimited, withDeadline } from "../../shared/deadline.js";
import { dmChannelId } from "../../shared/ids.js";
import { placeDm } from "../../shared/locality.js";
import { channelStub, userStub } from "../../shared/routing.js";
import type { MemberProfile } from "../../durable-objects/channel/types.js";
import type { GroupAdds } from "../../protocol/types.js";

/** Calls to people's objects in flight at once while checking one create or add. */
const ASK_CONCURRENCY = 16;

/**
 * Null if `adderId` may add every one of `people` to a group; else a 403 naming those who refuse.
 * `listed` is each person's policy as their account row says it (resolveProfiles): someone it
 * says allows everyone is not asked (docs/decisions/024), so a group of 1,000 people who all do
 * costs no call to their objects; the others (policy "contacts", or not known yet) are asked,
 * ASK_CONCURRENCY at a time.
 */
export async function groupAddsRefused(env: Env, adderId: string, people: MemberProfile[], listed: Map<string, GroupAdds | null>): Promise<Failure | null> {
  const others = people.filter((p) => p.user_id !== adderId && listed.get(p.user_id) !== "everyone");
  if (others.length === 0) return null;
  const adderChannels = (await withDeadline(userStub(env, adderId).listChannels(), DEADLINES.account, "channels.list")).map((c) => c.channel_id);
  const allowed = await mapLimited(others, ASK_CONCURRENCY, (p) =>
    withDeadline(userStub(env, p.user_id).mayBeAddedBy(adderId, adderChannels, listed.get(p.user_id) ?? null), DEADLINES.account, "group_adds"));
  // Channel lists are kept by fan-out, a moment behind: a DM opened just now counts too, asked of
  // the DM's own object (the one conversation two people can start without being asked).
  await mapLimited(others, ASK_CONCURRENCY, async (p, i) => {
    if (allowed[i]) return;
    const place = placeDm(adderId, p.user_id);
    if (!place.ok) return; // no DM can exist between them
    const dm = await dmChannelId(adderId, p.user_id, place.jurisdiction);
    const shared = await withDeadline(channelStub(env, dm).describe(adderId) as Promise<{ ok: boolean }>, DEADLINES.account, "group_adds.dm");
    if (shared.ok) allowed[i] = true;
  });
  const refused = others.filter((_, i) => !allowed[i]);
  if (refused.length === 0) return null;
  const names = refused.slice(0, 5).map((p) => p.username).join(", ");
  const f = fail("forbidden", `Could not add ${names}${refused.length > 5 ? ` and ${refused.length - 5} more` : ""}: they can be added to groups only by people they already have a conversation with. Send them a message first.`);
  f.userIds = refused.map((p) => p.user_id);
  return f;
}
