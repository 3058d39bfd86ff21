/**
 * The web app's Service Worker (web/public/sw.js) in Chromium: a push delivered through the
 * DevTools protocol (ServiceWorker.deliverPushMessage, no push service needed) shows a
 * notification with sender and preview; the merged update replaces it (one per conversation);
 * a clear closes it. Served by a small static server over web/public: the worker is a static file.
 */
import { readFileSync, existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import type { Browser, BrowserContext, CDPSession, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, launchChromium } from "./helpers.js";

const publicDir = new URL("../../web/public/", import.meta.url).pathname;

let server: Server;
let origin = "";
let browser: Browser;
let context: BrowserContext;
let page: Page;
let cdp: CDPSession;
let registrationId = "";

beforeAll(async () => {
  server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (path === "/") {
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<!doctype html><title>sw test</title><p>push test</p>");
      return;
    }
    const file = join(publicDir, path.replace(/^\/+/, ""));
    if (!file.startsWith(publicDir) || !existsSync(file)) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { "content-type": file.endsWith(".js") ? "text/javascript" : file.endsWith(".svg") ? "image/svg+xml" : "application/octet-stream" });
    res.end(readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  browser = await launchChromium();
  context = await browser.newContext();
  await context.grantPermissions(["notifications"], { origin });
  page = await context.newPage();
  await page.goto(`${origin}/`);
  cdp = await context.newCDPSession(page);
  cdp.on("ServiceWorker.workerRegistrationUpdated", (e: { registrations: { registrationId: string; scopeURL: string; isDeleted: boolean }[] }) => {
    const reg = e.registrations.find((r) => r.scopeURL === `${origin}/` && !r.isDeleted);
    if (reg) registrationId = reg.registrationId;
  });
  await cdp.send("ServiceWorker.enable");
  await page.evaluate(`navigator.serviceWorker.register("/sw.js", { scope: "/" }).then(() => navigator.serviceWorker.ready).then(() => true)`);
  await eventually("the worker's registration id", () => registrationId !== "");
});

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

type Shown = { title: string; body: string; tag: string; data: { channel_id: string; seq: number } };

function shown(): Promise<Shown[]> {
  return page.evaluate<Shown[]>(`navigator.serviceWorker.ready
    .then((r) => r.getNotifications())
    .then((ns) => ns.map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data })))`);
}

async function push(payload: unknown): Promise<void> {
  await cdp.send("ServiceWorker.deliverPushMessage", { origin, registrationId, data: JSON.stringify(payload) });
}

/**
 * Delivers a push and waits until `done`, delivering it again every 2 s meanwhile: DevTools'
 * delivery can be lost when it meets the Service Worker stopping (a clean-clone run waited 30 s
 * for a DM's notification that never came), where a real push service would retry. Every payload
 * here can be repeated: a notification with the same tag replaces the last, a clear closes nothing twice.
 */
async function pushUntil(what: string, payload: unknown, done: () => Promise<boolean>): Promise<void> {
  let sentAt = 0;
  await eventually(what, async () => {
    if (await done()) return true;
    if (Date.now() - sentAt >= 2000) { sentAt = Date.now(); await push(payload); }
    return done();
  });
}

const message = (channel: string, extra: Record<string, unknown>) => ({
  v: 1, type: "message", channel_id: channel, channel_name: "Launch", channel_type: "group", seq: 4, count: 1,
  sender_user_id: "u_bob", sender_name: "Bob", preview: "see you at 10", sent_at: Date.now(), ...extra,
});

describe("the web app's Service Worker", () => {
  it("shows sender and preview, replaces per conversation, and closes on a clear", async () => {
    await pushUntil("a notification", message("c_launch", {}), async () => (await shown()).length === 1);
    expect(await shown()).toEqual([{ title: "Launch", body: "Bob: see you at 10", tag: "edgechat:c_launch", data: { channel_id: "c_launch", seq: 4 } }]);

    // The merged update replaces it (same tag); previews off: no text, a count.
    await pushUntil("the update", message("c_launch", { seq: 6, count: 3, sender_name: "Carol", preview: undefined }), async () => (await shown())[0]?.data.seq === 6);
    expect(await shown()).toEqual([{ title: "Launch", body: "Carol: 3 new messages", tag: "edgechat:c_launch", data: { channel_id: "c_launch", seq: 6 } }]);

    // A DM: the sender is the title.
    await pushUntil("the DM's notification", message("c_dm", { channel_type: "dm", channel_name: "Dora", sender_name: "Dora", preview: "hi!" }), async () => (await shown()).length === 2);
    expect((await shown()).find((n) => n.tag === "edgechat:c_dm")).toMatchObject({ title: "Dora", body: "hi!" });

    // Read elsewhere: the conversation's notification goes, the other stays.
    await pushUntil("the clear", { v: 1, type: "clear", channel_id: "c_launch", read_seq: 6 }, async () => (await shown()).length === 1);
    expect((await shown()).map((n) => n.tag)).toEqual(["edgechat:c_dm"]);
  });
});
