/**
 * Account settings and erasure, for the signed-in user:
 *
 *   PATCH  /v1/me            {display_name?, avatar?: null}  rename; remove the avatar
 *   PUT    /v1/me/avatar     image bytes (AVATAR_CONTENT_TYPES, ≤ AVATAR_MAX_BYTES)
 *   GET    /v1/users/{id}/avatar                             the picture (profiles carry its avatar_url)
 *   POST   /v1/me/password   {current_password, new_password} every other session is signed out
 *   DELETE /v1/me            {password}                      starts the erasure job (docs/decisions/020)
 *
 * The password is checked like a sign-in, with the same throttle (a lockout per username), so a
 * stolen access token cannot guess its way to a new password or a deleted account.
 */
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import * as z from "zod/mini";
import { hashPassword, verifyPassword } from "../auth/password.js";
import { forgetSession } from "../auth/revocation.js";
import { clientAddress, loginGate, loginOutcome } from "../auth/throttle.js";
import { avatarKey, avatarMaxBytes, avatarTypes } from "../../shared/avatars.js";
import { DEADLINES, withDeadline } from "../../shared/deadline.js";
import { errorResponse, fail, type Failure } from "../../shared/errors.js";
import { isUserId, parseId } from "../../shared/ids.js";
import { markErasing } from "../../shared/account-erasure.js";
import { bucketFor } from "../../shared/bindings.js";
import { log } from "../../shared/log.js";
import { userStub } from "../../shared/routing.js";
import { sendErasureMessage, type ErasureMessage } from "../../queues/erasure-jobs.js";
import {
  accountById, avatarVersion, resolveProfiles, setAvatarVersion, setDisplayName, setPasswordHash, type Account,
} from "./accounts.js";
import type { ApiEnv } from "./app.js";
import { nameText, parseJsonBody } from "./validation.js";

const newPassword = z.string().check(z.minLength(8, "at least 8 characters"), z.maxLength(200));
const givenPassword = z.string().check(z.minLength(1), z.maxLength(200));

const ProfileBody = z.strictObject({
  display_name: z.optional(nameText(64)),
  avatar: z.optional(z.null()),
});
const PasswordBody = z.strictObject({ current_password: givenPassword, new_password: newPassword });
const DeleteBody = z.strictObject({ password: givenPassword });

type Ctx = Context<ApiEnv>;

/** Avatars live in the bucket of the user's jurisdiction, like their attachments. */
const avatarBucket = (env: Env, userId: string): R2Bucket => bucketFor(env, parseId(userId)?.jurisdiction ?? "");

/**
 * The signed-in user's account if `password` is theirs. Throttled like a sign-in on the same
 * username: locked out, the password is not even checked. A wrong one is 403 forbidden (the
 * token is fine; 401 would tell clients to sign in again).
 */
async function checkPassword(c: Ctx, password: string, erasing = false): Promise<{ ok: true; account: Account } | Failure> {
  const account = await accountById(c.env, c.get("auth").userId, erasing);
  if (!account) return fail("not_found", "No such user.");
  const address = clientAddress(c.req.raw);
  const locked = await loginGate(c.env, account.username, address);
  if (locked) return locked;
  const valid = await verifyPassword(password, account.password_hash);
  await loginOutcome(c.env, account.username, address, valid);
  if (!valid) return fail("forbidden", "The password is wrong.");
  return { ok: true, account };
}

async function myProfile(c: Ctx): Promise<Response> {
  const { found } = await resolveProfiles(c.env, [c.get("auth").userId]);
  return found[0] ? c.json(found[0]) : errorResponse(fail("not_found", "No such user."));
}

/** Tells the user's object (and through it their devices and contacts) that the profile changed. */
async function announce(c: Ctx, displayName?: string): Promise<void> {
  await withDeadline(userStub(c.env, c.get("auth").userId).profileChanged(displayName), DEADLINES.account, "profile.changed");
}

export const accountRoutes = new Hono<ApiEnv>()
  .patch("/me", async (c) => {
    const body = await parseJsonBody(c, ProfileBody);
    if (!body.ok) return errorResponse(body);
    const { display_name, avatar } = body.value;
    if (display_name === undefined && avatar === undefined) {
      return errorResponse(fail("invalid_argument", "Give display_name, or avatar: null to remove the avatar."));
    }
    const me = c.get("auth").userId;
    if (display_name !== undefined && !(await setDisplayName(c.env, me, display_name))) return errorResponse(fail("not_found", "No such user."));
    if (avatar === null && (await avatarVersion(c.env, me)) > 0) {
      await setAvatarVersion(c.env, me, 0);
      await avatarBucket(c.env, me).delete(avatarKey(me));
    }
    await announce(c, display_name);
    return myProfile(c);
  })
  .put("/me/avatar", async (c, next) => bodyLimit({
    maxSize: avatarMaxBytes(c.env),
    onError: () => errorResponse(fail("content_too_large", `An avatar is at most ${Math.floor(avatarMaxBytes(c.env) / 1024)} KiB.`)),
  })(c, next), async (c) => {
    const type = (c.req.header("Content-Type") ?? "").split(";")[0]!.trim().toLowerCase();
    const allowed = avatarTypes(c.env);
    if (!allowed.includes(type)) return errorResponse(fail("unsupported_media_type", `An avatar is one of: ${allowed.join(", ")}.`));
    const bytes = await c.req.arrayBuffer();
    if (bytes.byteLength === 0) return errorResponse(fail("invalid_argument", "The avatar is empty."));
    const me = c.get("auth").userId;
    await avatarBucket(c.env, me).put(avatarKey(me), bytes, { httpMetadata: { contentType: type } });
    if (!(await setAvatarVersion(c.env, me, Date.now()))) {
      await avatarBucket(c.env, me).delete(avatarKey(me));
      return errorResponse(fail("not_found", "No such user."));
    }
    await announce(c);
    return myProfile(c);
  })
  .get("/users/:id/avatar", async (c) => {
    const id = c.req.param("id");
    if (!isUserId(id) || (await avatarVersion(c.env, id)) === 0) return errorResponse(fail("not_found", "No avatar."));
    const object = await avatarBucket(c.env, id).get(avatarKey(id));
    if (!object) return errorResponse(fail("not_found", "No avatar."));
    return new Response(object.body, {
      headers: {
        "Content-Type": object.httpMetadata?.contentType ?? "application/octet-stream",
        "Content-Length": String(object.size),
        // The URL carries the version (?v=): a new picture is a new URL.
        "Cache-Control": "private, max-age=86400",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
      },
    });
  })
  .post("/me/password", async (c) => {
    const body = await parseJsonBody(c, PasswordBody);
    if (!body.ok) return errorResponse(body);
    const checked = await checkPassword(c, body.value.current_password);
    if (!checked.ok) return errorResponse(checked);
    const { userId, sessionId } = c.get("auth");
    if (!(await setPasswordHash(c.env, userId, await hashPassword(body.value.new_password)))) return errorResponse(fail("not_found", "No such user."));
    // Whoever else holds a session (a thief, an old phone) is out: sockets close (4410), refresh tokens stop.
    const ended = await withDeadline(userStub(c.env, userId).endOtherSessions(sessionId), DEADLINES.account, "session.revoke_others");
    for (const id of ended) forgetSession(userId, id);
    return c.json({ sessions_ended: ended.length });
  })
  .delete("/me", async (c) => {
    const body = await parseJsonBody(c, DeleteBody);
    if (!body.ok) return errorResponse(body);
    const checked = await checkPassword(c, body.value.password, true);
    if (!checked.ok) return errorResponse(checked);
    const { userId, sessionId } = c.get("auth");
    const now = Date.now();
    // From here the account signs nobody in and has no profile; the row itself goes last.
    await markErasing(c.env, userId, now);
    const started = await withDeadline(userStub(c.env, userId).startErasure(), DEADLINES.account, "erasure.start");
    forgetSession(userId, sessionId);
    try {
      await sendErasureMessage(c.env.ERASURE_QUEUE as Queue<ErasureMessage>, userId);
    } catch (err) {
      // The job is durable in the user's object; its alarm sends the message again.
      log("error", "erasure.enqueue_failed", { object: "worker", user_id: userId, trace_id: c.get("traceId") }, err);
    }
    log("info", "erasure.started", { object: "worker", user_id: userId, created: started.created, trace_id: c.get("traceId") });
    return c.json({ status: "erasing", started_at: started.state.started_at }, 202);
  });
