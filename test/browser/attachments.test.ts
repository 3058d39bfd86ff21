/**
 * Attachments in the web app, in Chromium against a real `wrangler dev`: Alice attaches a large
 * image (the upload is throttled so its progress bar is seen moving), the browser makes the
 * thumbnail, Bob sees it inline and opens the full image in the viewer; a PDF arrives as a file
 * card with name and size; pasted and dropped files go up too; and a tab that does not hold the
 * profile's connection uploads a file itself, which keeps going when the leader's tab closes.
 * Every test stands alone (its own users, DM and profiles), and runs under the app's real
 * Content-Security-Policy: a refused image or upload is a console error, which fails it.
 * Screenshots land in test-results/browser/attachments-*.png.
 */
import type { BrowserContext, Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import type { ChatMessage } from "../../client/index.js";
import { browserSuite, connected, eventually, expectAccessible, registerUser, run, screenshot, sdkClient } from "./helpers.js";

const SIDE = 2000;

const suite = browserSuite("attachments-");

/** Two users with a DM between them, made over REST. */
async function twoFriends() {
  const alice = await registerUser(suite.server.url, "alice", "Alice Martin");
  const bob = await registerUser(suite.server.url, "bob", "Bob Chen");
  const res = await fetch(`${suite.server.url}/v1/channels`, {
    method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${alice.access_token}` },
    body: JSON.stringify({ type: "dm", member: bob.username }),
  });
  const { channel } = (await res.json()) as { channel: { channel_id: string } };
  return { alice, bob, dmId: channel.channel_id };
}

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

/** Slows a page's uplink (bytes per second) so an upload takes seconds, like a phone's would; 0 lifts it. */
async function throttleUploads(context: BrowserContext, page: Page, bytesPerSecond: number): Promise<void> {
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", bytesPerSecond > 0
    ? { offline: false, latency: 20, downloadThroughput: -1, uploadThroughput: bytesPerSecond }
    : { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
}

describe("attachments in the web app", () => {
  it("uploads an image with a visible progress bar; the other user sees the thumbnail and opens the image", async () => {
    const { alice, bob, dmId } = await twoFriends();
    const aliceContext = await suite.profiles.profile({ user: alice });
    const a = await suite.profiles.tab(aliceContext, "alice", `/#c/${dmId}`);
    await connected(a);
    const b = await suite.profiles.open(bob, "bob", { path: `/#c/${dmId}` });

    const png = await noisePng(a);
    expect(png.byteLength).toBeGreaterThan(8 * 1024 * 1024); // two parts: the multipart path
    await throttleUploads(aliceContext, a, 2.5 * 1024 * 1024);

    await a.locator("[data-testid=attach-input]").setInputFiles({ name: "noise.png", mimeType: "image/png", buffer: png });
    const bar = a.locator("[data-testid=upload-progress]");
    await bar.waitFor({ timeout: 30_000 });
    const seen: number[] = [];
    let shot = false;
    await eventually("the progress bar to move and the upload to finish", async () => {
      if (await bar.count() === 0) return seen.some((v) => v > 0 && v < 100);
      const v = Number(await bar.getAttribute("value", { timeout: 1000 }).catch(() => "0"));
      seen.push(v);
      if (!shot && v >= 25 && v < 90) {
        shot = true;
        await screenshot(a, "attachments-1-progress");
        await expectAccessible(a, "upload tray");
      }
      return false;
    }, 120_000);
    expect(seen.filter((v) => v > 0 && v < 100).length, `progress values seen: ${seen.join(",")}`).toBeGreaterThan(1);
    await throttleUploads(aliceContext, a, 0);

    // Alice's own message shows the thumbnail the browser made.
    await a.locator("li.msg-mine [data-testid=attachment-thumbnail]").waitFor({ timeout: 30_000 });
    // Bob sees it inline...
    const thumb = b.locator("li.msg-theirs [data-testid=attachment-thumbnail]");
    await thumb.waitFor({ timeout: 30_000 });
    const inline = await run<{ src: string; w: number; h: number }>(b, `(() => { const i = document.querySelector("li.msg-theirs [data-testid=attachment-thumbnail]"); return { src: i.src.slice(0, 30), w: i.naturalWidth, h: i.naturalHeight }; })()`);
    expect(inline.src).toMatch(/^data:image\/(webp|jpeg);base64,/);
    expect(inline.w).toBeGreaterThan(50);
    expect(inline.w).toBeLessThanOrEqual(320);
    await screenshot(b, "attachments-2-thumbnail");
    await expectAccessible(b, "conversation with an image");

    // ...and opens the full image, fetched on a short-lived URL.
    await b.getByRole("button", { name: "Open image noise.png" }).click();
    const viewer = b.locator("[data-testid=viewer-image]");
    await eventually("the full image in the viewer", async () => (await viewer.getAttribute("data-loaded")) === "full", 60_000);
    const full = await run<{ w: number; h: number }>(b, `(() => { const i = document.querySelector("[data-testid=viewer-image]"); return { w: i.naturalWidth, h: i.naturalHeight }; })()`);
    expect(full).toEqual({ w: SIDE, h: SIDE });
    await screenshot(b, "attachments-3-viewer");
    await expectAccessible(b, "image viewer");
    await b.keyboard.press("Escape");
    await eventually("the viewer to close", async () => (await viewer.count()) === 0);
  });

  it("sends other files as a card with name, size and download", async () => {
    const { alice, bob, dmId } = await twoFriends();
    const a = await suite.profiles.open(alice, "alice", { path: `/#c/${dmId}` });
    const b = await suite.profiles.open(bob, "bob", { path: `/#c/${dmId}` });

    const pdf = Buffer.concat([Buffer.from("%PDF-1.4\n"), Buffer.alloc(150_000, 0x20), Buffer.from("\n%%EOF\n")]);
    await a.locator("[data-testid=attach-input]").setInputFiles({ name: "Quarterly report.pdf", mimeType: "application/pdf", buffer: pdf });
    const card = b.locator("li.msg-theirs [data-testid=attachment-file]", { hasText: "Quarterly report.pdf" });
    await card.waitFor({ timeout: 30_000 });
    expect((await card.textContent())?.replace(/\s+/g, " ")).toContain("147 KB");
    const button = card.getByRole("button", { name: "Download Quarterly report.pdf" });
    await expect(button.isVisible()).resolves.toBe(true);
    const download = b.waitForEvent("download");
    await button.click();
    const file = await download;
    expect(file.suggestedFilename()).toBe("Quarterly report.pdf");
    // The bytes that arrive are the bytes that were sent.
    const path = await file.path();
    const { readFileSync } = await import("node:fs");
    expect(Buffer.compare(readFileSync(path), pdf)).toBe(0);
    await screenshot(b, "attachments-4-file-card");
    await expectAccessible(b, "conversation with a file card");
  });

  it("takes files pasted into the composer and dropped on the conversation", async () => {
    const { alice, bob, dmId } = await twoFriends();
    const a = await suite.profiles.open(alice, "alice", { path: `/#c/${dmId}` });
    const b = await suite.profiles.open(bob, "bob", { path: `/#c/${dmId}` });
    // Real clipboard and drag events carrying files, as the browser makes them for a paste or a drop.
    await run(a, `(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(["pasted notes"], "pasted.txt", { type: "text/plain" }));
      document.querySelector("#composer-input").dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
    })()`);
    await run(a, `(() => {
      const dt = new DataTransfer();
      dt.items.add(new File(["a,b 1,2"], "dropped.csv", { type: "text/csv" }));
      const pane = document.querySelector("section.conversation");
      pane.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }));
      pane.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    })()`);
    for (const name of ["pasted.txt", "dropped.csv"]) {
      await b.locator("li.msg-theirs [data-testid=attachment-file]", { hasText: name }).waitFor({ timeout: 30_000 });
    }
    // The tray empties once both are sent.
    await eventually("the upload tray to empty", async () => (await a.locator("[data-testid=upload-item]").count()) === 0);
  });

  it("uploads from a tab that does not hold the connection, and keeps going when the leader's tab closes", async () => {
    const { alice, bob, dmId } = await twoFriends();
    const context = await suite.profiles.profile({ user: alice });
    // Which tab holds the profile's socket, and what each tab asks the server for.
    const sockets = new Map<Page, number>();
    const requests = new Map<Page, string[]>();
    context.on("page", (page) => {
      page.on("websocket", () => sockets.set(page, (sockets.get(page) ?? 0) + 1));
      page.on("request", (r) => {
        const path = new URL(r.url()).pathname;
        if (path.startsWith("/v1/attachments") || path.startsWith("/v1/blobs")) requests.set(page, [...(requests.get(page) ?? []), `${r.method()} ${path.replace(/a_[a-z]+_[0-9a-z]+_[0-9a-z]+/, "{id}")}`]);
      });
    });
    const leader = await suite.profiles.tab(context, "alice tab 1", `/#c/${dmId}`);
    await connected(leader);
    const follower = await suite.profiles.tab(context, "alice tab 2", `/#c/${dmId}`);
    await connected(follower);
    // The first tab asked first and holds the socket; the second mirrors it over a BroadcastChannel.
    expect(sockets.get(leader)).toBe(1);
    expect(sockets.get(follower) ?? 0).toBe(0);

    const phone = sdkClient(suite.server.url, bob, "bob-phone");
    const arrived = new Promise<ChatMessage>((resolve) => phone.on("message", (m) => m.content.attachment && resolve(m)));
    await phone.connect();
    try {
      // 6 MB in one PUT at 1 MB/s: seconds in which to close the leader's tab.
      const bytes = Buffer.alloc(6 * 1024 * 1024);
      for (let i = 0; i < bytes.length; i += 4) bytes.writeUInt32LE((i * 2654435761) >>> 0, i);
      await throttleUploads(context, follower, 1024 * 1024);
      await follower.locator("[data-testid=attach-input]").setInputFiles({ name: "site photos.zip", mimeType: "application/zip", buffer: bytes });
      const bar = follower.locator("[data-testid=upload-progress]");
      await eventually("the upload under way in the follower tab", async () => {
        const v = Number(await bar.getAttribute("value", { timeout: 1000 }).catch(() => "0"));
        return v > 0 && v < 80;
      }, 60_000);
      await screenshot(follower, "attachments-5-follower-upload");

      // The leader's tab closes mid-upload: the follower takes the socket over, the upload goes on.
      await leader.close();
      await connected(follower);
      await eventually("the follower to hold the socket", () => sockets.get(follower) === 1);
      await throttleUploads(context, follower, 0);

      const m = await arrived;
      expect(m.sender_user_id).toBe(alice.user_id);
      expect(m.content.attachment).toMatchObject({ file_name: "site photos.zip", content_type: "application/zip", size_bytes: bytes.length });
      await follower.locator("li.msg-mine [data-testid=attachment-file]", { hasText: "site photos.zip" }).waitFor({ timeout: 30_000 });
      await eventually("the upload tray to empty", async () => (await follower.locator("[data-testid=upload-item]").count()) === 0);
      // One upload, from the tab the file was dropped in, never restarted; the leader sent no bytes.
      expect(requests.get(follower)).toEqual(["POST /v1/attachments/presign", "PUT /v1/blobs/{id}", "POST /v1/attachments/{id}/complete"]);
      expect(requests.get(leader) ?? []).toEqual([]);
    } finally {
      phone.disconnect();
    }
  });
});
