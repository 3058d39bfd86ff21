/**
 * Who may add this user to groups (the `group_adds` setting): everyone, or only people the user
 * already shares a conversation with. "Shares a conversation" = a channel in this user's list
 * that they have not left, among the adder's channels (the caller passes the adder's list).
 */
import type { GroupAdds } from "../../protocol/types.js";

/** Channel ids per `IN (...)` list: statements stay under 100 bound parameters. */
const IN_CHUNK = 90;

export function mayBeAddedBy(sql: SqlStorage, policy: GroupAdds | undefined, adderChannelIds: string[]): boolean {
  if ((policy ?? "everyone") === "everyone") return true;
  const ids = [...new Set(adderChannelIds.filter((id) => typeof id === "string"))];
  for (let i = 0; i < ids.length; i += IN_CHUNK) {
    const chunk = ids.slice(i, i + IN_CHUNK);
    const shared = sql.exec(`SELECT 1 FROM channels WHERE left = 0 AND channel_id IN (${chunk.map(() => "?").join(",")}) LIMIT 1`, ...chunk).toArray();
    if (shared.length > 0) return true;
  }
  return false;
}
