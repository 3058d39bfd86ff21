import { describe, expect, it } from "vitest";
import { BACKOFF_CAP_MS, backoffDelay, goAwayDelay } from "../../client/backoff.js";

const LOW = () => 0;
const MID = () => 0.5;
const HIGH = () => 0.999999;

describe("backoffDelay", () => {
  it("starts at 1 s and doubles per attempt (no jitter at the midpoint)", () => {
    expect([0, 1, 2, 3, 4, 5].map((a) => backoffDelay(a, MID))).toEqual([1000, 2000, 4000, 8000, 16000, 32000]);
  });

  it("stays within ×0.5 … ×1.5 of the base for every attempt", () => {
    for (let attempt = 0; attempt < 40; attempt++) {
      const base = Math.min(BACKOFF_CAP_MS, 1000 * 2 ** attempt);
      for (const random of [LOW, MID, HIGH, () => 0.25, () => 0.75]) {
        const d = backoffDelay(attempt, random);
        expect(d).toBeGreaterThanOrEqual(base * 0.5);
        expect(d).toBeLessThanOrEqual(base * 1.5);
      }
    }
  });

  it("caps the base at 60 s, whatever the attempt", () => {
    expect(backoffDelay(6, MID)).toBe(60_000);
    expect(backoffDelay(1000, MID)).toBe(60_000);
    expect(backoffDelay(1000, LOW)).toBe(30_000);
    expect(backoffDelay(1000, HIGH)).toBeLessThanOrEqual(90_000);
  });

  it("spreads clients: different random draws give different delays", () => {
    const delays = new Set([0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9].map((r) => backoffDelay(3, () => r)));
    expect(delays.size).toBe(9);
  });

  it("tolerates a broken random source", () => {
    expect(backoffDelay(0, () => Number.NaN)).toBe(1000);
    expect(backoffDelay(0, () => 7)).toBe(1500);
    expect(backoffDelay(-3, MID)).toBe(1000);
  });
});

describe("goAwayDelay", () => {
  it("waits at least what the server asked, plus up to half of it", () => {
    expect(goAwayDelay(10_000, LOW)).toBe(10_000);
    expect(goAwayDelay(10_000, MID)).toBe(12_500);
    expect(goAwayDelay(10_000, HIGH)).toBeLessThanOrEqual(15_000);
  });

  it("jitters by at least 1 s even when told to come back at once", () => {
    expect(goAwayDelay(0, LOW)).toBe(0);
    expect(goAwayDelay(0, HIGH)).toBeGreaterThan(990);
    expect(goAwayDelay(0, HIGH)).toBeLessThanOrEqual(1000);
  });
});
