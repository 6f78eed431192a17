/**
 * Bucket upper bounds, in seconds, for latencies that run from tens of microseconds (applying one
 * entry) through milliseconds (an fsync, an API request) to seconds (a request that times out at
 * 5 s). Fourteen buckets: enough to read a p99 to within a factor of 2.5, few enough that a
 * histogram per op stays a handful of series.
 */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5,
]

/** At most this many buckets per histogram: observe() scans them, and each is one series per label set. */
export const HISTOGRAM_BUCKETS_MAX = 32

/**
 * A histogram's state as plain numbers, observed on the hot path without allocation, label
 * hashing or string building (prom-client's own Histogram.observe does all three per call): a
 * bounded linear scan of the bounds and three increments. prom-client renders it at scrape time
 * (prometheus.ts). Counts are per bucket, not cumulative; the last slot counts values above the
 * last bound (+Inf).
 */
export class HistogramCells {
  readonly bounds: readonly number[]
  readonly counts: Float64Array
  sum = 0
  count = 0

  constructor(bounds: readonly number[] = LATENCY_BUCKETS_SECONDS) {
    if (bounds.length === 0 || bounds.length > HISTOGRAM_BUCKETS_MAX)
      throw new RangeError(`a histogram has 1 to ${HISTOGRAM_BUCKETS_MAX} buckets (got ${bounds.length})`)
    for (let i = 0; i < bounds.length; i++) {
      const bound = bounds[i]!
      if (!Number.isFinite(bound) || (i > 0 && bound <= bounds[i - 1]!))
        throw new RangeError(`histogram bounds must be finite and increasing (got ${bounds.join(', ')})`)
    }
    this.bounds = bounds
    this.counts = new Float64Array(bounds.length + 1)
  }

  /** One observation, in the histogram's unit (seconds for latencies). NaN and infinities are ignored. */
  observe(value: number): void {
    if (!Number.isFinite(value)) return
    const bounds = this.bounds
    let slot = 0
    while (slot < bounds.length && value > bounds[slot]!) slot++
    this.counts[slot]! += 1
    this.sum += value
    this.count += 1
  }

  /** Milliseconds in, seconds kept: what performance.now() differences and the driver's events give. */
  observeMs(valueMs: number): void {
    this.observe(valueMs / 1000)
  }

  /** The cumulative count at or below each bound, then +Inf (= count): the Prometheus `_bucket` values. */
  cumulative(): number[] {
    const out: number[] = []
    let running = 0
    for (const count of this.counts) {
      running += count
      out.push(running)
    }
    return out
  }
}
