import { describe, expect, it } from "vitest";
import { Tracker } from "../../bench/load/tracker.js";

const msg = (id: string, seq: number) => ({ client_msg_id: id, seq, channel_id: "c1" });

describe("bench tracker: lost, duplicated, out of order", () => {
  it("a clean exchange counts nothing and measures from the send time", () => {
    const t = new Tracker();
    t.sent("m1", "c1", ["bob"], undefined, 100);
    t.sent("m2", "c1", ["bob"], undefined, 101);
    t.onAck("m1", 1, 110);
    t.onAck("m2", 2, 111);
    t.onDeliver("bob", msg("m1", 1), 120);
    t.onDeliver("bob", msg("m2", 2), 121);
    const r = t.report();
    expect([r.lost, r.duplicated, r.outOfOrder, r.errors]).toEqual([0, 0, 0, 0]);
    expect([r.ack?.p50, r.deliver?.max]).toEqual([10, 20]);
    expect(t.outstanding).toEqual({ acks: 0, deliveries: 0 });
  });

  it("counts a missing ack and a missing delivery as lost, a second delivery as duplicated", () => {
    const t = new Tracker();
    t.sent("m1", "c1", ["bob", "carol"]);
    t.sent("m2", "c1", ["bob"]);
    t.onAck("m1", 1, performance.now());
    t.onDeliver("bob", msg("m1", 1), performance.now());
    t.onDeliver("bob", msg("m1", 1), performance.now());
    const r = t.report();
    expect(r.lost).toBe(3); // m2 unacked; m1 never reached carol; m2 never reached bob
    expect(r.duplicated).toBe(1);
  });

  it("flags a lower seq after a higher one as out of order, per device and channel", () => {
    const t = new Tracker();
    for (const id of ["a", "b"]) t.sent(id, "c1", ["bob", "carol"]);
    t.onDeliver("bob", msg("b", 2), 1);
    t.onDeliver("bob", msg("a", 1), 2);
    t.onDeliver("carol", msg("a", 1), 3);
    t.onDeliver("carol", msg("b", 2), 4);
    expect(t.report().outOfOrder).toBe(1);
  });

  it("a refused SEND is an error, not a loss, and is not waited for", async () => {
    const t = new Tracker();
    let settled = 0;
    t.sent("m1", "c1", ["bob"], () => settled++);
    t.onError("m1", "rate_limited", "slow down");
    expect(settled).toBe(1);
    expect(await t.whenIdle(0)).toBe(true);
    const r = t.report();
    expect([r.lost, r.errors]).toEqual([0, 1]);
  });

  it("an ack with status duplicate for a first-time SEND counts as duplicated", () => {
    const t = new Tracker();
    t.sent("m1", "c1", []);
    t.onAck("m1", 7, 1, "duplicate");
    expect(t.report().duplicated).toBe(1);
  });

  it("ignores traffic it did not send (system messages, earlier runs)", () => {
    const t = new Tracker();
    t.onDeliver("bob", msg("system", 1), 1);
    t.onAck("other", 1, 1);
    const r = t.report();
    expect([r.foreign, r.lost, r.duplicated]).toEqual([2, 0, 0]);
  });
});
