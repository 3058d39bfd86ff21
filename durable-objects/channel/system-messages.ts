/**
 * The text of membership notices. Notices carry user ids (`actor_user_id`, `target_user_ids`),
 * never names: clients render "Alice added Bob" from their profiles, so renames show everywhere
 * and the log holds no personal data beyond ids. `text` is a name-free fallback that reads after
 * the actor's name ("<actor> added 2 people") for clients that render nothing else.
 */
function people(n: number): string {
  return n === 1 ? "1 person" : `${n} people`;
}

export function systemText(event: string, targets: number, channelName?: string, broadcast = false): string {
  switch (event) {
    case "created":
      if (broadcast) return `created the channel "${channelName ?? ""}"`;
      return channelName ? `created the group "${channelName}"` : "started the conversation";
    case "member_joined":
      return "joined with an invite link";
    case "member_added":
      return `added ${people(targets)}`;
    case "member_removed":
      return `removed ${people(targets)}`;
    case "member_left":
      return "left";
    case "renamed":
      return channelName ? `renamed the group "${channelName}"` : "renamed the group";
    case "account_deleted":
      return "deleted their account";
    default:
      return "changed the channel";
  }
}
