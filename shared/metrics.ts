/**
 * Counters for product metrics and for the work an operation costs (RPCs made, rows written),
 * recorded through one seam. Objects call `count()`; where the points go is decided once:
 * nowhere by default, Workers Analytics Engine in production (wired at the edge), an in-memory
 * recorder in tests. Tests run in the same isolate as the objects (vitest-pool-workers), so
 * `recordMetricsWith()` there sees every count the objects make.
 *
 * @example
 * count("fanout.rpc", batchTargets.length, { tier: "direct" });
 * // in a test:
 * const seen = memoryRecorder(); const restore = recordMetricsWith(seen);
 * ...; expect(seen.total("fanout.rpc")).toBe(2); restore();
 */
export type MetricTags = Record<string, string>;

export interface MetricRecorder {
  count(name: string, n: number, tags?: MetricTags): void;
}

const noRecorder: MetricRecorder = { count() {} };
let recorder: MetricRecorder = noRecorder;

/** Adds `n` (default 1) to the counter `name`. Never throws: metrics must not break a request. */
export function count(name: string, n = 1, tags?: MetricTags): void {
  try {
    recorder.count(name, n, tags);
  } catch {
    // A broken recorder loses a point, nothing else.
  }
}

/**
 * Where counts go when nobody chose: the entry points call this with Analytics Engine on every
 * wake (shared/analytics.ts). It never replaces a recorder a test or a benchmark installed.
 */
export function recordMetricsByDefault(next: MetricRecorder): void {
  if (recorder === noRecorder) recorder = next;
}

/** Routes every count to `next`; returns a function that restores the previous recorder. */
export function recordMetricsWith(next: MetricRecorder): () => void {
  const previous = recorder;
  recorder = next;
  return () => { recorder = previous; };
}

export interface MemoryRecorder extends MetricRecorder {
  readonly points: { name: string; n: number; tags?: MetricTags }[];
  /** Sum of `name`, optionally only points whose tags include `where`. */
  total(name: string, where?: MetricTags): number;
  reset(): void;
}

/** A recorder that keeps every point in memory (tests, benchmarks' debug endpoints). */
export function memoryRecorder(): MemoryRecorder {
  const points: { name: string; n: number; tags?: MetricTags }[] = [];
  return {
    points,
    count(name, n, tags) { points.push(tags ? { name, n, tags } : { name, n }); },
    total(name, where) {
      return points
        .filter((p) => p.name === name && (!where || Object.entries(where).every(([k, v]) => p.tags?.[k] === v)))
        .reduce((sum, p) => sum + p.n, 0);
    },
    reset() { points.length = 0; },
  };
}
