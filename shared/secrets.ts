/**
 * Secrets and their encodings, shared by the edge (password hashes, refresh tokens) and the
 * UserObject (which keeps only hashes of its refresh sessions' secrets).
 */

export function b64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export function fromB64url(s: string): Uint8Array {
  const bin = atob(s.replaceAll("-", "+").replaceAll("_", "/"));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Compares in time that depends on the length only, not on where the bytes differ. */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** 256 random bits: the secret part of a refresh token. */
export function newRefreshSecret(): string {
  return b64url(crypto.getRandomValues(new Uint8Array(32)));
}

/** SHA-256 of a refresh secret: sessions store this, never the secret itself. */
export async function hashSecret(secret: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(secret));
  return b64url(new Uint8Array(digest));
}
