/**
 * Reads and typing on their own (durable-objects/channel/signals.ts) over a channel's real member
 * table and a recording fan-out: the cursor moves forward only and is clamped to the log, a receipt
 * goes out only when shared and new, never in broadcast channels; typing passes the guard, and is
 * dropped under pressure. test/user/signals.test.ts runs both between devices.
 */
import { describe, expect, it } from "vitest";
import { Membership } from "../../durable-objects/channel/membership.js";
import { Signals } from "../../durable-objects/channel/signals.js";
import type { ChannelSignal, ChannelType } from "../../durable-objects/channel/types.js";
import type { ChannelRow } from "../../durable-objects/channel/views.js";
import { inFreshChannel } from "../helpers/object-sql.js";

function setup(sql: SqlStorage, type: ChannelType = "group") {
  // A members table needs its channel row (the member count and version live there).
  sql.exec("INSERT INTO channel (id, channel_id, type, name, created_by, created_at) VALUES (1, 'c_1', ?, 'T', 'u_a', 0)", type);
  const members = new Membership(sql);
  members.load();
  members.add("u_a", "owner", 1, 0);
  members.add("u_b", "member", 1, 0);
  const sent: ChannelSignal[] = [];
  const state = { pressure: false, now: 10_000 };
  const row = { channel_id: "c_1", type } as ChannelRow;
  const signals = new Signals({
    members,
    row: () => row,
    lastSeq: () => 10,
    requireMember: (userId) => members.require(userId),
    unread: (_userId, lastRead) => 10 - lastRead,
    underPressure: () => state.pressure,
    signal: (_from, event) => void sent.push(event),
    now: () => state.now,
  });
  return { signals, sent, state };
}

describe("Signals", () => {
  it("moves the read cursor forward only, up to the last seq, and sends a receipt only when shared and new", async () => {
    await inFreshChannel((sql) => {
      const { signals, sent } = setup(sql);
      expect(signals.markRead("u_b", 4, false)).toEqual({ ok: true, last_read_seq: 4, unread_count: 6, moved: true });
      expect(sent).toEqual([]);
      expect(signals.markRead("u_b", 2, true)).toEqual({ ok: true, last_read_seq: 4, unread_count: 6, moved: false });
      expect(sent).toEqual([{ kind: "read", channel_id: "c_1", user_id: "u_b", up_to_seq: 4 }]); // turned on: shares where they are
      expect(signals.markRead("u_b", 99, true)).toMatchObject({ last_read_seq: 10, unread_count: 0 });
      expect(signals.markRead("u_b", 99, true)).toMatchObject({ moved: false });
      expect(sent.map((e) => e.kind === "read" && e.up_to_seq)).toEqual([4, 10]);
      expect(signals.markRead("u_stranger", 1, true)).toMatchObject({ ok: false, code: "not_found" });
    });
  });

  it("broadcast channels send no receipts and no typing", async () => {
    await inFreshChannel((sql) => {
      const { signals, sent } = setup(sql, "broadcast");
      expect(signals.markRead("u_b", 5, true)).toMatchObject({ ok: true, last_read_seq: 5 });
      expect(signals.typing("u_b", "phone", true)).toEqual({ ok: true });
      expect(sent).toEqual([]);
    });
  });

  it("typing goes out on change through the guard, and is dropped while the fan-out lags", async () => {
    await inFreshChannel((sql) => {
      const { signals, sent, state } = setup(sql);
      signals.typing("u_a", "phone", true);
      signals.typing("u_a", "phone", true); // a repeat
      state.pressure = true;
      state.now += 60_000;
      signals.typing("u_b", "laptop", true);
      expect(sent).toEqual([{ kind: "typing", channel_id: "c_1", user_id: "u_a", device_id: "phone", is_typing: true }]);
      expect(signals.typing("u_stranger", "x", true)).toMatchObject({ ok: false, code: "not_found" });
    });
  });
});
