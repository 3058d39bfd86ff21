/**
 * FCM HTTP v1. firebase-admin does not run in Workers, so the service account's OAuth assertion
 * (RS256 JWT) is minted with jose and exchanged at the token endpoint; the access token is cached
 * per isolate until five minutes before it expires.
 */
import { importPKCS8, SignJWT } from "jose";
import type { FcmSubscription, PushPayload } from "../../protocol/push.js";
import type { FcmSettings } from "../push-settings.js";
import { PROVIDER_TIMEOUT_MS, reasonOf, retryAfterSeconds, transient, type Fetch, type SendOutcome } from "./outcome.js";

const SCOPE = "https://www.googleapis.com/auth/firebase.messaging";
const REFRESH_MARGIN_MS = 5 * 60 * 1000;

let cached: { owner: string; token: string; expiresAt: number } | undefined;

/** Drops the cached access token (tests, and a 401 from FCM). */
export function forgetFcmToken(): void {
  cached = undefined;
}

type TokenResult = { ok: true; token: string } | { ok: false; outcome: SendOutcome };

async function accessToken(s: FcmSettings, fetcher: Fetch): Promise<TokenResult> {
  const owner = `${s.clientEmail} ${s.tokenUrl}`;
  if (cached && cached.owner === owner && cached.expiresAt - REFRESH_MARGIN_MS > Date.now()) return { ok: true, token: cached.token };
  const key = await importPKCS8(s.privateKey, "RS256");
  const assertion = await new SignJWT({ scope: SCOPE })
    .setProtectedHeader({ alg: "RS256", typ: "JWT" })
    .setIssuer(s.clientEmail).setSubject(s.clientEmail).setAudience(s.tokenUrl)
    .setIssuedAt().setExpirationTime("1h")
    .sign(key);
  let res: Response;
  try {
    res = await fetcher(s.tokenUrl, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer", assertion }).toString(),
      signal: AbortSignal.timeout(PROVIDER_TIMEOUT_MS),
    });
  } catch (err) {
    return { ok: false, outcome: { kind: "retry", status: 0, reason: `token network: ${String(err).slice(0, 100)}` } };
  }
  if (!res.ok) {
    const reason = `token: ${await reasonOf(res)}`;
    return { ok: false, outcome: transient(res.status) ? { kind: "retry", status: res.status, reason, afterSeconds: retryAfterSeconds(res) } : { kind: "rejected", status: res.status, reason } };
  }
  const body = (await res.json()) as { access_token?: unknown; expires_in?: unknown };
  if (typeof body.access_token !== "string") return { ok: false, outcome: { kind: "retry", status: res.status, reason: "token: no access_token" } };
  const expiresIn = typeof body.expires_in === "number" ? body.expires_in : 3600;
  cached = { owner, token: body.access_token, expiresAt: Date.now() + expiresIn * 1000 };
  return { ok: true, token: body.access_token };
}

/** The FCM v1 message: data for the app, plus a notification the system shows and replaces by tag. */
export function fcmMessage(sub: FcmSubscription, payload: PushPayload, collapseKey: string): object {
  const data = Object.fromEntries(Object.entries(payload).map(([k, v]) => [k, String(v)]));
  if (payload.type === "clear") {
    return { message: { token: sub.token, data, android: { collapse_key: collapseKey, priority: "NORMAL", ttl: "86400s" } } };
  }
  const title = payload.channel_type === "dm" ? payload.sender_name : payload.channel_name;
  const body = `${payload.channel_type === "dm" ? "" : `${payload.sender_name}: `}${payload.preview ?? (payload.count > 1 ? `${payload.count} new messages` : "New message")}`;
  return {
    message: {
      token: sub.token, data,
      android: { collapse_key: collapseKey, priority: "HIGH", ttl: "86400s", notification: { title, body, tag: collapseKey } },
    },
  };
}

export async function sendFcm(sub: FcmSubscription, payload: PushPayload, collapseKey: string, s: FcmSettings, fetcher: Fetch): Promise<SendOutcome> {
  const token = await accessToken(s, fetcher);
  if (!token.ok) return token.outcome;
  let res: Response;
  try {
    res = await fetcher(`${s.apiBaseUrl}/v1/projects/${encodeURIComponent(s.projectId)}/messages:send`, {
      method: "POST",
      headers: { authorization: `Bearer ${token.token}`, "content-type": "application/json" },
      body: JSON.stringify(fcmMessage(sub, payload, collapseKey)),
      signal: AbortSignal.timeout(PROVIDER_TIMEOUT_MS),
    });
  } catch (err) {
    return { kind: "retry", status: 0, reason: `network: ${String(err).slice(0, 100)}` };
  }
  if (res.ok) { await res.body?.cancel(); return { kind: "sent", status: res.status }; }
  const reason = await reasonOf(res);
  // 404 UNREGISTERED: the app was uninstalled or the token rotated.
  if (res.status === 404 || res.status === 410) return { kind: "gone", status: res.status, reason };
  if (res.status === 401) {
    forgetFcmToken();
    return { kind: "retry", status: res.status, reason };
  }
  if (transient(res.status)) return { kind: "retry", status: res.status, reason, afterSeconds: retryAfterSeconds(res) };
  return { kind: "rejected", status: res.status, reason };
}
