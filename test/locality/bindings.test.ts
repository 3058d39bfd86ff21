/**
 * Bindings chosen per jurisdiction (shared/bindings.ts, docs/decisions/021): the EU's accounts,
 * attachments and push jobs go to the _EU bindings (separate local databases, buckets and queues
 * here, created in the EU jurisdiction in production); the global directory keeps only what
 * routing needs; a deployment can allow only some home jurisdictions.
 */
import { createExecutionContext, env, SELF, waitOnExecutionContext } from "cloudflare:test";
import { describe, expect, inject, it } from "vitest";
import type { PushSubscriptionInput } from "../../protocol/push.js";
import type { PushRecord } from "../support/fake-push.js";
import { onlineDevice } from "../helpers/socket.js";
import worker from "../../workers/main.js";
import { accountsFor, allowedJurisdictions, bucketFor, bucketOfAttachment, defaultJurisdiction, directory, queueFor } from "../../shared/bindings.js";
import { parseId } from "../../shared/ids.js";
import { BASE, call, createDm, createGroup, uniqueName, type TestUser } from "../helpers/api.js";

const PASSWORD = "correct horse battery";

async function registerIn(jurisdiction: "" | "eu", display_name?: string): Promise<TestUser> {
  const r = await call<TestUser>("POST", "/v1/auth/register", { body: { username: uniqueName(jurisdiction || "g"), password: PASSWORD, jurisdiction, display_name } });
  if (r.status !== 201) throw new Error(`register failed: ${r.status}`);
  return r.body;
}

type Row = { user_id: string; username: string; display_name: string; password_hash: string; jurisdiction: string };
const row = (db: D1Database, userId: string) => db.prepare("SELECT user_id, username, display_name, password_hash, jurisdiction FROM accounts WHERE user_id = ?").bind(userId).first<Row>();

describe("choosing a binding", () => {
  it("picks the jurisdiction's own binding and falls back to the default when there is none", () => {
    expect(bucketFor(env, "eu")).toBe(env.ATTACHMENTS_EU);
    expect(bucketFor(env, "")).toBe(env.ATTACHMENTS);
    expect(bucketFor(env, "fedramp")).toBe(env.ATTACHMENTS);
    expect(bucketOfAttachment(env, "a_eu_0123456789abcdefghjkmnpqrs_0123456789abcdefghjkmnpqrs")).toBe(env.ATTACHMENTS_EU);
    expect(queueFor(env, "eu")).toBe(env.PUSH_QUEUE_EU);
    expect(queueFor(env, "")).toBe(env.PUSH_QUEUE);
    expect(accountsFor(env, "eu")).toBe(env.ACCOUNTS_EU);
    expect(directory(env)).toBe(env.ACCOUNTS);
    const unconfigured = { ...env, ATTACHMENTS_EU: undefined, PUSH_QUEUE_EU: undefined, ACCOUNTS_EU: undefined } as unknown as Env;
    expect(bucketFor(unconfigured, "eu")).toBe(env.ATTACHMENTS);
    expect(queueFor(unconfigured, "eu")).toBe(env.PUSH_QUEUE);
    expect(accountsFor(unconfigured, "eu")).toBe(env.ACCOUNTS);
  });

  it("reads the home jurisdictions a deployment allows, and its default", () => {
    expect(allowedJurisdictions({ ALLOWED_JURISDICTIONS: "global,eu,fedramp" })).toEqual(["", "eu", "fedramp"]);
    expect(allowedJurisdictions({ ALLOWED_JURISDICTIONS: " EU " })).toEqual(["eu"]);
    expect(allowedJurisdictions({})).toEqual(["", "eu", "fedramp"]);
    expect(defaultJurisdiction({ DEFAULT_JURISDICTION: "eu", ALLOWED_JURISDICTIONS: "eu" })).toBe("eu");
    expect(defaultJurisdiction({ DEFAULT_JURISDICTION: "global", ALLOWED_JURISDICTIONS: "eu" })).toBe("eu");
    expect(defaultJurisdiction({})).toBe("");
  });
});

describe("accounts: a global directory, EU accounts in the EU", () => {
  it("keeps an EU user's name and password hash out of the directory, and still signs them in and names them", async () => {
    const eu = await registerIn("eu", "Émilie");
    const listed = await row(env.ACCOUNTS, eu.user_id);
    expect(listed).toMatchObject({ user_id: eu.user_id, username: eu.username, jurisdiction: "eu", display_name: "", password_hash: "" });
    const account = await row(env.ACCOUNTS_EU, eu.user_id);
    expect(account).toMatchObject({ user_id: eu.user_id, display_name: "Émilie", jurisdiction: "eu" });
    expect(account!.password_hash).toMatch(/^pbkdf2-sha256\$/);

    const login = await call<TestUser>("POST", "/v1/auth/login", { body: { username: eu.username, password: PASSWORD } });
    expect(login.status).toBe(200);
    expect(login.body.user_id).toBe(eu.user_id);
    expect((await call("POST", "/v1/auth/login", { body: { username: eu.username, password: "wrong horse battery" } })).status).toBe(401);

    // Names come from the EU store, for lookups by id and by username alike.
    const global = await registerIn("");
    const byId = await call<{ users: { user_id: string; display_name: string }[] }>("GET", `/v1/users?ids=${eu.user_id},${global.user_id}`, { token: global.access_token });
    expect(byId.body.users.find((u) => u.user_id === eu.user_id)?.display_name).toBe("Émilie");
    const dm = await call<{ channel: { channel_id: string } }>("POST", "/v1/channels", { token: global.access_token, body: { type: "dm", member: eu.username } });
    expect(dm.status).toBe(201);
    expect(parseId(dm.body.channel.channel_id)?.jurisdiction).toBe("eu");
  });

  it("keeps a global user's account whole in the directory, and a username unique across jurisdictions", async () => {
    const global = await registerIn("", "Gil");
    expect(await row(env.ACCOUNTS, global.user_id)).toMatchObject({ display_name: "Gil", jurisdiction: "" });
    expect(await row(env.ACCOUNTS_EU, global.user_id)).toBeNull();
    const again = await call<{ code: string }>("POST", "/v1/auth/register", { body: { username: global.username.toUpperCase(), password: PASSWORD, jurisdiction: "eu" } });
    expect(again).toMatchObject({ status: 409, body: { code: "username_taken" } });
  });

  it("registers only in the jurisdictions the deployment allows, in its default when none is named", async () => {
    const euOnly = { ...env, ALLOWED_JURISDICTIONS: "eu", DEFAULT_JURISDICTION: "eu" } as Env;
    const register = async (body: Record<string, unknown>) => {
      const ctx = createExecutionContext();
      const res = await worker.fetch!(new Request(`${BASE}/v1/auth/register`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) }) as never, euOnly, ctx);
      await waitOnExecutionContext(ctx);
      return { status: res.status, body: await res.json<{ user_id?: string; code?: string; message?: string }>() };
    };
    const unnamed = await register({ username: uniqueName("d"), password: PASSWORD });
    expect(unnamed.status).toBe(201);
    expect(parseId(unnamed.body.user_id)?.jurisdiction).toBe("eu");
    const global = await register({ username: uniqueName("g"), password: PASSWORD, jurisdiction: "" });
    expect(global).toMatchObject({ status: 400, body: { code: "invalid_argument" } });
    expect(global.body.message).toContain("only in eu");
  });
});

describe("attachments of an EU channel", () => {
  it("go to the EU bucket, and come back from it", async () => {
    const eu = await registerIn("eu"), other = await registerIn("");
    const channel = await createGroup(eu, [other], "Photos");
    const data = new TextEncoder().encode("an eu photo");
    const p = await call<{ attachment_id: string; upload_url: string }>("POST", "/v1/attachments/presign", {
      token: eu.access_token, body: { channel_id: channel, filename: "p.png", content_type: "image/png", size_bytes: data.byteLength },
    });
    expect(p.status).toBe(201);
    const put = await SELF.fetch(p.body.upload_url, { method: "PUT", body: data, headers: { "content-length": String(data.byteLength) } });
    expect(put.status).toBe(200);
    expect(await env.ATTACHMENTS_EU.head(p.body.attachment_id)).not.toBeNull();
    expect(await env.ATTACHMENTS.head(p.body.attachment_id)).toBeNull();
    const download = await call<{ url: string }>("GET", `/v1/attachments/${p.body.attachment_id}`, { token: eu.access_token });
    expect(download.status).toBe(200);
    expect(await (await SELF.fetch(download.body.url)).text()).toBe("an eu photo");
  });
});

describe("push jobs of an EU user", () => {
  it("go through the EU queue and its consumer, naming the EU sender from the EU accounts", async () => {
    const fakeUrl = inject("fakePushUrl");
    const eu = await registerIn("eu", "Élodie"), euFriend = await registerIn("eu", "Jan");
    const name = `eu${euFriend.user_id.slice(-8)}`;
    const sub = (await (await fetch(`${fakeUrl}/__subscribe`, { method: "POST", body: JSON.stringify({ name }) })).json()) as PushSubscriptionInput;
    expect((await call("POST", "/v1/devices", { token: euFriend.access_token, body: { device_id: "phone", push: sub } })).status).toBe(201);
    const dm = await createDm(eu, euFriend);
    const d = await onlineDevice(eu.access_token, "d");
    await d.sendText(dm, "hallo");
    const deadline = Date.now() + 30_000;
    let pushed: PushRecord | undefined;
    while (!pushed) {
      const all = (await (await fetch(`${fakeUrl}/__records`)).json()) as PushRecord[];
      pushed = all.find((r) => r.target === name && r.payload?.channel_id === dm);
      if (!pushed && Date.now() > deadline) throw new Error("no push arrived");
      if (!pushed) await new Promise((r) => setTimeout(r, 100));
    }
    expect(pushed).toMatchObject({ status: 201, payload: { preview: "hallo", sender_user_id: eu.user_id, sender_name: "Élodie" } });
    d.close();
  });
});

