/**
 * DMs from before the locality policy (decision 016): one pair could have two, `c_eu_H` opened by
 * the EU member and `c_g_H` opened by the global one. The policy names `c_eu_H`; the other stays
 * readable for both and refuses new messages with a pointer (docs/decisions/021).
 */
import { abortAllDurableObjects, env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { canonicalDm } from "../../shared/locality.js";
import { newId } from "../../shared/ids.js";
import { channelStub } from "../../shared/routing.js";
import { call, uniqueName, type TestUser } from "../helpers/api.js";

async function registerIn(jurisdiction: "" | "eu" | "fedramp"): Promise<TestUser> {
  const r = await call<TestUser>("POST", "/v1/auth/register", { body: { username: uniqueName(jurisdiction || "g"), password: "correct horse battery", jurisdiction } });
  if (r.status !== 201) throw new Error(`register failed: ${r.status}`);
  return r.body;
}

const member = (u: TestUser) => ({ user_id: u.user_id, username: u.username, display_name: u.display_name });
const send = (u: TestUser, channelId: string, text: string) => call<{ ack?: { seq: number }; code?: string; message?: string }>(
  "POST", `/v1/channels/${channelId}/messages`, { token: u.access_token, body: { client_msg_id: crypto.randomUUID(), content: { text: { text } } } });

describe("old cross-jurisdiction DMs", () => {
  it("names the canonical DM from the pair, whichever id an old one carries", () => {
    const eu = newId("u", "eu"), g = newId("u", ""), fr = newId("u", "fedramp");
    const hash = "0123456789abcdefghjkmnpqrs";
    expect(canonicalDm(`c_g_${hash}`, [eu, g])).toBe(`c_eu_${hash}`);
    expect(canonicalDm(`c_g_${hash}`, [g, eu])).toBe(`c_eu_${hash}`);
    expect(canonicalDm(`c_eu_${hash}`, [eu, g])).toBeUndefined();
    expect(canonicalDm(`c_g_${hash}`, [g, newId("u", "")])).toBeUndefined();
    expect(canonicalDm(`c_g_${hash}`, [eu, fr])).toBeUndefined();
  });

  it("keeps the old DM readable, refuses new messages there with a pointer, and sends both members to the canonical one", async () => {
    const eu = await registerIn("eu"), global = await registerIn("");
    // The canonical DM, as the policy opens it from either side.
    const opened = await call<{ channel: { channel_id: string } }>("POST", "/v1/channels", { token: global.access_token, body: { type: "dm", member: eu.username } });
    expect(opened.status).toBe(201);
    const canonical = opened.body.channel.channel_id;
    // The DM the global member would have got before the policy: same pair hash, global tag.
    const old = canonical.replace(/^c_eu_/, "c_g_");
    const created = await channelStub(env, old).create({ channelId: old, type: "dm", name: "", creator: member(global), members: [member(eu)], jurisdiction: "" });
    expect(created.ok).toBe(true);
    const before = await send(global, old, "from before");
    expect(before.status).toBe(201);
    // The release with the policy starts: the object wakes and finds it is not the canonical DM.
    await abortAllDurableObjects();

    for (const u of [eu, global]) {
      const details = await call<{ channel: { superseded_by?: string } }>("GET", `/v1/channels/${old}`, { token: u.access_token });
      expect(details.status).toBe(200);
      expect(details.body.channel.superseded_by).toBe(canonical);
      const history = await call<{ messages: { content: { text?: { text: string } } }[] }>("GET", `/v1/channels/${old}/messages?after=0`, { token: u.access_token });
      expect(history.status).toBe(200);
      expect(history.body.messages.map((m) => m.content.text?.text).filter(Boolean)).toEqual(["from before"]);
      const refused = await send(u, old, "still here?");
      expect(refused).toMatchObject({ status: 409, body: { code: "conversation_moved" } });
      expect(refused.body.message).toContain(canonical);
    }
    // The canonical one takes messages and is not marked.
    expect((await send(eu, canonical, "here")).status).toBe(201);
    const details = await call<{ channel: { superseded_by?: string } }>("GET", `/v1/channels/${canonical}`, { token: eu.access_token });
    expect(details.body.channel.superseded_by).toBeUndefined();
  });
});
