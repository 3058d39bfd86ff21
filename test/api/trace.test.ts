import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
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
});
