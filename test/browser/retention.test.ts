/**
 * Disappearing messages in the web app, in Chromium against a real `wrangler dev`: Alice turns
 * them on in a DM from the header's timer; both see the lit timer with "7 days" and the notice in
 * the log, and Bob's header follows without a reload. Screenshots land in
 * test-results/browser/retention-*.png.
 */
import { describe, expect, it } from "vitest";
import { browserSuite, eventually, expectAccessible, registerUser, screenshot } from "./helpers.js";

const suite = browserSuite("retention-");

describe("disappearing messages", () => {
  it("turns on from the conversation header; the timer shows for both people", async () => {
    const alice = await registerUser(suite.server.url, "alice", "Alice Martin");
    const bob = await registerUser(suite.server.url, "bob", "Bob Chen");
    const res = await fetch(`${suite.server.url}/v1/channels`, {
      method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${alice.access_token}` },
      body: JSON.stringify({ type: "dm", member: bob.username }),
    });
    const { channel } = (await res.json()) as { channel: { channel_id: string } };
    const a = await suite.profiles.open(alice, "alice", { path: `/#c/${channel.channel_id}` });
    const b = await suite.profiles.open(bob, "bob", { path: `/#c/${channel.channel_id}` });

    const timerA = a.getByTestId("retention-button");
    await timerA.waitFor({ timeout: 30_000 });
    expect(await timerA.getAttribute("aria-label")).toBe("Disappearing messages: off");
    await timerA.click();
    const dialog = a.getByRole("dialog", { name: "Disappearing messages" });
    await dialog.waitFor();
    await expectAccessible(a, "disappearing messages dialog");
    // A click, not check(): the choice applies at once and closes the dialog, and check() looks at
    // the radio again after its click, which may already be gone.
    await dialog.getByLabel("7 days").click();
    await eventually("the dialog to close", async () => (await dialog.count()) === 0);

    for (const [page, who] of [[a, "alice"], [b, "bob"]] as const) {
      const timer = page.getByTestId("retention-button");
      await eventually(`${who}'s header timer to light up`, async () => (await timer.getAttribute("title")) === "Messages older than 7 days disappear");
      expect(await timer.evaluate((el) => el.classList.contains("on"))).toBe(true);
      expect(await timer.getAttribute("aria-label")).toBe("Disappearing messages: messages older than 7 days disappear");
      expect(await timer.innerText()).toContain("7 days");
      await eventually(`${who}'s log to show the notice`, async () =>
        (await page.locator("li", { hasText: "set messages to disappear after 7 days" }).count()) > 0);
    }
    await screenshot(b, "retention-1-header");
    await expectAccessible(b, "conversation with disappearing messages");
  }, 180_000);
});
