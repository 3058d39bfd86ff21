/**
 * Product metrics to Workers Analytics Engine: every `count()` (shared/metrics.ts) becomes one
 * data point in the METRICS dataset. The layout is fixed so operators' queries stay valid:
 *
 *   index1   the metric name (sampling key: each metric is sampled on its own)
 *   blob1    the metric name
 *   blob2    its tags, `key=value` pairs sorted by key and joined with `;` ("" for none)
 *   double1  the amount counted
 *
 * `SELECT blob2, SUM(_sample_interval * double1) FROM edgechat_metrics WHERE blob1 = 'error'
 * GROUP BY blob2` gives errors by code (docs/operations.md has the rest). Writes never block and
 * never throw into a request; locally (wrangler dev, tests) the platform drops them, which is why
 * tests read counts through `memoryRecorder()` instead.
 */
import { log } from "./log.js";
import { recordMetricsByDefault, type MetricRecorder, type MetricTags } from "./metrics.js";

/** The binding as the Worker sees it; absent when an operator removed the dataset. */
export interface AnalyticsEnv {
  METRICS?: AnalyticsEngineDataset;
  /**
   * "1": every count is also a log line (`{"event":"metric","metric":name,"n":n,"tags":{...}}`)
   * instead of going to Analytics Engine. For local measurements under `wrangler dev`, where the
   * platform drops Analytics Engine writes and tests cannot install a recorder: the end-to-end
   * broadcast test and bench (g) count a post's RPCs and writes from these lines (with
   * COUNT_SQL_WRITES = "1"). Not a production setting: one line per statement.
   */
  METRICS_LOG?: string;
}

export function canonicalTags(tags: MetricTags | undefined): string {
  if (!tags) return "";
  return Object.keys(tags).sort().map((k) => `${k}=${tags[k]}`).join(";");
}

export function analyticsEngineRecorder(dataset: AnalyticsEngineDataset): MetricRecorder {
  return {
    count(name, n, tags) {
      dataset.writeDataPoint({ indexes: [name], blobs: [name, canonicalTags(tags)], doubles: [n] });
    },
  };
}

/** Every count as a log line (METRICS_LOG = "1"), printed whatever LOG_LEVEL says. */
export function logRecorder(): MetricRecorder {
  return {
    count(name, n, tags) {
      log("info", "metric", tags ? { metric: name, n, tags } : { metric: name, n });
    },
  };
}

/** Where counts go (through shared/observability.ts `observe`); cheap when repeated. */
export function recordToAnalytics(env: AnalyticsEnv): void {
  if (env.METRICS_LOG === "1") recordMetricsByDefault(logRecorder());
  else if (env.METRICS) recordMetricsByDefault(analyticsEngineRecorder(env.METRICS));
}
