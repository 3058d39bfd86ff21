/**
 * Who may add me to groups: everyone (the default), or only people I already share a
 * conversation with (`group_adds: "contacts"`, as WhatsApp and Telegram let users choose). A
 * group create or an add that names someone who does not allow it is refused as a whole
 * (nothing is created or changed), saying who and why.
 */
import { describe, expect, it } from "vitest";
import { call, createDm, createGroup, register, type ChannelBody, type TestUser } from "../helpers/api.js";

const onlyContacts = (user: TestUser) => call("PATCH", "/v1/me/settings", { token: user.access_token, body: { group_adds: "contacts" } });
const channelCount = async (user: TestUser) => ((await call<{ channels: unknown[] }>("GET", "/v1/channels", { token: user.access_token })).body.channels).length;

describe("who may add me to groups", () => {
  it("defaults to everyone, and keeps a choice of contacts only", async () => {
    const bob = await register("bob");
    expect((await call("GET", "/v1/me/settings", { token: bob.access_token })).body).toMatchObject({ group_adds: "everyone" });
    expect((await onlyContacts(bob)).body).toMatchObject({ group_adds: "contacts" });
    expect((await call("GET", "/v1/me/settings", { token: bob.access_token })).body).toMatchObject({ group_adds: "contacts" });
    const bad = await call("PATCH", "/v1/me/settings", { token: bob.access_token, body: { group_adds: "nobody?" } });
    expect(bad.status).toBe(400);
  });

  it("refuses a group with someone who allows contacts only, names them, and creates nothing", async () => {
    const alice = await register("alice"), bob = await register("bob"), carol = await register("carol");
    await onlyContacts(bob);
    const r = await call<{ code: string; message: string; user_ids: string[] }>("POST", "/v1/channels", {
      token: alice.access_token, body: { type: "group", name: "Strangers", members: [bob.user_id, carol.user_id] },
    });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ code: "forbidden", user_ids: [bob.user_id] });
    expect(r.body.message).toContain(bob.username);
    expect(await channelCount(alice)).toBe(0);
    expect(await channelCount(carol)).toBe(0);
  });

  it("lets someone they share a conversation with add them: a DM, or a group together", async () => {
    const alice = await register("alice"), bob = await register("bob"), dave = await register("dave");
    await onlyContacts(bob);
    await createDm(alice, bob); // DMs are always allowed: they are how people meet
    expect((await call<ChannelBody>("POST", "/v1/channels", { token: alice.access_token, body: { type: "group", name: "Friends", members: [bob.user_id] } })).status).toBe(201);
    // dave shares nothing with bob yet: adding him to a group is refused …
    const group = await createGroup(dave, [alice]);
    const refused = await call<{ code: string; user_ids: string[] }>("POST", `/v1/channels/${group}/members`, { token: dave.access_token, body: { members: [bob.user_id] } });
    expect([refused.status, refused.body.code, refused.body.user_ids]).toEqual([403, "forbidden", [bob.user_id]]);
    // … while alice, who shares a DM with bob, may put both in a group (who adds is what counts).
    const byAlice = await call<ChannelBody>("POST", "/v1/channels", { token: alice.access_token, body: { type: "group", name: "All of us", members: [bob.user_id, dave.user_id] } });
    expect(byAlice.status).toBe(201);
  });

  it("tells someone who may not add members nothing about the people they name", async () => {
    const alice = await register("alice"), bob = await register("bob"), mallory = await register("mallory"), carol = await register("carol");
    await onlyContacts(bob);
    const group = await createGroup(alice, [carol]);
    // mallory is no member: the same answer whether the named person restricts adds or not
    const asStranger = async (who: TestUser) => call<{ code: string; user_ids?: string[] }>("POST", `/v1/channels/${group}/members`, { token: mallory.access_token, body: { members: [who.user_id] } });
    const [restricted, open] = [await asStranger(bob), await asStranger(carol)];
    expect([restricted.status, restricted.body.code, restricted.body.user_ids]).toEqual([open.status, open.body.code, undefined]);
    // carol is a member but not an admin: refused for her role, not for bob's setting
    const asMember = await call<{ code: string; message: string; user_ids?: string[] }>("POST", `/v1/channels/${group}/members`, { token: carol.access_token, body: { members: [bob.user_id] } });
    expect([asMember.status, asMember.body.code, asMember.body.user_ids]).toEqual([403, "forbidden", undefined]);
    expect(asMember.body.message).not.toContain(bob.username);
  });

  it("leaves users who allow everyone addable by anyone", async () => {
    const alice = await register("alice"), erin = await register("erin");
    expect((await call("POST", "/v1/channels", { token: alice.access_token, body: { type: "group", name: "Hi", members: [erin.user_id] } })).status).toBe(201);
  });
});
