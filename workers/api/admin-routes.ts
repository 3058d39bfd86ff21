/**
 * Operator routes under /v1/admin, for deploy scripts and runbooks, not for users: they take the
 * ADMIN_TOKEN secret (`wrangler secret put ADMIN_TOKEN`) as a bearer token instead of a user's
 * access token. Without that secret they are off.
 *
 * POST /v1/admin/drain {window_ms?}: every connected device gets GOAWAY {reconnect_after_ms} spread
 * over the window (DRAIN_WINDOW_MS by default), and reconnects with RESUME (docs/operations.md).
 *
 * GET /v1/admin/erasures/{user_id}: an erasure job's progress (docs/decisions/020): step, counts,
 * started/updated/finished times; never a name or any content.
 */
import { Hono, type MiddlewareHandler } from "hono";
import * as z from "zod/mini";
import { eachLimited } from "../../shared/deadline.js";
import { errorResponse, fail } from "../../shared/errors.js";
import { isUserId } from "../../shared/ids.js";
import { directory } from "../../shared/bindings.js";
import { log } from "../../shared/log.js";
import { allPresenceShards } from "../../shared/routing.js";
import { timingSafeEqual } from "../../shared/secrets.js";
import type { ApiEnv } from "./app.js";
import { parseJsonBody } from "./validation.js";

/** A token shorter than this is treated as no token: an admin secret must not be guessable. */
const MIN_ADMIN_TOKEN_LENGTH = 32;
const MAX_DRAIN_WINDOW_MS = 30 * 60_000;
/** Shards drained at once: each fans out to its users with its own bounded concurrency. */
const SHARD_CONCURRENCY = 8;

const bytes = (s: string) => new TextEncoder().encode(s);

const operatorOnly: MiddlewareHandler<ApiEnv> = async (c, next) => {
  const secret = c.env.ADMIN_TOKEN ?? "";
  if (secret.length < MIN_ADMIN_TOKEN_LENGTH) {
    return errorResponse(fail("forbidden", `Admin routes are off: set the ADMIN_TOKEN secret (${MIN_ADMIN_TOKEN_LENGTH}+ characters) to use them.`));
  }
  const given = c.req.header("Authorization")?.match(/^Bearer\s+(.+)$/i)?.[1] ?? "";
  if (!timingSafeEqual(bytes(given), bytes(secret))) return errorResponse(fail("unauthorized", "Admin routes need the ADMIN_TOKEN secret as a bearer token."));
  return next();
};

const DrainBody = z.object({
  window_ms: z.optional(z.number().check(z.int(), z.minimum(0), z.maximum(MAX_DRAIN_WINDOW_MS))),
});

export const adminRoutes = new Hono<ApiEnv>()
  .use("*", operatorOnly)
  .post("/drain", async (c) => {
    const text = await c.req.raw.clone().text();
    const parsed = text.trim() === "" ? { ok: true as const, value: {} } : await parseJsonBody(c, DrainBody);
    if (!parsed.ok) return errorResponse(parsed);
    const configured = Number(c.env.DRAIN_WINDOW_MS);
    const windowMs = parsed.value.window_ms ?? (Number.isFinite(configured) && configured >= 0 ? configured : 60_000);
    const shards = allPresenceShards(c.env);
    const total = { shards: shards.length, users: 0, sockets: 0, failed_users: 0, failed_shards: 0 };
    await eachLimited(shards, SHARD_CONCURRENCY, async (shard) => {
      try {
        const r = await shard.stub().drain(windowMs);
        total.users += r.users;
        total.sockets += r.sockets;
        total.failed_users += r.failed;
      } catch (err) {
        total.failed_shards++;
        log("warn", "drain.shard_failed", { object: "worker", id: shard.key, trace_id: c.get("traceId") }, err);
      }
    });
    log("info", "drain", { object: "worker", window_ms: windowMs, ...total, trace_id: c.get("traceId") });
    return c.json({ window_ms: windowMs, ...total });
  })
  .get("/erasures/:userId", async (c) => {
    const userId = c.req.param("userId");
    if (!isUserId(userId)) return errorResponse(fail("invalid_argument", "Give a user id."));
    const row = await directory(c.env).prepare("SELECT user_id, step, counts, started_at, updated_at, finished_at FROM erasures WHERE user_id = ?")
      .bind(userId).first<{ user_id: string; step: string; counts: string; started_at: number; updated_at: number; finished_at: number | null }>();
    if (!row) return errorResponse(fail("not_found", "No erasure job for that user."));
    return c.json({ ...row, counts: JSON.parse(row.counts) as Record<string, number>, finished: row.finished_at !== null });
  });
