/**
 * /v1/sessions: the account's sign-in sessions (one per login), and signing them out. Signing a
 * session out closes its sockets at once and its access tokens stop working within a second
 * (docs/decisions/011).
 */
import { Hono } from "hono";
import { forgetSession } from "../auth/revocation.js";
import { DEADLINES, withDeadline } from "../../shared/deadline.js";
import { errorResponse, fail } from "../../shared/errors.js";
import { userStub } from "../../shared/routing.js";
import type { ApiEnv } from "./app.js";

export const sessionRoutes = new Hono<ApiEnv>()
  .get("/", async (c) => {
    const { userId, sessionId } = c.get("auth");
    return c.json({ sessions: await withDeadline(userStub(c.env, userId).listSessions(sessionId), DEADLINES.account, "session.list") });
  })
  /** Signs out every session but the caller's. */
  .post("/logout-others", async (c) => {
    const { userId, sessionId } = c.get("auth");
    const ended = await withDeadline(userStub(c.env, userId).endOtherSessions(sessionId), DEADLINES.account, "session.end_others");
    for (const id of ended) forgetSession(userId, id);
    return c.json({ signed_out: ended.length });
  })
  /** Signs out one session (the caller's own included: that is a logout). */
  .delete("/:sessionId", async (c) => {
    const { userId } = c.get("auth");
    const target = c.req.param("sessionId");
    if (target.length > 64) return errorResponse(fail("not_found", "No such session."));
    if (!(await withDeadline(userStub(c.env, userId).endSession(target), DEADLINES.account, "session.end"))) return errorResponse(fail("not_found", "No such session."));
    forgetSession(userId, target);
    return c.body(null, 204);
  });
