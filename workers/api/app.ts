/**
 * The REST API (Hono). Routes validate with zod/mini and call the owning Durable Object over RPC;
 * expected failures come back as values and leave through one function, `send`, as
 * `{code, message, retryable}` JSON with the matching status.
 */
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { verifyAccessToken, type AccessClaims } from "../auth/tokens.js";
import { errorResponse, fail, failureFromException, type Failure } from "../../shared/errors.js";
import { authRoutes } from "./auth-routes.js";
import { channelRoutes } from "./channel-routes.js";
import { deviceRoutes } from "./device-routes.js";
import { pushRoutes } from "./push-routes.js";
import { userRoutes } from "./user-routes.js";
import { checkUrlText } from "./validation.js";

export type ApiEnv = { Bindings: Env; Variables: { auth: AccessClaims } };
export type ApiContext = Context<ApiEnv>;

/** Sends a success body, or the error body when `result` is a Failure. */
export function send(c: ApiContext, result: { ok: boolean }, status: 200 | 201 = 200): Response {
  if (!result.ok) return errorResponse(result as Failure);
  const { ok: _ok, ...body } = result;
  return c.json(body, status);
}

export const api = new Hono<ApiEnv>();

api.use("/v1/*", bodyLimit({
  maxSize: 64 * 1024,
  onError: () => errorResponse(fail("content_too_large", "Request bodies are limited to 64 KiB.")),
}));

// Paths and queries whose percent-encoding is not UTF-8 never reach a route (bodies: validation.ts).
api.use("/v1/*", async (c, next) => {
  const bad = checkUrlText(c.req.url);
  return bad ? errorResponse(bad) : next();
});

/** Liveness for load balancers, dev tooling and tests; says nothing about any user. */
api.get("/v1/health", (c) => c.json({ ok: true }));

// Everything but health and the three ways of getting a token needs a token.
api.use("/v1/*", async (c, next) => {
  if (c.req.path.startsWith("/v1/auth/") || c.req.path === "/v1/health") return next();
  const header = c.req.header("Authorization");
  const token = header?.match(/^Bearer\s+(.+)$/i)?.[1];
  const auth = await verifyAccessToken(c.env, token);
  if (!auth.ok) return errorResponse(auth);
  c.set("auth", { userId: auth.userId, username: auth.username, sessionId: auth.sessionId });
  return next();
});

api.route("/v1/auth", authRoutes);
api.route("/v1/channels", channelRoutes);
api.route("/v1/devices", deviceRoutes);
api.route("/v1/push", pushRoutes);
api.route("/v1", userRoutes);

api.notFound(() => errorResponse(fail("not_found", "No such endpoint.")));
api.onError((err) => {
  console.error("API request failed", err);
  return errorResponse(failureFromException(err));
});
