/**
 * Every Durable Object checks the jurisdiction it stored against the one it was reached in
 * (durable-objects/placement.ts): a mismatch refuses the call with `misplaced` and logs, and no
 * data is served or written in the wrong place. Jurisdictions are simulated here (name prefixes,
 * shared/routing.ts), exactly as `reachedJurisdiction` reads them.
 */
import { abortAllDurableObjects, env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { newId } from "../../shared/ids.js";
import { channelStub, presenceStub, presenceShardKey, relayName, relayStub, userStub } from "../../shared/routing.js";
import { call, createGroup, uniqueName, type TestUser } from "../helpers/api.js";

const member = (user_id: string) => ({ user_id, username: "x", display_name: "x" });

/** The plain (global) partition's object of that name: what a routing bug would reach. */
const globalChannel = (name: string) => env.CHANNELS.get(env.CHANNELS.idFromName(name));
const globalUser = (name: string) => env.USERS.get(env.USERS.idFromName(name));

async function refusal(p: Promise<unknown>): Promise<{ code?: string; retryable?: boolean; message: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code?: string; retryable?: boolean; message: string };
  }
  throw new Error("the call was not refused");
}

async function registerIn(jurisdiction: "" | "eu"): Promise<TestUser> {
  const r = await call<TestUser>("POST", "/v1/auth/register", { body: { username: uniqueName(jurisdiction || "g"), password: "correct horse battery", jurisdiction } });
  if (r.status !== 201) throw new Error(`register failed: ${r.status}`);
  return r.body;
}

describe("ChannelObject placement", () => {
  it("refuses to create an eu channel in the global partition, and stores nothing", async () => {
    const id = newId("c", "eu"), owner = newId("u", "eu");
    const wrong = globalChannel(id);
    const r = await wrong.create({ channelId: id, type: "group", name: "x", creator: member(owner), members: [], jurisdiction: "eu" });
    expect(r).toMatchObject({ ok: false, code: "misplaced", retryable: false });
    expect(await runInDurableObject(wrong, (_o, s) => s.storage.sql.exec("SELECT count(*) AS n FROM channel").one().n)).toBe(0);
    // A creation whose declared jurisdiction disagrees with its own id is refused wherever it lands.
    const mixed = await channelStub(env, id).create({ channelId: id, type: "group", name: "x", creator: member(owner), members: [], jurisdiction: "" });
    expect(mixed).toMatchObject({ ok: false, code: "misplaced" });
    // Where the id says, with what the id says: created.
    expect(await channelStub(env, id).create({ channelId: id, type: "group", name: "x", creator: member(owner), members: [], jurisdiction: "eu" })).toMatchObject({ ok: true });
  });

  it("refuses every call, over RPC and REST, once it finds its stored jurisdiction is not where it was reached", async () => {
    const eu = await registerIn("eu"), other = await registerIn("");
    const channel = await createGroup(eu, [other], "Berlin");
    const stub = channelStub(env, channel);
    await runInDurableObject(stub, (_o, s) => { s.storage.sql.exec("UPDATE channel SET jurisdiction = '' WHERE id = 1"); });
    await abortAllDurableObjects();
    const err = await refusal(channelStub(env, channel).describe(eu.user_id));
    expect(err).toMatchObject({ code: "misplaced", retryable: false });
    expect(err.message).toMatch(/global.*eu|wrong place/);
    const rest = await call<{ code: string; retryable: boolean }>("GET", `/v1/channels/${channel}`, { token: other.access_token });
    expect(rest).toMatchObject({ status: 500, body: { code: "misplaced", retryable: false } });
    const history = await call<{ code: string }>("GET", `/v1/channels/${channel}/messages`, { token: eu.access_token });
    expect(history.body.code).toBe("misplaced");
  });
});

describe("UserObject placement", () => {
  it("refuses to write an eu profile in the global partition", async () => {
    const id = newId("u", "eu");
    const err = await refusal(globalUser(id).init({ user_id: id, username: "x", display_name: "x", jurisdiction: "eu" }));
    expect(err).toMatchObject({ code: "misplaced" });
    expect(await globalUser(id).getProfile()).toBeUndefined();
    // Declared global with an eu id: refused where the id leads, too.
    expect(await refusal(userStub(env, id).init({ user_id: id, username: "x", display_name: "x", jurisdiction: "" }))).toMatchObject({ code: "misplaced" });
    expect(await userStub(env, id).init({ user_id: id, username: "x", display_name: "x", jurisdiction: "eu" })).toMatchObject({ jurisdiction: "eu" });
  });

  it("refuses every call once its stored profile names another jurisdiction, and repairs one an older release left blank", async () => {
    const eu = await registerIn("eu");
    // A profile re-created with "" by an older release, in the right place: repaired on wake.
    await runInDurableObject(userStub(env, eu.user_id), (_o, s) => { s.storage.sql.exec("UPDATE profile SET jurisdiction = '' WHERE id = 1"); });
    await abortAllDurableObjects();
    expect(await userStub(env, eu.user_id).getProfile()).toMatchObject({ jurisdiction: "eu" });
    // A profile that says fedramp in the eu partition: refused, over RPC and REST.
    await runInDurableObject(userStub(env, eu.user_id), (_o, s) => { s.storage.sql.exec("UPDATE profile SET jurisdiction = 'fedramp' WHERE id = 1"); });
    await abortAllDurableObjects();
    expect(await refusal(userStub(env, eu.user_id).listDevices())).toMatchObject({ code: "misplaced", retryable: false });
    const rest = await call<{ code: string }>("GET", "/v1/devices", { token: eu.access_token });
    expect(rest).toMatchObject({ status: 500, body: { code: "misplaced" } });
  });
});

describe("PresenceObject placement", () => {
  it("holds only users of its own jurisdiction", async () => {
    const euUser = newId("u", "eu");
    const shard = presenceShardKey(euUser).split("/")[1]!;
    const wrong = env.PRESENCE.get(env.PRESENCE.idFromName(shard));
    expect(await refusal(wrong.report(euUser, "online", Date.now()))).toMatchObject({ code: "misplaced" });
    expect(await refusal(wrong.lookup([euUser]))).toMatchObject({ code: "misplaced" });
    expect(await refusal(wrong.watch(newId("u"), [euUser]))).toMatchObject({ code: "misplaced" });
    // Where routing puts it: served. A global subscriber may watch an eu user.
    await presenceStub(env, euUser).report(euUser, "online", Date.now());
    expect(await presenceStub(env, euUser).watch(newId("u"), [euUser])).toMatchObject([{ user_id: euUser, status: "online" }]);
  });

  it("refuses every call once the jurisdiction it recorded is not where it was reached", async () => {
    const euUser = newId("u", "eu");
    await presenceStub(env, euUser).report(euUser, "online", Date.now());
    await runInDurableObject(presenceStub(env, euUser), (_o, s) => { s.storage.sql.exec("UPDATE placement SET jurisdiction = ''"); });
    await abortAllDurableObjects();
    expect(await refusal(presenceStub(env, euUser).lookup([euUser]))).toMatchObject({ code: "misplaced" });
  });
});

describe("RelayObject placement", () => {
  it("refuses to serve an eu channel's shard in the global partition, and stores nothing", async () => {
    const channel = newId("c", "eu");
    const wrong = env.RELAYS.get(env.RELAYS.idFromName(relayName(channel, 0)));
    expect(await wrong.register(channel, 0, [{ user_id: newId("u", "eu"), epoch: 1 }])).toMatchObject({ ok: false, code: "misplaced", retryable: false });
    expect(await wrong.describe()).toBeUndefined();
    // Where routing puts it: served.
    expect(await relayStub(env, channel, 0).register(channel, 0, [{ user_id: newId("u", "eu"), epoch: 1 }])).toMatchObject({ ok: true });
  });

  it("refuses every call once the channel it stored is not where it was reached", async () => {
    const channel = newId("c", "eu"), elsewhere = newId("c", "");
    // A global shard that somehow holds an eu channel's watchers (a routing bug) finds out on wake.
    const wrong = env.RELAYS.get(env.RELAYS.idFromName(relayName(elsewhere, 0)));
    await runInDurableObject(wrong, (_o, s) => {
      s.storage.sql.exec("CREATE TABLE IF NOT EXISTS relay (id INTEGER PRIMARY KEY CHECK (id = 1), channel_id TEXT NOT NULL, shard INTEGER NOT NULL)");
      s.storage.sql.exec("INSERT INTO relay (id, channel_id, shard) VALUES (1, ?, 0)", channel);
    });
    await abortAllDurableObjects();
    const err = await refusal(env.RELAYS.get(env.RELAYS.idFromName(relayName(elsewhere, 0))).describe());
    expect(err).toMatchObject({ code: "misplaced", retryable: false });
  });
});
