/**
 * Latency summaries from every sample, exactly: the samples are sorted and the percentile is read
 * off by nearest rank. No buckets, no averages, no interpolation, so a reported p99 is a latency
 * some message really had. Pure (no Node or Workers APIs): unit-tested in workerd.
 *
 * @example
 * const s = summarize([5, 1, 4, 2, 3]); // { count: 5, min: 1, p50: 3, p90: 5, p99: 5, max: 5 }
 */

export interface Summary {
  count: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** The samples in ascending numeric order, as a new array (NaN is refused: it has no rank). */
export function sortSamples(samples: readonly number[]): Float64Array {
  const sorted = Float64Array.from(samples);
  for (const v of sorted) if (Number.isNaN(v)) throw new RangeError("A latency sample is NaN.");
  return sorted.sort();
}

/**
 * Nearest-rank percentile of ascending `sorted` samples: the smallest sample such that at least
 * `p` percent of all samples are ≤ it (rank ⌈p/100 · n⌉). p = 0 is the minimum, p = 100 the maximum.
 */
export function percentileOfSorted(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) throw new RangeError("No samples: a percentile of nothing is undefined.");
  if (!(p >= 0 && p <= 100)) throw new RangeError(`A percentile is between 0 and 100; got ${p}.`);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.max(0, rank - 1)]!;
}

export function percentile(samples: readonly number[], p: number): number {
  return percentileOfSorted(sortSamples(samples), p);
}

/** p50/p90/p99/max of all samples; undefined when there are none. */
export function summarize(samples: readonly number[]): Summary | undefined {
  if (samples.length === 0) return undefined;
  const sorted = sortSamples(samples);
  return {
    count: sorted.length,
    min: sorted[0]!,
    p50: percentileOfSorted(sorted, 50),
    p90: percentileOfSorted(sorted, 90),
    p99: percentileOfSorted(sorted, 99),
    max: sorted[sorted.length - 1]!,
  };
}
