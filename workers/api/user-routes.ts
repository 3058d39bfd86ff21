/** /v1/me, /v1/users and /v1/presence: who am I, find people to talk to, who is around. */
import { Hono } from "hono";
import * as z from "zod/mini";
import { errorResponse, fail } from "../../shared/errors.js";
import { isChannelId, isUserId } from "../../shared/ids.js";
import { byPresenceShard, presenceStub, userStub } from "../../shared/routing.js";
import { resolveProfiles } from "./accounts.js";
import { send, type ApiEnv } from "./app.js";
import { parseJsonBody } from "./validation.js";
import { exportResponse } from "./export.js";

const SettingsBody = z.strictObject({ read_receipts: z.optional(z.boolean()), share_presence: z.optional(z.boolean()), push_previews: z.optional(z.boolean()), group_adds: z.optional(z.enum(["everyone", "contacts"])) });
const ChannelPrefsBody = z.strictObject({ muted: z.boolean() });
/** Presence pulled on demand (big groups, people not watched): at most this many ids per call. */
const MAX_PRESENCE_LOOKUP = 200;
/** Profiles looked up at once (GET /v1/users?ids=): clients render names from these. */
export const MAX_PROFILE_LOOKUP = 100;

const notFound = () => errorResponse(fail("not_found", "No such user."));

export const userRoutes = new Hono<ApiEnv>()
  .get("/me", async (c) => {
    const { found } = await resolveProfiles(c.env, [c.get("auth").userId]);
    return found[0] ? c.json(found[0]) : notFound();
  })
  .get("/me/export", async (c) => {
    const { found } = await resolveProfiles(c.env, [c.get("auth").userId]);
    if (!found[0]) return notFound();
    return exportResponse(c.env, c.get("auth").userId, found[0], (p) => c.executionCtx.waitUntil(p), c.get("traceId"));
  })
  .get("/me/settings", async (c) => c.json(await userStub(c.env, c.get("auth").userId).getSettings()))
  .patch("/me/settings", async (c) => {
    const body = await parseJsonBody(c, SettingsBody);
    if (!body.ok) return errorResponse(body);
    const r = await userStub(c.env, c.get("auth").userId).updateSettings(body.value);
    return r.ok ? c.json(r.settings) : errorResponse(r);
  })
  .patch("/me/channels/:id", async (c) => {
    const channelId = c.req.param("id");
    if (!isChannelId(channelId)) return errorResponse(fail("not_found", "No such channel."));
    const body = await parseJsonBody(c, ChannelPrefsBody);
    if (!body.ok) return errorResponse(body);
    return send(c, await userStub(c.env, c.get("auth").userId).setMuted(channelId, body.value.muted));
  })
  .get("/users", async (c) => {
    const idList = c.req.query("ids");
    if (idList !== undefined) {
      const ids = [...new Set(idList.split(",").filter((id) => id !== ""))];
      if (ids.length === 0 || ids.length > MAX_PROFILE_LOOKUP) {
        return errorResponse(fail("invalid_argument", `Give ?ids=<id>,<id>,... (1-${MAX_PROFILE_LOOKUP} user ids).`));
      }
      const bad = ids.filter((id) => !isUserId(id)).map(String)[0];
      if (bad !== undefined) return errorResponse(fail("invalid_argument", `Not a user id: ${bad.slice(0, 40)}`));
      // Unknown ids (an account erased, say) are left out, not an error: a client shows "unknown".
      const { found } = await resolveProfiles(c.env, ids);
      return c.json({ users: found });
    }
    const username = c.req.query("username");
    if (!username || username.length > 64) return errorResponse(fail("invalid_argument", "Give ?username=<name>."));
    const { found } = await resolveProfiles(c.env, [username]);
    return found[0] ? c.json(found[0]) : notFound();
  })
  .get("/presence", async (c) => {
    const ids = [...new Set((c.req.query("user_ids") ?? "").split(",").filter((id) => id !== ""))];
    if (ids.length === 0 || ids.length > MAX_PRESENCE_LOOKUP) {
      return errorResponse(fail("invalid_argument", `Give ?user_ids=<id>,<id>,... (1-${MAX_PRESENCE_LOOKUP} user ids).`));
    }
    const bad = ids.filter((id) => !isUserId(id)).map(String)[0];
    if (bad !== undefined) return errorResponse(fail("invalid_argument", `Not a user id: ${bad.slice(0, 40)}`));
    const states = await Promise.all(byPresenceShard(ids).map((group) => presenceStub(c.env, group[0]!).lookup(group)));
    return c.json({ presence: states.flat() });
  })
  .get("/users/:id", async (c) => {
    const { found } = await resolveProfiles(c.env, [c.req.param("id")]);
    return found[0] ? c.json(found[0]) : notFound();
  });
