/**
 * Connections on their own (durable-objects/user/connections.ts) over a fresh object's storage and
 * sockets: what refuses a connect before anything is written (erasure, a signed-out session, the
 * device cap), what an accepted one records, and what a closed socket leaves behind.
 */
import { describe, expect, it } from "vitest";
import { decodeFrame, type Frame } from "../../protocol/codec.js";
import { LIMITS } from "../../protocol/limits.js";
import { fail } from "../../shared/errors.js";
import { CLOSE } from "../../shared/frames.js";
import { newId } from "../../shared/ids.js";
import { Connections } from "../../durable-objects/user/connections.js";
import { closeAll } from "../../durable-objects/user/socket-protocol.js";
import { Devices } from "../../durable-objects/user/devices.js";
import type { Profile } from "../../durable-objects/user/profile.js";
import { Sessions } from "../../durable-objects/user/sessions.js";
import { inFreshUser } from "../helpers/object-sql.js";

function setup(sql: SqlStorage, ctx: DurableObjectState, erasing = false) {
  const calls: string[] = [];
  let profile: Profile | undefined;
  const sessions = new Sessions(sql);
  const devices = new Devices(sql);
  const connections = new Connections({
    ctx, sessions, devices,
    erasing: () => erasing,
    profile: () => profile,
    init: (p) => {
      calls.push(`init ${p.username}`);
      return (profile = p);
    },
    opened: () => void calls.push("opened"),
    gone: (_ws, remaining) => void calls.push(`gone ${remaining}`),
  });
  const userId = newId("u");
  const connect = (deviceId: string, sessionId = "") => connections.connect(new Request("http://user/connect", {
    headers: {
      "x-edgechat-user-id": userId, "x-edgechat-username": "ada", "x-edgechat-device-id": deviceId,
      "x-edgechat-session-id": sessionId, "x-edgechat-encoding": "json",
    },
  }));
  return { calls, sessions, devices, connections, connect, userId };
}

/** The refusal a client sees: the ERROR frame's code and the close code. */
async function refusal(res: Response): Promise<{ code: string; close: number }> {
  const ws = res.webSocket!;
  const frames: Frame[] = [];
  const closed = new Promise<number>((resolve) => ws.addEventListener("close", (e) => resolve(e.code)));
  ws.addEventListener("message", (e) => {
    const d = decodeFrame(e.data as string, "json");
    if (d.ok) frames.push(d.frame);
  });
  ws.accept();
  const close = await closed;
  return { code: frames[0]?.error?.code ?? "", close };
}

const deviceRows = (sql: SqlStorage) => sql.exec<{ device_id: string }>("SELECT device_id FROM devices").toArray().map((r) => r.device_id);

describe("Connections", () => {
  it("refuses an erased account and a signed-out session before writing anything", async () => {
    await inFreshUser(async (sql, ctx) => {
      const erased = setup(sql, ctx, true);
      expect(await refusal(erased.connect("phone"))).toEqual({ code: "session_revoked", close: CLOSE.sessionRevoked });
      const { connect, sessions, calls } = setup(sql, ctx);
      const s = await sessions.create();
      sessions.revokeById(s.sessionId);
      expect(await refusal(connect("phone", s.sessionId))).toEqual({ code: "session_revoked", close: CLOSE.sessionRevoked });
      expect(deviceRows(sql)).toEqual([]);
      expect(calls).toEqual([]);
      expect(ctx.getWebSockets()).toHaveLength(0);
    });
  });

  it("accepts a device: the profile re-created from the headers, the device and the session's use recorded, the host told", async () => {
    await inFreshUser(async (sql, ctx) => {
      const { connect, sessions, calls } = setup(sql, ctx);
      const s = await sessions.create();
      const res = connect("phone", s.sessionId);
      expect(res.status).toBe(101);
      res.webSocket!.accept();
      expect(calls).toEqual(["init ada", "opened"]);
      expect(deviceRows(sql)).toEqual(["phone"]);
      expect(sessions.sessionsByDevice()).toEqual(new Map([["phone", s.sessionId]]));
      expect(ctx.getWebSockets("phone")).toHaveLength(1);
    });
  });

  it("refuses a device past the cap and a bad device id", async () => {
    await inFreshUser(async (sql, ctx) => {
      const { connect, devices } = setup(sql, ctx);
      for (let i = 0; i < LIMITS.maxDevicesPerUser; i++) devices.admit(`d${i}`);
      expect(await refusal(connect("one-too-many"))).toEqual({ code: "too_many_devices", close: CLOSE.tooManyDevices });
      expect(await refusal(connect("no spaces"))).toEqual({ code: "invalid_argument", close: CLOSE.badRequest });
      expect(deviceRows(sql)).toHaveLength(LIMITS.maxDevicesPerUser);
    });
  });

  it("a closed socket marks its device seen and tells the host how many are still open", async () => {
    await inFreshUser(async (sql, ctx) => {
      const { connect, connections, calls } = setup(sql, ctx);
      connect("phone").webSocket!.accept();
      connect("laptop").webSocket!.accept();
      sql.exec("UPDATE devices SET last_seen_at = 0");
      connections.closed(ctx.getWebSockets("phone")[0]!, 1005);
      expect(calls.at(-1)).toBe("gone 1");
      const seen = sql.exec<{ device_id: string; last_seen_at: number }>("SELECT device_id, last_seen_at FROM devices ORDER BY device_id").toArray();
      expect(seen.map((d) => [d.device_id, d.last_seen_at > 0])).toEqual([["laptop", false], ["phone", true]]);
    });
  });

  it("closeAll tells each open socket why before closing it (the account's erasure)", async () => {
    await inFreshUser(async (sql, ctx) => {
      const { connect } = setup(sql, ctx);
      const sockets = ["phone", "laptop"].map((d) => connect(d).webSocket!);
      const seen = sockets.map((ws) => {
        const frames: Frame[] = [];
        ws.addEventListener("message", (e) => {
          const d = decodeFrame(e.data as string, "json");
          if (d.ok) frames.push(d.frame);
        });
        const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.addEventListener("close", (e) => resolve({ code: e.code, reason: e.reason })));
        ws.accept();
        return { frames, closed };
      });
      closeAll(ctx, CLOSE.sessionRevoked, "gone", fail("session_revoked", "gone"));
      for (const { frames, closed } of seen) {
        expect(await closed).toEqual({ code: CLOSE.sessionRevoked, reason: "gone" });
        expect(frames.at(-1)?.error).toMatchObject({ code: "session_revoked", message: "gone" });
      }
    });
  });
});
