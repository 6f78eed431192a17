/**
 * Summaries of latency samples. Percentiles use the nearest-rank method on the sorted samples: with
 * 20 failover trials p99 is the largest one, which is what "p99" honestly means at that count.
 */

export interface LatencySummary {
  count: number
  p50Ms: number
  p90Ms: number
  p99Ms: number
  /** p99.9: with fewer than 1000 samples, the largest or nearly (nearest rank). */
  p999Ms: number
  maxMs: number
  meanMs: number
}

/** The percentiles the charts draw, in order, with their labels. */
export const CHART_PERCENTILES = [
  ['p50Ms', 'p50'],
  ['p90Ms', 'p90'],
  ['p99Ms', 'p99'],
  ['p999Ms', 'p99.9'],
  ['maxMs', 'max'],
] as const

/** Nearest-rank percentile of already sorted values (`fraction` in (0, 1]). */
export function percentileOfSorted(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.ceil(fraction * sorted.length)
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!
}

export function summarize(samplesMs: readonly number[]): LatencySummary {
  const sorted = [...samplesMs].sort((a, b) => a - b)
  const total = sorted.reduce((sum, value) => sum + value, 0)
  return {
    count: sorted.length,
    p50Ms: round(percentileOfSorted(sorted, 0.5)),
    p90Ms: round(percentileOfSorted(sorted, 0.9)),
    p99Ms: round(percentileOfSorted(sorted, 0.99)),
    p999Ms: round(percentileOfSorted(sorted, 0.999)),
    maxMs: round(sorted.length === 0 ? Number.NaN : sorted[sorted.length - 1]!),
    meanMs: round(sorted.length === 0 ? Number.NaN : total / sorted.length),
  }
}

/** Three significant decimals are more than a benchmark on a shared 2-core machine can claim. */
export function round(value: number, decimals = 3): number {
  if (!Number.isFinite(value)) return value
  const factor = 10 ** decimals
  return Math.round(value * factor) / factor
}

/** Counts, settings and conditions, not measurements: their ratio says nothing. */
const NOT_RATIOS = new Set(['count', 'errors', 'inFlight', 'durationS', 'trials', 'replicas', 'loadAvg1m', 'settledS'])

/**
 * nodeledger divided by etcd for every metric both sides have. A ratio above 1 is better for
 * throughput and worse for latency; the table says which.
 */

export function ratios(ours: Record<string, unknown>, theirs: Record<string, unknown>): Record<string, number> {
  const result: Record<string, number> = {}
  for (const [metric, value] of Object.entries(ours)) {
    const other = theirs[metric]
    if (typeof value !== 'number' || typeof other !== 'number') continue
    if (!Number.isFinite(value) || !Number.isFinite(other) || other === 0) continue
    if (NOT_RATIOS.has(metric) || metric.endsWith('Trials')) continue
    result[metric] = round(value / other, 3)
  }
  return result
}

/** Histogram buckets of a failover gap: upper bounds in ms (the last bucket is open). */
export const GAP_BUCKETS_MS = [50, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000, 3000] as const

/** Counts of `values` per bucket of `bounds` (upper bounds, exclusive), plus one open bucket. */
export function histogram(values: readonly number[], bounds: readonly number[]): number[] {
  const counts = new Array<number>(bounds.length + 1).fill(0)
  for (const value of values) {
    const bucket = bounds.findIndex((bound) => value < bound)
    counts[bucket === -1 ? bounds.length : bucket]!++
  }
  return counts
}

/** `50-100`, `3000+`: the label of bucket `index` of `bounds`. */
export function bucketLabel(bounds: readonly number[], index: number): string {
  if (index >= bounds.length) return `${bounds[bounds.length - 1]}+`
  return `${index === 0 ? 0 : bounds[index - 1]}-${bounds[index]}`
}
