import { SELF } from "cloudflare:test";
import { describe, expect, inject, it } from "vitest";
import { alsoLogTo } from "../../shared/log.js";
import { parsePushJob } from "../../queues/push-jobs.js";
import { call, createGroup } from "../helpers/api.js";
import { memoryRecorder, recordMetricsWith } from "../../shared/metrics.js";
import { pb } from "../../protocol/codec.js";
import { BASE, createDm, register } from "../helpers/api.js";
import { onlineDevice } from "../helpers/socket.js";

describe("REST trace ids and request metrics", () => {
  it("returns a fresh trace id on every response, and in error bodies", async () => {
    const ok = await SELF.fetch(`${BASE}/v1/health`);
    const missing = await SELF.fetch(`${BASE}/v1/me`); // no token
    const a = ok.headers.get("x-trace-id"), b = missing.headers.get("x-trace-id");
    expect(a).toMatch(/^[0-9a-f]{32}$/);
    expect(b).toMatch(/^[0-9a-f]{32}$/);
    expect(a).not.toBe(b);
    expect(missing.status).toBe(401);
    expect(await missing.json()).toMatchObject({ code: "unauthorized", retryable: false, trace_id: b });
  });

  it("keeps the caller's W3C traceparent trace id, and mints one for a malformed header", async () => {
    const trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    const joined = await SELF.fetch(`${BASE}/v1/health`, { headers: { traceparent: `00-${trace}-00f067aa0ba902b7-01` } });
    expect(joined.headers.get("x-trace-id")).toBe(trace);
    const bad = await SELF.fetch(`${BASE}/v1/health`, { headers: { traceparent: "00-not-a-trace-01" } });
    expect(bad.headers.get("x-trace-id")).toMatch(/^[0-9a-f]{32}$/);
    expect(bad.headers.get("x-trace-id")).not.toBe(trace);
  });

  it("counts requests by status class and errors by code", async () => {
    const user = await register("tracer");
    const seen = memoryRecorder();
    const restore = recordMetricsWith(seen);
    try {
      await SELF.fetch(`${BASE}/v1/me`, { headers: { Authorization: `Bearer ${user.access_token}` } });
      await SELF.fetch(`${BASE}/v1/me`);
      await SELF.fetch(`${BASE}/v1/channels/c_g_nope`, { headers: { Authorization: `Bearer ${user.access_token}` } });
    } finally {
      restore();
    }
    expect(seen.total("http.request")).toBe(3);
    expect(seen.total("http.request", { status: "2xx" })).toBe(1);
    expect(seen.total("http.request", { status: "4xx" })).toBe(2);
    expect(seen.total("error", { code: "unauthorized", via: "rest" })).toBe(1);
    expect(seen.total("error", { via: "rest" })).toBe(2);
  });

  it("gives every frame a trace id, returned in its SEND_ACK or ERROR", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const dm = await createDm(alice, bob);
    const a = await onlineDevice(alice.access_token, "a");
    const first = await a.sendText(dm, "one"), second = await a.sendText(dm, "two");
    expect(first.send_ack?.trace_id).toMatch(/^[0-9a-f]{32}$/);
    expect(second.send_ack?.trace_id).toMatch(/^[0-9a-f]{32}$/);
    expect(first.send_ack?.trace_id).not.toBe(second.send_ack?.trace_id);
    const bad = a.send({ type: pb.FrameType.SEND, send: { channel_id: "nope", client_msg_id: "x", content: { text: { text: "lost" } } } });
    const error = await a.take((f) => f.request_id === bad && f.type === pb.FrameType.ERROR);
    expect(error.error?.code).toBe("invalid_argument");
    expect(error.error?.trace_id).toMatch(/^[0-9a-f]{32}$/);
    a.close();
  });

  it("carries a SEND's trace id through the channel to every recipient: DELIVER, push job and each log line on the way", async () => {
    const alice = await register("alice"), bob = await register("bob"), carol = await register("carol");
    // Carol has no device connected, only a push subscription: her copy goes through the queue.
    const sub = await (await fetch(`${inject("fakePushUrl")}/__subscribe`, { method: "POST", body: JSON.stringify({ name: `carol-${carol.user_id.slice(-6)}` }) })).json();
    expect((await call("POST", "/v1/devices", { token: carol.access_token, body: { device_id: "phone", push: sub } })).status).toBe(201);
    const group = await createGroup(alice, [bob, carol], "Traced");
    const a = await onlineDevice(alice.access_token, "a");
    const b = await onlineDevice(bob.access_token, "b");
    const lines: Record<string, unknown>[] = [];
    const stop = alsoLogTo((l) => lines.push(l));
    try {
      const ack = await a.sendText(group, "follow me");
      const trace = ack.send_ack!.trace_id!;
      expect(trace).toMatch(/^[0-9a-f]{32}$/);
      const delivered = (await b.take((f) => f.type === pb.FrameType.DELIVER && f.deliver!.messages!.some((m) => m.seq === ack.send_ack!.seq), 15_000)).deliver!.messages!;
      expect(delivered.find((m) => m.seq === ack.send_ack!.seq)?.trace_id).toBe(trace);
      const has = (event: string, extra: Record<string, unknown> = {}) =>
        lines.some((l) => l.event === event && l.trace_id === trace && Object.entries(extra).every(([k, v]) => l[k] === v));
      const deadline = Date.now() + 30_000;
      while (!(has("push.enqueued", { user_id: carol.user_id }) && has("push.sent", { user_id: carol.user_id })) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(has("send.acked", { user_id: alice.user_id, channel_id: group, seq: ack.send_ack!.seq })).toBe(true);
      expect(has("message.stored", { object: "channel", channel_id: group, seq: ack.send_ack!.seq })).toBe(true);
      expect(has("deliver.message", { id: bob.user_id, to: "devices" })).toBe(true);
      expect(has("deliver.message", { id: carol.user_id, to: "push" })).toBe(true);
      expect(has("push.enqueued", { user_id: carol.user_id })).toBe(true);
      expect(has("push.sent", { user_id: carol.user_id })).toBe(true);
    } finally {
      stop();
      a.close();
      b.close();
    }
  }, 60_000);

  it("keeps a push job's trace id through the queue body, and drops one that is not a trace id", () => {
    const job = {
      v: 1, user_id: "u_a", device_id: "phone", created_at: 1, subscription: { type: "fcm", token: "t" },
      payload: { v: 1, type: "clear", channel_id: "c_g_x", read_seq: 3 },
    };
    expect(parsePushJob({ ...job, trace_id: "4bf92f3577b34da6a3ce929d0e0e4736" })?.trace_id).toBe("4bf92f3577b34da6a3ce929d0e0e4736");
    expect(parsePushJob({ ...job, trace_id: "<script>" })).not.toHaveProperty("trace_id");
    expect(parsePushJob(job)).not.toHaveProperty("trace_id");
  });
});
