/**
 * Retention inside workerd (docs/decisions/019): who sets a channel's message lifetime and what
 * is refused, expiry in bounded batches from the channel's alarm, attachments going with their
 * messages, the low-water mark in history and RESUME, and seq numbering carrying on above it.
 *
 * Time is never waited out: a message is made old by moving its clock back (every row up to a
 * seq, so HLC order is kept), and the channel's retention clock can be moved forward instead.
 */
import { env, runDurableObjectAlarm, runInDurableObject, SELF } from "cloudflare:test";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { pb } from "../../protocol/codec.js";
import { LIMITS } from "../../protocol/limits.js";
import { memoryRecorder, recordMetricsWith } from "../../shared/metrics.js";
import { channelStub } from "../../shared/routing.js";
import type { ChannelObject } from "../../durable-objects/channel/ChannelObject.js";
import { checkRetention, duration, retentionConfig } from "../../durable-objects/channel/retention.js";
import { call, createDm, createGroup, register, type TestUser } from "../helpers/api.js";
import { helloDevice, onlineDevice } from "../helpers/socket.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

interface Details {
  channel_id: string;
  last_seq: number;
  retention_ms: number;
  retention_setting: number | null;
  min_seq: number;
}
interface Page {
  messages: { seq: number; content: { system?: { event: string; actor_user_id: string; text: string; retention_ms?: number }; text?: { text: string } } }[];
  has_more: boolean;
  next_cursor: number;
  last_seq: number;
  min_seq: number;
}

function patch(user: TestUser, channelId: string, body: unknown) {
  return call<{ channel: Details; code?: string; message?: string; retryable?: boolean }>("PATCH", `/v1/channels/${channelId}`, { token: user.access_token, body });
}

function history(user: TestUser, channelId: string, query: string) {
  return call<Page>("GET", `/v1/channels/${channelId}/messages?${query}`, { token: user.access_token });
}

async function details(user: TestUser, channelId: string): Promise<Details> {
  return (await call<{ channel: Details }>("GET", `/v1/channels/${channelId}`, { token: user.access_token })).body.channel;
}

async function post(user: TestUser, channelId: string, text: string): Promise<number> {
  const r = await call<{ ack: { seq: number } }>("POST", `/v1/channels/${channelId}/messages`, {
    token: user.access_token, body: { client_msg_id: crypto.randomUUID(), content: { text: { text } } },
  });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body.ack.seq;
}

/** Makes every message up to `seq` ancient (their clocks in 1970, in seq order). */
function backdate(channelId: string, upToSeq: number): Promise<void> {
  return runInDurableObject(channelStub(env, channelId), (_o, state) => {
    state.storage.sql.exec("UPDATE messages SET hlc_ms = 1000 + seq WHERE seq <= ?", upToSeq);
  });
}

/** Runs the channel's alarm once now (setting one if none is pending). */
async function tick(channelId: string): Promise<void> {
  const stub = channelStub(env, channelId);
  await runInDurableObject(stub, async (_o, state) => {
    if ((await state.storage.getAlarm()) === null) await state.storage.setAlarm(Date.now() + HOUR);
  });
  await runDurableObjectAlarm(stub);
}

/** Runs alarms until the mark reaches `minSeq` (the alarm may also run by itself meanwhile). */
async function expireUntil(user: TestUser, channelId: string, minSeq: number): Promise<void> {
  for (let i = 0; i < 50 && (await details(user, channelId)).min_seq < minSeq; i++) await tick(channelId);
  expect((await details(user, channelId)).min_seq).toBe(minSeq);
}

let alice: TestUser, bob: TestUser, carol: TestUser, mallory: TestUser;

beforeAll(async () => {
  [alice, bob, carol, mallory] = await Promise.all([register("alice"), register("bob"), register("carol"), register("mallory")]);
});

describe("PATCH /v1/channels/{id}: the message lifetime", () => {
  it("owners and admins of a group set it; members and strangers cannot; a notice says so with ids", async () => {
    const group = await createGroup(alice, [bob], "Lifetimes");
    const before = await details(alice, group);
    expect([before.retention_ms, before.retention_setting, before.min_seq]).toEqual([0, null, 1]);

    const set = await patch(alice, group, { retention_ms: 7 * DAY });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    expect(set.body.channel).toMatchObject({ retention_ms: 7 * DAY, retention_setting: 7 * DAY, min_seq: 1 });
    const notice = (await history(bob, group, "limit=1")).body.messages[0]!;
    expect(notice.content.system).toMatchObject({
      event: "retention_set", actor_user_id: alice.user_id, retention_ms: 7 * DAY, text: "set messages to disappear after 7 days",
    });
    expect(JSON.stringify(notice)).not.toContain(alice.username);

    // The same value again changes and logs nothing.
    const lastSeq = (await details(alice, group)).last_seq;
    expect((await patch(alice, group, { retention_ms: 7 * DAY })).status).toBe(200);
    expect((await details(alice, group)).last_seq).toBe(lastSeq);

    const member = await patch(bob, group, { retention_ms: DAY });
    expect([member.status, member.body.code, member.body.retryable]).toEqual([403, "forbidden", false]);
    const stranger = await patch(mallory, group, { retention_ms: DAY });
    expect([stranger.status, stranger.body.code]).toEqual([404, "not_found"]);
    const anonymous = await call("PATCH", `/v1/channels/${group}`, { body: { retention_ms: DAY } });
    expect(anonymous.status).toBe(401);

    // Back to the server default (unset here: kept for ever).
    const off = await patch(alice, group, { retention_ms: null });
    expect(off.body.channel).toMatchObject({ retention_ms: 0, retention_setting: null });
    expect((await history(bob, group, "limit=1")).body.messages[0]!.content.system).toMatchObject({ event: "retention_set", text: "turned off disappearing messages" });
  });

  it("in a DM either member sets it, and a DM takes no name", async () => {
    const dm = await createDm(alice, carol);
    const r = await patch(carol, dm, { retention_ms: DAY });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.channel.retention_ms).toBe(DAY);
    expect((await patch(alice, dm, { retention_ms: 90 * DAY })).body.channel.retention_ms).toBe(90 * DAY);
    const named = await patch(alice, dm, { name: "ours" });
    expect([named.status, named.body.code]).toEqual([400, "invalid_argument"]);
  });

  it("refuses values outside the bounds, wrong types and empty patches with a clear error", async () => {
    const group = await createGroup(alice, [bob], "Bounds");
    const cases: [unknown, string][] = [
      [{ retention_ms: LIMITS.retentionMinMs - 1 }, "invalid_argument"],
      [{ retention_ms: LIMITS.retentionMaxMs + 1 }, "invalid_argument"],
      [{ retention_ms: 0 }, "invalid_argument"],
      [{ retention_ms: -DAY }, "invalid_argument"],
      [{ retention_ms: 1.5 * HOUR + 0.5 }, "invalid_argument"],
      [{ retention_ms: "7d" }, "invalid_argument"],
      [{}, "invalid_argument"],
      [{ name: "" }, "invalid_argument"],
    ];
    for (const [body, code] of cases) {
      const r = await patch(alice, group, body);
      expect([r.status, r.body.code], JSON.stringify(body)).toEqual([400, code]);
      expect(r.body.message).toBeTruthy();
    }
    const bad = await call<{ code: string }>("PATCH", `/v1/channels/${group}`, { token: alice.access_token, rawBody: "{\"retention_ms\":" });
    expect(bad.status).toBe(400);
    expect((await details(alice, group)).retention_ms).toBe(0);
    // Owners may rename a group in the same call.
    const renamed = await patch(alice, group, { name: "Bounds, renamed", retention_ms: LIMITS.retentionMinMs });
    expect(renamed.status).toBe(200);
    expect((await history(bob, group, "limit=2")).body.messages.map((m) => m.content.system?.event)).toEqual(["renamed", "retention_set"]);
  });

  it("reads its configuration from the Worker's vars", () => {
    expect(retentionConfig({})).toEqual({ defaultMs: 0, minMs: LIMITS.retentionMinMs, maxMs: LIMITS.retentionMaxMs });
    expect(retentionConfig({ DEFAULT_RETENTION_MS: "604800000", RETENTION_MIN_MS: "60000" })).toMatchObject({ defaultMs: 7 * DAY, minMs: 60_000 });
    expect(retentionConfig({ DEFAULT_RETENTION_MS: "soon" }).defaultMs).toBe(0);
    const config = retentionConfig({});
    expect(checkRetention(null, config)).toEqual({ ok: true, value: null });
    expect(checkRetention(DAY, config)).toEqual({ ok: true, value: DAY });
    expect(checkRetention(Number.NaN, config).ok).toBe(false);
    expect([duration(DAY), duration(7 * DAY), duration(90 * 60_000), duration(HOUR)]).toEqual(["1 day", "7 days", "90 minutes", "1 hour"]);
  });
});

describe("expiry from the channel's alarm", () => {
  let restore: (() => void) | undefined;
  afterEach(() => restore?.());

  it("deletes in batches of at most LIMITS.retentionBatch rows per tick, re-arming while more remain", async () => {
    const group = await createGroup(alice, [bob], "Busy");
    const stub = channelStub(env, group);
    const n = 1200;
    const last = await runInDurableObject(stub, (instance: ChannelObject) => {
      const acks = instance.appendBatch(Array.from({ length: n }, (_, i) => ({
        userId: i % 2 ? alice.user_id : bob.user_id, deviceId: "", clientMsgId: `bulk-${i}`, content: { text: { text: `message ${i}` } },
      })));
      return acks.at(-1)!.ok ? (acks.at(-1) as { ack: { seq: number } }).ack.seq : 0;
    });
    expect(last).toBe(n + 1);
    await runInDurableObject(stub, (instance: ChannelObject) => instance.react(bob.user_id, "", 3, "👍", "add"));
    await backdate(group, last + 1); // the reaction's change entry too
    const seen = memoryRecorder();
    restore = recordMetricsWith(seen);
    expect((await patch(alice, group, { retention_ms: HOUR })).status).toBe(200);
    await expireUntil(alice, group, last + 2);

    const ticks = seen.points.filter((p) => p.name === "retention.expired").map((p) => p.n);
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    expect(Math.max(...ticks)).toBeLessThanOrEqual(LIMITS.retentionBatch);
    expect(ticks.reduce((a, b) => a + b, 0)).toBe(last + 1);
    const left = await runInDurableObject(stub, (_o, state) => ({
      messages: state.storage.sql.exec<{ n: number; lo: number }>("SELECT count(*) AS n, min(seq) AS lo FROM messages").one(),
      reactions: state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM reactions").one().n,
      mark: state.storage.sql.exec<{ min_seq: number }>("SELECT min_seq FROM channel").one().min_seq,
    }));
    // The notice that set the lifetime is all that is left.
    expect(left).toEqual({ messages: { n: 1, lo: last + 2 }, reactions: 0, mark: last + 2 });
  }, 60_000);

  it("expires by the channel's clock, which a test moves instead of waiting", async () => {
    const group = await createGroup(alice, [bob], "Clock");
    await post(bob, group, "soon gone");
    expect((await patch(alice, group, { retention_ms: DAY })).status).toBe(200);
    const stub = channelStub(env, group);
    const tickAt = (at: number) => runInDurableObject(stub, (instance: ChannelObject) => {
      instance.retention.clock = () => at;
      return instance.retention.expire();
    });
    expect((await tickAt(Date.now() + HOUR)).deleted).toBe(0);
    const t = await tickAt(Date.now() + DAY + HOUR);
    expect(t.deleted).toBe(3);
    expect(t.minSeq).toBe(4);
    expect(t.nextAt).toBeUndefined();
  });

  it("the alarm's part: a batch only when due, the new mark to the watchers' lists, the next wake in real time", async () => {
    const group = await createGroup(alice, [bob], "Alarm");
    await post(bob, group, "soon gone");
    expect((await patch(alice, group, { retention_ms: DAY })).status).toBe(200);
    const r = await runInDurableObject(channelStub(env, group), (instance: ChannelObject) => {
      const now = Date.now();
      const marks: number[] = [];
      instance.retention.clock = () => now + HOUR;
      const early = instance.retention.onAlarm(now, (mark) => marks.push(mark));
      const before = [...marks];
      instance.retention.clock = () => now + DAY + HOUR;
      return { early: early! - now, before, next: instance.retention.onAlarm(now, (mark) => marks.push(mark)), marks };
    });
    // Not due by the moved clock: wanted a day after the oldest message, an hour less in real time.
    expect(r.early).toBeGreaterThan(DAY - HOUR - 60_000);
    expect(r.early).toBeLessThanOrEqual(DAY - HOUR);
    expect(r.before).toEqual([]);
    expect(r.marks).toEqual([4]);
    expect(r.next).toBeUndefined();
  });

  it("deletes the attachments of expired messages: R2 objects and upload rows", async () => {
    const group = await createGroup(alice, [bob], "Files");
    const data = new Uint8Array(700).fill(7);
    const p = await call<{ attachment_id: string; upload_url: string }>("POST", "/v1/attachments/presign", {
      token: alice.access_token, body: { channel_id: group, filename: "photo.png", content_type: "image/png", size_bytes: data.byteLength },
    });
    expect(p.status).toBe(201);
    const put = await SELF.fetch(p.body.upload_url, { method: "PUT", body: data, headers: { "content-length": String(data.byteLength) } });
    expect(put.status).toBe(200);
    const id = p.body.attachment_id;
    const sent = await call<{ ack: { seq: number } }>("POST", `/v1/channels/${group}/messages`, {
      token: alice.access_token, body: { client_msg_id: crypto.randomUUID(), content: { attachment: { attachment_id: id, size_bytes: data.byteLength } } },
    });
    expect(sent.status).toBe(201);
    const kept = await post(bob, group, "newer, kept");
    expect(await env.ATTACHMENTS.head(id)).not.toBeNull();
    await backdate(group, sent.body.ack.seq);
    expect((await patch(alice, group, { retention_ms: HOUR })).status).toBe(200);
    await expireUntil(alice, group, kept);
    const stub = channelStub(env, group);
    const rows = async () => runInDurableObject(stub, (_o, state) => state.storage.sql.exec("SELECT 1 FROM attachments").toArray().length);
    for (let i = 0; i < 20 && (await rows()) > 0; i++) await tick(group);
    expect(await rows()).toBe(0);
    expect(await env.ATTACHMENTS.head(id)).toBeNull();
    expect((await call("GET", `/v1/attachments/${id}`, { token: bob.access_token })).status).toBe(404);
  });
});

describe("the low-water mark", () => {
  it("history pages from the mark and says older messages expired; changes to expired messages are refused", async () => {
    const group = await createGroup(alice, [bob, carol], "Mark");
    for (let i = 1; i <= 10; i++) await post(bob, group, `m${i}`); // seqs 2..11
    await backdate(group, 7);
    expect((await patch(alice, group, { retention_ms: HOUR })).status).toBe(200); // seq 12
    await expireUntil(alice, group, 8);

    const newest = await history(carol, group, "limit=50");
    expect(newest.body.messages.map((m) => m.seq)).toEqual([8, 9, 10, 11, 12]);
    expect([newest.body.has_more, newest.body.min_seq, newest.body.last_seq]).toEqual([false, 8, 12]);
    const older = await history(carol, group, "before=8");
    expect([older.status, older.body.messages.length, older.body.has_more, older.body.min_seq]).toEqual([200, 0, false, 8]);
    const forward = await history(carol, group, "after=2&limit=2");
    expect(forward.body.messages.map((m) => m.seq)).toEqual([8, 9]);
    const react = await call<{ code: string }>("PUT", `/v1/channels/${group}/messages/5/reactions/${encodeURIComponent("👍")}`, { token: carol.access_token });
    expect([react.status, react.body.code]).toEqual([404, "not_found"]);

    // Unread is exact: carol never read; only bob's four unexpired posts count.
    const read = await call<{ unread_count: number }>("POST", `/v1/channels/${group}/read`, { token: carol.access_token, body: { up_to_seq: 0 } });
    expect(read.body.unread_count).toBe(4);
  });

  it("RESUME from below the mark delivers what exists and names what expired; from above it, exactly the gap", async () => {
    const [dave, erin] = await Promise.all([register("dave"), register("erin")]);
    const group = await createGroup(dave, [erin], "Resume");
    for (let i = 1; i <= 10; i++) await post(erin, group, `r${i}`);
    await backdate(group, 7);
    expect((await patch(dave, group, { retention_ms: HOUR })).status).toBe(200);
    await expireUntil(dave, group, 8);

    const device = await helloDevice(dave.access_token);
    const below = await device.resume([{ channel_id: group, last_seq: 3 }]);
    expect(below.messages.filter((m) => m.channel_id === group).map((m) => Number(m.seq))).toEqual([8, 9, 10, 11, 12]);
    expect(below.resumed.type).toBe(pb.FrameType.RESUMED);
    expect(below.resumed.resumed?.expired?.map((e) => [e.channel_id, Number(e.from_seq), Number(e.to_seq)])).toEqual([[group, 4, 7]]);
    device.close();

    const again = await helloDevice(dave.access_token);
    const above = await again.resume([{ channel_id: group, last_seq: 9 }]);
    expect(above.messages.filter((m) => m.channel_id === group).map((m) => Number(m.seq))).toEqual([10, 11, 12]);
    expect(above.resumed.resumed?.expired ?? []).toEqual([]);
    again.close();
  });

  it("seq numbering carries on after everything expired", async () => {
    const group = await createGroup(alice, [bob], "Empty");
    await post(bob, group, "one");
    await post(alice, group, "two");
    expect((await patch(alice, group, { retention_ms: HOUR })).status).toBe(200); // seq 4
    // Two hours on, by the channel's clock: everything is older than the lifetime.
    await runInDurableObject(channelStub(env, group), (instance: ChannelObject) => {
      const later = Date.now() + 2 * HOUR;
      instance.retention.clock = () => later;
    });
    await expireUntil(alice, group, 5);
    const empty = await history(bob, group, "limit=50");
    expect([empty.body.messages.length, empty.body.last_seq, empty.body.min_seq, empty.body.has_more]).toEqual([0, 4, 5, false]);
    expect(await post(bob, group, "three")).toBe(5);
    const after = await history(bob, group, "limit=50");
    expect(after.body.messages.map((m) => m.seq)).toEqual([5]);
    expect(after.body.min_seq).toBe(5);
  });
});

describe("live channel lists after expiry", () => {
  it("re-reads a live member's unread count when messages expire, and tells their devices", async () => {
    const [ann, ben] = await Promise.all([register("ann"), register("ben")]);
    const dm = await createDm(ann, ben);
    const device = await onlineDevice(ben.access_token);
    const last = [await post(ann, dm, "one"), await post(ann, dm, "two"), await post(ann, dm, "three")].at(-1)!;
    await device.messages(3);
    const unread = async () => (await call<{ channels: { channel_id: string; unread_count: number }[] }>("GET", "/v1/channels", { token: ben.access_token }))
      .body.channels.find((c) => c.channel_id === dm)?.unread_count;
    expect(await unread()).toBe(3);

    await backdate(dm, last);
    expect((await patch(ann, dm, { retention_ms: DAY })).status).toBe(200);
    await expireUntil(ann, dm, last + 1);
    // The list is told, re-reads the channel's count (nothing of ann's is left unread) and says so.
    await device.waitFor((f) => f.type === pb.FrameType.CHANNEL_UPDATE && f.channel_update?.channel?.channel_id === dm && Number(f.channel_update.channel.unread_count) === 0, 15_000);
    expect(await unread()).toBe(0);
    device.close();
  });
});
