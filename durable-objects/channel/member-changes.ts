/**
 * Who joins and leaves a channel, and by what right: the first members when it is created, members
 * added by owners and admins (groups),
 * subscribers added in bulk (broadcast channels, no notice, no call to anyone's UserObject),
 * removals and leaves, roles, and invite links (created, listed, revoked, previewed, used). The
 * rows are membership.ts's and invites.ts's; this module holds the rules and what each change sets
 * off: the "added"/"left" system message, the fan-out tier, the notice pump, relay leaves.
 *
 * Everything here is synchronous: a change and its system message are one turn, one commit.
 */
import { LIMITS } from "../../protocol/limits.js";
import { toWellFormed } from "../../protocol/text.js";
import { fail, type Failure, type Result } from "../../shared/errors.js";
import { count } from "../../shared/metrics.js";
import type { Invites, InviteView } from "./invites.js";
import { uniqueIds, type Membership } from "./membership.js";
import type { Sequencer } from "./sequencer.js";
import type { ChannelDetails, ChannelType, MemberProfile, MemberRole, MembershipNotice } from "./types.js";
import type { ChannelRow, ChannelViews } from "./views.js";
import type { Watchers } from "./watchers.js";

export interface CreateChannelInput {
  channelId: string;
  type: ChannelType;
  name: string;
  /** Only `user_id` is kept: the channel stores ids, never profiles. */
  creator: MemberProfile;
  members: MemberProfile[];
  jurisdiction: string;
  /** A broadcast channel's description (kept in the channel's settings). */
  description?: string;
}

export interface MemberChangesHost {
  members: Membership;
  invites: Invites;
  watchers: Watchers;
  views: ChannelViews;
  log: Sequencer;
  /** The channel row; undefined before the channel is created. */
  row(): ChannelRow | undefined;
  /** Stores the row of a channel being created and starts its log (views.ts createChannelRow). */
  open(input: CreateChannelInput, now: number): void;
  /** not_found for someone who never belonged, not_member for a former member. */
  requireMember(userId: string): Failure | undefined;
  appendSystem(actorId: string, body: { event: string; target_user_ids: string[] }, name?: string): void;
  /** Enters the relay tier when the size calls for it (tiers.ts). */
  applyTier(): void;
  /** Starts the notice pump: members told they joined or left (notices.ts). */
  kickNotices(): void;
  /** Relay shards told of watchers who left (fanout.ts). */
  tellRelays(): void;
  /** A direct watcher was removed: the fan-out stops delivering to them. */
  removedWatcher(userId: string): void;
  /** A broadcast channel's subscriber cap (LIMITS.maxBroadcastSubscribers; tests lower it). */
  subscriberCap(): number;
}

export class MemberChanges {
  private readonly members: Membership;
  private readonly watchers: Watchers;
  private readonly invites: Invites;
  private readonly views: ChannelViews;
  private readonly log: Sequencer;

  constructor(private readonly host: MemberChangesHost) {
    ({ members: this.members, watchers: this.watchers, invites: this.invites, views: this.views, log: this.log } = host);
  }

  private get channel(): ChannelRow | undefined {
    return this.host.row();
  }

  private get subscriberCap(): number {
    return this.host.subscriberCap();
  }

  /**
   * Creates the channel with its first members (the creator owns a group or broadcast channel) and
   * a "created" system message. Creating a DM that exists already returns it unchanged (`created:
   * false`): DM ids are derived from the pair. Members learn of it from the notice pump; `notice` is
   * the creator's, for the caller to pass on at once. The caller checked where the channel lives.
   */
  create(input: CreateChannelInput): Result<{ channel: ChannelDetails; created: boolean; notice: MembershipNotice }> {
    const creator = input.creator.user_id;
    if (this.channel) {
      if (this.channel.type === "dm" && input.type === "dm" && this.members.has(creator)) {
        return { ok: true, channel: this.views.details(creator), created: false, notice: this.views.noticeFor(creator) };
      }
      return fail("conflict", "This channel exists already.");
    }
    const everyone = uniqueIds([creator, ...input.members.map((p) => p.user_id)]);
    if (input.type === "dm" && everyone.length !== 2) return fail("invalid_argument", "A DM has exactly two members.");
    if (everyone.length > this.capFor(input.type)) return this.overCap(input.type);
    const now = Date.now();
    this.host.open(input, now);
    for (const userId of everyone) {
      const role: MemberRole = input.type !== "dm" && userId === creator ? "owner" : "member";
      this.members.add(userId, role, now, this.log.lastSeq);
    }
    this.host.applyTier();
    this.host.appendSystem(creator, { event: "created", target_user_ids: everyone.filter((id) => id !== creator) }, input.name);
    this.host.kickNotices();
    return { ok: true, channel: this.views.details(creator), created: true, notice: this.views.noticeFor(creator) };
  }

  /**
   * Whether `actorId` may add members here at all (a member, an owner or admin, not a DM). The API
   * asks this before it looks at the people being added, so a stranger learns nothing about them.
   */
  mayAddMembers(actorId: string): Result {
    const denied = this.host.requireMember(actorId);
    if (denied) return denied;
    if (this.channel!.type === "dm") return fail("invalid_argument", "A DM's members are fixed; create a group instead.");
    if (!this.members.isAdmin(actorId)) return fail("forbidden", "Only the group's owner and admins can add members.");
    return { ok: true };
  }

  /** Adds members (owners and admins only) with one "added" system message. */
  addMembers(actorId: string, profiles: MemberProfile[]): Result<{ channel: ChannelDetails }> {
    const may = this.mayAddMembers(actorId);
    if (!may.ok) return may;
    const added = uniqueIds(profiles.map((p) => p.user_id)).filter((id) => !this.members.has(id));
    if (this.members.size + added.length > this.capFor(this.channel!.type)) return this.overCap(this.channel!.type);
    if (added.length > 0) {
      const now = Date.now();
      for (const id of added) this.members.add(id, "member", now, this.log.lastSeq);
      // Subscribers come and go silently: a notice per join would be a post to every watcher.
      this.host.applyTier();
      if (this.channel!.type !== "broadcast") this.host.appendSystem(actorId, { event: "member_added", target_user_ids: added });
      this.host.kickNotices();
    }
    return { ok: true, channel: this.views.details(actorId) };
  }

  /** Removes a member: yourself (leave) or, for owners and admins, someone else. */
  removeMember(actorId: string, userId: string): Result<{ channel: ChannelDetails }> {
    const denied = this.host.requireMember(actorId);
    if (denied) return denied;
    const target = this.members.get(userId);
    if (!target) return fail("not_found", "That user is not a member of this channel.");
    if (this.channel!.type === "dm") return fail("invalid_argument", "A DM's members are fixed.");
    if (actorId !== userId && !this.members.isAdmin(actorId)) return fail("forbidden", "Only the group's owner and admins can remove members.");
    if (target.role === "owner" && actorId !== userId) return fail("forbidden", "The group's owner cannot be removed.");
    this.members.remove(userId, Date.now());
    // A watcher at a relay is cut off there: the relay sees the removal in a group's batch, and is
    // told of the leave once the rounds before it went out (a broadcast logs no removal).
    const atRelay = this.watchers.isAtRelay(userId);
    if (this.watchers.remove(userId) && !atRelay) this.host.removedWatcher(userId);
    const event = actorId === userId ? "member_left" : "member_removed";
    if (this.channel!.type !== "broadcast") this.host.appendSystem(actorId, { event, target_user_ids: [userId] });
    this.host.tellRelays();
    this.host.kickNotices();
    return { ok: true, channel: this.views.details(actorId) };
  }

  /**
   * The owner makes a member an admin or an admin a member again. Ownership itself moves only
   * when the owner leaves (to the longest-standing member).
   */
  setRole(actorId: string, userId: string, role: "admin" | "member"): Result<{ member: { user_id: string; role: MemberRole } }> {
    const denied = this.host.requireMember(actorId);
    if (denied) return denied;
    if (this.channel!.type === "dm") return fail("invalid_argument", "A DM has no roles.");
    if (this.members.get(actorId)?.role !== "owner") return fail("forbidden", "Only the channel's owner can change roles.");
    const target = this.members.get(userId);
    if (!target) return fail("not_found", "That user is not a member of this channel.");
    if (target.role === "owner") return fail("invalid_argument", "The owner's role cannot be changed.");
    this.members.setRole(userId, role);
    return { ok: true, member: { user_id: userId, role } };
  }

  /**
   * Adds up to LIMITS.maxBulkAdd subscribers to a broadcast channel (owners and admins) in this
   * one turn: rows in SQL, no system message, no call to anyone's UserObject. Each new subscriber
   * hears of the channel from the notice pump, ≤ NOTICE_PAGE per alarm tick, off this path.
   * Idempotent: ids that are members already are counted, not added again. All or nothing: a
   * batch that would pass the subscriber cap adds no one.
   */
  bulkAdd(actorId: string, userIds: string[]): Result<{ added: number; already: number; member_count: number }> {
    const denied = this.host.requireMember(actorId);
    if (denied) return denied;
    if (this.channel!.type !== "broadcast") return fail("invalid_argument", "Bulk adds are for broadcast channels; add group members with POST /v1/channels/{id}/members.");
    if (!this.members.isAdmin(actorId)) return fail("forbidden", "Only the channel's owner and admins can add subscribers.");
    if (userIds.length > LIMITS.maxBulkAdd) return fail("invalid_argument", `At most ${LIMITS.maxBulkAdd} user ids per call.`);
    const ids = uniqueIds(userIds);
    const fresh = ids.filter((id) => !this.members.has(id)).length;
    if (this.members.size + fresh > this.subscriberCap) return this.overCap("broadcast");
    const { added, already } = this.members.addMany(ids, "member", Date.now(), this.log.lastSeq);
    if (added.length > 0) this.host.kickNotices();
    count("channel.bulk_added", added.length);
    return { ok: true, added: added.length, already: already.length, member_count: this.members.size };
  }

  /** A new invite link (owners and admins of a group or broadcast channel). */
  createInvite(actorId: string, opts: { maxUses?: number; expiresInS?: number }): Result<{ invite: InviteView }> {
    const denied = this.requireInviteAdmin(actorId);
    if (denied) return denied;
    return this.invites.create(actorId, opts, Date.now());
  }

  /** The links that still work (owners and admins). */
  listInvites(actorId: string): Result<{ invites: InviteView[] }> {
    const denied = this.requireInviteAdmin(actorId);
    if (denied) return denied;
    return { ok: true, invites: this.invites.list(Date.now()) };
  }

  revokeInvite(actorId: string, secret: string): Result {
    const denied = this.requireInviteAdmin(actorId);
    if (denied) return denied;
    return this.invites.revoke(secret, Date.now());
  }

  /**
   * What a link leads to, for anyone holding it: the channel's name, type and size, never its
   * members. `member` says whether the caller belongs already.
   */
  previewInvite(userId: string, secret: string): Result<{ channel: { channel_id: string; name: string; type: ChannelType; member_count: number }; member: boolean }> {
    if (!this.channel) return fail("not_found", "No such invite link.");
    const usable = this.invites.check(secret, Date.now());
    if (!usable.ok) return usable;
    const c = this.channel;
    return { ok: true, channel: { channel_id: c.channel_id, name: toWellFormed(c.name), type: c.type, member_count: this.members.size }, member: this.members.has(userId) };
  }

  /**
   * Joins `userId` through a link (the Worker checked that their data may live here). Joining is
   * the user's own act, so the group's `group_adds` settings do not apply. A member already is
   * answered `joined: false` and uses nothing up. `notice` is the joiner's, for the caller to pass
   * on at once.
   */
  joinByInvite(userId: string, secret: string): Result<{ channel: ChannelDetails; joined: boolean; notice: MembershipNotice }> {
    if (!this.channel) return fail("not_found", "No such invite link.");
    const usable = this.invites.check(secret, Date.now());
    if (!usable.ok) return usable;
    if (this.members.has(userId)) return { ok: true, channel: this.views.details(userId), joined: false, notice: this.views.noticeFor(userId) };
    if (this.members.size + 1 > this.capFor(this.channel.type)) return this.overCap(this.channel.type);
    this.members.add(userId, "member", Date.now(), this.log.lastSeq);
    this.invites.use(secret);
    this.host.applyTier();
    if (this.channel.type !== "broadcast") this.host.appendSystem(userId, { event: "member_joined", target_user_ids: [userId] });
    this.host.kickNotices();
    return { ok: true, channel: this.views.details(userId), joined: true, notice: this.views.noticeFor(userId) };
  }

  private requireInviteAdmin(actorId: string): Failure | undefined {
    const denied = this.host.requireMember(actorId);
    if (denied) return denied;
    if (this.channel!.type === "dm") return fail("invalid_argument", "A DM has no invite links.");
    if (!this.members.isAdmin(actorId)) return fail("forbidden", "Only the channel's owner and admins can manage invite links.");
    return undefined;
  }

  private capFor(type: ChannelType): number {
    return type === "broadcast" ? this.subscriberCap : LIMITS.maxGroupMembers;
  }

  private overCap(type: ChannelType): Failure {
    return type === "broadcast"
      ? fail("invalid_argument", `A broadcast channel has at most ${this.subscriberCap} subscribers.`)
      : fail("invalid_argument", `A group has at most ${LIMITS.maxGroupMembers} members.`);
  }
}
