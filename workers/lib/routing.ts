/**
 * The only place that turns an edgechat id into a Durable Object stub.
 *
 * In production an eu/fedramp id is routed through `namespace.jurisdiction(j)`, which pins the
 * object's storage to that jurisdiction. workerd (wrangler dev, tests) throws on jurisdiction(),
 * so with JURISDICTIONS = "simulated" the same ids land in a name-prefixed partition of the plain
 * namespace instead: the routing decision is still made, and tested, on every call.
 */
import { parseId, type Jurisdiction } from "./ids.js";
import type { ChannelObject } from "../../durable-objects/channel/ChannelObject.js";
import type { UserObject } from "../../durable-objects/user/UserObject.js";

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
