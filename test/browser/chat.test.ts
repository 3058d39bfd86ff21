/**
 * The web app in a real Chromium against a real `wrangler dev` (which also runs the [build] that
 * bundles web/src). Every test stands alone: it makes its own users, channels and browser
 * profiles, so any one runs by itself (`-t "<name>"`) and in any order; the file only shares the
 * server and the browser. Screenshots of the main screens land in test-results/browser/, and each
 * main screen is audited with axe-core where it is shown.
 */
import { readFileSync } from "node:fs";
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import {
  banner, browserSuite, channelItem, composer, connected, eventually, expectAccessible, lastStatus, message, PASSWORD, PHONE, registerUser,
  reloadWhenIdle, run, screenshot, sdkClient, sendMessage, textOf, updateSettings, WIDE,
} from "./helpers.js";

const suite = browserSuite();

/** Two users with a DM between them (made over REST, as if they had chatted before). */
async function twoFriends(names: [string, string] = ["Alice Martin", "Bob Chen"]) {
  const alice = await registerUser(suite.server.url, "alice", names[0]);
  const bob = await registerUser(suite.server.url, "bob", names[1]);
  const res = await fetch(`${suite.server.url}/v1/channels`, {
    method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${alice.access_token}` },
    body: JSON.stringify({ type: "dm", member: bob.username }),
  });
  const { channel } = (await res.json()) as { channel: { channel_id: string } };
  return { alice, bob, dmId: channel.channel_id };
}

describe("edgechat web app in Chromium", () => {
  it("serves the app with its security headers, no source map, and a page of its own", async () => {
    const page = await fetch(`${suite.server.url}/`);
    expect(page.status).toBe(200);
    const csp = page.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(page.headers.get("x-content-type-options")).toBe("nosniff");
    expect(page.headers.get("referrer-policy")).toBe("no-referrer");
    expect(page.headers.get("x-frame-options")).toBe("DENY");
    expect(page.headers.get("permissions-policy")).toContain("camera=()");
    // Plain http here: no HSTS (the API sends it over https only; see test/api/security-headers).
    expect(page.headers.get("strict-transport-security")).toBeNull();

    const js = await fetch(`${suite.server.url}/app.js`);
    expect(js.headers.get("content-type")).toMatch(/javascript/);
    expect(js.headers.get("content-security-policy")).toContain("default-src 'none'");
    const body = await js.text();
    expect(body.length).toBeGreaterThan(10_000);
    expect(body).not.toContain("sourceMappingURL");
    expect((await fetch(`${suite.server.url}/app.js.map`)).status).toBe(404);
    expect((await fetch(`${suite.server.url}/_headers`)).status).toBe(404);

    const api = await fetch(`${suite.server.url}/v1/health`);
    expect(api.headers.get("x-content-type-options")).toBe("nosniff");
    expect(api.headers.get("cache-control")).toBe("no-store");
  });

  it("signs up in the browser, checking the form before anything reaches the server", async () => {
    const context = await suite.profiles.profile();
    const page = await suite.profiles.tab(context, "newcomer");
    await page.getByRole("heading", { name: "Welcome back" }).waitFor();
    await screenshot(page, "login");
    await expectAccessible(page, "login");

    await page.getByRole("button", { name: "Create an account" }).click();
    await page.getByLabel("Username").fill("a!");
    await page.getByRole("button", { name: "Create account" }).click();
    await textOf(page.getByRole("alert"), /3–32 letters/);

    const username = `dana_${Date.now().toString(36).slice(-6)}`;
    await page.getByLabel("Username").fill(username);
    await page.getByLabel("Display name").fill("Dana Ito");
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Create account" }).click();
    await page.getByText("No conversations yet").waitFor();
    const session = await run<string | null>(page, "localStorage.getItem('edgechat.session')");
    expect(JSON.parse(session ?? "{}")).toMatchObject({ username, display_name: "Dana Ito" });
    expect(await run<string | null>(page, "localStorage.getItem('edgechat.device')")).toMatch(/^web-[a-z0-9]{12}$/);
    await expectAccessible(page, "empty channel list");
  });

  it("closes dialogs with Escape and returns focus to the opener", async () => {
    const erin = await registerUser(suite.server.url, "erin", "Erin Park");
    const page = await suite.profiles.open(erin, "erin");
    const opener = page.getByRole("button", { name: "New conversation" });
    await opener.click();
    const dialog = page.getByRole("dialog", { name: "New conversation" });
    await dialog.waitFor();
    await dialog.getByLabel("Username").fill("someone");
    await screenshot(page, "new-conversation-dialog");
    await expectAccessible(page, "new conversation dialog");
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "detached" });
    expect(await run<string | null>(page, "document.activeElement?.getAttribute('aria-label')")).toBe("New conversation");
  });

  it("starts a DM and exchanges messages; read receipts show only once the reader opts in", async () => {
    const alice = await registerUser(suite.server.url, "alice", "Alice Martin");
    const bob = await registerUser(suite.server.url, "bob", "Bob Chen");
    const a = await suite.profiles.open(alice, "alice");
    const b = await suite.profiles.open(bob, "bob");

    await a.getByRole("button", { name: "New conversation" }).click();
    const dialog = a.getByRole("dialog", { name: "New conversation" });
    await dialog.getByLabel("Username").fill(`nobody_${Date.now().toString(36)}`);
    await dialog.getByRole("button", { name: "Start", exact: true }).click();
    await textOf(dialog.getByRole("alert"), /No such user/);
    await dialog.getByLabel("Username").fill(bob.username);
    await dialog.getByRole("button", { name: "Start", exact: true }).click();
    await dialog.waitFor({ state: "detached" });
    await textOf(a.locator(".conv-title"), "Bob Chen");

    // Keyboard: Shift+Enter is a newline, Enter sends.
    const box = composer(a);
    expect(await run<string | undefined>(a, "document.activeElement?.id")).toBe("composer-input");
    await box.pressSequentially("Hey Bob! Are we still on for Saturday?");
    await box.press("Shift+Enter");
    await box.pressSequentially("I found a great place for brunch 🥞");
    await box.press("Enter");
    const first = message(a, "Are we still on for Saturday?");
    await first.waitFor();
    expect(await first.locator(".msg-text").textContent()).toBe("Hey Bob! Are we still on for Saturday?\nI found a great place for brunch 🥞");
    expect(await box.inputValue()).toBe("");
    await textOf(lastStatus(a), "Sent");

    // Bob: the DM shows up with an unread badge, and reading it clears the badge.
    const item = channelItem(b, "Alice Martin");
    await textOf(item.getByTestId("unread-badge"), "1 unread");
    await textOf(item.locator(".ci-preview"), /great place for brunch/);
    await sendMessage(a, "It's near the river, opens at 10.");
    await textOf(item.getByTestId("unread-badge"), "2 unread");
    await screenshot(b, "channel-list");
    await expectAccessible(b, "channel list");
    await item.click();
    await message(b, "opens at 10").waitFor();
    await item.getByTestId("unread-badge").waitFor({ state: "detached" });

    // Bob never turned read receipts on: his reply reaching Alice proves his read went through
    // first, and she still only sees "Sent".
    await sendMessage(b, "Yes! Saturday works. See you at 10 then 👋");
    await message(a, "Saturday works").waitFor();
    expect(await message(a, "Saturday works").getAttribute("class")).toContain("msg-theirs");
    await textOf(lastStatus(a), "Sent");

    // Privacy shows the default (off); once Bob turns receipts on, his next read shows.
    await b.getByRole("button", { name: "Privacy" }).click();
    const privacy = b.getByRole("dialog", { name: "Privacy" });
    const receipts = privacy.getByRole("switch", { name: "Send read receipts" });
    await eventually("settings loaded", () => receipts.isEnabled());
    expect(await receipts.isChecked()).toBe(false);
    await receipts.check();
    await eventually("saved", async () => (await receipts.isEnabled()) && (await receipts.isChecked()));
    await privacy.getByRole("button", { name: "Done" }).click();
    await sendMessage(a, "Perfect, see you there!");
    await message(b, "see you there").waitFor();
    await textOf(lastStatus(a), "Read by Bob Chen");
    await screenshot(a, "dm-read");
  });

  it("shows who is typing, and stops when they stop", async () => {
    const { alice, bob, dmId } = await twoFriends();
    const a = await suite.profiles.open(alice, "alice", { path: `/#c/${dmId}` });
    const b = await suite.profiles.open(bob, "bob", { path: `/#c/${dmId}` });
    const typing = a.locator(".typing");
    await composer(b).pressSequentially("Should I bring", { delay: 30 });
    await textOf(typing, "Bob Chen is typing…");
    await screenshot(a, "typing");
    await composer(b).fill("");
    await textOf(typing, "");
  });

  it("counts unread messages in a group, adds people, and clears the count once read", async () => {
    const alice = await registerUser(suite.server.url, "alice", "Alice Martin");
    const bob = await registerUser(suite.server.url, "bob", "Bob Chen");
    const carol = await registerUser(suite.server.url, "carol", "Carol Diaz");
    await updateSettings(suite.server.url, bob, { read_receipts: true });
    const a = await suite.profiles.open(alice, "alice");
    const b = await suite.profiles.open(bob, "bob");

    await a.getByRole("button", { name: "New conversation" }).click();
    const dialog = a.getByRole("dialog", { name: "New conversation" });
    await dialog.getByRole("radio", { name: "Group" }).click();
    await dialog.getByLabel("Group name").fill("Weekend trip");
    await dialog.getByLabel("Members").fill(bob.username);
    await dialog.getByRole("button", { name: "Start", exact: true }).click();
    await textOf(a.locator(".conv-title"), "Weekend trip");
    await textOf(a.locator(".conv-subtitle"), /2 members/);
    await sendMessage(a, "Who's driving?");
    await sendMessage(a, "I can take 3 people.");
    await textOf(lastStatus(a), "Sent");

    const group = channelItem(b, "Weekend trip");
    await textOf(group.getByTestId("unread-badge"), "2 unread");
    await textOf(b.locator(".channel-item .ci-name").first(), "Weekend trip");
    await group.click();
    await message(b, "I can take 3 people.").waitFor();
    await group.getByTestId("unread-badge").waitFor({ state: "detached" });
    await textOf(lastStatus(a), "Read by Bob Chen");
    await sendMessage(b, "Me! 🚗");
    await textOf(message(a, "Me!").locator(".msg-sender"), "Bob Chen");

    await a.getByRole("button", { name: "Add people" }).click();
    const add = a.getByRole("dialog", { name: "Add people" });
    await add.getByLabel("Usernames").fill(carol.username);
    await add.getByRole("button", { name: "Add", exact: true }).click();
    await add.waitFor({ state: "detached" });
    await textOf(a.locator(".toast").last(), "Added Carol Diaz");
    await a.locator(".system-msg", { hasText: "added Carol Diaz" }).waitFor();
    await b.locator(".system-msg", { hasText: "added Carol Diaz" }).waitFor();
    await textOf(a.locator(".conv-subtitle"), /^3 members · 1 online · /); // Bob; Carol has not connected
    // Audit once the toast is gone: caught mid-fade, its colours read as too faint.
    await a.locator(".toast").waitFor({ state: "detached" });
    await screenshot(a, "conversation-desktop");
    await expectAccessible(a, "group conversation");
  });

  it("makes one device of a browser profile: its tabs share one socket, and another tab takes over when that one closes", async () => {
    const { alice, bob, dmId } = await twoFriends();
    // Eight devices already (phones, laptops): a profile's tabs must not count against the 10.
    for (let i = 0; i < 8; i++) {
      const res = await fetch(`${suite.server.url}/v1/devices`, {
        method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${alice.access_token}` },
        body: JSON.stringify({ device_id: `other-${i}`, name: `Phone ${i}`, platform: "ios" }),
      });
      expect(res.status).toBe(201);
    }
    // An earlier version of the app left per-tab devices behind in this profile: the first is kept.
    for (const id of ["web-oldtab000001", "web-oldtab000002"]) {
      await fetch(`${suite.server.url}/v1/devices`, {
        method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${alice.access_token}` },
        body: JSON.stringify({ device_id: id, name: "Chrome on Linux", platform: "web" }),
      });
    }
    const context = await suite.profiles.profile({ user: alice, localStorage: { "edgechat.devices": JSON.stringify(["web-oldtab000001", "web-oldtab000002"]) } });
    const tabs: Page[] = [];
    for (let i = 0; i < 4; i++) {
      const tab = await suite.profiles.tab(context, `alice tab ${i + 1}`, `/#c/${dmId}`);
      await connected(tab);
      tabs.push(tab);
    }
    const [t1, t2, t3, t4] = tabs as [Page, Page, Page, Page];
    for (const t of tabs) expect(await run<string>(t, "localStorage.getItem('edgechat.device')")).toBe("web-oldtab000001");

    const phone = sdkClient(suite.server.url, bob, "bob-phone");
    await phone.connect();
    try {
      // Messages both ways reach every tab; a follower's send goes out through the leader.
      await phone.send(dmId, "Hi from Bob's phone");
      for (const t of tabs) await message(t, "Hi from Bob's phone").waitFor();
      await sendMessage(t3, "Typed in the third tab");
      for (const t of tabs) await message(t, "Typed in the third tab").waitFor();
      await textOf(lastStatus(t1), "Sent");
      for (const t of tabs) expect(await banner(t).isVisible()).toBe(false);

      // The server sees one web device, connected, next to the eight others (the left-over tab
      // device was removed); the dialog lists it once as this browser.
      await eventually("the left-over tab device removed", async () => {
        const res = await fetch(`${suite.server.url}/v1/devices`, { headers: { authorization: `Bearer ${alice.access_token}` } });
        const { devices } = (await res.json()) as { devices: { device_id: string; connected: boolean }[] };
        const web = devices.filter((d) => d.device_id.startsWith("web-"));
        return devices.length === 9 && web.length === 1 && web[0]!.device_id === "web-oldtab000001" && web[0]!.connected;
      });
      await t2.getByRole("button", { name: "Devices" }).click();
      const dialog = t2.getByRole("dialog", { name: "Your devices" });
      await dialog.locator(".device").nth(8).waitFor();
      expect(await dialog.locator(".device").count()).toBe(9);
      await textOf(dialog.locator(".device").first(), /This browser/);
      await screenshot(t2, "devices-dialog");
      await expectAccessible(t2, "devices dialog");
      await dialog.getByRole("button", { name: "Done" }).click();

      // The first tab took the socket (it asked first); closing it hands the device to the next.
      await t1.close();
      const rest = [t2, t3, t4];
      await phone.send(dmId, "Still there after a tab closed?");
      for (const t of rest) await message(t, "Still there after a tab closed?").waitFor();
      const heard = new Promise<void>((resolve) => phone.on("message", (m) => m.content.text?.text === "Yes, from another tab" && resolve()));
      await sendMessage(t4, "Yes, from another tab");
      await heard;
      for (const t of rest) await message(t, "Yes, from another tab").waitFor();
      for (const t of rest) expect(await banner(t).isVisible()).toBe(false);
      // Still one device, still connected.
      const res = await fetch(`${suite.server.url}/v1/devices`, { headers: { authorization: `Bearer ${alice.access_token}` } });
      const { devices } = (await res.json()) as { devices: { device_id: string; connected: boolean }[] };
      expect(devices.filter((d) => d.device_id.startsWith("web-"))).toEqual([expect.objectContaining({ device_id: "web-oldtab000001", connected: true })]);
    } finally {
      phone.disconnect();
    }
  });

  it("restores history after a reload, scrolls back to the beginning, and keeps the start of the conversation clear of the first rows", async () => {
    const { alice, bob, dmId } = await twoFriends();
    const page = await suite.profiles.open(alice, "alice", { path: `/#c/${dmId}`, viewport: WIDE });
    const phone = sdkClient(suite.server.url, bob, "bob-phone");
    await phone.connect();
    await phone.send(dmId, "Are we still on for Saturday?");
    // 120 more, so the DM spans three pages. Alice's browser gets them live, so after a reload
    // only the newest page is fetched and scrolling back pages through the rest.
    await Promise.all(Array.from({ length: 120 }, (_, i) => phone.send(dmId, `Photo dump ${i + 1} of 120`)));
    phone.disconnect();
    await message(page, "Photo dump 120 of 120").waitFor();

    for (const [size, viewport] of [["wide", WIDE], ["phone", PHONE]] as const) {
      await page.setViewportSize(viewport);
      await reloadWhenIdle(page);
      await message(page, "Photo dump 120 of 120").waitFor();
      await textOf(page.locator(".conv-title"), "Bob Chen");
      expect(await message(page, "Photo dump 1 of 120").count()).toBe(0);

      await eventually("the beginning of the conversation", async () => {
        await run(page, "document.querySelector('.log').scrollTop = 0");
        return (await page.locator(".log-start").count()) > 0;
      }, 60_000);
      await message(page, "Photo dump 1 of 120").waitFor();
      await message(page, "Are we still on for Saturday?").waitFor();
      const seqs = await run<number[]>(page, "[...document.querySelectorAll('li.msg[data-seq]')].map((el) => Number(el.dataset.seq)).filter((n) => n > 0)");
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
      expect(new Set(seqs).size).toBe(seqs.length);

      // At the very top: the start block, then the day, then "started the conversation", then
      // the first message, each below the one before (they used to be drawn over each other).
      await run(page, "document.querySelector('.log').scrollTop = 0");
      const boxes = await run<{ start: number[]; day: number[]; system: number[]; first: number[] }>(page, `(() => {
        const r = (el) => { const b = el.getBoundingClientRect(); return [b.top, b.bottom]; };
        return {
          start: r(document.querySelector(".log-start")),
          day: r(document.querySelector("li.day-sep span")),
          system: r(document.querySelector("li.system-msg")),
          first: r(document.querySelector("li.msg")),
        };
      })()`);
      expect(boxes.start[1]).toBeLessThanOrEqual(boxes.day[0]!);
      expect(boxes.day[1]).toBeLessThanOrEqual(boxes.system[0]!);
      expect(boxes.system[1]).toBeLessThanOrEqual(boxes.first[0]!);
      await screenshot(page, `conversation-start-${size}`);

      // Scrolling down the history shows the day of the rows at the top; at rest it is gone.
      await page.locator(".log").hover();
      await page.mouse.wheel(0, 900);
      await page.locator(".day-float.visible").waitFor();
      await screenshot(page, `day-label-scrolling-${size}`);
      await page.locator(".day-float.visible").waitFor({ state: "detached" });
      await screenshot(page, `day-label-at-rest-${size}`);
      expect(await run<number>(page, "Number(getComputedStyle(document.querySelector('.day-float')).opacity)")).toBe(0);
      await expectAccessible(page, `history at ${size} size`);
    }
  });

  it("reacts, edits and deletes, and every device shows the change", async () => {
    const { alice, bob, dmId } = await twoFriends();
    const a = await suite.profiles.open(alice, "alice", { path: `/#c/${dmId}` });
    const b = await suite.profiles.open(bob, "bob", { path: `/#c/${dmId}` });
    await sendMessage(b, "Brunch at 10?");
    await message(a, "Brunch at 10?").waitFor();

    // Keyboard only: into the log, up to a message, Enter for its actions, Enter on 👍.
    await a.locator(".log").focus();
    await a.keyboard.press("ArrowUp");
    await a.keyboard.press("Enter");
    const menu = a.getByRole("menu", { name: "Message actions" });
    await menu.waitFor();
    await a.keyboard.press("Enter");
    await menu.waitFor({ state: "detached" });
    const chipAtBob = b.locator(".reaction", { hasText: "👍 1" });
    await chipAtBob.waitFor();
    expect(await chipAtBob.getAttribute("aria-pressed")).toBe("false");
    await chipAtBob.click();
    await a.locator(".reaction", { hasText: "👍 2" }).waitFor();
    expect(await b.locator(".reaction", { hasText: "👍 2" }).getAttribute("aria-pressed")).toBe("true");
    expect(await a.locator(".reaction", { hasText: "👍 2" }).getAttribute("title")).toBe("You and Bob Chen reacted with 👍");

    const openActions = async (page: Page, text: string) => {
      const row = message(page, text);
      await row.hover();
      await row.getByRole("button", { name: "Message actions" }).click();
      return page.getByRole("menu", { name: "Message actions" });
    };
    await sendMessage(a, "Let's meet at the brigde");
    await message(b, "at the brigde").waitFor();
    await (await openActions(a, "at the brigde")).getByRole("menuitem", { name: "Edit" }).click();
    const editor = a.getByRole("dialog", { name: "Edit message" });
    await editor.getByLabel("Message").fill("Let's meet at the bridge");
    await editor.getByRole("button", { name: "Save" }).click();
    await editor.waitFor({ state: "detached" });
    const edited = message(b, "Let's meet at the bridge");
    await edited.waitFor();
    await textOf(edited.locator(".msg-meta"), /edited/);
    expect(await message(b, "brigde").count()).toBe(0);

    await sendMessage(a, "Oops, wrong chat");
    await message(b, "Oops, wrong chat").waitFor();
    await (await openActions(a, "Oops, wrong chat")).getByRole("menuitem", { name: "Delete for everyone" }).click();
    const confirm = a.getByRole("dialog", { name: "Delete for everyone?" });
    await confirm.getByRole("button", { name: "Delete" }).click();
    await confirm.waitFor({ state: "detached" });
    await message(b, "This message was deleted").waitFor();
    await message(b, "Oops, wrong chat").waitFor({ state: "detached" });
    await message(a, "This message was deleted").waitFor();

    await (await openActions(b, "Let's meet at the bridge")).getByRole("menuitem", { name: "Delete for me" }).click();
    await b.getByRole("dialog", { name: "Delete for you?" }).getByRole("button", { name: "Delete" }).click();
    await message(b, "Let's meet at the bridge").waitFor({ state: "detached" });
    expect(await message(a, "Let's meet at the bridge").count()).toBe(1);
    await screenshot(a, "reactions-edit-delete");
    await expectAccessible(a, "reactions, edit, delete");

    // A reload brings the same state back from the server.
    await reloadWhenIdle(b);
    await message(b, "This message was deleted").waitFor();
    await b.locator(".reaction", { hasText: "👍 2" }).waitFor();
    expect(await message(b, "Let's meet at the bridge").count()).toBe(0);
    expect(await message(b, "Oops, wrong chat").count()).toBe(0);
  });

  it("shows who is online, and when a contact was last seen", async () => {
    const { alice, bob, dmId } = await twoFriends();
    const carol = await registerUser(suite.server.url, "carol", "Carol Diaz");
    const a = await suite.profiles.open(alice, "alice", { path: `/#c/${dmId}` });
    const b = await suite.profiles.open(bob, "bob", { path: `/#c/${dmId}` });
    await textOf(b.locator(".conv-subtitle"), "Online");
    await channelItem(b, "Alice Martin").locator(".presence-dot.presence-online").waitFor();
    await textOf(a.locator(".conv-subtitle"), "Online");

    // Carol, on her phone (the SDK on Node), starts a DM with Alice and then puts the phone away.
    const phone = sdkClient(suite.server.url, carol, "carol-phone");
    await phone.connect();
    await phone.channels.create({ type: "dm", member: alice.username });
    const item = channelItem(a, "Carol Diaz");
    await item.locator(".presence-dot.presence-online").waitFor();
    await item.click();
    await textOf(a.locator(".conv-subtitle"), "Online");
    await phone.setPresence("away");
    await item.locator(".presence-dot.presence-away").waitFor();
    await screenshot(a, "presence-away");
    phone.disconnect();
    await textOf(a.locator(".conv-subtitle"), "last seen just now");
    await item.locator(".presence-dot").waitFor({ state: "detached" });
    await screenshot(a, "presence-last-seen");
    await expectAccessible(a, "DM with last seen");
    await channelItem(a, "Bob Chen").click();
    await textOf(a.locator(".conv-subtitle"), "Online");

    // Bob stops sharing his presence: to Alice he is simply not there, and was never seen.
    await b.getByRole("button", { name: "Privacy" }).click();
    const privacy = b.getByRole("dialog", { name: "Privacy" });
    const share = privacy.getByRole("switch", { name: "Show when I'm online" });
    await eventually("settings loaded", async () => (await share.isEnabled()) && (await share.isChecked()));
    await share.uncheck();
    await textOf(a.locator(".conv-subtitle"), `@${bob.username}`);
    await channelItem(a, "Bob Chen").locator(".presence-dot").waitFor({ state: "detached" });
    await screenshot(b, "privacy-dialog");
    await expectAccessible(b, "privacy dialog");
    await eventually("saved", () => share.isEnabled());
    await share.check();
    await textOf(a.locator(".conv-subtitle"), "Online");
    await privacy.getByRole("button", { name: "Done" }).click();
    await privacy.waitFor({ state: "detached" });
  });

  it("downloads everything the server holds about the user from Privacy", async () => {
    const { alice, dmId } = await twoFriends();
    const phone = sdkClient(suite.server.url, alice, "alice-phone");
    await phone.connect();
    await phone.send(dmId, "Keep this one");
    phone.disconnect();
    const a = await suite.profiles.open(alice, "alice");
    await a.getByRole("button", { name: "Privacy" }).click();
    const privacy = a.getByRole("dialog", { name: "Privacy" });
    const [download] = await Promise.all([a.waitForEvent("download"), privacy.getByRole("button", { name: "Download my data" }).click()]);
    expect(download.suggestedFilename()).toBe("edgechat-export.json");
    const archive = JSON.parse(readFileSync((await download.path())!, "utf8")) as { format: string; profile: { user_id: string }; channels: { channel_id: string; messages: { content: { text?: { text: string } } }[] }[] };
    expect(archive.format).toBe("edgechat-export/1");
    expect(archive.profile.user_id).toBe(alice.user_id);
    expect(archive.channels.find((c) => c.channel_id === dmId)?.messages.map((m) => m.content.text?.text)).toEqual(["Keep this one"]);
    await privacy.getByRole("button", { name: "Done" }).click();
  });

  it("lets a user allow only people they talk with to add them to groups", async () => {
    const bob = await registerUser(suite.server.url, "bob", "Bob Chen");
    const carol = await registerUser(suite.server.url, "carol", "Carol Diaz");
    const b = await suite.profiles.open(bob, "bob laptop");
    await b.getByRole("button", { name: "Privacy" }).click();
    const privacy = b.getByRole("dialog", { name: "Privacy" });
    const adds = privacy.getByRole("switch", { name: "Only people I talk with can add me to groups" });
    await eventually("settings loaded", async () => (await adds.isEnabled()) && !(await adds.isChecked()));
    await adds.check();
    await eventually("saved", () => adds.isEnabled());
    const settings = await fetch(`${suite.server.url}/v1/me/settings`, { headers: { authorization: `Bearer ${bob.access_token}` } });
    expect(await settings.json()).toMatchObject({ group_adds: "contacts" });
    // A stranger cannot put Bob in a group now, and is told who and why.
    const res = await fetch(`${suite.server.url}/v1/channels`, {
      method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${carol.access_token}` },
      body: JSON.stringify({ type: "group", name: "Surprise", members: [bob.user_id] }),
    });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ code: "forbidden", user_ids: [bob.user_id] });
    await expectAccessible(b, "privacy dialog with group adds");
    await privacy.getByRole("button", { name: "Done" }).click();
  });

  it("lets a group's owner remove anyone's message for everyone", async () => {
    const alice = await registerUser(suite.server.url, "alice", "Alice Martin");
    const bob = await registerUser(suite.server.url, "bob", "Bob Chen");
    const owner = sdkClient(suite.server.url, alice, "alice-laptop");
    const member = sdkClient(suite.server.url, bob, "bob-phone");
    await Promise.all([owner.connect(), member.connect()]);
    const group = await owner.channels.create({ type: "group", name: "Weekend trip", members: [bob.username] });
    await owner.send(group.channel_id, "I can take 3 people.");
    await member.send(group.channel_id, "Me! 🚗");
    owner.disconnect();
    member.disconnect();

    const a = await suite.profiles.open(alice, "alice", { path: `/#c/${group.channel_id}` });
    const b = await suite.profiles.open(bob, "bob", { path: `/#c/${group.channel_id}` });
    const row = message(a, "Me!");
    await row.hover();
    await row.getByRole("button", { name: "Message actions" }).click();
    const menu = a.getByRole("menu", { name: "Message actions" });
    expect(await menu.getByRole("menuitem", { name: "Edit" }).count()).toBe(0); // not hers to edit
    await menu.getByRole("menuitem", { name: "Delete for everyone" }).click();
    await a.getByRole("dialog", { name: "Delete for everyone?" }).getByRole("button", { name: "Delete" }).click();
    await message(b, "This message was deleted").waitFor();
    expect(await message(b, "Me!").count()).toBe(0);
    // Bob, a plain member, may not do the same to Alice's messages.
    const hers = message(b, "I can take 3 people.");
    await hers.hover();
    await hers.getByRole("button", { name: "Message actions" }).click();
    const bobsMenu = b.getByRole("menu", { name: "Message actions" });
    await bobsMenu.getByRole("menuitem", { name: "Delete for me" }).waitFor();
    expect(await bobsMenu.getByRole("menuitem", { name: "Delete for everyone" }).count()).toBe(0);
    await b.keyboard.press("Escape");
  });

  it("stacks the list and the conversation at phone width", async () => {
    const { alice, bob, dmId } = await twoFriends();
    const phone = sdkClient(suite.server.url, alice, "alice-phone");
    await phone.connect();
    for (let i = 1; i <= 12; i++) await phone.send(dmId, `Line ${i}: the quick brown fox jumps over the lazy dog, again and again`);
    phone.disconnect();
    const b = await suite.profiles.open(bob, "bob", { path: `/#c/${dmId}`, viewport: PHONE });
    await message(b, "Line 12").waitFor();
    expect(await b.locator(".sidebar").isVisible()).toBe(false);
    // Nothing rests on the messages: opening the conversation scrolls it, but only the reader's
    // own scrolling shows the floating day label.
    expect(await b.locator(".day-float.visible").count()).toBe(0);
    await screenshot(b, "conversation-phone");
    await expectAccessible(b, "conversation at phone width");
    await b.getByRole("button", { name: "Back to conversations" }).click();
    await b.locator(".sidebar").waitFor();
    expect(await b.locator(".conversation").isVisible()).toBe(false);
    await eventually("focus on the conversation just left", async () =>
      (await run<string | null>(b, "document.activeElement?.dataset.channel ?? null")) === dmId);
    await screenshot(b, "channel-list-phone");
    await expectAccessible(b, "channel list at phone width");
    await channelItem(b, "Alice Martin").click();
    await textOf(b.locator(".conv-title"), "Alice Martin");
  });

  it("signs out every tab of the profile together", async () => {
    const erin = await registerUser(suite.server.url, "erin", "Erin Park");
    const context = await suite.profiles.profile({ user: erin });
    const one = await suite.profiles.tab(context, "erin tab 1");
    const two = await suite.profiles.tab(context, "erin tab 2");
    for (const t of [one, two]) await connected(t);
    // Every tab reads the newest refresh token from IndexedDB (web/src/token-chain.ts): it has
    // moved on from the one the profile started with, and no tab was handed a used one.
    const head = await run<string | null>(two, `new Promise((resolve, reject) => {
      const open = indexedDB.open("edgechat-session");
      open.onerror = () => reject(open.error);
      open.onsuccess = () => {
        const get = open.result.transaction("session").objectStore("session").get("newest");
        get.onsuccess = () => resolve(get.result?.refresh_token ?? null);
      };
    })`);
    expect(head).toEqual(expect.any(String));
    expect(head).not.toBe(erin.refresh_token);
    await one.getByRole("button", { name: "Sign out" }).click();
    await one.getByRole("heading", { name: "Welcome back" }).waitFor();
    await two.getByRole("heading", { name: "Welcome back" }).waitFor();
    await textOf(two.getByRole("alert"), "You signed out in another tab.");
    expect(await run<string | null>(one, "localStorage.getItem('edgechat.session')")).toBeNull();
    // The session is gone on the server too.
    const res = await fetch(`${suite.server.url}/v1/auth/refresh`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ refresh_token: erin.refresh_token }),
    });
    expect(res.status).toBe(401);
  });

  it("signs another device out from the devices dialog, then everywhere else", async () => {
    const alice = await registerUser(suite.server.url, "alice", "Alice Martin");
    /** A sign-in of its own (a session per browser or app), as alice. */
    const signIn = async (): Promise<typeof alice> => {
      const res = await fetch(`${suite.server.url}/v1/auth/login`, {
        method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ username: alice.username, password: PASSWORD }),
      });
      expect(res.status).toBe(200);
      return { ...alice, ...((await res.json()) as { access_token: string; refresh_token: string }) };
    };
    const laptop = await suite.profiles.open(await signIn(), "alice laptop");
    const desk = await suite.profiles.open(await signIn(), "alice desk");
    const phone = sdkClient(suite.server.url, alice, "alice-phone");
    const phoneSignedOut = new Promise<string>((resolve) => phone.on("signedOut", (err) => resolve(err.code)));
    await phone.connect();
    await phone.devices.register({ name: "Alice's phone", platform: "ios" });
    try {
      await laptop.getByRole("button", { name: "Devices" }).click();
      const dialog = laptop.getByRole("dialog", { name: "Your devices" });
      await dialog.getByRole("button", { name: "Sign out Alice's phone" }).click();
      expect(await phoneSignedOut).toBe("session_revoked");
      expect(phone.state).toBe("closed");
      await textOf(dialog.locator(".device", { hasText: "Alice's phone" }), /Signed out/);
      await screenshot(laptop, "devices-dialog-signed-out");
      await expectAccessible(laptop, "devices dialog with sign-out");

      // "Sign out everywhere else": the desk browser lands on the sign-in screen and says why;
      // the laptop stays signed in and connected.
      await dialog.getByRole("button", { name: "Sign out everywhere else" }).click();
      await desk.getByRole("heading", { name: "Welcome back" }).waitFor({ timeout: 30_000 });
      await textOf(desk.getByRole("alert"), /signed out/i);
      expect(await run<string | null>(desk, "localStorage.getItem('edgechat.session')")).toBeNull();
      await dialog.getByRole("button", { name: "Done" }).click();
      await connected(laptop);
      expect(await banner(laptop).isVisible()).toBe(false);
    } finally {
      phone.disconnect();
    }
  });

  it("refuses the socket to a page from another origin", async () => {
    const { alice } = await twoFriends();
    // A page served from another origin (a second local port) tries to connect with a valid token.
    const { createServer } = await import("node:http");
    const html = `<!doctype html><title>elsewhere</title><script>
      const ws = new WebSocket(${JSON.stringify(`${suite.server.wsUrl}/v1/connect?device_id=evil-page&access_token=${alice.access_token}`)}, ["edgechat.v1.json"]);
      ws.onmessage = (e) => (document.title = "message " + e.data);
      ws.onclose = (e) => document.body.setAttribute("data-closed", e.code + " " + document.title);
    </script>`;
    const other = createServer((_req, res) => res.writeHead(200, { "content-type": "text/html" }).end(html));
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    try {
      const context = await suite.profiles.profile();
      const page = await context.newPage();
      await page.goto(`http://127.0.0.1:${(other.address() as { port: number }).port}/`);
      const closed = await page.locator("body[data-closed]").getAttribute("data-closed", { timeout: 30_000 });
      expect(closed).toMatch(/^4403 /);
      expect(closed).toContain('"code":"forbidden"');
    } finally {
      other.close();
    }
  });
});
