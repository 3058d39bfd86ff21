/**
 * The only place that turns an edgechat id into a Durable Object stub.
 *
 * In production an eu/fedramp id is routed through `namespace.jurisdiction(j)`, which pins the
 * object's storage to that jurisdiction. workerd (wrangler dev, tests) throws on jurisdiction(),
 * so with JURISDICTIONS = "simulated" the same ids land in a name-prefixed partition of the plain
 * namespace instead: the routing decision is still made, and tested, on every call.
 */
import { JURISDICTIONS, parseId, type Jurisdiction } from "./ids.js";
import { fnv1a32 } from "./shards.js";
import type { ChannelObject } from "../durable-objects/channel/ChannelObject.js";
import type { UserObject } from "../durable-objects/user/UserObject.js";
import type { PresenceObject } from "../durable-objects/presence/PresenceObject.js";
import type { RelayObject } from "../durable-objects/relay/RelayObject.js";

export { fnv1a32, relayShardOf } from "./shards.js";

type Namespace<T extends Rpc.DurableObjectBranded | undefined> = DurableObjectNamespace<T>;

function objectId<T extends Rpc.DurableObjectBranded | undefined>(env: Env, ns: Namespace<T>, name: string, jurisdiction: Jurisdiction): DurableObjectId {
  if (jurisdiction === "") return ns.idFromName(name);
  if (env.JURISDICTIONS === "simulated") return ns.idFromName(`${jurisdiction}/${name}`);
  return ns.jurisdiction(jurisdiction).idFromName(name);
}

function stubFor<T extends Rpc.DurableObjectBranded | undefined>(env: Env, ns: Namespace<T>, id: string, kind: "u" | "c"): DurableObjectStub<T> {
  const parsed = parseId(id);
  if (!parsed || parsed.kind !== kind) throw new TypeError(`Not a ${kind === "u" ? "user" : "channel"} id: ${String(id).slice(0, 40)}`);
  return ns.get(objectId(env, ns, id, parsed.jurisdiction));
}

/** The ChannelObject that is the single writer of `channelId`. */
export function channelStub(env: Env, channelId: string): DurableObjectStub<ChannelObject> {
  return stubFor(env, env.CHANNELS, channelId, "c");
}

/** The UserObject that holds `userId`'s sockets, devices, sessions and channel list. */
export function userStub(env: Env, userId: string): DurableObjectStub<UserObject> {
  return stubFor(env, env.USERS, userId, "u");
}

/** The name of relay shard `shard` of `channelId` (one object per channel and shard). */
export function relayName(channelId: string, shard: number): string {
  return `relay:${channelId}:${shard}`;
}

/**
 * Relay shard `shard` of `channelId` (docs/decisions/017-relay-tier.md), in the channel's
 * jurisdiction: the watchers it holds are the channel's, so their ids stay where the channel is.
 */
export function relayStub(env: Env, channelId: string, shard: number): DurableObjectStub<RelayObject> {
  const parsed = parseId(channelId);
  if (!parsed || parsed.kind !== "c") throw new TypeError(`Not a channel id: ${String(channelId).slice(0, 40)}`);
  if (!Number.isInteger(shard) || shard < 0) throw new TypeError(`Not a relay shard: ${shard}`);
  return env.RELAYS.get(objectId(env, env.RELAYS, relayName(channelId, shard), parsed.jurisdiction));
}

/**
 * Presence shards per jurisdiction. Changing it re-homes most users to another shard, which
 * forgets their last_seen and their watchers' subscriptions (presence is ephemeral: the next
 * report and re-watch rebuild them).
 */
export const PRESENCE_SHARDS = 32;

function presenceShard(userId: string): { name: string; jurisdiction: Jurisdiction } {
  const parsed = parseId(userId);
  if (!parsed || parsed.kind !== "u") throw new TypeError(`Not a user id: ${String(userId).slice(0, 40)}`);
  return { name: `presence:${fnv1a32(userId) % PRESENCE_SHARDS}`, jurisdiction: parsed.jurisdiction };
}

/**
 * Which presence shard holds `userId`: equal keys mean the same PresenceObject.
 */
export function presenceShardKey(userId: string): string {
  const { name, jurisdiction } = presenceShard(userId);
  return jurisdiction === "" ? name : `${jurisdiction}/${name}`;
}

/** User ids grouped by the presence shard that holds them, so callers make one call per shard. */
export function byPresenceShard(userIds: Iterable<string>): string[][] {
  const groups = new Map<string, string[]>();
  for (const id of userIds) {
    const key = presenceShardKey(id);
    const group = groups.get(key);
    if (group) group.push(id); else groups.set(key, [id]);
  }
  return [...groups.values()];
}

/** The PresenceObject shard that holds `userId`'s presence and its watchers, in the user's jurisdiction. */
export function presenceStub(env: Env, userId: string): DurableObjectStub<PresenceObject> {
  const { name, jurisdiction } = presenceShard(userId);
  return env.PRESENCE.get(objectId(env, env.PRESENCE, name, jurisdiction));
}

/** Every presence shard of every jurisdiction (operator actions that reach all connected users). */
export function allPresenceShards(env: Env): { key: string; stub: () => DurableObjectStub<PresenceObject> }[] {
  const shards: { key: string; stub: () => DurableObjectStub<PresenceObject> }[] = [];
  for (const jurisdiction of JURISDICTIONS) {
    for (let n = 0; n < PRESENCE_SHARDS; n++) {
      const name = `presence:${n}`;
      shards.push({
        key: jurisdiction === "" ? name : `${jurisdiction}/${name}`,
        stub: () => env.PRESENCE.get(objectId(env, env.PRESENCE, name, jurisdiction)),
      });
    }
  }
  return shards;
}
