/** Human-readable text for membership notices ("alice added bob and carol"). */
import type { MemberProfile } from "./types.js";

function names(profiles: MemberProfile[]): string {
  const list = profiles.map((p) => p.display_name || p.username);
  if (list.length <= 1) return list[0] ?? "nobody";
  if (list.length <= 3) return `${list.slice(0, -1).join(", ")} and ${list.at(-1)}`;
  return `${list.slice(0, 2).join(", ")} and ${list.length - 2} others`;
}

export function systemText(event: string, actor: MemberProfile, targets: MemberProfile[], channelName?: string): string {
  const who = actor.display_name || actor.username;
  switch (event) {
    case "created":
      return channelName ? `${who} created the group "${channelName}"` : `${who} started the conversation`;
    case "member_added":
      return `${who} added ${names(targets)}`;
    case "member_removed":
      return `${who} removed ${names(targets)}`;
    case "member_left":
      return `${who} left`;
    default:
      return `${who} changed the channel`;
  }
}
