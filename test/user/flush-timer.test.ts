import { describe, expect, it } from "vitest";
import { FlushTimer } from "../../durable-objects/user/flush-timer.js";

describe("FlushTimer", () => {
  it("flushes once when due, looks again when the due time moved later, and does nothing when nothing waits", async () => {
    let due: number | undefined = Date.now() + 20;
    const flushed: number[] = [];
    let moved = false;
    let looks = 0;
    const timer = new FlushTimer(() => { looks++; return due; }, () => { flushed.push(Date.now()); due = undefined; });
    timer.askBy(due);
    timer.askBy(Date.now() + 1); // a second ask while one is pending changes nothing
    // Before the first firing the flush moves later (more changes came): the timer looks again.
    setTimeout(() => { if (due !== undefined) { due += 30; moved = true; } }, 5);
    while (flushed.length === 0) await new Promise((r) => setTimeout(r, 10));
    expect(moved).toBe(true);
    expect(flushed).toHaveLength(1);
    // Nothing waiting when it fires: it looks, and does not flush.
    const before = looks;
    timer.askBy(Date.now());
    while (looks === before) await new Promise((r) => setTimeout(r, 5));
    expect(flushed).toHaveLength(1);
  });
});
