/**
 * The SDK's upload logic on its own (the end-to-end suite runs it against wrangler dev): what it
 * declares at presign, which parts it sends, retries and resumes, and what a stopped upload
 * tells the caller. The server side here is a small in-memory stand-in for the REST answers.
 */
import { describe, expect, it } from "vitest";
import { Attachments, UploadError, type UploadTransport } from "../../client/attachments.js";

const PART = 5;

interface Call { method: string; path: string; body?: unknown }

/** A server that plans parts of PART bytes and remembers which arrived. */
function fakeServer(opts: { failPart?: Map<number, number[]>; expireOnce?: number } = {}) {
  const calls: Call[] = [];
  const puts: string[] = [];
  const received = new Map<number, Uint8Array>();
  let size = 0;
  let expired = false;
  const targets = (state = "pending") => {
    const count = Math.ceil(size / PART);
    const parts = [];
    for (let n = 1; n <= count; n++) {
      if (received.has(n)) continue;
      parts.push({ part_number: n, size_bytes: Math.min(PART, size - (n - 1) * PART), url: `https://blobs.test/a_1/parts/${n}?v=${expired ? 2 : 1}`, headers: { "content-length": "x" } });
    }
    return {
      mode: count > 1 ? "multipart" : "single", part_size: count > 1 ? PART : size, part_count: count,
      upload_url: "https://blobs.test/a_1?single", upload_headers: { "content-type": "text/plain" },
      parts, parts_done: [...received.keys()].map((n) => ({ part_number: n, etag: `e${n}`, size_bytes: received.get(n)!.byteLength })),
      attachment: { attachment_id: "a_1", channel_id: "c_1", file_name: "f.txt", content_type: "text/plain", size_bytes: size, sha256: "h", state },
    };
  };
  const api = {
    async call(method: string, path: string, body?: unknown): Promise<unknown> {
      calls.push({ method, path, body });
      if (path === "/v1/attachments/presign") {
        size = (body as { size_bytes: number }).size_bytes;
        return { attachment_id: "a_1", ...targets() };
      }
      if (path.endsWith("/upload")) return targets();
      if (path.endsWith("/complete")) return { attachment: { ...targets("complete").attachment } };
      throw new Error(`unexpected ${method} ${path}`);
    },
  };
  const transport: UploadTransport = async (req) => {
    puts.push(req.url);
    expect(Object.keys(req.headers)).not.toContain("content-length");
    const n = Number(/parts\/(\d+)/.exec(req.url)?.[1] ?? 1);
    if (opts.expireOnce === n && !expired) {
      expired = true;
      return { status: 403, etag: "", text: JSON.stringify({ code: "forbidden", message: "This upload URL expired" }) };
    }
    const fails = opts.failPart?.get(n);
    if (fails && fails.length > 0) {
      const status = fails.shift()!;
      if (status === 0) throw new Error("connection reset");
      return { status, etag: "", text: JSON.stringify({ code: status >= 500 ? "unavailable" : "invalid_argument", message: "no", retryable: status >= 500 }) };
    }
    const body = req.body instanceof Uint8Array ? req.body : new Uint8Array(await req.body.arrayBuffer());
    req.onProgress?.(body.byteLength);
    received.set(n, body);
    return { status: 200, etag: `e${n}`, text: "{}" };
  };
  return { api, transport, calls, puts, received };
}

const file = (n: number) => Uint8Array.from({ length: n }, (_, i) => i % 251);

describe("SDK attachments", () => {
  it("declares name, type, size and a WebCrypto sha256, then sends each part once and completes with their etags", async () => {
    const s = fakeServer();
    const up = new Attachments(s.api, s.transport);
    const progress: number[] = [];
    const done = await up.upload(new Blob([file(12)], { type: "text/plain" }), { channelId: "c_1", filename: "f.txt", onProgress: (p) => progress.push(p.loaded) });
    expect(done.attachment_id).toBe("a_1");
    const presign = s.calls[0]!.body as Record<string, unknown>;
    expect(presign).toMatchObject({ channel_id: "c_1", filename: "f.txt", content_type: "text/plain", size_bytes: 12 });
    expect(presign.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(s.puts.map((u) => new URL(u).pathname).sort()).toEqual(["/a_1/parts/1", "/a_1/parts/2", "/a_1/parts/3"]);
    expect(s.calls.at(-1)).toMatchObject({ path: "/v1/attachments/a_1/complete", body: { parts: [{ part_number: 1, etag: "e1" }, { part_number: 2, etag: "e2" }, { part_number: 3, etag: "e3" }] } });
    expect(progress.at(-1)).toBe(12);
    expect([...s.received.values()].map((b) => b.byteLength)).toEqual(expect.arrayContaining([5, 5, 2]));
  });

  it("retries a part after a 5xx or a dropped connection, and gives up on a refusal with the attachment id", async () => {
    const s = fakeServer({ failPart: new Map([[2, [503, 0]]]) });
    const done = await new Attachments(s.api, s.transport).upload(file(12), { channelId: "c_1", sha256: false, concurrency: 1 });
    expect(done.attachment_id).toBe("a_1");
    expect(s.puts.filter((u) => u.includes("parts/2"))).toHaveLength(3);

    const refused = fakeServer({ failPart: new Map([[1, [400]]]) });
    const err = await new Attachments(refused.api, refused.transport).upload(file(12), { channelId: "c_1", sha256: false, concurrency: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UploadError);
    expect(err).toMatchObject({ code: "invalid_argument", attachmentId: "a_1", status: 400 });
    expect(refused.puts.filter((u) => u.includes("parts/1"))).toHaveLength(1);
  });

  it("asks for fresh URLs once when they expired mid-upload", async () => {
    const s = fakeServer({ expireOnce: 2 });
    await new Attachments(s.api, s.transport).upload(file(12), { channelId: "c_1", sha256: false, concurrency: 1 });
    expect(s.calls.some((c) => c.path === "/v1/attachments/a_1/upload")).toBe(true);
    expect(s.puts.filter((u) => u.includes("parts/2")).map((u) => new URL(u).searchParams.get("v"))).toEqual(["1", "2"]);
  });

  it("stops on abort with the attachment id, and resume sends only what the server lacks", async () => {
    const s = fakeServer();
    const stop = new AbortController();
    const up = new Attachments(s.api, s.transport);
    const data = file(12);
    const err = await up.upload(data, {
      channelId: "c_1", sha256: false, concurrency: 1, signal: stop.signal,
      onProgress: (p) => { if (p.loaded >= PART) stop.abort(); },
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "aborted", attachmentId: "a_1" });
    const before = s.puts.length;
    const done = await up.resume("a_1", data);
    expect(done.attachment_id).toBe("a_1");
    expect(s.puts.slice(before).some((u) => u.includes("parts/1"))).toBe(false);
    expect(s.received.size).toBe(3);
  });

  it("refuses to resume with a file of another size", async () => {
    const s = fakeServer();
    const up = new Attachments(s.api, s.transport);
    await s.api.call("POST", "/v1/attachments/presign", { size_bytes: 12 });
    await expect(up.resume("a_1", file(11))).rejects.toMatchObject({ code: "invalid_argument", attachmentId: "a_1" });
  });
});
