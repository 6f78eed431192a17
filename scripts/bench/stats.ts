/**
 * Summaries of latency samples. Percentiles use the nearest-rank method on the sorted samples: with
 * 20 failover trials p99 is the largest one, which is what "p99" honestly means at that count.
 */

export interface LatencySummary {
  count: number
  p50Ms: number
  p99Ms: number
  maxMs: number
  meanMs: number
}

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
    p99Ms: round(percentileOfSorted(sorted, 0.99)),
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

/**
 * nodeledger divided by etcd for every metric both sides have. A ratio above 1 is better for
 * throughput and worse for latency; the table says which.
 */
/** Counts and settings, not measurements: their ratio says nothing. */
const NOT_RATIOS = new Set(['count', 'errors', 'inFlight', 'durationS', 'trials'])

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
