/**
 * The push consumer's settings, read from the Worker's vars and secrets (wrangler.toml,
 * .dev.vars locally). A provider whose secrets are missing is simply not configured: its jobs
 * are dropped with a log line, never retried.
 */
import { log } from "../shared/log.js";

export interface WebPushSettings {
  /** base64url uncompressed P-256 point (65 bytes). */
  publicKey: string;
  /** base64url private scalar (32 bytes). */
  privateKey: string;
  /** mailto: or https: contact for the push services. */
  subject: string;
}

export interface FcmSettings {
  projectId: string;
  clientEmail: string;
  /** PKCS#8 PEM (RS256). */
  privateKey: string;
  tokenUrl: string;
  apiBaseUrl: string;
}

export interface ApnsSettings {
  keyId: string;
  teamId: string;
  /** The .p8 key: PKCS#8 PEM (ES256). */
  privateKey: string;
  baseUrl: string;
  sandboxBaseUrl: string;
}

export interface PushSettings {
  maxAgeMs: number;
  retryBaseSeconds: number;
  webpush?: WebPushSettings;
  fcm?: FcmSettings;
  apns?: ApnsSettings;
}

/** Longest a retried job waits (Queues allow up to 12 h; a push later than that is noise). */
export const MAX_RETRY_DELAY_SECONDS = 600;

const cache = new WeakMap<object, PushSettings>();

export function pushSettings(env: Env): PushSettings {
  let s = cache.get(env);
  if (!s) cache.set(env, (s = readSettings(env)));
  return s;
}

/** dotenv files and `--var` carry PEM newlines as the two characters `\n`. */
function pem(value: string): string {
  return value.replace(/\\n/g, "\n").trim();
}

function readSettings(env: Env): PushSettings {
  const s: PushSettings = {
    maxAgeMs: (Number(env.PUSH_MAX_AGE_SECONDS) || 3600) * 1000,
    retryBaseSeconds: Number(env.PUSH_RETRY_BASE_SECONDS) || 5,
  };
  if (env.VAPID_PUBLIC_KEY && env.VAPID_PRIVATE_KEY) {
    s.webpush = { publicKey: env.VAPID_PUBLIC_KEY, privateKey: env.VAPID_PRIVATE_KEY, subject: env.VAPID_SUBJECT || "mailto:push@edgechat.invalid" };
  }
  if (env.FCM_SERVICE_ACCOUNT) {
    try {
      const sa = JSON.parse(env.FCM_SERVICE_ACCOUNT) as { project_id?: unknown; client_email?: unknown; private_key?: unknown };
      if (typeof sa.project_id === "string" && typeof sa.client_email === "string" && typeof sa.private_key === "string") {
        s.fcm = { projectId: sa.project_id, clientEmail: sa.client_email, privateKey: pem(sa.private_key), tokenUrl: env.FCM_TOKEN_URL, apiBaseUrl: env.FCM_API_BASE_URL };
      }
    } catch {
      log("error", "push.config_invalid", { object: "queue", what: "FCM_SERVICE_ACCOUNT is not JSON" });
    }
  }
  if (env.APNS_PRIVATE_KEY && env.APNS_KEY_ID && env.APNS_TEAM_ID) {
    s.apns = { keyId: env.APNS_KEY_ID, teamId: env.APNS_TEAM_ID, privateKey: pem(env.APNS_PRIVATE_KEY), baseUrl: env.APNS_BASE_URL, sandboxBaseUrl: env.APNS_SANDBOX_BASE_URL };
  }
  return s;
}
