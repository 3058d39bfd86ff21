/**
 * Overload: when an object's pending work passes a threshold its clients are asked to slow down
 * (SLOWDOWN {delay_ms}) before any of them fills its 64-frame window, ephemeral signals (typing,
 * presence) are dropped, and 1:1 traffic is served before groups before broadcast
 * (docs/decisions/022-overload.md). These are the numbers and the one delay rule, shared by the
 * UserObject (SENDs awaiting their channel, across all the user's sockets) and the ChannelObject
 * (fan-out lag: stored messages not yet delivered to watchers).
 *
 * @example
 * const o = overloadFromEnv(env);
 * slowdownDelay(40, 32, o); // 250 + 7 × 25 = 425 ms (the first SEND past 32 gets 250)
 */
import type { ChannelType } from "../durable-objects/channel/types.js";

export interface OverloadConfig {
  /** A UserObject is under pressure past this many unanswered SENDs over all its sockets. */
  userPendingSends: number;
  /** A ChannelObject is under pressure past this fan-out lag (last_seq − fanout_seq), by type. */
  channelLag: Record<ChannelType, number>;
  /** SLOWDOWN's delay at the threshold, then `perExcessMs` more per unit past it, at most `maxDelayMs`. */
  baseDelayMs: number;
  perExcessMs: number;
  maxDelayMs: number;
  /** While under pressure, at most this many appendBatch calls in flight per UserObject, DMs first. */
  callsUnderPressure: number;
}

export const DEFAULT_OVERLOAD: OverloadConfig = {
  // Half the window: one busy socket, or several moderate ones, is told before any is refused.
  userPendingSends: 32,
  // A broadcast's fan-out is the costliest, so it is slowed first; a DM last.
  channelLag: { dm: 256, group: 128, broadcast: 64 },
  baseDelayMs: 250,
  perExcessMs: 25,
  maxDelayMs: 2000,
  callsUnderPressure: 4,
};

function positive(raw: string | undefined, fallback: number): number {
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  return Number.isSafeInteger(n) && n > 0 ? n : fallback;
}

/** The thresholds, with OVERLOAD_USER_PENDING_SENDS and OVERLOAD_CHANNEL_LAG_{DM,GROUP,BROADCAST} from the vars. */
export function overloadFromEnv(env: {
  OVERLOAD_USER_PENDING_SENDS?: string; OVERLOAD_CHANNEL_LAG_DM?: string; OVERLOAD_CHANNEL_LAG_GROUP?: string; OVERLOAD_CHANNEL_LAG_BROADCAST?: string;
}): OverloadConfig {
  const d = DEFAULT_OVERLOAD;
  return {
    ...d,
    userPendingSends: positive(env.OVERLOAD_USER_PENDING_SENDS, d.userPendingSends),
    channelLag: {
      dm: positive(env.OVERLOAD_CHANNEL_LAG_DM, d.channelLag.dm),
      group: positive(env.OVERLOAD_CHANNEL_LAG_GROUP, d.channelLag.group),
      broadcast: positive(env.OVERLOAD_CHANNEL_LAG_BROADCAST, d.channelLag.broadcast),
    },
  };
}

/**
 * How long to ask clients to pause for `load` against `threshold`: nothing at or below it, then a
 * delay proportional to the excess, capped.
 */
export function slowdownDelay(load: number, threshold: number, c: Pick<OverloadConfig, "baseDelayMs" | "perExcessMs" | "maxDelayMs"> = DEFAULT_OVERLOAD): number | undefined {
  if (load <= threshold) return undefined;
  return Math.min(c.maxDelayMs, c.baseDelayMs + c.perExcessMs * (load - threshold - 1));
}

/** Serving order under pressure: 1:1 before groups before broadcast (seed §10.8). Unknown: as a group. */
export function channelRank(type: string | undefined): number {
  return type === "dm" ? 0 : type === "broadcast" ? 2 : 1;
}
