/** Devices on their own: the id rule, the cap, renames, removal, delivered cursors. */
import { describe, expect, it } from "vitest";
import { ACK_FLUSH_MAX_MS, ACK_LINGER_MS, DeviceRegistry, Devices } from "../../durable-objects/user/devices.js";
import { PushSubscriptions } from "../../durable-objects/user/push-subscriptions.js";
import { LIMITS } from "../../protocol/limits.js";
import { inFreshUser } from "../helpers/object-sql.js";

const none = new Set<string>();

describe("Devices", () => {
  it("refuses a new device past the cap but still lets known devices reconnect", async () => {
    await inFreshUser((sql) => {
      const devices = new Devices(sql);
      for (let i = 0; i < LIMITS.maxDevicesPerUser; i++) expect(devices.register(`d${i}`, "", "", none).ok).toBe(true);
      expect(devices.register("one-too-many", "", "", none)).toMatchObject({ ok: false, code: "too_many_devices" });
      expect(devices.register("d0", "", "", none).ok).toBe(true);
      devices.remove("d3");
      expect(devices.register("one-too-many", "", "", none).ok).toBe(true);
      expect(devices.list(none)).toHaveLength(LIMITS.maxDevicesPerUser);
    });
  });

  it("checks the id, keeps a name until a new one is given, and says which devices are connected", async () => {
    await inFreshUser((sql) => {
      const devices = new Devices(sql);
      expect(devices.register("has space", "", "", none)).toMatchObject({ ok: false, code: "invalid_argument" });
      expect(devices.register("x".repeat(65), "", "", none)).toMatchObject({ ok: false, code: "invalid_argument" });
      devices.register("phone", "Alice's phone", "ios", none);
      const again = devices.register("phone", "", "", new Set(["phone"]));
      expect(again).toMatchObject({ ok: true, device: { device_id: "phone", name: "Alice's phone", platform: "ios", connected: true } });
      devices.register("phone", "n".repeat(300), "", none);
      expect(devices.list(none)[0]).toMatchObject({ name: "n".repeat(100), connected: false });
    });
  });

  it("moves a device's delivered cursor forward only, and forgets it with the device", async () => {
    await inFreshUser((sql) => {
      const devices = new Devices(sql);
      devices.register("phone", "", "", none);
      devices.recordDelivered("phone", "c1", 5);
      devices.recordDelivered("phone", "c1", 3);
      devices.recordDelivered("phone", "c2", 1);
      devices.recordDelivered("laptop", "c1", 9);
      expect(devices.deliveredCursors("phone")).toEqual(new Map([["c1", 5], ["c2", 1]]));
      expect(devices.remove("phone")).toBe(true);
      expect(devices.remove("phone")).toBe(false);
      expect(devices.deliveredCursors("phone").size).toBe(0);
      expect(devices.deliveredCursors("laptop")).toEqual(new Map([["c1", 9]]));
    });
  });

  it("writes acks together, once, ACK_LINGER_MS after the last; a removed device's acks are dropped", async () => {
    await inFreshUser((sql) => {
      const asked: number[] = [];
      const devices = new Devices(sql, (at) => asked.push(at));
      devices.register("phone", "", "", none);
      devices.register("tablet", "", "", none);
      const stored = () => sql.exec<{ device_id: string; channel_id: string; delivered_seq: number }>(
        "SELECT device_id, channel_id, delivered_seq FROM device_cursors ORDER BY device_id, channel_id").toArray();
      for (let seq = 1; seq <= 50; seq++) {
        devices.recordDelivered("phone", "c1", seq, 1000 + seq);
        devices.recordDelivered("tablet", "c1", seq, 1000 + seq);
      }
      devices.recordDelivered("gone", "c1", 7, 1100);
      expect(stored()).toEqual([]); // a hundred acks, nothing written yet
      expect(asked).toEqual([1001 + ACK_LINGER_MS]); // one flush asked for, at the first ack ...
      expect(devices.ackFlushDue()).toBe(1100 + ACK_LINGER_MS); // ... due once they stop
      expect(devices.deliveredCursors("phone")).toEqual(new Map([["c1", 50]])); // RESUME sees the waiting acks
      devices.remove("tablet");
      expect(devices.flushAcks()).toBe(2);
      expect(stored()).toEqual([{ device_id: "phone", channel_id: "c1", delivered_seq: 50 }]);
      expect(devices.ackFlushDue()).toBeUndefined();
      devices.recordDelivered("phone", "c1", 40, 5000); // behind the stored cursor: it stays
      devices.flushAcks();
      expect(stored()).toEqual([{ device_id: "phone", channel_id: "c1", delivered_seq: 50 }]);
      expect(devices.deliveredCursors("phone")).toEqual(new Map([["c1", 50]]));
    });
  });
});

describe("Devices: acks that never stop", () => {
  it("are still written every ACK_FLUSH_MAX_MS, and the due time never moves earlier", async () => {
    await inFreshUser((sql) => {
      const devices = new Devices(sql);
      devices.register("phone", "", "", new Set());
      const stored = () => sql.exec<{ delivered_seq: number }>("SELECT delivered_seq FROM device_cursors").toArray()[0]?.delivered_seq;
      let due = 0;
      let flushes = 0;
      for (let seq = 1, t = 10_000; seq <= 70; seq++, t += 1_000) {
        const next = devices.ackFlushDue();
        if (next !== undefined && next <= t) {
          devices.flushAcks();
          flushes++;
          due = 0;
        }
        devices.recordDelivered("phone", "c1", seq, t);
        expect(devices.ackFlushDue()!).toBeGreaterThanOrEqual(due);
        due = devices.ackFlushDue()!;
      }
      // One ack a second for 70 s: written every ACK_FLUSH_MAX_MS (30 s), twice.
      expect(flushes).toBe(Math.floor(70_000 / ACK_FLUSH_MAX_MS));
      expect(stored()).toBe(2 * ACK_FLUSH_MAX_MS / 1_000);
    });
  });
});

describe("DeviceRegistry", () => {
  function registry(sql: SqlStorage) {
    const events: string[] = [];
    const r = new DeviceRegistry({
      devices: new Devices(sql),
      subscriptions: new PushSubscriptions(sql),
      sessionsByDevice: () => new Map([["phone", "s_1"]]),
      connected: () => new Set(["laptop"]),
      closeSockets: (deviceId) => void events.push(`close ${deviceId}`),
      subscribed: () => void events.push("subscribed"),
    });
    return { r, events };
  }

  it("lists devices with their push state and last session, and starts offline watching when a subscription is added", async () => {
    await inFreshUser((sql) => {
      const { r, events } = registry(sql);
      expect(r.register("phone", "Phone", "android", { type: "fcm", token: "t".repeat(20) })).toMatchObject({
        ok: true, device: { device_id: "phone", session_id: "s_1", push: { type: "fcm", failures: 0 }, connected: false },
      });
      expect(r.register("laptop", "", "")).toMatchObject({ ok: true, device: { device_id: "laptop", push: null, connected: true } });
      expect(events).toEqual(["subscribed"]);
      expect(r.update("phone", { push: null })).toMatchObject({ ok: true, device: { push: null } });
      expect(events).toEqual(["subscribed"]); // removing a subscription starts nothing
      expect(r.update("tablet", { name: "x" })).toMatchObject({ ok: false, code: "not_found" });
      expect(r.list().map((d) => d.device_id)).toEqual(["phone", "laptop"]);
    });
  });

  it("removing a device forgets it and closes its sockets", async () => {
    await inFreshUser((sql) => {
      const { r, events } = registry(sql);
      r.register("phone", "", "");
      expect(r.remove("phone")).toBe(true);
      expect(r.remove("phone")).toBe(false);
      expect(r.list()).toEqual([]);
      expect(events).toEqual(["close phone", "close phone"]);
    });
  });
});
