/**
 * Which shard holds a user: pure arithmetic on ids, shared by the objects (shared/routing.ts) and
 * by Node-side tools and tests that need to know where a user's watcher lives.
 */

/** 32-bit FNV-1a over the string's UTF-16 code units (ids are ASCII, so over its bytes). */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A user's relay shard among `shards`: stable for as long as the channel's shard count is. */
export function relayShardOf(userId: string, shards: number): number {
  return fnv1a32(userId) % shards;
}

/** `items` grouped by their user's relay shard among `shards`, in their order within each shard. */
export function byRelayShard<T extends { user_id: string }>(items: readonly T[], shards: number): Map<number, T[]> {
  const groups = new Map<number, T[]>();
  for (const item of items) {
    const shard = relayShardOf(item.user_id, shards);
    const group = groups.get(shard);
    if (group) group.push(item); else groups.set(shard, [item]);
  }
  return groups;
}
