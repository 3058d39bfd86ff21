/** What a provider call came to, and the pieces every provider shares. */

export type SendOutcome =
  /** The provider accepted the push. */
  | { kind: "sent"; status: number }
  /** The subscription no longer exists (404/410): remove it from the device. */
  | { kind: "gone"; status: number; reason: string }
  /** Try again later (429, 5xx, network, an expired credential). */
  | { kind: "retry"; status: number; reason: string; afterSeconds?: number }
  /** Will never succeed as sent (bad request, provider not configured): drop it, say why. */
  | { kind: "rejected"; status: number; reason: string };

export type Fetch = (input: string, init: RequestInit) => Promise<Response>;

/** Provider calls give up after this long and are retried through the queue. */
export const PROVIDER_TIMEOUT_MS = 10_000;

/** Seconds from a Retry-After header (delta seconds or an HTTP date); undefined when absent or unreadable. */
export function retryAfterSeconds(res: Response, now = Date.now()): number | undefined {
  const v = res.headers.get("retry-after");
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim());
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}

/** 429 and 5xx are the provider's "later"; everything else not 2xx is the caller's problem. */
export function transient(status: number): boolean {
  return status === 429 || status >= 500;
}

/** A short reason from a provider's error body, for logs (never the whole body). */
export async function reasonOf(res: Response): Promise<string> {
  const text = await res.text().catch(() => "");
  try {
    const j = JSON.parse(text) as { reason?: unknown; error?: { status?: unknown; message?: unknown } | unknown };
    if (typeof j.reason === "string") return j.reason;
    const e = j.error as { status?: unknown; message?: unknown } | undefined;
    if (e && typeof e === "object") return String(e.status ?? e.message ?? "").slice(0, 120);
    if (typeof j.error === "string") return j.error.slice(0, 120);
  } catch {
    // not JSON
  }
  return text.slice(0, 120) || `HTTP ${res.status}`;
}

/** base64url without padding. */
export function base64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function fromBase64url(s: string): Uint8Array {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/**
 * One collapse key per channel for every provider: 24 bytes of SHA-256(channel id) as 32
 * base64url characters, the most a Web Push `Topic` may hold (RFC 8030 §5.4), and opaque, so the
 * push services never learn channel ids.
 */
export async function collapseKey(channelId: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(channelId)));
  return base64url(digest.subarray(0, 24));
}
