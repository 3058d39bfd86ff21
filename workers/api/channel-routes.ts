/**
 * /v1/channels: create, list, describe, members (paged, roles, bulk adds), invite links, history,
 * message changes, read cursor.
 */
import { Hono } from "hono";
import * as z from "zod/mini";
import { LIMITS } from "../../protocol/limits.js";
import { errorResponse, fail } from "../../shared/errors.js";
import { dmChannelId, isChannelId, newId } from "../../shared/ids.js";
import { cannotJoin, mayJoin, placeChannel, placeDm } from "../../shared/locality.js";
import { channelStub, userStub } from "../../shared/routing.js";
import { channelCreationGate } from "../auth/throttle.js";
import { existingUserIds, resolveProfiles } from "./accounts.js";
import { groupAddsRefused } from "./group-adds.js";
import { send, type ApiContext, type ApiEnv } from "./app.js";
import { nameText, parseJsonBody, parseWith } from "./validation.js";
import type { MemberProfile, MembershipNotice } from "../../durable-objects/channel/types.js";
import type { GroupAdds } from "../../protocol/types.js";
import { DEFAULT_MEMBER_PAGE, MAX_MEMBER_PAGE } from "../../durable-objects/channel/membership.js";
import { inviteUrl, MAX_INVITE_TTL_S, MAX_INVITE_USES, parseInviteCode } from "../../durable-objects/channel/invites.js";
import { withDeadline } from "../../shared/deadline.js";
import { log } from "../../shared/log.js";

const MAX_DESCRIPTION_LENGTH = 500;
const memberRef = z.string().check(z.minLength(1), z.maxLength(64));
const CreateBody = z.discriminatedUnion("type", [
  z.object({ type: z.literal("dm"), member: memberRef }),
  z.object({
    type: z.literal("group"),
    name: nameText(LIMITS.maxChannelNameLength),
    members: z._default(z.array(memberRef).check(z.maxLength(LIMITS.maxGroupMembers - 1)), []),
  }),
  z.object({
    type: z.literal("broadcast"),
    name: nameText(LIMITS.maxChannelNameLength),
    description: z.optional(z.string().check(z.maxLength(MAX_DESCRIPTION_LENGTH))),
  }),
]);
const BulkBody = z.object({
  user_ids: z.array(z.string().check(z.minLength(1), z.maxLength(64))).check(z.minLength(1), z.maxLength(LIMITS.maxBulkAdd)),
});
const RoleBody = z.object({ role: z.enum(["admin", "member"]) });
const InviteBody = z.object({
  max_uses: z.optional(z.number().check(z.int(), z.minimum(1), z.maximum(MAX_INVITE_USES))),
  expires_in_s: z.optional(z.number().check(z.int(), z.minimum(60), z.maximum(MAX_INVITE_TTL_S))),
});
const MembersBody = z.object({ members: z.array(memberRef).check(z.minLength(1), z.maxLength(LIMITS.maxGroupMembers)) });
const seqParam = z.coerce.number().check(z.int(), z.minimum(0), z.maximum(Number.MAX_SAFE_INTEGER));
const HistoryQuery = z.object({
  before: z.optional(seqParam),
  after: z.optional(seqParam),
  limit: z.optional(z.coerce.number().check(z.int(), z.minimum(1), z.maximum(LIMITS.maxPageSize))),
});
const ReadBody = z.object({ up_to_seq: seqParam });
const MembersQuery = z.object({
  cursor: z.optional(z.string().check(z.maxLength(20))),
  limit: z.optional(z.coerce.number().check(z.int(), z.minimum(1), z.maximum(MAX_MEMBER_PAGE))),
});
const messageSeq = z.coerce.number().check(z.int(), z.minimum(1), z.maximum(Number.MAX_SAFE_INTEGER));
const EditBody = z.object({ text: z.string().check(z.minLength(1)) });
const SendBody = z.object({
  client_msg_id: z.string().check(z.minLength(1), z.maxLength(LIMITS.maxClientMsgIdLength)),
  content: z.record(z.string(), z.unknown()),
});
/** Bounds of retention_ms are the operator's (RETENTION_MIN_MS/MAX_MS): the channel checks them. */
const PatchBody = z.object({
  retention_ms: z.optional(z.nullable(z.number().check(z.int()))),
  name: z.optional(nameText(LIMITS.maxChannelNameLength)),
});
const DeleteQuery = z.object({ for: z._default(z.enum(["me", "everyone"]), "me") });
/** Changes made over REST come from no device socket. */
const REST_DEVICE = "";

/** Profiles for `refs`, or a 404 naming the ones that matched nobody. */
async function profiles(c: ApiContext, refs: string[]): Promise<{ ok: true; found: MemberProfile[]; groupAdds: Map<string, GroupAdds | null> } | ReturnType<typeof fail>> {
  const { found, missing, groupAdds } = await resolveProfiles(c.env, refs);
  if (missing.length > 0) return fail("not_found", `No such user: ${missing.slice(0, 5).join(", ")}.`);
  return { ok: true, found, groupAdds };
}

function channelId(c: ApiContext): string | undefined {
  const id = c.req.param("id");
  return isChannelId(id) ? id : undefined;
}

const noChannel = () => errorResponse(fail("not_found", "No such channel."));

/**
 * The creator's own list shows a new channel before the answer arrives. Everyone else (and the
 * creator again, should this call fail) hears from the channel's notice pump, off this path.
 */
export async function tellCreator(c: ApiContext, userId: string, notice: MembershipNotice): Promise<void> {
  try {
    await withDeadline(userStub(c.env, userId).membershipChanged(notice), 5000, "creator notice");
  } catch (err) {
    log("warn", "channel.creator_notice_failed", { object: "worker", user_id: userId, channel_id: notice.state.channel_id }, err);
  }
}

export const channelRoutes = new Hono<ApiEnv>()
  .post("/", async (c) => {
    const body = await parseJsonBody(c, CreateBody);
    if (!body.ok) return errorResponse(body);
    const me = c.get("auth");
    const limited = await channelCreationGate(c.env, me.userId);
    if (limited) return errorResponse(limited);
    const refs = body.value.type === "dm" ? [body.value.member] : body.value.type === "group" ? body.value.members : [];
    const resolved = await profiles(c, [me.userId, ...refs]);
    if (!resolved.ok) return errorResponse(resolved);
    const creator = resolved.found.find((p) => p.user_id === me.userId);
    if (!creator) return errorResponse(fail("unauthorized", "Your account no longer exists."));
    const others = resolved.found.filter((p) => p.user_id !== me.userId);
    if (body.value.type === "dm") {
      const other = others[0];
      if (!other) return errorResponse(fail("invalid_argument", "A DM needs another member than yourself."));
      const place = placeDm(me.userId, other.user_id);
      if (!place.ok) return errorResponse(place);
      const id = await dmChannelId(me.userId, other.user_id, place.jurisdiction);
      const r = await channelStub(c.env, id).create({ channelId: id, type: "dm", name: "", creator, members: [other], jurisdiction: place.jurisdiction });
      if (!r.ok) return errorResponse(r);
      await tellCreator(c, me.userId, r.notice);
      return c.json({ channel: r.channel }, r.created ? 201 : 200);
    }
    if (body.value.type === "broadcast") {
      // Subscribers join later, through the bulk route or an invite link.
      const place = placeChannel(me.userId, []);
      if (!place.ok) return errorResponse(place);
      const id = newId("c", place.jurisdiction);
      const r = await channelStub(c.env, id).create({
        channelId: id, type: "broadcast", name: body.value.name, creator, members: [], jurisdiction: place.jurisdiction,
        description: body.value.description ?? "",
      });
      if (!r.ok) return errorResponse(r);
      await tellCreator(c, me.userId, r.notice);
      return c.json({ channel: r.channel }, 201);
    }
    const place = placeChannel(me.userId, others.map((p) => p.user_id));
    if (!place.ok) return errorResponse(place);
    const refused = await groupAddsRefused(c.env, me.userId, others, resolved.groupAdds);
    if (refused) return errorResponse(refused);
    const id = newId("c", place.jurisdiction);
    const r = await channelStub(c.env, id).create({ channelId: id, type: "group", name: body.value.name, creator, members: others, jurisdiction: place.jurisdiction });
    if (!r.ok) return errorResponse(r);
    await tellCreator(c, me.userId, r.notice);
    return c.json({ channel: r.channel }, 201);
  })
  .get("/", async (c) => {
    const channels = await userStub(c.env, c.get("auth").userId).listChannels();
    return c.json({ channels });
  })
  .get("/:id", async (c) => {
    const id = channelId(c);
    if (!id) return noChannel();
    return send(c, await channelStub(c.env, id).describe(c.get("auth").userId));
  })
  // Channel settings: the message lifetime ("disappearing messages"; docs/decisions/019) and the name.
  .patch("/:id", async (c) => {
    const id = channelId(c);
    if (!id) return noChannel();
    const body = await parseJsonBody(c, PatchBody);
    if (!body.ok) return errorResponse(body);
    return send(c, await channelStub(c.env, id).update(c.get("auth").userId, body.value));
  })
  .get("/:id/members", async (c) => {
    const id = channelId(c);
    if (!id) return noChannel();
    const q = parseWith(MembersQuery, c.req.query());
    if (!q.ok) return errorResponse(q);
    return send(c, await channelStub(c.env, id).listMembers(c.get("auth").userId, q.value.cursor ?? "", q.value.limit ?? DEFAULT_MEMBER_PAGE));
  })
  .post("/:id/members", async (c) => {
    const id = channelId(c);
    if (!id) return noChannel();
    const body = await parseJsonBody(c, MembersBody);
    if (!body.ok) return errorResponse(body);
    // Permission first: someone who may not add members here learns nothing about the people named.
    const may = await channelStub(c.env, id).mayAddMembers(c.get("auth").userId);
    if (!may.ok) return errorResponse(may);
    const resolved = await profiles(c, body.value.members);
    if (!resolved.ok) return errorResponse(resolved);
    const pinnedElsewhere = resolved.found.filter((p) => !mayJoin(id, p.user_id)).map((p) => p.user_id);
    if (pinnedElsewhere.length > 0) return errorResponse(cannotJoin(id, pinnedElsewhere));
    const refused = await groupAddsRefused(c.env, c.get("auth").userId, resolved.found, resolved.groupAdds);
    if (refused) return errorResponse(refused);
    return send(c, await channelStub(c.env, id).addMembers(c.get("auth").userId, resolved.found));
  })
  // Up to LIMITS.maxBulkAdd user ids into a broadcast channel: counted, idempotent, all or
  // nothing; no UserObject is called on this path (the channel's notice pump tells them later).
  .post("/:id/members/bulk", async (c) => {
    const id = channelId(c);
    if (!id) return noChannel();
    const body = await parseJsonBody(c, BulkBody);
    if (!body.ok) return errorResponse(body);
    const ids = [...new Set(body.value.user_ids)];
    const known = await existingUserIds(c.env.ACCOUNTS, ids);
    const unknown = ids.filter((u) => !known.has(u));
    const allowed = [...known].filter((u) => mayJoin(id, u));
    const refused = known.size - allowed.length;
    const r = await channelStub(c.env, id).bulkAdd(c.get("auth").userId, allowed);
    if (!r.ok) return errorResponse(r);
    return c.json({ added: r.added, already: r.already, unknown: unknown.length, refused, member_count: r.member_count, unknown_user_ids: unknown.slice(0, 100) });
  })
  .patch("/:id/members/:userId", async (c) => {
    const id = channelId(c);
    if (!id) return noChannel();
    const body = await parseJsonBody(c, RoleBody);
    if (!body.ok) return errorResponse(body);
    return send(c, await channelStub(c.env, id).setRole(c.get("auth").userId, c.req.param("userId"), body.value.role));
  })
  .post("/:id/invites", async (c) => {
    const id = channelId(c);
    if (!id) return noChannel();
    const body = await parseJsonBody(c, InviteBody);
    if (!body.ok) return errorResponse(body);
    const r = await channelStub(c.env, id).createInvite(c.get("auth").userId, { maxUses: body.value.max_uses, expiresInS: body.value.expires_in_s });
    if (!r.ok) return errorResponse(r);
    return c.json({ ...r.invite, url: inviteUrl(c.req.url, r.invite.code) }, 201);
  })
  .get("/:id/invites", async (c) => {
    const id = channelId(c);
    if (!id) return noChannel();
    const r = await channelStub(c.env, id).listInvites(c.get("auth").userId);
    if (!r.ok) return errorResponse(r);
    return c.json({ invites: r.invites.map((i) => ({ ...i, url: inviteUrl(c.req.url, i.code) })) });
  })
  .delete("/:id/invites/:code", async (c) => {
    const id = channelId(c);
    if (!id) return noChannel();
    const code = parseInviteCode(c.req.param("code"));
    if (!code || code.channelId !== id) return errorResponse(fail("not_found", "No such invite link."));
    return send(c, await channelStub(c.env, id).revokeInvite(c.get("auth").userId, code.secret));
  })
  .delete("/:id/members/:userId", async (c) => {
    const id = channelId(c);
    if (!id) return noChannel();
    return send(c, await channelStub(c.env, id).removeMember(c.get("auth").userId, c.req.param("userId")));
  })
  .get("/:id/messages", async (c) => {
    const id = channelId(c);
    if (!id) return noChannel();
    const q = parseWith(HistoryQuery, c.req.query());
    if (!q.ok) return errorResponse(q);
    return send(c, await userStub(c.env, c.get("auth").userId).history(id, q.value));
  })
  // A SEND over REST (scripts, bots, uploads finished in the background): the same checks and
  // the same ack as the WebSocket SEND; a retry with the same client_msg_id is stored once.
  .post("/:id/messages", async (c) => {
    const id = channelId(c);
    if (!id) return noChannel();
    const body = await parseJsonBody(c, SendBody);
    if (!body.ok) return errorResponse(body);
    const r = await channelStub(c.env, id).append({ userId: c.get("auth").userId, deviceId: REST_DEVICE, clientMsgId: body.value.client_msg_id, content: body.value.content });
    if (!r.ok) return errorResponse(r);
    return c.json({ ack: r.ack }, r.ack.status === "stored" ? 201 : 200);
  })
  .patch("/:id/messages/:seq", async (c) => {
    const id = channelId(c);
    if (!id) return noChannel();
    const seq = parseWith(messageSeq, c.req.param("seq"));
    if (!seq.ok) return errorResponse(seq);
    const body = await parseJsonBody(c, EditBody);
    if (!body.ok) return errorResponse(body);
    return send(c, await userStub(c.env, c.get("auth").userId).edit(id, REST_DEVICE, seq.value, { text: { text: body.value.text } }));
  })
  .delete("/:id/messages/:seq", async (c) => {
    const id = channelId(c);
    if (!id) return noChannel();
    const seq = parseWith(messageSeq, c.req.param("seq"));
    if (!seq.ok) return errorResponse(seq);
    const q = parseWith(DeleteQuery, c.req.query());
    if (!q.ok) return errorResponse(q);
    return send(c, await userStub(c.env, c.get("auth").userId).deleteMessage(id, REST_DEVICE, seq.value, q.value.for === "everyone"));
  })
  .on(["PUT", "DELETE"], "/:id/messages/:seq/reactions/:emoji", async (c) => {
    const id = channelId(c);
    if (!id) return noChannel();
    const seq = parseWith(messageSeq, c.req.param("seq"));
    if (!seq.ok) return errorResponse(seq);
    const op = c.req.method === "PUT" ? "add" : "remove";
    return send(c, await userStub(c.env, c.get("auth").userId).react(id, REST_DEVICE, seq.value, c.req.param("emoji"), op));
  })
  .post("/:id/read", async (c) => {
    const id = channelId(c);
    if (!id) return noChannel();
    const body = await parseJsonBody(c, ReadBody);
    if (!body.ok) return errorResponse(body);
    return send(c, await userStub(c.env, c.get("auth").userId).markRead(id, body.value.up_to_seq));
  });
