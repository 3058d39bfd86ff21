/**
 * The copy of each user's `group_adds` policy in their account row (docs/decisions/024), written
 * only by the user's own object (durable-objects/user/group-adds.ts says in which order) and read
 * by the Worker with the profiles, so a group create asks only the people who restrict adds.
 * NULL (accounts from before migration 0003) means "not known here": the Worker asks.
 */
import type { GroupAdds } from "../protocol/types.js";
import { accountStoreOf } from "./account-erasure.js";
import { directory } from "./bindings.js";

/**
 * Writes `policy` into the user's whole account row: in their jurisdiction's store, and in the
 * directory when the row there is whole too (an account from before the split, docs/decisions/021),
 * since the Worker reads whichever row is whole. Throws when D1 fails.
 */
export async function writeGroupAdds(env: Env, userId: string, policy: GroupAdds): Promise<void> {
  const store = accountStoreOf(env, userId);
  const dbs = store === directory(env) ? [store] : [store, directory(env)];
  for (const db of dbs) {
    await db.prepare("UPDATE accounts SET group_adds = ? WHERE user_id = ? AND password_hash != ''").bind(policy, userId).run();
  }
}
