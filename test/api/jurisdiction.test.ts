import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { newId, parseId } from "../../shared/ids.js";
import { channelStub, userStub } from "../../shared/routing.js";
import { call, createGroup, uniqueName, type ChannelBody, type TestUser } from "../helpers/api.js";
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

  it("gives an eu user and a global user one DM whoever opens it, stored in the eu", async () => {
    const eu = await registerIn("eu"), global = await registerIn("");
    const fromEu = await call<ChannelBody>("POST", "/v1/channels", { token: eu.access_token, body: { type: "dm", member: global.username } });
    const fromGlobal = await call<ChannelBody>("POST", "/v1/channels", { token: global.access_token, body: { type: "dm", member: eu.username } });
    expect(fromEu.status).toBe(201);
    expect(fromGlobal.status).toBe(200);
    expect(fromGlobal.body.channel.channel_id).toBe(fromEu.body.channel.channel_id);
    expect(parseId(fromEu.body.channel.channel_id)?.jurisdiction).toBe("eu");
    for (const u of [eu, global]) {
      const list = await call<{ channels: { channel_id: string }[] }>("GET", "/v1/channels", { token: u.access_token });
      expect(list.body.channels.map((ch) => ch.channel_id)).toEqual([fromEu.body.channel.channel_id]);
    }
  });

  it("stores a group with an eu member in the eu, even when a global user creates it", async () => {
    const global = await registerIn(""), eu = await registerIn("eu");
    expect(parseId(await createGroup(global, [eu], "Mixed"))?.jurisdiction).toBe("eu");
  });

  it("refuses to put a pinned user's data where it may not live, and says who and why", async () => {
    const global = await registerIn(""), other = await registerIn(""), eu = await registerIn("eu"), fr = await registerIn("fedramp");
    const dm = await call("POST", "/v1/channels", { token: eu.access_token, body: { type: "dm", member: fr.username } });
    expect(dm).toMatchObject({ status: 403, body: { code: "jurisdiction_conflict", retryable: false } });
    const group = await call("POST", "/v1/channels", { token: global.access_token, body: { type: "group", name: "Both", members: [eu.user_id, fr.user_id] } });
    expect(group).toMatchObject({ status: 403, body: { code: "jurisdiction_conflict" } });
    const channel = await createGroup(global, [other], "Global");
    const add = await call<{ code: string; message: string }>("POST", `/v1/channels/${channel}/members`, { token: global.access_token, body: { members: [eu.user_id] } });
    expect(add.status).toBe(403);
    expect(add.body.code).toBe("jurisdiction_conflict");
    expect(add.body.message).toContain(eu.user_id);
    const members = await call<ChannelBody>("GET", `/v1/channels/${channel}`, { token: global.access_token });
    expect(members.body.channel.member_count).toBe(2);
  });
});

async function registerIn(jurisdiction: "" | "eu" | "fedramp"): Promise<TestUser> {
  const r = await call<TestUser>("POST", "/v1/auth/register", { body: { username: uniqueName(jurisdiction || "g"), password: "correct horse battery", jurisdiction } });
  if (r.status !== 201) throw new Error(`register failed: ${r.status}`);
  return r.body;
}
