/**
 * Attachments in the web app, in Chromium against a real `wrangler dev`: Alice attaches a large
 * image (the upload is throttled so its progress bar is seen moving), the browser makes the
 * thumbnail, Bob sees it inline and opens the full image in the viewer; a PDF arrives as a file
 * card with name and size. Screenshots land in test-results/browser/attachments-*.png.
 */
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { createClient, type WebSocketConstructor } from "../../client/index.js";
import { startDevServer, type DevServer } from "../support/dev-server.js";
import { channelItem, DESKTOP, eventually, launchChromium, PASSWORD, run, screenshot, signUp, watchErrors } from "./helpers.js";

const suffix = Date.now().toString(36).slice(-5);
const ALICE = { username: `alice_${suffix}`, name: "Alice Martin" };
const BOB = { username: `bob_${suffix}`, name: "Bob Chen" };
const SIDE = 2000;

let server: DevServer;
let browser: Browser;
let ctxA: BrowserContext;
let ctxB: BrowserContext;
let alice: Page;
let bob: Page;
const errors: string[][] = [];

beforeAll(async () => {
  server = await startDevServer();
  browser = await launchChromium();
  ctxA = await browser.newContext({ viewport: DESKTOP, locale: "en-US", timezoneId: "UTC" });
  ctxB = await browser.newContext({ viewport: DESKTOP, locale: "en-US", timezoneId: "UTC" });
  alice = await ctxA.newPage();
  bob = await ctxB.newPage();
  errors.push(watchErrors(alice, "alice"), watchErrors(bob, "bob"));
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

/** A PNG of noise drawn by the page itself (noise does not compress: SIDE² × 4 bytes, about 10 MB). */
async function noisePng(page: Page): Promise<Buffer> {
  const b64 = await run<string>(page, `(async () => {
    const c = document.createElement("canvas");
    c.width = ${SIDE}; c.height = ${SIDE};
    const ctx = c.getContext("2d");
    const img = ctx.createImageData(${SIDE}, ${SIDE});
    for (let i = 0; i < img.data.length; i += 65536) crypto.getRandomValues(img.data.subarray(i, i + 65536));
    for (let i = 3; i < img.data.length; i += 4) img.data[i] = 255;
    ctx.putImageData(img, 0, 0);
    ctx.fillStyle = "#4f46e5"; ctx.fillRect(${SIDE * 3 / 8}, ${SIDE * 3 / 8}, ${SIDE / 4}, ${SIDE / 4});
    const blob = await new Promise((r) => c.toBlob(r, "image/png"));
    const bytes = new Uint8Array(await blob.arrayBuffer());
    let s = ""; for (let i = 0; i < bytes.length; i += 32768) s += String.fromCharCode(...bytes.subarray(i, i + 32768));
    return btoa(s);
  })()`);
  return Buffer.from(b64, "base64");
}

describe("attachments in the web app", () => {
  it("uploads an image with a visible progress bar; the other user sees the thumbnail and opens the image", async () => {
    await signUp(alice, server.url, ALICE.username, ALICE.name);
    await signUp(bob, server.url, BOB.username, BOB.name);
    const sdk = createClient({ url: server.url, deviceId: "node-setup", credentials: { username: ALICE.username, password: PASSWORD }, WebSocket: WebSocket as unknown as WebSocketConstructor });
    await sdk.login();
    await sdk.channels.create({ type: "dm", member: BOB.username });
    await channelItem(alice, BOB.name).click();
    await channelItem(bob, ALICE.name).click();

    const png = await noisePng(alice);
    expect(png.byteLength).toBeGreaterThan(8 * 1024 * 1024); // two parts: the multipart path
    // Slow Alice's uplink so the upload takes seconds, like a phone's would.
    const cdp = await ctxA.newCDPSession(alice);
    await cdp.send("Network.enable");
    await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 20, downloadThroughput: -1, uploadThroughput: 2.5 * 1024 * 1024 });

    await alice.locator("[data-testid=attach-input]").setInputFiles({ name: "noise.png", mimeType: "image/png", buffer: png });
    const bar = alice.locator("[data-testid=upload-progress]");
    await bar.waitFor({ timeout: 30_000 });
    const seen: number[] = [];
    let shot = false;
    await eventually("the progress bar to move and the upload to finish", async () => {
      if (await bar.count() === 0) return seen.some((v) => v > 0 && v < 100);
      const v = Number(await bar.getAttribute("value", { timeout: 1000 }));
      seen.push(v);
      if (!shot && v >= 25 && v < 90) {
        shot = true;
        await alice.screenshot({ path: `test-results/browser/attachments-1-progress.png` });
      }
      return false;
    }, 120_000);
    expect(seen.filter((v) => v > 0 && v < 100).length, `progress values seen: ${seen.join(",")}`).toBeGreaterThan(1);
    await cdp.send("Network.emulateNetworkConditions", { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });

    // Alice's own message shows the thumbnail the browser made.
    await alice.locator("li.msg-mine [data-testid=attachment-thumbnail]").waitFor({ timeout: 30_000 });
    // Bob sees it inline...
    const thumb = bob.locator("li.msg-theirs [data-testid=attachment-thumbnail]");
    await thumb.waitFor({ timeout: 30_000 });
    const inline = await run<{ src: string; w: number; h: number }>(bob, `(() => { const i = document.querySelector("li.msg-theirs [data-testid=attachment-thumbnail]"); return { src: i.src.slice(0, 30), w: i.naturalWidth, h: i.naturalHeight }; })()`);
    expect(inline.src).toMatch(/^data:image\/(webp|jpeg);base64,/);
    expect(inline.w).toBeGreaterThan(50);
    expect(inline.w).toBeLessThanOrEqual(320);
    await screenshot(bob, "attachments-2-thumbnail");

    // ...and opens the full image.
    await bob.getByRole("button", { name: "Open image noise.png" }).click();
    const viewer = bob.locator("[data-testid=viewer-image]");
    await eventually("the full image in the viewer", async () => (await viewer.getAttribute("data-loaded")) === "full", 60_000);
    const full = await run<{ w: number; h: number }>(bob, `(() => { const i = document.querySelector("[data-testid=viewer-image]"); return { w: i.naturalWidth, h: i.naturalHeight }; })()`);
    expect(full).toEqual({ w: SIDE, h: SIDE });
    await screenshot(bob, "attachments-3-viewer");
    await bob.keyboard.press("Escape");
    await eventually("the viewer to close", async () => (await viewer.count()) === 0);
    sdk.disconnect();
  });

  it("sends other files as a card with name, size and download", async () => {
    const pdf = Buffer.concat([Buffer.from("%PDF-1.4\n"), Buffer.alloc(150_000, 0x20), Buffer.from("\n%%EOF\n")]);
    await alice.locator("[data-testid=attach-input]").setInputFiles({ name: "Quarterly report.pdf", mimeType: "application/pdf", buffer: pdf });
    const card = bob.locator("li.msg-theirs [data-testid=attachment-file]", { hasText: "Quarterly report.pdf" });
    await card.waitFor({ timeout: 30_000 });
    expect((await card.textContent())?.replace(/\s+/g, " ")).toContain("147 KB");
    await expect(card.getByRole("button", { name: "Download Quarterly report.pdf" }).isVisible()).resolves.toBe(true);
    const download = bob.waitForEvent("download");
    await card.getByRole("button", { name: "Download Quarterly report.pdf" }).click();
    expect((await download).suggestedFilename()).toBe("Quarterly report.pdf");
    await screenshot(bob, "attachments-4-file-card");
  });

  it("takes files pasted into the composer and dropped on the conversation", async () => {
    // Real clipboard and drag events carrying files, as the browser makes them for a paste or a drop.
    await run(alice, `(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(["pasted notes"], "pasted.txt", { type: "text/plain" }));
      document.querySelector("#composer-input").dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
    })()`);
    await run(alice, `(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(["a,b 1,2"], "dropped.csv", { type: "text/csv" }));
      const pane = document.querySelector("section.conversation");
      pane.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }));
      pane.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    })()`);
    for (const name of ["pasted.txt", "dropped.csv"]) {
      await bob.locator("li.msg-theirs [data-testid=attachment-file]", { hasText: name }).waitFor({ timeout: 30_000 });
    }
    // The tray empties once both are sent.
    await eventually("the upload tray to empty", async () => (await alice.locator("[data-testid=upload-item]").count()) === 0);
    expect(errors.flat()).toEqual([]);
  });
});
