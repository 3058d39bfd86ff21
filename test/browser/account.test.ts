/**
 * Account settings and deleting an account in the web app, in a real Chromium against a real
 * `wrangler dev`: the Account screen renames the user and the other side's app shows the new name
 * (PROFILE_UPDATE); a picture is previewed, scaled and saved; deleting the account asks for the
 * password, signs out with the reason, and the other side sees "Deleted account".
 */
import { describe, expect, it } from "vitest";
import { browserSuite, channelItem, connected, eventually, expectAccessible, PASSWORD, registerUser, run, screenshot, textOf } from "./helpers.js";

const suite = browserSuite("account-");

async function twoFriends() {
  const alice = await registerUser(suite.server.url, "alice", "Alice Martin");
  const bob = await registerUser(suite.server.url, "bob", "Bob Chen");
  const res = await fetch(`${suite.server.url}/v1/channels`, {
    method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${alice.access_token}` },
    body: JSON.stringify({ type: "dm", member: bob.username }),
  });
  expect(res.status).toBe(201);
  return { alice, bob };
}

describe("account settings in the web app", () => {
  it("renames the user and sets a picture; the other side sees the new name", { timeout: 180_000 }, async () => {
    const { alice, bob } = await twoFriends();
    const a = await suite.profiles.open(alice, "alice");
    const b = await suite.profiles.open(bob, "bob");
    await channelItem(b, "Alice Martin").waitFor({ timeout: 60_000 });

    await a.getByRole("button", { name: "Account settings" }).click();
    const dialog = a.getByRole("dialog", { name: "Account" });
    await dialog.getByLabel("Display name").fill("Alice Liddell");
    await dialog.getByRole("button", { name: "Save name" }).click();
    await textOf(a.locator(".account-name"), "Alice Liddell");
    // The other side: PROFILE_UPDATE, then the profile read again.
    await channelItem(b, "Alice Liddell").waitFor({ timeout: 60_000 });

    // A picture: previewed before it is saved, then shown in the sidebar.
    const png = Buffer.from(await run<string>(a, `(() => {
      const c = document.createElement("canvas"); c.width = 600; c.height = 400;
      const g = c.getContext("2d"); g.fillStyle = "#2a7"; g.fillRect(0, 0, 600, 400); g.fillStyle = "#fff"; g.fillRect(200, 100, 200, 200);
      return c.toDataURL("image/png").split(",")[1];
    })()`), "base64");
    await dialog.getByTestId("avatar-file").setInputFiles({ name: "me.png", mimeType: "image/png", buffer: png });
    await eventually("the preview", async () => (await dialog.locator(".avatar-preview img").getAttribute("src"))?.startsWith("blob:") ?? false);
    await screenshot(a, "account-settings");
    await expectAccessible(a, "account settings");
    await dialog.getByRole("button", { name: "Save picture" }).click();
    await eventually("the saved picture in the sidebar", async () => (await a.locator(".account .avatar img").count()) > 0, 60_000);
    const me = await (await fetch(`${suite.server.url}/v1/me`, { headers: { authorization: `Bearer ${alice.access_token}` } })).json() as { avatar_url?: string; display_name: string };
    expect(me.display_name).toBe("Alice Liddell");
    expect(me.avatar_url).toMatch(/^\/v1\/users\/.+\/avatar\?v=\d+$/);
  });

  it("deletes the account after the password; the app signs out with the reason and the other side sees Deleted account", { timeout: 240_000 }, async () => {
    const { alice, bob } = await twoFriends();
    const a = await suite.profiles.open(alice, "alice");
    const b = await suite.profiles.open(bob, "bob");
    await channelItem(b, "Alice Martin").waitFor({ timeout: 60_000 });

    await a.getByRole("button", { name: "Account settings" }).click();
    await a.getByRole("dialog", { name: "Account" }).getByRole("button", { name: "Delete account…" }).click();
    const confirm = a.getByRole("dialog", { name: "Delete your account?" });
    await confirm.getByLabel("Password").fill("not my password");
    await confirm.getByRole("button", { name: "Delete my account" }).click();
    await textOf(confirm.getByRole("alert"), /password is wrong/);
    await confirm.getByLabel("Password").fill(PASSWORD);
    await confirm.getByRole("button", { name: "Delete my account" }).click();
    await textOf(a.getByRole("alert"), /Your account is being deleted/, 60_000);
    await screenshot(a, "account-deleted");

    await channelItem(b, "Deleted account").waitFor({ timeout: 120_000 });
    await connected(b);
  });
});
