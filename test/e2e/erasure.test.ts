/**
 * Deleting an account end to end: a real `wrangler dev` (its erasure queue and alarms local),
 * real WebSockets through the project's SDK. A user with two connected devices deletes their
 * account; both devices are signed out at once; the other member of their DM sees the messages
 * tombstoned, live and in history; the username can be registered again once the job is done.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EdgechatError, type ChatMessage } from "../../client/index.js";
import { startDevServer, type DevServer } from "../support/dev-server.js";
import { PASSWORD, sdkClient } from "../support/sdk-clients.js";
import { until } from "../support/until.js";

let server: DevServer;
beforeAll(async () => { server = await startDevServer(); });
afterAll(async () => { await server?.stop(); });

const client = (username: string, deviceId: string) => sdkClient(server, username, deviceId);
/** The erasure job runs step by step through the local queue: generous bounds. */
const WAIT_MS = 90_000;

describe("deleting an account", () => {
  it("signs out both devices, tombstones the DM for the other member, and frees the username once done", { timeout: 180_000 }, async () => {
    const alice = `alice_${Math.random().toString(36).slice(2, 7)}`;
    const bob = `bob_${Math.random().toString(36).slice(2, 7)}`;
    const phone = client(alice, "alice-phone");
    const laptop = client(alice, "alice-laptop");
    const bobPhone = client(bob, "bob-phone");
    const me = await phone.register({ username: alice, password: PASSWORD, display_name: "Alice Erased" });
    await bobPhone.register({ username: bob, password: PASSWORD });
    const dm = await phone.channels.create({ type: "dm", member: bob });
    await Promise.all([phone.connect(), laptop.connect(), bobPhone.connect()]);

    const seen: ChatMessage[] = [];
    bobPhone.on("message", (m) => seen.push(m));
    const deleted: { channel_id: string; user_id: string }[] = [];
    bobPhone.on("accountDeleted", (e) => deleted.push(e));
    const signedOut: string[] = [];
    phone.on("signedOut", (err) => signedOut.push(`phone:${err.message}`));
    laptop.on("signedOut", (err) => signedOut.push(`laptop:${err.message}`));

    const texts = ["the first secret", "the second secret", "the third secret", "the fourth secret"];
    for (const text of texts) await phone.send(dm.channel_id, text);
    await until("bob has alice's messages", () => texts.every((t) => seen.some((m) => m.content.text?.text === t)), WAIT_MS);
    await bobPhone.send(dm.channel_id, "bob stays");

    expect(await phone.account.delete(PASSWORD)).toMatchObject({ started_at: expect.any(Number) });
    // Both devices at once (the phone asked; the laptop is told), each with the reason.
    await until("both devices signed out", () => signedOut.length === 2, 30_000);
    expect(signedOut.sort()).toEqual(["laptop:This account is being deleted.", "phone:This account is being deleted."]);

    // The other member: told live, then the history holds tombstones with alice's id and no text.
    await until("bob is told", () => deleted.some((e) => e.channel_id === dm.channel_id && e.user_id === me.user_id), WAIT_MS);
    await until("the DM's history is tombstoned", async () => {
      const page = await bobPhone.history(dm.channel_id, { after: 0, limit: 200 });
      const hers = page.messages.filter((m) => m.sender_user_id === me.user_id && !m.content.system);
      return hers.length === texts.length && hers.every((m) => m.deleted === true);
    }, WAIT_MS);
    const page = await bobPhone.history(dm.channel_id, { after: 0, limit: 200 });
    const json = JSON.stringify(page);
    for (const secret of [...texts, alice, "Alice Erased", "alice-phone"]) expect(json).not.toContain(secret);
    expect(page.messages.some((m) => m.content.text?.text === "bob stays")).toBe(true);
    expect(await bobPhone.users.profiles([me.user_id])).toEqual(new Map());

    // The username is free once the job has finished (the queue drives it step by step).
    const again = client(alice, "new-alice-phone");
    await until("the username is free again", async () => {
      try {
        await again.register({ username: alice, password: "a different person" });
        return true;
      } catch (err) {
        if (err instanceof EdgechatError && err.code === "username_taken") return false;
        throw err;
      }
    }, 120_000);
    expect((await again.me()).user_id).not.toBe(me.user_id);
    for (const c of [phone, laptop, bobPhone, again]) c.disconnect();
  });
});
