/**
 * Short-lived signed URLs for the Worker's own blob routes (the local upload path, and downloads
 * when no S3 keys are configured). The signature is an HMAC-SHA-256 over what the URL allows:
 * the method, the attachment, the part and the expiry, with a key derived from JWT_SECRET, so
 * there is no second secret to manage. A URL cannot be widened: another part, method or expiry
 * needs another signature.
 */
const encoder = new TextEncoder();
const keys = new WeakMap<object, { secret: string; key: Promise<CryptoKey> }>();

export type BlobAction = "put" | "part" | "get";

export interface BlobGrant {
  action: BlobAction;
  attachmentId: string;
  /** 1-based part number for `part`; 0 otherwise. */
  part: number;
  /** Unix seconds. */
  expires: number;
}

async function urlKey(env: Env): Promise<CryptoKey> {
  const secret = env.JWT_SECRET;
  if (typeof secret !== "string" || secret.length < 32) throw new Error("JWT_SECRET must be set to at least 32 characters.");
  const cached = keys.get(env);
  if (cached && cached.secret === secret) return cached.key;
  const key = (async () => {
    const root = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    const derived = await crypto.subtle.sign("HMAC", root, encoder.encode("edgechat blob urls v1"));
    return crypto.subtle.importKey("raw", derived, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
  })();
  keys.set(env, { secret, key });
  return key;
}

function payload(g: BlobGrant): Uint8Array {
  return encoder.encode(`${g.action}\n${g.attachmentId}\n${g.part}\n${g.expires}`);
}

function b64url(bytes: ArrayBuffer): string {
  let s = "";
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromB64url(s: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9_-]{1,100}$/.test(s)) return undefined;
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** The path of a blob route for `g`, with its signature: `/v1/blobs/<id>[/parts/<n>]?action=&exp=&sig=`. */
export async function signBlobUrl(env: Env, origin: string, g: BlobGrant): Promise<string> {
  const sig = b64url(await crypto.subtle.sign("HMAC", await urlKey(env), payload(g)));
  const path = g.action === "part" ? `/v1/blobs/${g.attachmentId}/parts/${g.part}` : `/v1/blobs/${g.attachmentId}`;
  return `${origin}${path}?action=${g.action}&exp=${g.expires}&sig=${sig}`;
}

/** Checks a signed blob URL; `now` in ms. Constant-time (crypto.subtle.verify). */
export async function verifyBlobUrl(env: Env, g: Omit<BlobGrant, "expires">, params: URLSearchParams, now = Date.now()): Promise<"ok" | "expired" | "invalid"> {
  const expires = Number(params.get("exp"));
  const sig = fromB64url(params.get("sig") ?? "");
  if (params.get("action") !== g.action || !Number.isSafeInteger(expires) || !sig) return "invalid";
  const valid = await crypto.subtle.verify("HMAC", await urlKey(env), sig, payload({ ...g, expires }));
  if (!valid) return "invalid";
  return expires * 1000 < now ? "expired" : "ok";
}
