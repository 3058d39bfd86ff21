/**
 * Attachments inside workerd: presign validation and authorization, the local upload routes
 * (single PUT, multipart, resume), the checks a SEND with an attachment passes, downloads with
 * Range, delete for everyone, and the orphan sweep run by the channel's alarm.
 */
import { env, runDurableObjectAlarm, runInDurableObject, SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { pb } from "../../protocol/codec.js";
import { channelStub } from "../../shared/routing.js";
import { validateClientContent } from "../../durable-objects/channel/content.js";
import { BASE, call, createDm, createGroup, register, type TestUser } from "../helpers/api.js";
import { onlineDevice } from "../helpers/socket.js";

interface Presigned {
  attachment_id: string;
  channel_id: string;
  mode: "single" | "multipart";
  part_size: number;
  part_count: number;
  expires_at: number;
  upload_url?: string;
  upload_headers?: Record<string, string>;
  parts?: { part_number: number; size_bytes: number; url: string; headers: Record<string, string> }[];
  parts_done?: { part_number: number }[];
  attachment: { state: string; sha256: string; size_bytes: number };
}

const MiB = 1024 * 1024;

function bytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

async function sha256(data: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", data);
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function presign(user: TestUser, body: Record<string, unknown>) {
  return call<Presigned & { code?: string; message?: string }>("POST", "/v1/attachments/presign", { token: user.access_token, body });
}

async function put(url: string, data: Uint8Array, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await SELF.fetch(url, { method: "PUT", body: data, headers: { "content-length": String(data.byteLength), ...headers } });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : {}, headers: res.headers };
}

/** Presigns and uploads a small file in one PUT; returns the attachment id. */
async function uploadSmall(user: TestUser, channelId: string, data: Uint8Array, extra: Record<string, unknown> = {}): Promise<string> {
  const p = await presign(user, { channel_id: channelId, filename: "photo.png", content_type: "image/png", size_bytes: data.byteLength, ...extra });
  expect(p.status, JSON.stringify(p.body)).toBe(201);
  const r = await put(p.body.upload_url!, data);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  // The blob routes skip the API's headers and set their own, on answers to uploads too.
  expect([r.headers.get("x-content-type-options"), r.headers.get("cache-control")]).toEqual(["nosniff", "no-store"]);
  return p.body.attachment_id;
}

function sendRest(user: TestUser, channelId: string, content: Record<string, unknown>, clientMsgId = crypto.randomUUID()) {
  return call<{ ack?: { seq: number; status: string }; code?: string; message?: string }>(
    "POST", `/v1/channels/${channelId}/messages`, { token: user.access_token, body: { client_msg_id: clientMsgId, content } },
  );
}

let alice: TestUser;
let bob: TestUser;
let mallory: TestUser;
let group: string;

beforeAll(async () => {
  [alice, bob, mallory] = await Promise.all([register("alice"), register("bob"), register("mallory")]);
  group = await createGroup(alice, [bob], "Files");
});

describe("presign", () => {
  it("refuses before any byte moves: type, size, name, hash, membership", async () => {
    const base = { channel_id: group, filename: "a.png", content_type: "image/png", size_bytes: 10 };
    const cases: [Record<string, unknown>, number, string][] = [
      [{ content_type: "application/x-msdownload" }, 415, "unsupported_media_type"],
      [{ content_type: "image/svg+xml" }, 415, "unsupported_media_type"],
      [{ size_bytes: 100 * MiB + 1 }, 413, "content_too_large"],
      [{ size_bytes: 0 }, 400, "invalid_argument"],
      [{ filename: "../etc/passwd" }, 400, "invalid_argument"],
      [{ filename: "a\\b.png" }, 400, "invalid_argument"],
      [{ filename: "bad\u0007.png" }, 400, "invalid_argument"],
      [{ filename: "gnp\u202e.exe" }, 400, "invalid_argument"],
      [{ filename: "x\ud800.png" }, 400, "invalid_text"],
      [{ filename: `${"é".repeat(128)}.png` }, 400, "invalid_argument"],
      [{ filename: "" }, 400, "invalid_argument"],
      [{ sha256: "abc" }, 400, "invalid_argument"],
      [{ channel_id: "nope" }, 400, "invalid_argument"],
    ];
    for (const [patch, status, code] of cases) {
      const r = await presign(alice, { ...base, ...patch });
      expect([r.status, r.body.code], JSON.stringify(patch)).toEqual([status, code]);
      expect(r.body.message).toBeTruthy();
    }
    // Not a member: the channel refuses (never-members are told it does not exist).
    const outsider = await presign(mallory, base);
    expect(outsider.status).toBe(404);
    const anonymous = await call("POST", "/v1/attachments/presign", { body: base });
    expect(anonymous.status).toBe(401);
  });

  it("accepts a well-formed Unicode name and answers a signed single-PUT URL for a small file", async () => {
    const r = await presign(alice, { channel_id: group, filename: "Ünïcødé 写真 🐱.png", content_type: "image/png", size_bytes: 1234 });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ channel_id: group, mode: "single", part_count: 1, attachment: { state: "pending", size_bytes: 1234 } });
    expect(r.body.attachment_id.startsWith(`a_${group.slice(2)}_`)).toBe(true);
    const u = new URL(r.body.upload_url!);
    expect(u.pathname).toBe(`/v1/blobs/${r.body.attachment_id}`);
    expect(u.searchParams.get("action")).toBe("put");
    expect(r.body.expires_at).toBeGreaterThan(Date.now());
  });

  it("plans a multipart upload for files above one part", async () => {
    const r = await presign(alice, { channel_id: group, filename: "movie.mp4", content_type: "video/mp4", size_bytes: 20 * MiB + 5 });
    expect(r.status).toBe(201);
    expect(r.body).toMatchObject({ mode: "multipart", part_size: 8 * MiB, part_count: 3 });
    expect(r.body.parts!.map((p) => [p.part_number, p.size_bytes])).toEqual([[1, 8 * MiB], [2, 8 * MiB], [3, 4 * MiB + 5]]);
  });
});

describe("local upload routes", () => {
  it("streams a single PUT, measures its sha256 and completes the upload", async () => {
    const data = bytes(300_000, 7);
    const p = await presign(alice, { channel_id: group, filename: "p.png", content_type: "image/png", size_bytes: data.byteLength });
    const r = await put(p.body.upload_url!, data);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ attachment: { state: "complete", sha256: await sha256(data), size_bytes: data.byteLength } });
    const again = await put(p.body.upload_url!, data);
    expect(again.status).toBe(409);
    const completed = await call<{ attachment: { state: string } }>("POST", `/v1/attachments/${p.body.attachment_id}/complete`, { token: alice.access_token });
    expect(completed.body.attachment.state).toBe("complete");
  });

  it("refuses a wrong length, a tampered or expired URL, and a wrong sha256", async () => {
    const data = bytes(1000, 3);
    const p = await presign(alice, { channel_id: group, filename: "f.png", content_type: "image/png", size_bytes: 1000, sha256: await sha256(bytes(1000, 4)) });
    const short = await put(p.body.upload_url!, data.subarray(0, 999));
    expect([short.status, short.body.code]).toEqual([400, "invalid_argument"]);
    const tampered = p.body.upload_url!.replace(/sig=[^&]+/, "sig=AAAA");
    expect((await put(tampered, data)).status).toBe(403);
    const expired = p.body.upload_url!.replace(/exp=\d+/, `exp=${Math.floor(Date.now() / 1000) - 1}`);
    expect((await put(expired, data)).status).toBe(403); // changing exp breaks the signature too
    const wrongHash = await put(p.body.upload_url!, data);
    expect([wrongHash.status, wrongHash.body.code]).toEqual([400, "invalid_argument"]);
    expect(String(wrongHash.body.message)).toMatch(/sha256/);
    // The failed upload cannot be sent, and its blob is gone.
    expect(await env.ATTACHMENTS.head(p.body.attachment_id)).toBeNull();
    const s = await sendRest(alice, group, { attachment: { attachment_id: p.body.attachment_id, size_bytes: 1000 } });
    expect(s.status).toBe(400);
  });

  it("uploads in parts, resumes from what the server holds, and checks the assembled file", async () => {
    const data = bytes(11 * MiB + 17, 11);
    const p = await presign(alice, { channel_id: group, filename: "clip.mp4", content_type: "video/mp4", size_bytes: data.byteLength, sha256: await sha256(data) });
    expect(p.body.part_count).toBe(2);
    const [first, second] = p.body.parts!;
    // Part 2 first (parts may come in any order), then "lose" the client.
    const r2 = await put(second!.url, data.subarray(8 * MiB));
    expect(r2.status).toBe(200);
    const early = await call<{ code: string; message: string }>("POST", `/v1/attachments/${p.body.attachment_id}/complete`, { token: alice.access_token });
    expect([early.status, early.body.code]).toEqual([409, "conflict"]);
    expect(early.body.message).toMatch(/part 1/);
    // A part of the wrong size is refused before it is stored.
    expect((await put(first!.url, data.subarray(0, 8 * MiB - 1))).status).toBe(400);
    // Resume: ask what is missing, with fresh URLs; only the uploader may.
    expect((await call("GET", `/v1/attachments/${p.body.attachment_id}/upload`, { token: bob.access_token })).status).toBe(403);
    const status = await call<Presigned>("GET", `/v1/attachments/${p.body.attachment_id}/upload`, { token: alice.access_token });
    expect(status.body.parts_done!.map((x) => x.part_number)).toEqual([2]);
    expect(status.body.parts!.map((x) => x.part_number)).toEqual([1]);
    expect((await put(status.body.parts![0]!.url, data.subarray(0, 8 * MiB))).status).toBe(200);
    const done = await call<{ attachment: { state: string; sha256: string } }>("POST", `/v1/attachments/${p.body.attachment_id}/complete`, { token: alice.access_token });
    expect(done.status).toBe(200);
    expect(done.body.attachment).toMatchObject({ state: "complete", sha256: await sha256(data) });
    const stored = await env.ATTACHMENTS.get(p.body.attachment_id);
    expect(stored!.size).toBe(data.byteLength);
    expect(await sha256(new Uint8Array(await stored!.arrayBuffer()))).toBe(await sha256(data));
  });

  it("deletes a multipart file whose assembled sha256 differs from the declared one", async () => {
    const data = bytes(9 * MiB, 5);
    const p = await presign(alice, { channel_id: group, filename: "x.zip", content_type: "application/zip", size_bytes: data.byteLength, sha256: "0".repeat(64) });
    for (const part of p.body.parts!) {
      const from = (part.part_number - 1) * p.body.part_size;
      expect((await put(part.url, data.subarray(from, from + part.size_bytes))).status).toBe(200);
    }
    const done = await call<{ code: string; message: string }>("POST", `/v1/attachments/${p.body.attachment_id}/complete`, { token: alice.access_token });
    expect([done.status, done.body.code]).toEqual([400, "invalid_argument"]);
    expect(await env.ATTACHMENTS.head(p.body.attachment_id)).toBeNull();
  });
});

describe("SEND with an attachment", () => {
  it("is accepted only for a complete upload of the sender's own with matching size and sha256", async () => {
    const data = bytes(5000, 9);
    const hash = await sha256(data);
    const id = await uploadSmall(alice, group, data);
    const pending = (await presign(alice, { channel_id: group, filename: "later.png", content_type: "image/png", size_bytes: 10 })).body.attachment_id;
    const bobs = await uploadSmall(bob, group, bytes(10, 2));
    const missing = `${id.slice(0, -5)}zzzzz`;

    const refused: [Record<string, unknown>, number, string][] = [
      [{ attachment_id: missing, size_bytes: 5000 }, 404, "not_found"],
      [{ attachment_id: pending, size_bytes: 10 }, 409, "conflict"],
      [{ attachment_id: bobs, size_bytes: 10 }, 403, "forbidden"],
      [{ attachment_id: id, size_bytes: 4999 }, 400, "invalid_argument"],
      [{ attachment_id: id, size_bytes: 5000, sha256: "f".repeat(64) }, 400, "invalid_argument"],
      [{ attachment_id: id, size_bytes: 5000, caption: "x\ud800" }, 400, "invalid_text"],
      [{ attachment_id: id, size_bytes: 5000, thumbnail: "AAAA" }, 400, "invalid_argument"], // thumbnail without its type
      [{ attachment_id: "a_g_nope", size_bytes: 5000 }, 400, "invalid_argument"],
    ];
    for (const [attachment, status, code] of refused) {
      const r = await sendRest(alice, group, { attachment });
      expect([r.status, r.body.code], JSON.stringify(attachment)).toEqual([status, code]);
    }

    const thumb = btoa(String.fromCharCode(...bytes(600, 4)));
    const clientMsgId = crypto.randomUUID();
    const ok = await sendRest(alice, group, { attachment: { attachment_id: id, size_bytes: 5000, sha256: hash, width: 640, height: 480, thumbnail: thumb, thumbnail_type: "image/webp", caption: "look", content_type: "text/html", file_name: "evil.html" } }, clientMsgId);
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    const retry = await sendRest(alice, group, { attachment: { attachment_id: id, size_bytes: 5000 } }, clientMsgId);
    expect([retry.status, retry.body.ack?.status]).toEqual([200, "duplicate"]);
    const twice = await sendRest(alice, group, { attachment: { attachment_id: id, size_bytes: 5000 } });
    expect([twice.status, twice.body.code]).toEqual([409, "conflict"]);

    // Stored with the upload's own type, name, size and hash; the thumbnail inline.
    const page = await call<{ messages: { seq: number; content: { attachment?: Record<string, unknown> } }[] }>("GET", `/v1/channels/${group}/messages?limit=5`, { token: bob.access_token });
    const a = page.body.messages.find((m) => m.seq === ok.body.ack!.seq)!.content.attachment!;
    expect(a).toMatchObject({ attachment_id: id, content_type: "image/png", file_name: "photo.png", size_bytes: 5000, sha256: hash, width: 640, height: 480, thumbnail: thumb, thumbnail_type: "image/webp", caption: "look" });
  });

  it("is checked the same way on the WebSocket, and delivered with its thumbnail to the other member", async () => {
    const bobDevice = await onlineDevice(bob.access_token);
    await bobDevice.resume();
    const aliceDevice = await onlineDevice(alice.access_token);
    const id = await uploadSmall(alice, group, bytes(2048, 12));
    const wrong = aliceDevice.send({ type: pb.FrameType.SEND, send: { channel_id: group, client_msg_id: crypto.randomUUID(), content: { attachment: { attachment_id: id, size_bytes: 2047 } } } });
    const err = await aliceDevice.take((f) => f.request_id === wrong);
    expect(err.error?.code).toBe("invalid_argument");
    const thumb = bytes(300, 8);
    const good = aliceDevice.send({ type: pb.FrameType.SEND, send: { channel_id: group, client_msg_id: crypto.randomUUID(), content: { attachment: { attachment_id: id, size_bytes: 2048, thumbnail: thumb, thumbnail_type: "image/jpeg", width: 10, height: 20 } } } });
    const ack = await aliceDevice.take((f) => f.request_id === good);
    expect(ack.type).toBe(pb.FrameType.SEND_ACK);
    const delivered = await bobDevice.take((f) => f.type === pb.FrameType.DELIVER && f.deliver!.messages!.some((m) => m.content?.attachment?.attachment_id === id));
    const got = delivered.deliver!.messages!.find((m) => m.content?.attachment)!.content!.attachment!;
    expect([...(got.thumbnail as Uint8Array)]).toEqual([...thumb]);
    expect([got.width, got.height, got.size_bytes, got.content_type]).toEqual([10, 20, 2048, "image/png"]);
    aliceDevice.close();
    bobDevice.close();
  });
});

describe("attachment body text", () => {
  it("is checked in the channel as well as at the edges: a caption must be well-formed", () => {
    const attachment_id = `a_g_${"0".repeat(26)}_${"1".repeat(26)}`;
    expect(validateClientContent({ attachment: { attachment_id, size_bytes: 1, caption: "ok 👋" } })).toMatchObject({ ok: true, kind: "attachment" });
    expect(validateClientContent({ attachment: { attachment_id, size_bytes: 1, caption: "x\udc00y" } })).toMatchObject({ ok: false, code: "invalid_text" });
  });
});

describe("download", () => {
  it("gives members a short-lived URL with Range and ETag, and others 403", async () => {
    const data = bytes(100_000, 21);
    const id = await uploadSmall(alice, group, data);
    // Not sent yet: only its uploader sees it.
    expect((await call("GET", `/v1/attachments/${id}`, { token: bob.access_token })).status).toBe(404);
    expect((await sendRest(alice, group, { attachment: { attachment_id: id, size_bytes: data.byteLength } })).status).toBe(201);
    expect((await call("GET", `/v1/attachments/${id}`, { token: mallory.access_token })).status).toBe(403);
    const r = await call<{ url: string; expires_at: number; attachment: { file_name: string } }>("GET", `/v1/attachments/${id}`, { token: bob.access_token });
    expect(r.status).toBe(200);
    expect(r.body.attachment.file_name).toBe("photo.png");

    const full = await SELF.fetch(r.body.url);
    expect(full.status).toBe(200);
    expect(full.headers.get("content-type")).toBe("image/png");
    expect(full.headers.get("content-disposition")).toMatch(/^inline; filename="photo.png"/);
    expect(full.headers.get("content-security-policy")).toContain("sandbox");
    expect(full.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    expect([full.headers.get("x-content-type-options"), full.headers.get("x-frame-options"), full.headers.get("referrer-policy")]).toEqual(["nosniff", "DENY", "no-referrer"]);
    expect(full.headers.get("cache-control")).toBe("private, max-age=300");
    expect(await sha256(new Uint8Array(await full.arrayBuffer()))).toBe(await sha256(data));
    const etag = full.headers.get("etag")!;

    const partial = await SELF.fetch(r.body.url, { headers: { range: "bytes=1000-1999" } });
    expect(partial.status).toBe(206);
    expect(partial.headers.get("content-range")).toBe(`bytes 1000-1999/${data.byteLength}`);
    expect([...new Uint8Array(await partial.arrayBuffer())]).toEqual([...data.subarray(1000, 2000)]);
    const suffix = await SELF.fetch(r.body.url, { headers: { range: "bytes=-10" } });
    expect([...new Uint8Array(await suffix.arrayBuffer())]).toEqual([...data.subarray(-10)]);
    const bad = await SELF.fetch(r.body.url, { headers: { range: "bytes=200000-" } });
    await bad.arrayBuffer();
    expect([bad.status, bad.headers.get("content-range")]).toEqual([416, `bytes */${data.byteLength}`]);
    const cached = await SELF.fetch(r.body.url, { headers: { "if-none-match": etag } });
    await cached.arrayBuffer();
    expect(cached.status).toBe(304);
    const forged = await SELF.fetch(r.body.url.replace(/action=get/, "action=put"));
    await forged.arrayBuffer();
    expect(forged.status).toBe(403);
  });

  it("delete for everyone removes the blob after the write", async () => {
    const id = await uploadSmall(alice, group, bytes(500, 31));
    const sent = await sendRest(alice, group, { attachment: { attachment_id: id, size_bytes: 500 } });
    const del = await call("DELETE", `/v1/channels/${group}/messages/${sent.body.ack!.seq}?for=everyone`, { token: alice.access_token });
    expect(del.status).toBe(200);
    await expect.poll(() => env.ATTACHMENTS.head(id), { timeout: 5000 }).toBeNull();
    expect((await call("GET", `/v1/attachments/${id}`, { token: bob.access_token })).status).toBe(404);
  });
});

describe("orphan sweep", () => {
  it("deletes uploads nobody sent within the TTL, from the channel's alarm, and keeps sent ones", async () => {
    const dm = await createDm(alice, bob);
    const orphan = await uploadSmall(alice, dm, bytes(700, 41));
    const unfinished = (await presign(alice, { channel_id: dm, filename: "big.mp4", content_type: "video/mp4", size_bytes: 12 * MiB })).body;
    const part = unfinished.parts![0]!;
    expect((await put(part.url, bytes(part.size_bytes, 2))).status).toBe(200);
    const kept = await uploadSmall(alice, dm, bytes(800, 42));
    await sendRest(alice, dm, { attachment: { attachment_id: kept, size_bytes: 800 } });
    const fresh = await uploadSmall(alice, dm, bytes(900, 43));

    // A controlled clock: the two old uploads were made 25 hours ago.
    const stub = channelStub(env, dm);
    await runInDurableObject(stub, (_o, state) => {
      const past = Date.now() - 25 * 3600_000;
      state.storage.sql.exec("UPDATE attachments SET created_at = ? WHERE attachment_id IN (?, ?, ?)", past, orphan, unfinished.attachment_id, kept);
    });
    // Whatever alarm is pending (a fan-out guard, the sweep in 24 h), run one now.
    await runInDurableObject(stub, async (_o, state) => {
      await state.storage.setAlarm(Date.now() + 3600_000);
    });
    expect(await runDurableObjectAlarm(stub)).toBe(true);

    expect(await env.ATTACHMENTS.head(orphan)).toBeNull();
    expect((await call("GET", `/v1/attachments/${unfinished.attachment_id}/upload`, { token: alice.access_token })).status).toBe(404);
    expect(await env.ATTACHMENTS.head(kept)).not.toBeNull();
    expect(await env.ATTACHMENTS.head(fresh)).not.toBeNull();
    const rows = await runInDurableObject(stub, (_o, state) => state.storage.sql.exec<{ attachment_id: string }>("SELECT attachment_id FROM attachments").toArray().map((r) => r.attachment_id));
    expect(rows.sort()).toEqual([kept, fresh].sort());
    // The next sweep is armed for the fresh upload's deadline.
    const alarm = await runInDurableObject(stub, (_o, state) => state.storage.getAlarm());
    expect(alarm).toBeGreaterThan(Date.now() + 23 * 3600_000);
  });

  it("lets the uploader cancel an upload nobody sent", async () => {
    const id = await uploadSmall(alice, group, bytes(100, 51));
    expect((await call("DELETE", `/v1/attachments/${id}`, { token: bob.access_token })).status).toBe(403);
    const r = await SELF.fetch(`${BASE}/v1/attachments/${id}`, { method: "DELETE", headers: { authorization: `Bearer ${alice.access_token}` } });
    expect(r.status).toBe(204);
    await expect.poll(() => env.ATTACHMENTS.head(id), { timeout: 5000 }).toBeNull();
  });
});
