import { describe, expect, it } from "vitest";
import { count, memoryRecorder, recordMetricsWith } from "../../shared/metrics.js";

describe("metrics seam", () => {
  it("counts into the recorder in place and stops when restored", () => {
    const seen = memoryRecorder();
    const restore = recordMetricsWith(seen);
    count("fanout.rpc", 3, { tier: "direct" });
    count("fanout.rpc", 2, { tier: "relay" });
    count("sql.write");
    restore();
    count("fanout.rpc", 100);
    expect(seen.total("fanout.rpc")).toBe(5);
    expect(seen.total("fanout.rpc", { tier: "relay" })).toBe(2);
    expect(seen.total("sql.write")).toBe(1);
  });

  it("never lets a broken recorder throw into the caller", () => {
    const restore = recordMetricsWith({ count() { throw new Error("boom"); } });
    expect(() => count("x")).not.toThrow();
    restore();
  });
});
