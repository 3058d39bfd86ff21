/**
 * Web Push (RFC 8030) with VAPID (RFC 8292) and an RFC 8291 `aes128gcm` body. The body is
 * encrypted with @block65/webcrypto-web-push's `encryptNotification` (WebCrypto, ~12 KiB; see
 * docs/decisions/009-push.md); the VAPID JWT is signed here with jose so that the
 * endpoint check stays ours (https in production, loopback http for local fakes).
 */
import { encryptNotification } from "@block65/webcrypto-web-push";
import { importJWK, SignJWT, type CryptoKey as JoseKey } from "jose";
import type { PushPayload, WebPushSubscription } from "../../protocol/push.js";
import type { WebPushSettings } from "../push-settings.js";
import { fromBase64url, base64url, PROVIDER_TIMEOUT_MS, reasonOf, retryAfterSeconds, transient, type Fetch, type SendOutcome } from "./outcome.js";

/** How long a message push may wait at the push service for an offline browser. */
const TTL_SECONDS = 24 * 3600;
/** VAPID tokens live 12 h (RFC 8292 allows 24); reused until an hour before that. */
const VAPID_TTL_SECONDS = 12 * 3600;

let signingKey: { privateKey: string; key: Promise<JoseKey | Uint8Array> } | undefined;
const tokens = new Map<string, { jwt: string; exp: number }>();

function key(s: WebPushSettings): Promise<JoseKey | Uint8Array> {
  if (signingKey?.privateKey !== s.privateKey) {
    const pub = fromBase64url(s.publicKey);
    signingKey = {
      privateKey: s.privateKey,
      key: importJWK({ kty: "EC", crv: "P-256", x: base64url(pub.subarray(1, 33)), y: base64url(pub.subarray(33, 65)), d: s.privateKey }, "ES256"),
    };
    tokens.clear();
  }
  return signingKey.key;
}

/** The VAPID JWT for one push service origin, cached per origin. */
export async function vapidToken(s: WebPushSettings, audience: string, nowMs = Date.now()): Promise<string> {
  const now = Math.floor(nowMs / 1000);
  const k = await key(s);
  const cached = tokens.get(audience);
  if (cached && cached.exp - 3600 > now) return cached.jwt;
  const exp = now + VAPID_TTL_SECONDS;
  const jwt = await new SignJWT({ sub: s.subject }).setProtectedHeader({ alg: "ES256", typ: "JWT" }).setAudience(audience).setExpirationTime(exp).sign(k);
  tokens.set(audience, { jwt, exp });
  return jwt;
}

export async function sendWebPush(sub: WebPushSubscription, payload: PushPayload, topic: string, s: WebPushSettings, fetcher: Fetch): Promise<SendOutcome> {
  const audience = new URL(sub.endpoint).origin;
  const jwt = await vapidToken(s, audience);
  let body: Uint8Array<ArrayBuffer>;
  try {
    body = await encryptNotification({ endpoint: sub.endpoint, expirationTime: null, keys: sub.keys }, new TextEncoder().encode(JSON.stringify(payload)));
  } catch (err) {
    // p256dh is not a point on the curve: this subscription can never be encrypted to.
    return { kind: "rejected", status: 0, reason: `encryption: ${String(err).slice(0, 100)}` };
  }
  let res: Response;
  try {
    res = await fetcher(sub.endpoint, {
      method: "POST",
      headers: {
        authorization: `vapid t=${jwt}, k=${s.publicKey}`,
        ttl: String(TTL_SECONDS),
        urgency: payload.type === "message" ? "high" : "normal",
        // Same topic for a channel's updates and its clear: a newer one replaces one still queued at the push service.
        topic,
        "content-encoding": "aes128gcm",
        "content-type": "application/octet-stream",
      },
      body,
      signal: AbortSignal.timeout(PROVIDER_TIMEOUT_MS),
    });
  } catch (err) {
    return { kind: "retry", status: 0, reason: `network: ${String(err).slice(0, 100)}` };
  }
  if (res.ok) { await res.body?.cancel(); return { kind: "sent", status: res.status }; }
  const reason = await reasonOf(res);
  if (res.status === 404 || res.status === 410) return { kind: "gone", status: res.status, reason };
  if (transient(res.status)) return { kind: "retry", status: res.status, reason, afterSeconds: retryAfterSeconds(res) };
  return { kind: "rejected", status: res.status, reason };
}
