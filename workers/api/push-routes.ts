/** /v1/push/config: what a client needs to subscribe to push (the VAPID public key). */
import { Hono } from "hono";
import type { PushConfig, PushProvider } from "../../protocol/push.js";
import type { ApiEnv } from "./app.js";

export const pushRoutes = new Hono<ApiEnv>()
  .get("/config", (c) => {
    const providers: PushProvider[] = [];
    if (c.env.VAPID_PUBLIC_KEY && c.env.VAPID_PRIVATE_KEY) providers.push("webpush");
    if (c.env.FCM_SERVICE_ACCOUNT) providers.push("fcm");
    if (c.env.APNS_PRIVATE_KEY && c.env.APNS_KEY_ID && c.env.APNS_TEAM_ID) providers.push("apns");
    const config: PushConfig = { vapid_public_key: providers.includes("webpush") ? c.env.VAPID_PUBLIC_KEY : "", providers };
    return c.json(config);
  });
