/**
 * Push for unacked live deliveries, the bookkeeping on its own with a controlled clock: a message
 * no device confirms within the deadline comes out once; an ack (or a read) that covers it
 * cancels it; older redeliveries open nothing.
 */
import { describe, expect, it } from "vitest";
import { AckDeadlines, pushAckDeadlineFromEnv } from "../../durable-objects/user/ack-deadline.js";
import type { MissedMessage } from "../../durable-objects/user/push-coalesce.js";

const m = (channelId: string, seq: number): MissedMessage => ({
  channelId, channelName: "Team", channelType: "group", seq, senderUserId: "u_bob", senderName: "Bob", preview: `hi ${seq}`, sentAt: seq,
});

describe("AckDeadlines", () => {
  it("an unacked delivery comes out once at its deadline; an ack in time cancels it", () => {
    const clock = { now: 1000 };
    const d = new AckDeadlines(10_000, () => clock.now);
    expect(d.delivered([m("c_a", 5), m("c_a", 6)])).toBe(11_000);
    expect(d.delivered([m("c_b", 2)])).toBe(11_000);
    clock.now = 2000;
    expect(d.delivered([m("c_a", 7)])).toBeUndefined(); // joins the open entry: no new wake
    d.confirm("c_b", 2);
    expect(d.nextDue()).toBe(11_000);
    clock.now = 10_999;
    expect(d.due()).toEqual([]);
    clock.now = 11_000;
    expect(d.due().map((x) => [x.channelId, x.seq])).toEqual([["c_a", 5], ["c_a", 6], ["c_a", 7]]);
    expect(d.due()).toEqual([]);
    expect(d.nextDue()).toBeUndefined();
  });

  it("a partial ack keeps only what it did not cover; confirmed seqs open nothing again", () => {
    const clock = { now: 0 };
    const d = new AckDeadlines(500, () => clock.now);
    d.delivered([m("c_a", 1), m("c_a", 2), m("c_a", 3)]);
    d.confirm("c_a", 2);
    clock.now = 500;
    expect(d.due().map((x) => x.seq)).toEqual([3]);
    d.confirm("c_a", 3);
    expect(d.delivered([m("c_a", 3)])).toBeUndefined(); // a retried delivery of what was acked
    expect(d.size).toBe(0);
  });

  it("PUSH_ACK_DEADLINE_MS: default, explicit, 0 turns it off", () => {
    expect(pushAckDeadlineFromEnv({})).toBe(5_000);
    // Never past the point where an idle object may hibernate and forget what it waits for.
    expect(pushAckDeadlineFromEnv({ PUSH_ACK_DEADLINE_MS: "60000" })).toBe(8_000);
    expect(pushAckDeadlineFromEnv({ PUSH_ACK_DEADLINE_MS: "2500" })).toBe(2500);
    const off = new AckDeadlines(pushAckDeadlineFromEnv({ PUSH_ACK_DEADLINE_MS: "0" }));
    expect(off.enabled).toBe(false);
    expect(off.delivered([m("c_a", 1)])).toBeUndefined();
    expect(pushAckDeadlineFromEnv({ PUSH_ACK_DEADLINE_MS: "soon" })).toBe(5_000);
  });
});
