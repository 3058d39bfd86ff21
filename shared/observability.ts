/**
 * What every entry point (Worker handlers, object constructors) sets up before it works: where
 * counts go (Analytics Engine, or log lines with METRICS_LOG) and which log lines are printed
 * (LOG_LEVEL). Cheap when repeated.
 */
import { recordToAnalytics, type AnalyticsEnv } from "./analytics.js";
import { setLogLevel } from "./log.js";

export interface ObservabilityEnv extends AnalyticsEnv {
  /** The lowest log level printed: "debug", "info" (default), "warn", "error". */
  LOG_LEVEL?: string;
}

export function observe(env: ObservabilityEnv): void {
  setLogLevel(env.LOG_LEVEL);
  recordToAnalytics(env);
}
