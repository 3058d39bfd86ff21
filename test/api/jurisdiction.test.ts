import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { newId, parseId } from "../../shared/ids.js";
import { channelStub, userStub } from "../../shared/routing.js";
import { call, createGroup, uniqueName, type TestUser } from "../helpers/api.js";
import { onlineDevice } from "../helpers/socket.js";

describe("data locality", () => {
  it("keeps an eu user's object and the channels they create in the eu partition", async () => {
    const reg = await call<TestUser>("POST", "/v1/auth/register", { body: { username: uniqueName("eu"), password: "correct horse battery", jurisdiction: "eu" } });
    expect(reg.status).toBe(201);
    const euUser = reg.body;
    expect(parseId(euUser.user_id)).toEqual({ kind: "u", jurisdiction: "eu" });
    const other = (await call<TestUser>("POST", "/v1/auth/register", { body: { username: uniqueName("gl"), password: "correct horse battery" } })).body;
    const channel = await createGroup(euUser, [other], "Berlin");
    expect(parseId(channel)?.jurisdiction).toBe("eu");
    // A user outside the jurisdiction still talks to it: only where it runs is constrained.
    const d = await onlineDevice(other.access_token, "o");
    const ack = await d.sendText(channel, "hallo");
    expect(ack.send_ack?.seq).toBe(2);
    d.close();
  });

  it("routes eu ids to a partition of their own, and through namespace.jurisdiction() in production", async () => {
    const id = newId("c", "eu").slice(5);
    const euId = `c_eu_${id}`, globalId = `c_g_${id}`;
    // Simulated (local): same random part, different jurisdiction, different object.
    expect(channelStub(env, euId).id.toString()).not.toBe(channelStub(env, globalId).id.toString());
    // Native: the production path asks workerd for the jurisdiction, which it cannot do locally.
    const native = { ...env, JURISDICTIONS: "native" } as Env;
    expect(() => channelStub(native, euId)).toThrow(/[Jj]urisdiction/);
    expect(() => userStub(native, newId("u", "fedramp"))).toThrow(/[Jj]urisdiction/);
    expect(channelStub(native, globalId).id.toString()).toBe(channelStub(env, globalId).id.toString());
    expect(() => channelStub(env, "u_g_0123456789abcdefghjkmnpqrs")).toThrow(/Not a channel id/);
  });
});
