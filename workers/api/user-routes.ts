/** /v1/me and /v1/users: who am I, and find people to talk to. */
import { Hono } from "hono";
import { z } from "zod";
import { errorResponse, fail } from "../lib/errors.js";
import { userStub } from "../lib/routing.js";
import { resolveProfiles } from "./accounts.js";
import type { ApiEnv } from "./app.js";
import { parseJsonBody } from "./validation.js";

const SettingsBody = z.object({ read_receipts: z.boolean().optional() }).strict();

const notFound = () => errorResponse(fail("not_found", "No such user."));

export const userRoutes = new Hono<ApiEnv>()
  .get("/me", async (c) => {
    const { found } = await resolveProfiles(c.env.ACCOUNTS, [c.get("auth").userId]);
    return found[0] ? c.json(found[0]) : notFound();
  })
  .get("/me/settings", async (c) => c.json(await userStub(c.env, c.get("auth").userId).getSettings()))
  .patch("/me/settings", async (c) => {
    const body = await parseJsonBody(c, SettingsBody);
    if (!body.ok) return errorResponse(body);
    return c.json(await userStub(c.env, c.get("auth").userId).updateSettings(body.value));
  })
  .get("/users", async (c) => {
    const username = c.req.query("username");
    if (!username || username.length > 64) return errorResponse(fail("invalid_argument", "Give ?username=<name>."));
    const { found } = await resolveProfiles(c.env.ACCOUNTS, [username]);
    return found[0] ? c.json(found[0]) : notFound();
  })
  .get("/users/:id", async (c) => {
    const { found } = await resolveProfiles(c.env.ACCOUNTS, [c.req.param("id")]);
    return found[0] ? c.json(found[0]) : notFound();
  });
