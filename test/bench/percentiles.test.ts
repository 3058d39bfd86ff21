import { describe, expect, it } from "vitest";
import { percentile, percentileOfSorted, sortSamples, summarize } from "../../bench/load/percentiles.js";

describe("bench percentiles (nearest rank over every sample)", () => {
  it("reads p50/p90/p99/max off 1..100", () => {
    const samples = Array.from({ length: 100 }, (_, i) => 100 - i); // unsorted on purpose
    expect(summarize(samples)).toEqual({ count: 100, min: 1, p50: 50, p90: 90, p99: 99, max: 100 });
  });

  it("returns a real sample, never an interpolation", () => {
    expect(percentile([10, 20], 50)).toBe(10);
    expect(percentile([10, 20], 51)).toBe(20);
    expect(percentile([1, 2, 3, 4], 75)).toBe(3);
  });

  it("handles one sample and the extremes", () => {
    expect(summarize([7])).toEqual({ count: 1, min: 7, p50: 7, p90: 7, p99: 7, max: 7 });
    expect(percentile([3, 1, 2], 0)).toBe(1);
    expect(percentile([3, 1, 2], 100)).toBe(3);
  });

  it("sorts numerically, not as strings", () => {
    expect(Array.from(sortSamples([10, 9, 100, 1.5]))).toEqual([1.5, 9, 10, 100]);
    expect(percentile([10, 9, 100, 1.5], 99)).toBe(100);
  });

  it("a single slow outlier shows in max and p99 of a small set, not in p50", () => {
    const s = summarize([...Array.from({ length: 99 }, () => 2), 500])!;
    expect([s.p50, s.p90, s.p99, s.max]).toEqual([2, 2, 2, 500]);
    const t = summarize([...Array.from({ length: 98 }, () => 2), 500, 500])!;
    expect(t.p99).toBe(500);
  });

  it("refuses what has no answer", () => {
    expect(summarize([])).toBeUndefined();
    expect(() => percentileOfSorted([], 50)).toThrow(RangeError);
    expect(() => percentile([1], 101)).toThrow(RangeError);
    expect(() => percentile([1, Number.NaN], 50)).toThrow(RangeError);
  });
});
