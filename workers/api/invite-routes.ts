/**
 * /v1/invites/{code}: what an invite link leads to, and joining through it. Anyone signed in may
 * use a link; joining is their own act (the group_adds setting guards being *added* by others),
 * but their data must be allowed to live where the channel is (jurisdiction_conflict otherwise).
 */
import { Hono } from "hono";
import { errorResponse, fail } from "../../shared/errors.js";
import { cannotJoin, mayJoin } from "../../shared/locality.js";
import { channelStub } from "../../shared/routing.js";
import { parseInviteCode } from "../../durable-objects/channel/invites.js";
import { send, type ApiContext, type ApiEnv } from "./app.js";
import { tellCreator } from "./channel-routes.js";

function inviteCode(c: ApiContext) {
  return parseInviteCode(c.req.param("code") ?? "");
}

const noInvite = () => errorResponse(fail("not_found", "No such invite link."));

export const inviteRoutes = new Hono<ApiEnv>()
  .get("/:code", async (c) => {
    const code = inviteCode(c);
    if (!code) return noInvite();
    return send(c, await channelStub(c.env, code.channelId).previewInvite(c.get("auth").userId, code.secret));
  })
  .post("/:code/join", async (c) => {
    const code = inviteCode(c);
    if (!code) return noInvite();
    const me = c.get("auth").userId;
    if (!mayJoin(code.channelId, me)) return errorResponse(cannotJoin(code.channelId, [me]));
    const r = await channelStub(c.env, code.channelId).joinByInvite(me, code.secret);
    if (!r.ok) return errorResponse(r);
    // The joiner's list shows the channel before the answer arrives (like a creator's).
    if (r.joined) await tellCreator(c, me, r.notice);
    return c.json({ channel: r.channel, joined: r.joined }, r.joined ? 201 : 200);
  });
