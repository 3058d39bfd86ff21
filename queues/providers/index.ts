/** One push job → the provider its subscription names. */
import type { PushJob } from "../push-jobs.js";
import type { PushSettings } from "../push-settings.js";
import { sendApns } from "./apns.js";
import { sendFcm } from "./fcm.js";
import { collapseKey, type Fetch, type SendOutcome } from "./outcome.js";
import { sendWebPush } from "./webpush.js";

export type { Fetch, SendOutcome };

export async function sendPush(job: PushJob, settings: PushSettings, fetcher: Fetch): Promise<SendOutcome> {
  const sub = job.subscription;
  const key = await collapseKey(job.payload.channel_id);
  const notConfigured = (what: string): SendOutcome => ({ kind: "rejected", status: 0, reason: `${what} is not configured` });
  switch (sub.type) {
    case "webpush": return settings.webpush ? sendWebPush(sub, job.payload, key, settings.webpush, fetcher) : notConfigured("Web Push (VAPID keys)");
    case "fcm": return settings.fcm ? sendFcm(sub, job.payload, key, settings.fcm, fetcher) : notConfigured("FCM (FCM_SERVICE_ACCOUNT)");
    case "apns": return settings.apns ? sendApns(sub, job.payload, key, settings.apns, fetcher) : notConfigured("APNs (APNS_PRIVATE_KEY, APNS_KEY_ID, APNS_TEAM_ID)");
  }
}
