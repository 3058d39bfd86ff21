/**
 * The web app in a real Chromium against a real `wrangler dev` (which also runs the [build]
 * that bundles web/src). Two users in two browser profiles, plus a second tab of one of them:
 * sign-up, a DM, typing, read receipts, unread badges, a group, history after a reload and
 * scroll-back, a server restart with messages sent while it was down, the phone layout, and the
 * keyboard. The steps share one story, so they run in order. Screenshots of the main screens land
 * in test-results/browser/.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { createClient, type WebSocketConstructor } from "../../client/index.js";
import { startDevServer, type DevServer } from "../support/dev-server.js";
import {
  accessibilityViolations, banner, channelItem, composer, DESKTOP, eventually, lastStatus, launchChromium, message, PASSWORD, PHONE, run, screenshot, sendMessage,
  signUp, textOf, watchErrors,
} from "./helpers.js";

const suffix = Date.now().toString(36).slice(-5);
const ALICE = { username: `alice_${suffix}`, name: "Alice Martin" };
const BOB = { username: `bob_${suffix}`, name: "Bob Chen" };
const CAROL = { username: `carol_${suffix}`, name: "Carol Diaz" };

let server: DevServer;
let stateDir: string;
let browser: Browser;
let ctxA: BrowserContext;
let ctxB: BrowserContext;
let alice: Page;
let alice2: Page;
let bob: Page;
let dmId = "";
/** Console errors and uncaught exceptions, per page. */
const errors: string[][] = [];
/** axe-core findings on the main screens, checked by the last step. */
const a11y: string[] = [];
async function audit(page: Page, screen: string): Promise<void> {
  a11y.push(...(await accessibilityViolations(page, screen)));
}

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), "edgechat-browser-"));
  server = await startDevServer({ stateDir });
  browser = await launchChromium();
  ctxA = await browser.newContext({ viewport: DESKTOP, locale: "en-US", timezoneId: "UTC" });
  ctxB = await browser.newContext({ viewport: DESKTOP, locale: "en-US", timezoneId: "UTC" });
  alice = await ctxA.newPage();
  bob = await ctxB.newPage();
  errors.push(watchErrors(alice, "alice"), watchErrors(bob, "bob"));
});

// On a failure, say where every page was: the connection, the banner, the last messages.
afterEach(async ({ task }) => {
  if (task.result?.state !== "fail") return;
  for (const [name, page] of [["alice", alice], ["alice tab 2", alice2], ["bob", bob]] as const) {
    if (!page || page.isClosed()) continue;
    const state = await run<string>(page, `JSON.stringify({
      url: location.href,
      connection: document.querySelector(".banner")?.dataset.state,
      banner: document.querySelector(".banner")?.textContent,
      last: [...document.querySelectorAll("li.msg")].slice(-4).map((el) => el.textContent),
    })`).catch((err: unknown) => String(err));
    console.error(`[${task.name}] ${name}: ${state}`);
    await screenshot(page, `failure-${name.replace(/\s+/g, "-")}`).catch(() => {});
  }
  if (server) console.error(`[${task.name}] wrangler dev, last lines:\n${server.log.slice(-40).join("\n")}`);
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

describe("edgechat web app in Chromium", () => {
  it("serves the app the build step bundled", async () => {
    const res = await fetch(`${server.url}/app.js`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/javascript/);
    expect((await res.text()).length).toBeGreaterThan(10_000);
  });

  it("signs up two users in two browser profiles", async () => {
    await alice.goto(server.url);
    await alice.getByRole("heading", { name: "Welcome back" }).waitFor();
    await screenshot(alice, "login");
    await audit(alice, "login");

    // Client-side validation before anything reaches the server.
    await alice.getByRole("button", { name: "Create an account" }).click();
    await alice.getByLabel("Username").fill("a!");
    await alice.getByRole("button", { name: "Create account" }).click();
    await textOf(alice.getByRole("alert"), /3–32 letters/);

    await signUp(alice, server.url, ALICE.username, ALICE.name);
    await signUp(bob, server.url, BOB.username, BOB.name);
    await alice.getByText("No conversations yet").waitFor();

    const session = await run<string | null>(alice, "localStorage.getItem('edgechat.session')");
    expect(JSON.parse(session ?? "{}").refresh_token).toBeTruthy();
    const device = await run<string | null>(alice, "sessionStorage.getItem('edgechat.device')");
    expect(device).toMatch(/^web-[a-z0-9]{12}$/);
    expect(await run<string | null>(alice, "localStorage.getItem('edgechat.devices')")).toContain(device!);
  });

  it("closes dialogs with Escape and returns focus to the opener", async () => {
    const opener = alice.getByRole("button", { name: "New conversation" });
    await opener.click();
    const dialog = alice.getByRole("dialog", { name: "New conversation" });
    await dialog.waitFor();
    await dialog.getByLabel("Username").fill(BOB.username);
    await screenshot(alice, "new-conversation-dialog");
    await audit(alice, "new conversation dialog");
    await alice.keyboard.press("Escape");
    await dialog.waitFor({ state: "detached" });
    expect(await run<string | null>(alice, "document.activeElement?.getAttribute('aria-label')")).toBe("New conversation");
  });

  it("creates a DM and exchanges messages, with sent, read and unread states", async () => {
    await alice.getByRole("button", { name: "New conversation" }).click();
    const dialog = alice.getByRole("dialog", { name: "New conversation" });
    await dialog.getByLabel("Username").fill("nobody_here_" + suffix);
    await dialog.getByRole("button", { name: "Start", exact: true }).click();
    await textOf(dialog.getByRole("alert"), /No such user/);
    await dialog.getByLabel("Username").fill(BOB.username);
    await dialog.getByRole("button", { name: "Start", exact: true }).click();
    await dialog.waitFor({ state: "detached" });
    await textOf(alice.locator(".conv-title"), BOB.name);
    dmId = new URL(alice.url()).hash.replace(/^#c\//, "");
    expect(dmId).not.toBe("");

    // Keyboard: Shift+Enter is a newline, Enter sends.
    const box = composer(alice);
    expect(await run<string | undefined>(alice, "document.activeElement?.id")).toBe("composer-input");
    await box.pressSequentially("Hey Bob! Are we still on for Saturday?");
    await box.press("Shift+Enter");
    await box.pressSequentially("I found a great place for brunch 🥞");
    await box.press("Enter");
    const first = message(alice, "Are we still on for Saturday?");
    await first.waitFor();
    expect(await first.locator(".msg-text").textContent()).toBe("Hey Bob! Are we still on for Saturday?\nI found a great place for brunch 🥞");
    expect(await box.inputValue()).toBe("");
    await textOf(lastStatus(alice), "Sent");

    // Bob: the DM shows up with an unread badge, and reading it clears the badge.
    const item = channelItem(bob, ALICE.name);
    await item.waitFor();
    await textOf(item.getByTestId("unread-badge"), "1 unread");
    await textOf(item.locator(".ci-preview"), /great place for brunch/);
    await sendMessage(alice, "It's near the river, opens at 10.");
    await textOf(item.getByTestId("unread-badge"), "2 unread");
    await screenshot(bob, "channel-list");
    await audit(bob, "channel list");
    await item.click();
    await message(bob, "opens at 10").waitFor();
    await item.getByTestId("unread-badge").waitFor({ state: "detached" });

    // Alice sees Bob's read cursor pass her last message.
    await textOf(lastStatus(alice), `Read by ${BOB.name}`);
    await sendMessage(bob, "Yes! Saturday works. See you at 10 then 👋");
    await message(alice, "Saturday works").waitFor();
    expect(await message(alice, "Saturday works").getAttribute("class")).toContain("msg-theirs");
  });

  it("shows who is typing, and stops when they stop", async () => {
    const typing = alice.locator(".typing");
    await composer(bob).pressSequentially("Should I bring", { delay: 30 });
    await textOf(typing, `${BOB.name} is typing…`);
    await screenshot(alice, "typing");
    await composer(bob).fill("");
    await textOf(typing, "");
  });

  it("counts unread messages in a group and clears them when the group is read", async () => {
    await alice.getByRole("button", { name: "New conversation" }).click();
    const dialog = alice.getByRole("dialog", { name: "New conversation" });
    await dialog.getByRole("radio", { name: "Group" }).click();
    await dialog.getByLabel("Group name").fill("Weekend trip");
    await dialog.getByLabel("Members").fill(BOB.username);
    await dialog.getByRole("button", { name: "Start", exact: true }).click();
    await textOf(alice.locator(".conv-title"), "Weekend trip");
    await textOf(alice.locator(".conv-subtitle"), /2 members/);
    await sendMessage(alice, "Who's driving?");
    await sendMessage(alice, "I can take 3 people.");
    await textOf(lastStatus(alice), "Sent");

    const group = channelItem(bob, "Weekend trip");
    await textOf(group.getByTestId("unread-badge"), "2 unread");
    // Latest activity first.
    await textOf(bob.locator(".channel-item .ci-name").first(), "Weekend trip");
    await group.click();
    await message(bob, "I can take 3 people.").waitFor();
    await group.getByTestId("unread-badge").waitFor({ state: "detached" });
    await textOf(lastStatus(alice), `Read by ${BOB.name}`);
    await sendMessage(bob, "Me! 🚗");
    await textOf(message(alice, "Me!").locator(".msg-sender"), BOB.name);

    // A third person, who signed up elsewhere (the SDK on Node), joins through "Add people".
    const carol = createClient({ url: server.url, deviceId: "carol-laptop", WebSocket: WebSocket as unknown as WebSocketConstructor });
    await carol.register({ username: CAROL.username, password: PASSWORD, display_name: CAROL.name });
    await alice.getByRole("button", { name: "Add people" }).click();
    const add = alice.getByRole("dialog", { name: "Add people" });
    await add.getByLabel("Usernames").fill(CAROL.username);
    await add.getByRole("button", { name: "Add", exact: true }).click();
    await add.waitFor({ state: "detached" });
    await textOf(alice.locator(".toast").last(), `Added ${CAROL.name}`);
    await alice.locator(".system-msg", { hasText: `added ${CAROL.name}` }).waitFor();
    await bob.locator(".system-msg", { hasText: `added ${CAROL.name}` }).waitFor();
    await textOf(alice.locator(".conv-subtitle"), /^3 members · 1 online · /); // Bob; Carol has not connected
    await channelItem(bob, ALICE.name).click();
    await alice.locator(`.channel-item[data-channel="${dmId}"]`).click();
    await message(alice, "Saturday works").waitFor();
    await screenshot(alice, "conversation-desktop");
    await audit(alice, "group conversation");
  });

  it("treats a second tab of the same profile as a second device", async () => {
    alice2 = await ctxA.newPage();
    errors.push(watchErrors(alice2, "alice tab 2"));
    await alice2.goto(`${server.url}/#c/${dmId}`);
    await message(alice2, "Saturday works").waitFor();
    const one = await run<string>(alice, "sessionStorage.getItem('edgechat.device')");
    const two = await run<string>(alice2, "sessionStorage.getItem('edgechat.device')");
    expect(two).not.toBe(one);

    await sendMessage(alice2, "Sent from my other tab");
    await message(bob, "Sent from my other tab").waitFor();
    const mirrored = message(alice, "Sent from my other tab");
    await mirrored.waitFor();
    expect(await mirrored.getAttribute("class")).toContain("msg-mine");
    // Both tabs stay connected (neither replaced the other).
    await alice.waitForTimeout(1_000);
    expect(await banner(alice).isVisible()).toBe(false);
    expect(await banner(alice2).isVisible()).toBe(false);

    // A reload keeps the tab's device.
    await alice2.reload();
    await message(alice2, "Sent from my other tab").waitFor();
    expect(await run<string>(alice2, "sessionStorage.getItem('edgechat.device')")).toBe(two);
  });

  it("restores history after a reload and scrolls back through older pages", async () => {
    // 120 more messages from Bob's phone (the SDK on Node), so the DM spans three pages.
    const phone = createClient({
      url: server.url, deviceId: "bob-phone", credentials: { username: BOB.username, password: PASSWORD },
      WebSocket: WebSocket as unknown as WebSocketConstructor,
    });
    await phone.connect();
    await Promise.all(Array.from({ length: 120 }, (_, i) => phone.send(dmId, `Photo dump ${i + 1} of 120`)));
    phone.disconnect();

    await alice.reload();
    await message(alice, "Photo dump 120 of 120").waitFor();
    await textOf(alice.locator(".conv-title"), BOB.name);
    expect(await message(alice, "Photo dump 1 of 120").count()).toBe(0);

    // Scroll to the top until the conversation's beginning shows up.
    await eventually("the beginning of the conversation", async () => {
      await run(alice, "document.querySelector('.log').scrollTop = 0");
      return (await alice.locator(".log-start").count()) > 0;
    }, 60_000);
    await message(alice, "Photo dump 1 of 120").waitFor();
    await message(alice, "Are we still on for Saturday?").waitFor();
    const seqs = await run<number[]>(alice, "[...document.querySelectorAll('li.msg[data-seq]')].map((el) => Number(el.dataset.seq)).filter((n) => n > 0)");
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    await run(alice, "const l = document.querySelector('.log'); l.scrollTop = l.scrollHeight");
  });

  it("shows the reconnect banner while the server is down and delivers what was sent meanwhile", async () => {
    await alice2.close();
    await alice.locator(`.channel-item[data-channel="${dmId}"]`).click();
    await bob.locator(`.channel-item[data-channel="${dmId}"]`).click();
    await message(bob, "Photo dump 120 of 120").waitFor();

    // Bob's browser loses its network; then the server goes away for everyone.
    await ctxB.setOffline(true);
    await server.stop();
    await textOf(banner(alice), /Reconnecting…/);
    await textOf(banner(bob), /You're offline/);
    await screenshot(alice, "reconnect-banner");
    await audit(alice, "reconnect banner");
    await screenshot(bob, "offline-banner");

    await sendMessage(alice, "Sent while the server was down");
    await textOf(lastStatus(alice), "Sending…");
    await sendMessage(bob, "Typed on the train, no signal");
    await textOf(lastStatus(bob), "Sending…");
    await screenshot(alice, "sending-while-down");

    await ctxB.setOffline(false);
    server = await startDevServer({ stateDir, port: server.port });
    // Skip the rest of the backoff wait where the banner offers it.
    for (const page of [alice, bob]) await page.getByRole("button", { name: "Retry now" }).click({ timeout: 2_000 }).catch(() => {});

    await banner(alice).waitFor({ state: "hidden", timeout: 90_000 });
    await banner(bob).waitFor({ state: "hidden", timeout: 90_000 });
    await message(bob, "Sent while the server was down").waitFor();
    await message(alice, "Typed on the train, no signal").waitFor();
    await textOf(lastStatus(bob), `Read by ${ALICE.name}`);
    await textOf(lastStatus(alice), /^(Sent|Read by Bob Chen)$/);
    expect(await message(alice, "Sent while the server was down").count()).toBe(1);
    expect(await message(bob, "Sent while the server was down").count()).toBe(1);
  });

  it("reacts, edits and deletes, and every device shows the change", async () => {
    // Keyboard only: into the log, up to a message, Enter for its actions, Enter on 👍.
    await alice.locator(".log").focus();
    await alice.keyboard.press("ArrowUp");
    await alice.keyboard.press("Enter");
    const menu = alice.getByRole("menu", { name: "Message actions" });
    await menu.waitFor();
    await alice.keyboard.press("Enter");
    await menu.waitFor({ state: "detached" });
    const chipAtBob = bob.locator(".reaction", { hasText: "👍 1" });
    await chipAtBob.waitFor();
    expect(await chipAtBob.getAttribute("aria-pressed")).toBe("false");
    // Bob joins the reaction by clicking it; both sides count two.
    await chipAtBob.click();
    await alice.locator(".reaction", { hasText: "👍 2" }).waitFor();
    expect(await bob.locator(".reaction", { hasText: "👍 2" }).getAttribute("aria-pressed")).toBe("true");
    expect(await alice.locator(".reaction", { hasText: "👍 2" }).getAttribute("title")).toBe(`You and ${BOB.name} reacted with 👍`);

    const openActions = async (page: Page, text: string) => {
      const row = message(page, text);
      await row.hover();
      await row.getByRole("button", { name: "Message actions" }).click();
      return page.getByRole("menu", { name: "Message actions" });
    };
    // Edit: Bob sees the new text, marked edited.
    await sendMessage(alice, "Let's meet at the brigde");
    await message(bob, "at the brigde").waitFor();
    await (await openActions(alice, "at the brigde")).getByRole("menuitem", { name: "Edit" }).click();
    const editor = alice.getByRole("dialog", { name: "Edit message" });
    await editor.getByLabel("Message").fill("Let's meet at the bridge");
    await editor.getByRole("button", { name: "Save" }).click();
    await editor.waitFor({ state: "detached" });
    const edited = message(bob, "Let's meet at the bridge");
    await edited.waitFor();
    await textOf(edited.locator(".msg-meta"), /edited/);
    expect(await message(bob, "brigde").count()).toBe(0);

    // Delete for everyone: a tombstone on Bob's side, the text gone.
    await sendMessage(alice, "Oops, wrong chat");
    await message(bob, "Oops, wrong chat").waitFor();
    await (await openActions(alice, "Oops, wrong chat")).getByRole("menuitem", { name: "Delete for everyone" }).click();
    const confirm = alice.getByRole("dialog", { name: "Delete for everyone?" });
    await confirm.getByRole("button", { name: "Delete" }).click();
    await confirm.waitFor({ state: "detached" });
    await message(bob, "This message was deleted").waitFor();
    await message(bob, "Oops, wrong chat").waitFor({ state: "detached" });
    await message(alice, "This message was deleted").waitFor();

    // Delete for me: gone from Bob's screen only.
    await (await openActions(bob, "Let's meet at the bridge")).getByRole("menuitem", { name: "Delete for me" }).click();
    const mine = bob.getByRole("dialog", { name: "Delete for you?" });
    await mine.getByRole("button", { name: "Delete" }).click();
    await message(bob, "Let's meet at the bridge").waitFor({ state: "detached" });
    expect(await message(alice, "Let's meet at the bridge").count()).toBe(1);
    await screenshot(alice, "reactions-edit-delete");
    await audit(alice, "reactions, edit, delete");

    // A reload brings the same state back from the server.
    await bob.reload();
    await message(bob, "This message was deleted").waitFor();
    await bob.locator(".reaction", { hasText: "👍 2" }).waitFor();
    expect(await message(bob, "Let's meet at the bridge").count()).toBe(0);
    expect(await message(bob, "Oops, wrong chat").count()).toBe(0);
  });

  it("shows who is online, and when a contact was last seen", async () => {
    // Both have the DM open: each sees the other online, in the header and on the list.
    await textOf(bob.locator(".conv-subtitle"), "Online");
    await channelItem(bob, ALICE.name).locator(".presence-dot.presence-online").waitFor();
    await textOf(alice.locator(".conv-subtitle"), "Online");

    // Carol, on her phone (the SDK on Node), starts a DM with Alice and then puts the phone away.
    const carol = createClient({ url: server.url, deviceId: "carol-phone", WebSocket: WebSocket as unknown as WebSocketConstructor });
    await carol.login({ username: CAROL.username, password: PASSWORD });
    await carol.connect();
    await carol.channels.create({ type: "dm", member: ALICE.username });
    const item = channelItem(alice, CAROL.name);
    await item.locator(".presence-dot.presence-online").waitFor();
    await item.click();
    await textOf(alice.locator(".conv-subtitle"), "Online");
    await carol.setPresence("away");
    await item.locator(".presence-dot.presence-away").waitFor();
    await screenshot(alice, "presence-away");
    carol.disconnect();
    await textOf(alice.locator(".conv-subtitle"), "last seen just now");
    await item.locator(".presence-dot").waitFor({ state: "detached" });
    await screenshot(alice, "presence-last-seen");
    await audit(alice, "DM with last seen");
    await channelItem(alice, BOB.name).click();
    await textOf(alice.locator(".conv-subtitle"), "Online");

    // Bob stops sharing his presence: to Alice he is simply not there, and was never seen.
    await bob.getByRole("button", { name: "Privacy" }).click();
    const privacy = bob.getByRole("dialog", { name: "Privacy" });
    const share = privacy.getByRole("switch", { name: "Show when I'm online" });
    await eventually("settings loaded", async () => (await share.isEnabled()) && (await share.isChecked()));
    await share.uncheck();
    await textOf(alice.locator(".conv-subtitle"), `@${BOB.username}`);
    await channelItem(alice, BOB.name).locator(".presence-dot").waitFor({ state: "detached" });
    await screenshot(bob, "privacy-dialog");
    await audit(bob, "privacy dialog");
    await eventually("saved", () => share.isEnabled());
    await share.check();
    await textOf(alice.locator(".conv-subtitle"), "Online");
    await privacy.getByRole("button", { name: "Done" }).click();
    await privacy.waitFor({ state: "detached" });
  });

  it("lets a group's owner remove anyone's message for everyone", async () => {
    await channelItem(alice, "Weekend trip").click();
    await channelItem(bob, "Weekend trip").click();
    const row = message(alice, "Me!");
    await row.hover();
    await row.getByRole("button", { name: "Message actions" }).click();
    const menu = alice.getByRole("menu", { name: "Message actions" });
    expect(await menu.getByRole("menuitem", { name: "Edit" }).count()).toBe(0); // not hers to edit
    await menu.getByRole("menuitem", { name: "Delete for everyone" }).click();
    await alice.getByRole("dialog", { name: "Delete for everyone?" }).getByRole("button", { name: "Delete" }).click();
    await message(bob, "This message was deleted").waitFor();
    expect(await message(bob, "Me!").count()).toBe(0);
    // Bob, a plain member, may not do the same to Alice's messages.
    const hers = message(bob, "I can take 3 people.");
    await hers.hover();
    await hers.getByRole("button", { name: "Message actions" }).click();
    const bobsMenu = bob.getByRole("menu", { name: "Message actions" });
    await bobsMenu.getByRole("menuitem", { name: "Delete for me" }).waitFor();
    expect(await bobsMenu.getByRole("menuitem", { name: "Delete for everyone" }).count()).toBe(0);
    await bob.keyboard.press("Escape");
    await channelItem(bob, ALICE.name).click();
  });

  it("stacks the list and the conversation at phone width", async () => {
    await bob.setViewportSize(PHONE);
    await message(bob, "Sent while the server was down").waitFor();
    expect(await bob.locator(".sidebar").isVisible()).toBe(false);
    await screenshot(bob, "conversation-phone");
    await audit(bob, "conversation at phone width");
    await bob.getByRole("button", { name: "Back to conversations" }).click();
    await bob.locator(".sidebar").waitFor();
    expect(await bob.locator(".conversation").isVisible()).toBe(false);
    await eventually("focus on the conversation just left", async () =>
      (await run<string | null>(bob, "document.activeElement?.dataset.channel ?? null")) === dmId);
    await screenshot(bob, "channel-list-phone");
    await audit(bob, "channel list at phone width");
    await channelItem(bob, "Weekend trip").click();
    await textOf(bob.locator(".conv-title"), "Weekend trip");
    await bob.setViewportSize(DESKTOP);
  });

  it("signs out every tab of the profile together", async () => {
    const tab = await ctxA.newPage();
    await tab.goto(server.url);
    await tab.getByRole("button", { name: "New conversation" }).waitFor();
    await alice.getByRole("button", { name: "Sign out" }).click();
    await alice.getByRole("heading", { name: "Welcome back" }).waitFor();
    await tab.getByRole("heading", { name: "Welcome back" }).waitFor();
    await textOf(tab.getByRole("alert"), "You signed out in another tab.");
    expect(await run<string | null>(alice, "localStorage.getItem('edgechat.session')")).toBeNull();
    await tab.close();
  });

  it("meets WCAG 2.1 A and AA on every main screen (axe-core)", () => {
    expect(a11y).toEqual([]);
  });

  it("logged no errors in any page", () => {
    expect([...new Set(errors.flat())]).toEqual([]);
  });
});
