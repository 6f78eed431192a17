import type { Entry } from './types.ts'

/** Fixed per-entry overhead counted against byte limits (index, term, type on the wire). */
const ENTRY_OVERHEAD_BYTES = 24

export function entrySizeBytes(entry: Entry): number {
  return entry.data.byteLength + ENTRY_OVERHEAD_BYTES
}

export function entriesSizeBytes(entries: readonly Entry[]): number {
  let total = 0
  for (const entry of entries) total += entrySizeBytes(entry)
  return total
}

/** Keep a prefix of `entries` within `bytesMax`, always at least one entry. */
export function limitEntriesSize(entries: readonly Entry[], bytesMax: number): Entry[] {
  let bytes = 0
  let count = 0
  for (const entry of entries) {
    bytes += entrySizeBytes(entry)
    if (count > 0 && bytes > bytesMax) break
    count++
  }
  return entries.slice(0, count)
}
