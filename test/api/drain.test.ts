/**
 * The operator's drain (POST /v1/admin/drain): ADMIN_TOKEN guards it, and every connected device
 * gets GOAWAY with its own reconnect moment inside the window. The route is called through the
 * Worker's app with the token in its env; everything it reaches (presence shards, user objects,
 * sockets) is the real thing.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { pb } from "../../protocol/codec.js";
import { api } from "../../workers/api/app.js";
import { register } from "../helpers/api.js";
import { onlineDevice } from "../helpers/socket.js";

const T = pb.FrameType;
const TOKEN = "drain-test-admin-token-0123456789abcdef";

async function drain(token: string | undefined, body: unknown, adminToken = TOKEN) {
  const res = await api.request("/v1/admin/drain", {
    method: "POST",
    headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), "Content-Type": "application/json" },
    body: JSON.stringify(body),
  }, { ...env, ADMIN_TOKEN: adminToken });
  return { status: res.status, body: await res.json() as Record<string, unknown> };
}

describe("drain", () => {
  it("is off without an ADMIN_TOKEN secret, and refuses a wrong token or a user's token", async () => {
    expect(await drain(TOKEN, {}, "")).toMatchObject({ status: 403, body: { code: "forbidden" } });
    expect(await drain("short", {}, "short")).toMatchObject({ status: 403, body: { code: "forbidden" } });
    expect(await drain(`${TOKEN}x`, {})).toMatchObject({ status: 401, body: { code: "unauthorized" } });
    const user = await register("notanadmin");
    expect(await drain(user.access_token, {})).toMatchObject({ status: 401, body: { code: "unauthorized" } });
    expect(await drain(TOKEN, { window_ms: -1 })).toMatchObject({ status: 400, body: { code: "invalid_argument" } });
  });

  it("sends every connected device GOAWAY with a reconnect moment inside the window", async () => {
    const alice = await register("alice"), bob = await register("bob");
    const devices = await Promise.all([
      onlineDevice(alice.access_token, "a-phone"), onlineDevice(alice.access_token, "a-laptop"), onlineDevice(bob.access_token, "b-phone"),
    ]);
    // Presence learns of a connection just after HELLO: drain until all three sockets were asked.
    // A call counts the sockets it asked, so a socket presence learned of late is in a later call's
    // count than the others: the calls' counts are added up.
    let result: Record<string, unknown> = {};
    let sockets = 0;
    for (const deadline = Date.now() + 15_000; Date.now() < deadline;) {
      result = (await drain(TOKEN, { window_ms: 5_000 })).body;
      sockets += Number(result.sockets ?? 0);
      if (devices.every((d) => d.frames.some((f) => f.type === T.GOAWAY))) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(result).toMatchObject({ window_ms: 5_000, shards: 96, failed_shards: 0, failed_users: 0 });
    expect(sockets).toBeGreaterThanOrEqual(3);
    for (const d of devices) {
      const goaway = await d.next(T.GOAWAY);
      expect(goaway.goaway?.reason).toBe("drain");
      expect(goaway.goaway?.reconnect_after_ms).toBeGreaterThanOrEqual(0);
      expect(goaway.goaway?.reconnect_after_ms).toBeLessThan(5_000);
      expect(d.closed).toBeUndefined(); // the device moves when it is ready; nothing is cut off
    }
    for (const d of devices) d.close();
  });
});
