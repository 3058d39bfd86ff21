/**
 * Fan-out tiers (docs/decisions/013 and 017): how a channel's posts reach its watchers.
 *
 * - **direct**: the channel calls each watcher's UserObject itself (32 at a time). DMs and groups
 *   up to DIRECT_TIER_MAX_MEMBERS members.
 * - **relay**: watchers are registered at RelayObject shards (shard = stable hash of the user id
 *   mod the channel's shard count) and the channel makes one call per shard that has watchers per
 *   batch: its own thread does O(shards), not O(watchers). Larger groups (RELAY_SHARDS_GROUP
 *   shards) and every broadcast channel (RELAY_SHARDS_BROADCAST shards).
 *
 * A channel enters the relay tier once (when it is created large, grows past the threshold, or
 * wakes after the threshold was lowered) and stays there: its shard count is written in the
 * channel row and never changes, so a watcher's shard never moves. A group that shrinks below the
 * threshold keeps delivering through its relays (one extra hop, no re-registration churn when it
 * hovers around the threshold).
 */
import { count } from "../../shared/metrics.js";
import type { ChannelType } from "./types.js";
import type { ChannelRow } from "./views.js";

export interface TierConfig {
  /** Groups with more members than this deliver through relays. */
  directMaxMembers: number;
  /** Relay shards of a large group. */
  groupShards: number;
  /** Relay shards of a broadcast channel. */
  broadcastShards: number;
}

export const TIER_DEFAULTS: TierConfig = { directMaxMembers: 100, groupShards: 16, broadcastShards: 64 };
/** More shards than this is a configuration mistake (each shard is an object and one call per batch). */
export const MAX_RELAY_SHARDS = 256;

type TierEnv = Partial<Record<"DIRECT_TIER_MAX_MEMBERS" | "RELAY_SHARDS_GROUP" | "RELAY_SHARDS_BROADCAST", string>>;

function intVar(value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined || value.trim() === "") return fallback;
  const n = Number(value);
  return Number.isInteger(n) && n >= min && n <= max ? n : fallback;
}

/** The thresholds from the Worker's vars (wrangler.toml), defaults for what is unset or not a sane integer. */
export function tierConfigFromEnv(env: TierEnv): TierConfig {
  return {
    directMaxMembers: intVar(env.DIRECT_TIER_MAX_MEMBERS, TIER_DEFAULTS.directMaxMembers, 0, 1_000_000),
    groupShards: intVar(env.RELAY_SHARDS_GROUP, TIER_DEFAULTS.groupShards, 1, MAX_RELAY_SHARDS),
    broadcastShards: intVar(env.RELAY_SHARDS_BROADCAST, TIER_DEFAULTS.broadcastShards, 1, MAX_RELAY_SHARDS),
  };
}

/**
 * The relay shards a channel should deliver through (0: the direct tier), from its type and size.
 * `current` is what the channel row says: once in a relay tier, a channel stays with its shards.
 */
export function relayShardsFor(type: ChannelType, memberCount: number, current: number, config: TierConfig): number {
  if (current > 0) return current;
  if (type === "broadcast") return config.broadcastShards;
  if (type === "group" && memberCount > config.directMaxMembers) return config.groupShards;
  return 0;
}

/**
 * Enters the relay tier when the channel's type and size call for it: the shard count is written
 * in the channel row (and `row`) once and kept. Answers the new shard count, or undefined when the
 * tier stays as it is. The caller then loads its watchers for the shards and starts the pump, which
 * registers them at their shards a page per step, delivering to them directly until each is confirmed.
 */
export function enterTier(sql: SqlStorage, row: ChannelRow, memberCount: number, config: TierConfig): number | undefined {
  const shards = relayShardsFor(row.type, memberCount, row.relay_shards, config);
  if (shards === row.relay_shards) return undefined;
  sql.exec("UPDATE channel SET relay_shards = ? WHERE id = 1", shards);
  row.relay_shards = shards;
  count("channel.relay_tier", 1, { shards: String(shards) });
  return shards;
}
