/**
 * Avatars on R2 (PUT /v1/me/avatar): one object per user in the attachments bucket, under a
 * prefix no attachment id can take. Erasure deletes it (durable-objects/user/erasure.ts).
 */
export function avatarKey(userId: string): string {
  return `avatars/${userId}`;
}

/** The image types an avatar may have, from AVATAR_CONTENT_TYPES. */
export function avatarTypes(env: Env): string[] {
  return (env.AVATAR_CONTENT_TYPES || "image/jpeg,image/png,image/webp,image/gif").split(",").map((t) => t.trim().toLowerCase()).filter((t) => t !== "");
}

/** The largest avatar in bytes, from AVATAR_MAX_BYTES (256 KiB by default). */
export function avatarMaxBytes(env: Env): number {
  const n = Number(env.AVATAR_MAX_BYTES);
  return Number.isInteger(n) && n > 0 ? n : 256 * 1024;
}
