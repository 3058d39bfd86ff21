/**
 * The web app's push UI against a real `wrangler dev`: no permission prompt and no offer on page
 * load; the offer appears above the composer after the first message sent from this browser, once;
 * the conversation header's bell mutes the conversation (the server keeps it, the list shows it).
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDevServer, type DevServer } from "../support/dev-server.js";
import { eventually, launchChromium, reloadWhenIdle, run, screenshot, sendMessage, signUp, textOf, watchErrors } from "./helpers.js";

let server: DevServer;
let browser: Browser;
let alice: Page;
const errors: string[] = [];
const suffix = Math.random().toString(36).slice(2, 7);

beforeAll(async () => {
  server = await startDevServer();
  browser = await launchChromium();
  alice = await (await browser.newContext({ viewport: { width: 1100, height: 700 } })).newPage();
  errors.push(...watchErrors(alice, "alice"));
  // Bob exists for Alice to write to; he never opens the app.
  const r = await fetch(`${server.url}/v1/auth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username: `bob_${suffix}`, password: "correct horse battery", display_name: "Bob Push" }) });
  expect(r.status).toBe(201);
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

const offer = () => alice.getByRole("group", { name: "Notifications" });

describe("notifications and mute in the web app", () => {
  it("asks nothing on page load; offers notifications after the first message sent, once", async () => {
    await signUp(alice, server.url, `alice_${suffix}`, "Alice Push");
    expect(await run<string>(alice, "Notification.permission")).toBe("default");
    expect(await offer().count()).toBe(0);
    await alice.getByRole("button", { name: "New conversation" }).click();
    const dialog = alice.getByRole("dialog", { name: "New conversation" });
    await dialog.getByLabel("Username").fill(`bob_${suffix}`);
    await dialog.getByRole("button", { name: "Start", exact: true }).click();
    await dialog.waitFor({ state: "detached" });
    await textOf(alice.locator(".conv-title"), "Bob Push");
    expect(await offer().count()).toBe(0);

    await sendMessage(alice, "hello?");
    await offer().waitFor();
    await screenshot(alice, "push-offer");
    await offer().getByRole("button", { name: "Not now" }).click();
    await offer().waitFor({ state: "detached" });
    await sendMessage(alice, "still there?");
    await alice.locator("li.msg", { hasText: "still there?" }).waitFor();
    expect(await offer().count()).toBe(0);
    expect(await run<string>(alice, "Notification.permission")).toBe("default");
  });

  it("mutes a conversation from its header: kept by the server, shown in the list", async () => {
    const bell = alice.getByRole("button", { name: "Mute notifications" });
    await bell.click();
    await alice.getByRole("button", { name: "Unmute notifications", pressed: true }).waitFor();
    await alice.locator(".channel-item .ci-muted").waitFor();
    await screenshot(alice, "push-muted");
    // A reload reads it back from the server.
    await reloadWhenIdle(alice);
    await alice.getByRole("button", { name: "Unmute notifications", pressed: true }).waitFor();
    await alice.getByRole("button", { name: "Unmute notifications" }).click();
    await eventually("unmuted in the list", async () => (await alice.locator(".channel-item .ci-muted").count()) === 0);
    expect(errors).toEqual([]);
  });
});
