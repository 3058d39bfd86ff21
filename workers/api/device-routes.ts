/** /v1/devices: a user's devices (≤ 10) and their push subscriptions. */
import { Hono } from "hono";
import * as z from "zod/mini";
import { allowHttpLoopback, pushSubscriptionSchema } from "../../durable-objects/user/push-subscriptions.js";
import type { PushSubscriptionInput } from "../../protocol/push.js";
import { errorResponse, fail } from "../../shared/errors.js";
import { userStub } from "../../shared/routing.js";
import { send, type ApiContext, type ApiEnv } from "./app.js";
import { parseJsonBody } from "./validation.js";

const deviceId = z.string().check(z.regex(/^[A-Za-z0-9_-]{1,64}$/, "1-64 characters of A-Z a-z 0-9 _ -"));

function schemas(c: ApiContext) {
  const push = pushSubscriptionSchema({ allowHttpLoopback: allowHttpLoopback(c.env) });
  return {
    register: z.object({
      device_id: deviceId,
      name: z.optional(z.string().check(z.maxLength(100))),
      platform: z.optional(z.string().check(z.maxLength(40))),
      push: z.optional(z.nullable(push)),
    }),
    patch: z.strictObject({
      name: z.optional(z.string().check(z.maxLength(100))),
      platform: z.optional(z.string().check(z.maxLength(40))),
      push: z.optional(z.nullable(push)),
    }),
  };
}

export const deviceRoutes = new Hono<ApiEnv>()
  .get("/", async (c) => c.json({ devices: await userStub(c.env, c.get("auth").userId).listDevices() }))
  .post("/", async (c) => {
    const body = await parseJsonBody(c, schemas(c).register);
    if (!body.ok) return errorResponse(body);
    const { device_id, name, platform, push } = body.value;
    return send(c, await userStub(c.env, c.get("auth").userId).registerDevice(device_id, name, platform, push as PushSubscriptionInput | null | undefined), 201);
  })
  .patch("/:deviceId", async (c) => {
    const body = await parseJsonBody(c, schemas(c).patch);
    if (!body.ok) return errorResponse(body);
    const { push, ...rest } = body.value;
    return send(c, await userStub(c.env, c.get("auth").userId).updateDevice(c.req.param("deviceId"), { ...rest, push: push as PushSubscriptionInput | null | undefined }));
  })
  .delete("/:deviceId", async (c) => {
    const removed = await userStub(c.env, c.get("auth").userId).removeDevice(c.req.param("deviceId"));
    return removed ? c.body(null, 204) : errorResponse(fail("not_found", "No such device."));
  });
