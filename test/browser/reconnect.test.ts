/**
 * The web app when the connection goes away: the network of one browser dropping under an open
 * socket, and the whole server going down. Its own `wrangler dev`, since a test here stops it;
 * each test still makes its own users and profiles and runs alone.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { startDevServer, type DevServer } from "../support/dev-server.js";
import {
  banner, describeFailure, eventually, expectAccessible, lastStatus, launchChromium, message, PHONE, Profiles, registerUser, screenshot, sdkClient, sendMessage, textOf, updateSettings,
} from "./helpers.js";

let server: DevServer;
let stateDir: string;
let browser: Browser;
let profiles: Profiles;

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), "edgechat-browser-"));
  server = await startDevServer({ stateDir });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(stateDir, { recursive: true, force: true });
});

beforeEach(() => {
  profiles = new Profiles(browser, server.url);
  steps = [];
});

afterEach(async ({ task }) => {
  if (task.result?.state === "fail") {
    console.error(`[${task.name}] steps reached:\n${steps.join("\n")}`);
    await describeFailure(task.name, profiles, server, "reconnect-");
  }
  await profiles.close();
});

/** The steps a test reached, with the time since it began: a timeout then says where it stood. */
let steps: string[] = [];
let began = 0;
function step(what: string): void {
  if (steps.length === 0) began = Date.now();
  steps.push(`${((Date.now() - began) / 1000).toFixed(1)} s ${what}`);
}

async function friends() {
  const alice = await registerUser(server.url, "alice", "Alice Martin");
  const bob = await registerUser(server.url, "bob", "Bob Chen");
  const phone = sdkClient(server.url, alice, "alice-phone");
  const dm = await phone.channels.create({ type: "dm", member: bob.username });
  return { alice, bob, dmId: dm.channel_id };
}

describe("edgechat web app when the connection goes away", () => {
  it("shows the offline banner soon after the network drops under an open socket, and catches up after", async () => {
    const { alice, bob, dmId } = await friends();
    const b = await profiles.open(bob, "bob", { path: `/#c/${dmId}`, viewport: PHONE });
    await textOf(b.locator(".log-start-text"), "This is the beginning of your conversation with Alice Martin.");
    const phone = sdkClient(server.url, alice, "alice-phone");
    await phone.connect();
    try {
      // The socket is open and quiet; then the network goes away without closing it. Only the
      // heartbeat can tell (the browser's "offline" event makes it ask at once).
      await b.context().setOffline(true);
      await textOf(banner(b), /You're offline/, 30_000);
      await screenshot(b, "offline-banner-phone");
      await expectAccessible(b, "offline banner");
      await sendMessage(b, "Typed on the train, no signal");
      await textOf(lastStatus(b), "Sending…");
      await phone.send(dmId, "Are you there?");

      await b.context().setOffline(false);
      await banner(b).waitFor({ state: "hidden", timeout: 60_000 });
      await message(b, "Are you there?").waitFor();
      await textOf(lastStatus(b), "Sent");
      const heard = await phone.history(dmId, { limit: 10 });
      expect(heard.messages.filter((m) => m.content.text?.text === "Typed on the train, no signal")).toHaveLength(1);
    } finally {
      phone.disconnect();
    }
    expect(profiles.allErrors()).toEqual([]);
  });

  it("shows the reconnect banner while the server is down and delivers what was sent meanwhile", async () => {
    const { alice, bob, dmId } = await friends();
    await updateSettings(server.url, alice, { read_receipts: true });
    const a = await profiles.open(alice, "alice", { path: `/#c/${dmId}` });
    const b = await profiles.open(bob, "bob", { path: `/#c/${dmId}` });

    // Bob's browser loses its network; then the server goes away for everyone.
    step("both pages connected");
    await b.context().setOffline(true);
    await server.stop();
    step("server stopped");
    try {
      await textOf(banner(a), /Reconnecting…/);
      await textOf(banner(b), /You're offline/);
      await screenshot(a, "reconnect-banner");
      await expectAccessible(a, "reconnect banner");
      await screenshot(b, "offline-banner");

      await sendMessage(a, "Sent while the server was down");
      await textOf(lastStatus(a), "Sending…");
      await sendMessage(b, "Typed on the train, no signal");
      await textOf(lastStatus(b), "Sending…");
      await screenshot(a, "sending-while-down");
      step("both messages waiting to be sent");
    } finally {
      await b.context().setOffline(false);
      server = await startDevServer({ stateDir, port: server.port });
      step("server started again");
    }
    // Skip the rest of the backoff wait whenever the banner offers it (the backoff grew while the
    // server was down: on a loaded machine its restart alone can outlast a minute of backoff).
    for (const page of [a, b]) {
      await eventually("the banner to go once the server is back", async () => {
        if (!(await banner(page).isVisible())) return true;
        await page.getByRole("button", { name: "Retry now" }).click({ timeout: 1_000 }).catch(() => {});
        return false;
      }, 90_000);
      step("a page's banner gone");
    }
    await message(b, "Sent while the server was down").waitFor();
    step("Bob has Alice's message");
    await message(a, "Typed on the train, no signal").waitFor();
    // Alice shares read receipts; Bob does not.
    await textOf(lastStatus(b), "Read by Alice Martin");
    await textOf(lastStatus(a), "Sent");
    expect(await message(a, "Sent while the server was down").count()).toBe(1);
    expect(await message(b, "Sent while the server was down").count()).toBe(1);
    // Pages may log failed requests while the server is down; nothing else.
    expect(profiles.allErrors()).toEqual([]);
    // Its own waits add up past the suite's 180 s on a loaded machine: a restart on the same port
    // (the port to come free, then wrangler's start, up to 60 s each) and up to 90 s per page for
    // the banner to go. One clean-clone CI run timed out here while the restart was still starting.
  }, 360_000);
});
