/**
 * The REST API (Hono). Routes validate with zod/mini and call the owning Durable Object over RPC;
 * expected failures come back as values and leave through one function, `send`, as
 * `{code, message, retryable}` JSON with the matching status.
 */
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { routePath } from "hono/route";
import { sessionActive } from "../auth/revocation.js";
import { verifyAccessToken, type AccessClaims } from "../auth/tokens.js";
import { errorResponse, fail, failureFromException, type Failure } from "../../shared/errors.js";
import { log } from "../../shared/log.js";
import { count } from "../../shared/metrics.js";
import { TRACE_HEADER, traceIdOf } from "../../shared/trace.js";
import { accountRoutes } from "./account-routes.js";
import { adminRoutes } from "./admin-routes.js";
import { attachmentRoutes } from "./attachment-routes.js";
import { authRoutes } from "./auth-routes.js";
import { channelRoutes } from "./channel-routes.js";
import { deviceRoutes } from "./device-routes.js";
import { inviteRoutes } from "./invite-routes.js";
import { pushRoutes } from "./push-routes.js";
import { sessionRoutes } from "./session-routes.js";
import { userRoutes } from "./user-routes.js";
import { checkUrlText } from "./validation.js";

export type ApiEnv = { Bindings: Env; Variables: { auth: AccessClaims; traceId: string } };
export type ApiContext = Context<ApiEnv>;

/** Sends a success body, or the error body when `result` is a Failure. */
export function send(c: ApiContext, result: { ok: boolean }, status: 200 | 201 = 200): Response {
  if (!result.ok) return errorResponse(result as Failure);
  const { ok: _ok, ...body } = result;
  return c.json(body, status);
}

export const api = new Hono<ApiEnv>();

// Every request: a trace id (the caller's `traceparent`, or a new one) returned in `x-trace-id`
// and in error bodies, one structured log line, and counts of requests and errors by code.
api.use("*", async (c, next) => {
  const traceId = traceIdOf(c.req.raw);
  c.set("traceId", traceId);
  const started = Date.now();
  await next();
  const status = c.res.status;
  let code: string | undefined;
  if (status >= 400 && c.res.headers.get("content-type")?.startsWith("application/json")) {
    const body = await c.res.clone().json().catch(() => undefined) as { code?: unknown } | undefined;
    if (body && typeof body.code === "string") {
      code = body.code;
      c.res = Response.json({ ...body, trace_id: traceId }, { status, headers: c.res.headers });
    }
  }
  c.res.headers.set(TRACE_HEADER, traceId);
  const route = routePath(c, -1);
  count("http.request", 1, { status: `${Math.floor(status / 100)}xx` });
  if (code) count("error", 1, { code, via: "rest" });
  log(status >= 500 ? "error" : status >= 400 ? "warn" : "info", "http.request", {
    object: "worker", method: c.req.method, route, status, code, ms: Date.now() - started, trace_id: traceId,
    user_id: c.get("auth")?.userId,
  });
});

const jsonBodyLimit = bodyLimit({
  maxSize: 64 * 1024,
  onError: () => errorResponse(fail("content_too_large", "Request bodies are limited to 64 KiB.")),
});
// An avatar upload is bytes, not JSON, and has a limit of its own (account-routes.ts).
api.use("/v1/*", (c, next) => (c.req.method === "PUT" && c.req.path === "/v1/me/avatar" ? next() : jsonBodyLimit(c, next)));

// Paths and queries whose percent-encoding is not UTF-8 never reach a route (bodies: validation.ts).
api.use("/v1/*", async (c, next) => {
  const bad = checkUrlText(c.req.url);
  return bad ? errorResponse(bad) : next();
});

/** Liveness for load balancers, dev tooling and tests; says nothing about any user. */
api.get("/v1/health", (c) => c.json({ ok: true }));

// Everything but health, the three ways of getting a token and the operator's routes (which
// take ADMIN_TOKEN, admin-routes.ts) needs a user's token.
api.use("/v1/*", async (c, next) => {
  if (c.req.path.startsWith("/v1/auth/") || c.req.path.startsWith("/v1/admin/") || c.req.path === "/v1/health") return next();
  const header = c.req.header("Authorization");
  const token = header?.match(/^Bearer\s+(.+)$/i)?.[1];
  const auth = await verifyAccessToken(c.env, token);
  if (!auth.ok) return errorResponse(auth);
  if (!(await sessionActive(c.env, auth.userId, auth.sessionId))) {
    return errorResponse(fail("session_revoked", "This session was signed out; log in again."));
  }
  c.set("auth", { userId: auth.userId, username: auth.username, sessionId: auth.sessionId });
  return next();
});

api.route("/v1/admin", adminRoutes);
api.route("/v1/auth", authRoutes);
api.route("/v1/channels", channelRoutes);
api.route("/v1/attachments", attachmentRoutes);
api.route("/v1/devices", deviceRoutes);
api.route("/v1/invites", inviteRoutes);
api.route("/v1/push", pushRoutes);
api.route("/v1/sessions", sessionRoutes);
api.route("/v1", accountRoutes);
api.route("/v1", userRoutes);

api.notFound(() => errorResponse(fail("not_found", "No such endpoint.")));
api.onError((err, c) => {
  log("error", "http.failed", { object: "worker", trace_id: c.get("traceId"), user_id: c.get("auth")?.userId }, err);
  return errorResponse(failureFromException(err));
});
