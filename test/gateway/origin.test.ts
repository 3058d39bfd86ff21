/**
 * The WebSocket's Origin check (workers/gateway/origin.ts) and the headers on the Worker's own
 * responses (workers/security-headers.ts).
 */
import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { pb } from "../../protocol/codec.js";
import { SUBPROTOCOL_JSON } from "../../protocol/limits.js";
import { originAllowed } from "../../workers/gateway/origin.js";
import { BASE, register } from "../helpers/api.js";
import { TestDevice } from "../helpers/socket.js";

const URL_HERE = "https://chat.example.com/v1/connect?device_id=d";

describe("originAllowed", () => {
  it("lets the Worker's own origin and clients without an Origin in, by default nothing else", () => {
    expect(originAllowed("https://chat.example.com", URL_HERE, "")).toBe(true);
    expect(originAllowed(null, URL_HERE, "")).toBe(true);
    expect(originAllowed("https://evil.example", URL_HERE, "")).toBe(false);
    expect(originAllowed("http://chat.example.com", URL_HERE, "")).toBe(false); // another scheme is another origin
    expect(originAllowed("https://chat.example.com:8443", URL_HERE, undefined)).toBe(false);
    expect(originAllowed("null", URL_HERE, "")).toBe(false); // sandboxed frames, file:// pages
  });

  it("adds the origins listed in ALLOWED_ORIGINS, written loosely, and '*' for any", () => {
    const list = " https://App.example.com/ ,https://other.example:8443,not a url";
    expect(originAllowed("https://app.example.com", URL_HERE, list)).toBe(true);
    expect(originAllowed("https://other.example:8443", URL_HERE, list)).toBe(true);
    expect(originAllowed("https://chat.example.com", URL_HERE, list)).toBe(true);
    expect(originAllowed("https://evil.example", URL_HERE, list)).toBe(false);
    expect(originAllowed("https://evil.example", URL_HERE, "*")).toBe(true);
  });
});

async function connect(token: string, origin: string | undefined): Promise<TestDevice> {
  const headers: Record<string, string> = { Upgrade: "websocket", "Sec-WebSocket-Protocol": SUBPROTOCOL_JSON };
  if (origin) headers.Origin = origin;
  const res = await SELF.fetch(`${BASE}/v1/connect?device_id=d-${crypto.randomUUID().slice(0, 8)}&access_token=${encodeURIComponent(token)}`, { headers });
  const ws = res.webSocket!;
  ws.accept();
  return new TestDevice(ws, "json", "d");
}

describe("the gateway's Origin check", () => {
  it("refuses a page from another origin with ERROR forbidden and close 4403, before the token matters", async () => {
    const alice = await register("alice");
    for (const token of [alice.access_token, "not-a-token"]) {
      const d = await connect(token, "https://evil.example");
      const err = await d.next(pb.FrameType.ERROR);
      expect(err.error).toMatchObject({ code: "forbidden" });
      expect(err.error?.message).toContain("https://evil.example");
      expect(await d.waitClosed()).toEqual({ code: 4403, reason: "forbidden" });
    }
  });

  it("lets the Worker's own pages and clients without an Origin connect", async () => {
    const alice = await register("alice");
    for (const origin of [new URL(BASE).origin, undefined]) {
      const d = await connect(alice.access_token, origin);
      expect((await d.next(pb.FrameType.HELLO)).hello?.user_id).toBe(alice.user_id);
      d.close();
    }
  });
});

describe("headers on the Worker's responses", () => {
  it("marks API answers nosniff, unframeable, unreferred and uncached; HSTS over https only", async () => {
    for (const base of ["http://edgechat.test", "https://edgechat.test"]) {
      for (const path of ["/v1/health", "/v1/me", "/v1/nowhere"]) {
        const res = await SELF.fetch(`${base}${path}`);
        await res.arrayBuffer();
        expect(res.headers.get("x-content-type-options")).toBe("nosniff");
        expect(res.headers.get("x-frame-options")).toBe("DENY");
        expect(res.headers.get("referrer-policy")).toBe("no-referrer");
        expect(res.headers.get("content-security-policy")).toBe("default-src 'none'; frame-ancestors 'none'");
        expect(res.headers.get("cache-control")).toBe("no-store");
        expect(res.headers.get("strict-transport-security")).toBe(base.startsWith("https") ? "max-age=31536000; includeSubDomains" : null);
      }
    }
  });

  it("leaves WebSocket upgrades alone", async () => {
    const alice = await register("alice");
    const res = await SELF.fetch(`https://edgechat.test/v1/connect?device_id=d1&access_token=${alice.access_token}`, {
      headers: { Upgrade: "websocket", "Sec-WebSocket-Protocol": SUBPROTOCOL_JSON, Origin: "https://edgechat.test" },
    });
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    ws.accept();
    const d = new TestDevice(ws, "json", "d1");
    await d.next(pb.FrameType.HELLO);
    d.close();
  });
});
