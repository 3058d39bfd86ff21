/**
 * The SDK's platform seams: the WebSocket and fetch of browsers/workerd and the `ws` package fit
 * the SDK's option types (checked by tsc), and the SDK uses nothing Node-only at run time.
 */
import { describe, expect, it } from "vitest";
import type WsWebSocket from "ws";
import { createClient, EdgechatError, type FetchLike, type WebSocketConstructor } from "../../client/index.js";
import { uuid } from "../../client/scheduler.js";
import { loadWsPackage, platformWebSocket } from "../../client/websocket.js";

// Compile-time: these must type-check without casts.
export const workerdWebSocket: WebSocketConstructor = WebSocket;
export const workerdFetch: FetchLike = fetch;
export const nodeWs = (ws: typeof WsWebSocket): WebSocketConstructor => ws;

describe("platform", () => {
  it("generates v4 UUIDs for client_msg_id", () => {
    const ids = new Set(Array.from({ length: 100 }, () => uuid()));
    expect(ids.size).toBe(100);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it("falls back to getRandomValues without crypto.randomUUID (insecure browser contexts)", () => {
    const c = (globalThis as unknown as { crypto: { randomUUID?: unknown } }).crypto;
    const saved = c.randomUUID;
    try {
      Object.defineProperty(c, "randomUUID", { value: undefined, configurable: true });
      expect(uuid()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    } finally {
      Object.defineProperty(c, "randomUUID", { value: saved, configurable: true });
    }
  });

  it("validates the device id up front", () => {
    expect(() => createClient({ url: "https://x", deviceId: "bad id!" })).toThrow(EdgechatError);
    expect(() => createClient({ url: "https://x", deviceId: "a".repeat(65) })).toThrow(/deviceId/);
  });

  it("needs no options beyond url and deviceId where the runtime has WebSocket and fetch", () => {
    const client = createClient({ url: "http://127.0.0.1:8787", deviceId: "d1" });
    expect(client.state).toBe("offline");
    client.disconnect();
    expect(client.state).toBe("closed");
  });

  it("uses the runtime's own WebSocket in Workers and never looks for the ws package there", async () => {
    expect(navigator.userAgent).toBe("Cloudflare-Workers");
    expect(platformWebSocket()).toBe(WebSocket);
    await expect(loadWsPackage()).resolves.toBeUndefined();
  });
});
