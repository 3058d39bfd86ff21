/**
 * Attachments end to end: a real `wrangler dev` with its local R2, the project's SDK in Node as
 * the HTTP and WebSocket client. A 100 MB file goes up through the local path (Worker-signed
 * URLs, multipart on the binding), an interrupted upload resumes, the file is sent and another
 * member downloads it whole and by Range; a non-member gets 403; wrong sizes and hashes are
 * refused; uploads nobody sends are swept.
 */
import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import {
  attachmentContent, createClient, defaultUploadTransport, UploadError,
  type ChatMessage, type EdgechatClient, type UploadProgress, type UploadTransport, type WebSocketConstructor,
} from "../../client/index.js";
import { startDevServer, type DevServer } from "../support/dev-server.js";

const PASSWORD = "correct horse battery";
const MB = 1_000_000;
const MiB = 1024 * 1024;

let server: DevServer;
beforeAll(async () => { server = await startDevServer(); });
afterAll(async () => { await server?.stop(); });

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

interface User { client: EdgechatClient; username: string; messages: ChatMessage[]; puts: string[] }

/** A registered user whose uploads are counted (URL paths of every PUT). */
async function user(prefix: string, base: DevServer = server): Promise<User> {
  const username = `${prefix}_${Math.random().toString(36).slice(2, 8)}`;
  const puts: string[] = [];
  const inner = defaultUploadTransport();
  const uploadTransport: UploadTransport = (req) => {
    puts.push(new URL(req.url).pathname);
    return inner(req);
  };
  const client = createClient({
    url: base.url, deviceId: `${prefix}-node`, credentials: { username, password: PASSWORD },
    WebSocket: WebSocket as unknown as WebSocketConstructor, uploadTransport,
  });
  await client.register({ username, password: PASSWORD });
  const messages: ChatMessage[] = [];
  client.on("message", (m) => messages.push(m));
  return { client, username, messages, puts };
}

async function until<T>(what: string, check: () => T | undefined | false, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Streams a download through a hash: the file is never held whole on this side either. */
async function fetchHashed(url: string, headers: Record<string, string> = {}): Promise<{ status: number; sha256: string; bytes: number; headers: Headers }> {
  const res = await fetch(url, { headers });
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    hash.update(chunk);
    bytes += chunk.byteLength;
  }
  return { status: res.status, sha256: hash.digest("hex"), bytes, headers: res.headers };
}

describe("attachments through wrangler dev's local path", () => {
  let alice: User, bob: User, mallory: User;
  let channelId = "";

  beforeAll(async () => {
    [alice, bob, mallory] = await Promise.all([user("alice"), user("bob"), user("mallory")]);
    const group = await alice.client.channels.create({ type: "group", name: "Media", members: [bob.username] });
    channelId = group.channel_id;
    await Promise.all([alice.client.connect(), bob.client.connect()]);
  });
  afterAll(() => {
    for (const u of [alice, bob, mallory]) u?.client.disconnect();
  });

  it("uploads 100 MB in parts with progress, sends it, and another member downloads it whole and by Range", async () => {
    const data = new Uint8Array(randomBytes(100 * MB));
    const hash = sha256(data);
    const progress: UploadProgress[] = [];
    const started = Date.now();
    const uploaded = await alice.client.attachments.upload(data, {
      channelId, filename: "launch-video.mp4", contentType: "video/mp4", sha256: hash, onProgress: (p) => progress.push(p),
    });
    const seconds = (Date.now() - started) / 1000;
    console.log(`100 MB upload through the local path: ${seconds.toFixed(1)} s, ${(100 / seconds).toFixed(1)} MB/s`);
    expect(uploaded).toMatchObject({ channel_id: channelId, size_bytes: 100 * MB, sha256: hash, content_type: "video/mp4", file_name: "launch-video.mp4" });
    // 12 parts of 8 MiB, each to its own signed Worker URL (a part that failed on a loaded machine is sent again).
    const partPuts = alice.puts.filter((p) => p.includes(uploaded.attachment_id));
    expect(new Set(partPuts).size).toBe(Math.ceil((100 * MB) / (8 * MiB)));
    if (partPuts.length > new Set(partPuts).size) console.log(`parts sent again after a failure: ${partPuts.length - new Set(partPuts).size}`);
    expect(progress.length).toBeGreaterThan(2);
    expect(progress.map((p) => p.loaded)).toEqual([...progress.map((p) => p.loaded)].sort((a, b) => a - b));
    expect(progress.at(-1)).toMatchObject({ loaded: 100 * MB, total: 100 * MB });

    const ack = await alice.client.send(channelId, attachmentContent(uploaded, { caption: "the launch", width: 1920, height: 1080, duration_ms: 61_000 }));
    const got = await until("bob receives the attachment message", () => bob.messages.find((m) => m.seq === ack.seq));
    expect(got.content.attachment).toMatchObject({ attachment_id: uploaded.attachment_id, size_bytes: 100 * MB, sha256: hash, caption: "the launch", width: 1920, duration_ms: 61_000 });

    const link = await bob.client.attachments.url(uploaded.attachment_id);
    expect(link.expires_at).toBeGreaterThan(Date.now());
    const whole = await fetchHashed(link.url);
    expect([whole.status, whole.bytes, whole.sha256]).toEqual([200, 100 * MB, hash]);
    expect(whole.headers.get("content-type")).toBe("video/mp4");
    expect(whole.headers.get("accept-ranges")).toBe("bytes");
    const from = 50 * MB + 3;
    const partial = await fetch(link.url, { headers: { range: `bytes=${from}-${from + 65_535}` } });
    expect(partial.status).toBe(206);
    expect(partial.headers.get("content-range")).toBe(`bytes ${from}-${from + 65_535}/${100 * MB}`);
    expect(sha256(new Uint8Array(await partial.arrayBuffer()))).toBe(sha256(data.subarray(from, from + 65_536)));
    const tail = await fetch(link.url, { headers: { range: "bytes=-100" } });
    expect(Buffer.from(await tail.arrayBuffer())).toEqual(Buffer.from(data.subarray(-100)));
    const cached = await fetch(link.url, { headers: { "if-none-match": whole.headers.get("etag")! } });
    expect(cached.status).toBe(304);

    await expect(mallory.client.attachments.url(uploaded.attachment_id)).rejects.toMatchObject({ status: 403, code: "forbidden" });
  }, 300_000);

  it("resumes an interrupted multipart upload: only the missing parts go up again", async () => {
    const data = new Uint8Array(randomBytes(3 * 8 * MiB + 12_345));
    const hash = sha256(data);
    const stop = new AbortController();
    let interrupted: UploadError | undefined;
    try {
      await alice.client.attachments.upload(data, {
        channelId, filename: "backup.zip", contentType: "application/zip", concurrency: 1,
        // The network "drops" once the first part is in: one part at a time, so bytes of the
        // second mean the first was answered (at 8 MiB exactly its answer may still be on the way).
        onProgress: (p) => { if (p.loaded > 8 * MiB) stop.abort(); },
        signal: stop.signal,
      });
    } catch (err) {
      interrupted = err as UploadError;
    }
    expect(interrupted).toBeInstanceOf(UploadError);
    expect(interrupted!.code).toBe("aborted");
    const id = interrupted!.attachmentId!;
    expect(id).toMatch(/^a_/);
    const before = alice.puts.filter((p) => p.includes(id)).length;

    // The file is not usable yet.
    await expect(alice.client.send(channelId, { attachment: { attachment_id: id, size_bytes: data.byteLength } })).rejects.toMatchObject({ code: "conflict" });

    const progress: UploadProgress[] = [];
    const done = await alice.client.attachments.resume(id, data, { onProgress: (p) => progress.push(p) });
    expect(done).toMatchObject({ attachment_id: id, sha256: hash, size_bytes: data.byteLength });
    const resumedParts = alice.puts.filter((p) => p.includes(id)).slice(before);
    expect(resumedParts.length).toBeLessThanOrEqual(3); // 4 parts in all; the first was kept
    expect(resumedParts).not.toContain(`/v1/blobs/${id}/parts/1`);
    expect(progress[0]!.loaded).toBeGreaterThanOrEqual(8 * MiB); // resumed from what the server held
    const ack = await alice.client.send(channelId, attachmentContent(done));
    expect(ack.status).toBe("stored");
    const link = await bob.client.attachments.url(id);
    expect((await fetchHashed(link.url)).sha256).toBe(hash);
  }, 180_000);

  it("refuses a file whose sha256 or size differs from what was declared or sent", async () => {
    const data = new Uint8Array(randomBytes(200_000));
    await expect(alice.client.attachments.upload(data, { channelId, filename: "x.png", contentType: "image/png", sha256: sha256(new Uint8Array(10)) }))
      .rejects.toMatchObject({ code: "invalid_argument", status: 400 });
    const big = new Uint8Array(randomBytes(9 * MiB));
    await expect(alice.client.attachments.upload(big, { channelId, filename: "y.zip", contentType: "application/zip", sha256: "0".repeat(64) }))
      .rejects.toMatchObject({ code: "invalid_argument" });
    const ok = await alice.client.attachments.upload(data, { channelId, filename: "z.png", contentType: "image/png" });
    await expect(alice.client.send(channelId, attachmentContent({ ...ok, size_bytes: ok.size_bytes + 1 }))).rejects.toMatchObject({ code: "invalid_argument" });
    await expect(alice.client.send(channelId, attachmentContent({ ...ok, sha256: "f".repeat(64) }))).rejects.toMatchObject({ code: "invalid_argument" });
    // Bob cannot send Alice's upload.
    await expect(bob.client.send(channelId, attachmentContent(ok))).rejects.toMatchObject({ code: "forbidden" });
    // Refused before a byte moves: too big, a type not allowed.
    await expect(alice.client.attachments.upload(new Uint8Array(10), { channelId, filename: "a.exe", contentType: "application/x-msdownload" }))
      .rejects.toMatchObject({ code: "unsupported_media_type", status: 415 });
    expect(alice.puts.filter((p) => p.includes("a.exe"))).toEqual([]);
  }, 120_000);
});

describe("the orphan sweep under wrangler dev", () => {
  let swept: DevServer;
  beforeAll(async () => { swept = await startDevServer({ vars: { ATTACHMENT_ORPHAN_TTL_SECONDS: "2" } }); });
  afterAll(async () => { await swept?.stop(); });

  it("deletes uploads nobody sent once the TTL passed, and keeps the ones in messages", async () => {
    const [alice, bob] = [await user("alice", swept), await user("bob", swept)];
    const dm = await alice.client.channels.create({ type: "dm", member: bob.username });
    const orphan = await alice.client.attachments.upload(new Uint8Array(randomBytes(1000)), { channelId: dm.channel_id, filename: "o.png", contentType: "image/png" });
    const sent = await alice.client.attachments.upload(new Uint8Array(randomBytes(1000)), { channelId: dm.channel_id, filename: "s.png", contentType: "image/png" });
    await alice.client.connect();
    await alice.client.send(dm.channel_id, attachmentContent(sent));
    const orphanLink = await alice.client.attachments.url(orphan.attachment_id);
    // Positive marker: the orphan's own URL stops answering once the sweep ran.
    const deadline = Date.now() + 60_000;
    let status = 200;
    while (Date.now() < deadline) {
      const res = await fetch(orphanLink.url);
      await res.arrayBuffer();
      status = res.status;
      if (status === 404) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(status).toBe(404);
    await expect(alice.client.attachments.url(orphan.attachment_id)).rejects.toMatchObject({ status: 404 });
    const kept = await bob.client.attachments.url(sent.attachment_id);
    expect((await fetch(kept.url)).status).toBe(200);
    alice.client.disconnect();
  }, 120_000);
});
