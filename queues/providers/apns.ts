/**
 * APNs token-based auth: an ES256 provider JWT (kid = key id, iss = team id) minted with jose and
 * reused for 30 minutes (Apple refuses tokens older than an hour and throttles frequent refreshes).
 * HTTP/2 is Apple's requirement; a Worker's fetch speaks it in production. Locally, the fake APNs
 * is plain HTTP/1.1 on loopback.
 */
import { importPKCS8, SignJWT } from "jose";
import type { ApnsSubscription, PushPayload } from "../../protocol/push.js";
import type { ApnsSettings } from "../push-settings.js";
import { PROVIDER_TIMEOUT_MS, reasonOf, retryAfterSeconds, transient, type Fetch, type SendOutcome } from "./outcome.js";

const TOKEN_REUSE_MS = 30 * 60 * 1000;

let cached: { owner: string; jwt: string; mintedAt: number } | undefined;

/** Drops the cached provider token (tests, and 403 ExpiredProviderToken). */
export function forgetApnsToken(): void {
  cached = undefined;
}

async function providerToken(s: ApnsSettings): Promise<string> {
  const owner = `${s.teamId} ${s.keyId}`;
  if (cached && cached.owner === owner && Date.now() - cached.mintedAt < TOKEN_REUSE_MS) return cached.jwt;
  const key = await importPKCS8(s.privateKey, "ES256");
  const jwt = await new SignJWT({}).setProtectedHeader({ alg: "ES256", kid: s.keyId }).setIssuer(s.teamId).setIssuedAt().sign(key);
  cached = { owner, jwt, mintedAt: Date.now() };
  return jwt;
}

/** The APNs body: an alert for a message (grouped per channel by thread-id), a silent push for a clear. */
export function apnsBody(payload: PushPayload): object {
  if (payload.type === "clear") return { aps: { "content-available": 1 }, edgechat: payload };
  const title = payload.channel_type === "dm" ? payload.sender_name : payload.channel_name;
  const body = `${payload.channel_type === "dm" ? "" : `${payload.sender_name}: `}${payload.preview ?? (payload.count > 1 ? `${payload.count} new messages` : "New message")}`;
  return { aps: { alert: { title, body }, sound: "default", "thread-id": payload.channel_id, "mutable-content": 1 }, edgechat: payload };
}

export async function sendApns(sub: ApnsSubscription, payload: PushPayload, collapseKey: string, s: ApnsSettings, fetcher: Fetch): Promise<SendOutcome> {
  const jwt = await providerToken(s);
  const base = sub.sandbox ? s.sandboxBaseUrl : s.baseUrl;
  const message = payload.type === "message";
  let res: Response;
  try {
    res = await fetcher(`${base}/3/device/${sub.token}`, {
      method: "POST",
      headers: {
        authorization: `bearer ${jwt}`,
        "apns-topic": sub.topic,
        "apns-push-type": message ? "alert" : "background",
        "apns-priority": message ? "10" : "5",
        "apns-collapse-id": collapseKey,
        "apns-expiration": String(Math.floor(Date.now() / 1000) + 24 * 3600),
        "content-type": "application/json",
      },
      body: JSON.stringify(apnsBody(payload)),
      signal: AbortSignal.timeout(PROVIDER_TIMEOUT_MS),
    });
  } catch (err) {
    return { kind: "retry", status: 0, reason: `network: ${String(err).slice(0, 100)}` };
  }
  if (res.ok) { await res.body?.cancel(); return { kind: "sent", status: res.status }; }
  const reason = await reasonOf(res);
  // 410 Unregistered. Not 400 BadDeviceToken: a wrong topic or environment says that for every token.
  if (res.status === 410) return { kind: "gone", status: res.status, reason };
  if (res.status === 403 && (reason === "ExpiredProviderToken" || reason === "InvalidProviderToken")) {
    forgetApnsToken();
    return { kind: "retry", status: res.status, reason };
  }
  if (transient(res.status)) return { kind: "retry", status: res.status, reason, afterSeconds: retryAfterSeconds(res) };
  return { kind: "rejected", status: res.status, reason };
}
