import { describe, expect, it } from "vitest";
import { analyticsEngineRecorder, canonicalTags } from "../../shared/analytics.js";
import { count, recordMetricsByDefault, recordMetricsWith, memoryRecorder } from "../../shared/metrics.js";

/** What the dataset was asked to write: the layout operators' queries depend on. */
function capturingDataset(): AnalyticsEngineDataset & { points: AnalyticsEngineDataPoint[] } {
  const points: AnalyticsEngineDataPoint[] = [];
  return { points, writeDataPoint(p) { if (p) points.push(p); } };
}

describe("Analytics Engine layout", () => {
  it("writes the metric name as index and blob1, sorted tags as blob2, the amount as double1", () => {
    const dataset = capturingDataset();
    const rec = analyticsEngineRecorder(dataset);
    rec.count("error", 1, { via: "rest", code: "not_found" });
    rec.count("deliveries", 12);
    expect(dataset.points).toEqual([
      { indexes: ["error"], blobs: ["error", "code=not_found;via=rest"], doubles: [1] },
      { indexes: ["deliveries"], blobs: ["deliveries", ""], doubles: [12] },
    ]);
  });

  it("orders tags the same way whatever order the caller wrote them in", () => {
    expect(canonicalTags({ b: "2", a: "1" })).toBe(canonicalTags({ a: "1", b: "2" }));
  });

  it("never takes over from a recorder a test installed", () => {
    const seen = memoryRecorder();
    const restore = recordMetricsWith(seen);
    const dataset = capturingDataset();
    recordMetricsByDefault(analyticsEngineRecorder(dataset));
    count("sends");
    restore();
    expect(seen.total("sends")).toBe(1);
    expect(dataset.points).toHaveLength(0);
  });
});
