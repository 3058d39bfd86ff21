/**
 * Broadcast channels in the web app, in a real Chromium against a real `wrangler dev`: the owner
 * creates one and makes an invite link; a second user opens the link, sees the preview, joins,
 * reads the channel without a composer ("Only admins can post") and gets the owner's post.
 */
import { describe, expect, it } from "vitest";
import { browserSuite, channelItem, composer, message, registerUser, screenshot, sendMessage, textOf } from "./helpers.js";

const suite = browserSuite("broadcast-");

describe("broadcast channels in the web app", () => {
  it("creates a channel, shares an invite link; a subscriber joins by it, reads only, and gets the post", async () => {
    const alice = await registerUser(suite.server.url, "alice", "Alice Martin");
    const bob = await registerUser(suite.server.url, "bob", "Bob Chen");
    const a = await suite.profiles.open(alice, "alice");

    await a.getByRole("button", { name: "New conversation" }).click();
    const dialog = a.getByRole("dialog", { name: "New conversation" });
    await dialog.getByRole("radio", { name: "Channel" }).click();
    await dialog.getByLabel("Channel name").fill("Release notes");
    await dialog.getByLabel("Description").fill("What shipped this week");
    await dialog.getByRole("button", { name: "Start", exact: true }).click();
    await textOf(a.locator(".conv-title"), "Release notes");
    await textOf(a.locator(".conv-subtitle"), "1 subscriber");
    await channelItem(a, "Release notes").getByTestId("broadcast-icon").waitFor();
    expect(await composer(a).isVisible()).toBe(true);

    await a.getByRole("button", { name: "Invite link" }).click();
    const link = a.getByTestId("invite-url");
    await expectValue(() => link.inputValue(), /\/#\/join\/c_g_/);
    const url = new URL(await link.inputValue());
    await a.keyboard.press("Escape");

    const b = await suite.profiles.open(bob, "bob", { path: `/${url.hash}` });
    const join = b.getByRole("dialog", { name: "Join" });
    await textOf(join.getByTestId("invite-preview"), /Release notes/);
    await textOf(join.getByTestId("invite-preview"), /Channel · 1 subscriber/);
    await screenshot(b, "broadcast-join");
    await join.getByRole("button", { name: "Join", exact: true }).click();
    await textOf(b.locator(".conv-title"), "Release notes");
    await textOf(b.locator(".conv-subtitle"), "2 subscribers");
    await textOf(b.getByTestId("read-only"), "Only admins can post");
    expect(await composer(b).isVisible()).toBe(false);

    await sendMessage(a, "Version 2 is out");
    await message(b, "Version 2 is out").waitFor({ timeout: 30_000 });
    await screenshot(b, "broadcast-subscriber");
    // Subscribers do not see each other: no member list for bob.
    expect(await b.getByRole("button", { name: "Members" }).isVisible()).toBe(false);

    // The owner's member list pages as it scrolls (50 a page): 60 more subscribers, added in bulk.
    const more: string[] = [];
    for (let i = 0; i < 6; i++) {
      more.push(...(await Promise.all(Array.from({ length: 10 }, (_, j) => registerUser(suite.server.url, "sub", `Subscriber ${i * 10 + j}`)))).map((u) => u.user_id));
    }
    const added = await fetch(`${suite.server.url}/v1/channels/${url.hash.split("/")[2]!.split(".")[0]}/members/bulk`, {
      method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${alice.access_token}` }, body: JSON.stringify({ user_ids: more }),
    });
    expect(((await added.json()) as { added: number }).added).toBe(60);
    await a.getByRole("button", { name: "Members" }).click();
    const rows = a.getByTestId("member-list").locator("li");
    await eventuallyCount(() => rows.count(), 50);
    await a.getByTestId("member-list").locator("li").last().scrollIntoViewIfNeeded();
    await eventuallyCount(() => rows.count(), 62);
    await textOf(a.getByTestId("member-list"), /Bob Chen/);
  }, 240_000);
});

async function expectValue(read: () => Promise<string>, pattern: RegExp, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (pattern.test(v)) return;
    if (Date.now() > deadline) throw new Error(`value ${JSON.stringify(v)} never matched ${pattern}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function eventuallyCount(read: () => Promise<number>, n: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (v === n) return;
    if (Date.now() > deadline) throw new Error(`count ${v}, expected ${n}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
