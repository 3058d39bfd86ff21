/** /v1/devices: a user's devices (≤ 10). Push tokens arrive with the push release. */
import { Hono } from "hono";
import * as z from "zod/mini";
import { errorResponse, fail } from "../../shared/errors.js";
import { userStub } from "../../shared/routing.js";
import { send, type ApiEnv } from "./app.js";
import { parseJsonBody } from "./validation.js";

const RegisterBody = z.object({
  device_id: z.string().check(z.regex(/^[A-Za-z0-9_-]{1,64}$/, "1-64 characters of A-Z a-z 0-9 _ -")),
  name: z.optional(z.string().check(z.maxLength(100))),
  platform: z.optional(z.string().check(z.maxLength(40))),
});

export const deviceRoutes = new Hono<ApiEnv>()
  .get("/", async (c) => c.json({ devices: await userStub(c.env, c.get("auth").userId).listDevices() }))
  .post("/", async (c) => {
    const body = await parseJsonBody(c, RegisterBody);
    if (!body.ok) return errorResponse(body);
    const { device_id, name, platform } = body.value;
    return send(c, await userStub(c.env, c.get("auth").userId).registerDevice(device_id, name, platform), 201);
  })
  .delete("/:deviceId", async (c) => {
    const removed = await userStub(c.env, c.get("auth").userId).removeDevice(c.req.param("deviceId"));
    return removed ? c.body(null, 204) : errorResponse(fail("not_found", "No such device."));
  });
