/** Push coalescing as pure decisions over a controlled clock (durable-objects/user/push-coalesce.ts). */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { dueAt, onMissed, onRead, onWindowEnd, type MissedMessage, type PushWindow } from "../../durable-objects/user/push-coalesce.js";

const W = 30_000;
const msg = (seq: number, sender = "u_bob"): MissedMessage => ({
  channelId: "c_1", channelName: "Team", channelType: "group", seq, senderUserId: sender, senderName: sender, preview: `text ${seq}`, sentAt: seq,
});

describe("push coalescing", () => {
  it("pushes the first message at once, merges the rest into one update at the window's end", () => {
    let d = onMissed(undefined, msg(1), 0, W);
    expect(d).toMatchObject({ push: true, window: { count: 1, pending: 0, pushedSeq: 1, endsAt: W } });
    d = onMissed(d.window, msg(2, "u_carol"), 10_000, W);
    expect(d).toMatchObject({ push: false, window: { count: 2, pending: 1 } });
    d = onMissed(d.window, msg(3), 29_999, W);
    expect(d).toMatchObject({ push: false, window: { count: 3, pending: 2 } });
    expect(dueAt(d.window!)).toBe(W);
    expect(onWindowEnd(d.window!, W - 1, W).push).toBe(false); // early alarm: not yet
    d = onWindowEnd(d.window!, W, W);
    expect(d).toMatchObject({ push: true, window: { count: 3, pending: 0, pushedSeq: 3, endsAt: 2 * W, last: { seq: 3, senderUserId: "u_bob" } } });
    expect(dueAt(d.window!)).toBeUndefined();
  });

  it("keeps one push per window after an update: the next message waits for the next window's end", () => {
    let d = onMissed(undefined, msg(1), 0, W);
    d = onMissed(d.window, msg(2), 1_000, W);
    d = onWindowEnd(d.window!, W, W); // update at 30 s opens the window until 60 s
    d = onMissed(d.window, msg(3), W + 1_000, W);
    expect(d).toMatchObject({ push: false, window: { pending: 1, count: 3 } });
    d = onMissed(d.window, msg(4), 2 * W + 1, W); // the window is over: at once again
    expect(d).toMatchObject({ push: true, window: { count: 4, pending: 0, pushedSeq: 4 } });
  });

  it("ignores a retried delivery (seq already seen)", () => {
    const d = onMissed(undefined, msg(5), 0, W);
    expect(onMissed(d.window, msg(5), 10, W)).toEqual({ window: d.window, push: false, clear: false });
    expect(onMissed(d.window, msg(4), 10, W).window).toBe(d.window);
  });

  it("clears a standing notification when everything missed is read; a partial read changes nothing", () => {
    let d = onMissed(undefined, msg(1), 0, W);
    d = onMissed(d.window, msg(2), 10, W);
    expect(onRead(d.window!, 1)).toEqual({ window: d.window, push: false, clear: false });
    expect(onRead(d.window!, 2)).toEqual({ window: undefined, push: false, clear: true });
  });

  it("a read before anything was pushed forgets the window without a clear", () => {
    const w: PushWindow = { channelId: "c_1", endsAt: W, pushedSeq: 0, count: 1, pending: 1, last: msg(1) };
    expect(onRead(w, 1)).toEqual({ window: undefined, push: false, clear: false });
  });

  it("property: pushes of a channel are at least a window apart, and the last one covers the newest message", () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 5 * W }), { minLength: 1, maxLength: 40 }), (times) => {
      const arrivals = [...times].sort((a, b) => a - b);
      let window: PushWindow | undefined;
      const pushes: { at: number; seq: number; count: number }[] = [];
      const runAlarms = (until: number) => {
        for (let due = window && dueAt(window); window && due !== undefined && due <= until; due = window && dueAt(window)) {
          const d = onWindowEnd(window, due, W);
          window = d.window;
          if (d.push) pushes.push({ at: due, seq: window!.last.seq, count: window!.count });
        }
      };
      arrivals.forEach((t, i) => {
        runAlarms(t);
        const d = onMissed(window, msg(i + 1), t, W);
        window = d.window;
        if (d.push) pushes.push({ at: t, seq: i + 1, count: window!.count });
      });
      runAlarms(Infinity);
      for (let i = 1; i < pushes.length; i++) expect(pushes[i]!.at - pushes[i - 1]!.at).toBeGreaterThanOrEqual(W);
      expect(pushes.at(-1)).toMatchObject({ seq: arrivals.length, count: arrivals.length });
      expect(pushes[0]!.at).toBe(arrivals[0]); // the first goes at once
    }));
  });
});
