/**
 * Latency of LevelStorage.save (one synced LevelDB batch): 1 entry and 100 entries of 300 bytes,
 * median and p99. A benchmark, not a test: run it by hand on a quiet machine.
 *
 *   node_modules/.bin/node packages/authority/bench/storage.bench.ts [--saves 500]
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { Entry } from '@nodeledger/raft'
import { LevelStorage } from '../src/storage/index.ts'

const VALUE_BYTES = 300
const WARMUP_SAVES = 20
const savesArgument = process.argv.indexOf('--saves')
const SAVES = savesArgument >= 0 ? Number(process.argv[savesArgument + 1]) : 500

function percentile(sorted: readonly number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))]!
}

async function measure(entriesPerSave: number): Promise<{ medianMs: number; p99Ms: number; entriesPerSecond: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'nodeledger-storage-bench-'))
  const storage = await LevelStorage.open(dir)
  const data = new Uint8Array(VALUE_BYTES).map((_, i) => i & 0xff)
  const latenciesMs: number[] = []
  let next = 1
  const started = performance.now()
  try {
    for (let save = 0; save < WARMUP_SAVES + SAVES; save++) {
      const batch: Entry[] = []
      for (let i = 0; i < entriesPerSave; i++) batch.push({ index: next++, term: 1, type: 'normal', data })
      const before = performance.now()
      await storage.save({ hardState: { term: 1, vote: 1, commit: next - 1 }, entries: batch })
      if (save >= WARMUP_SAVES) latenciesMs.push(performance.now() - before)
    }
  } finally {
    await storage.close()
    await rm(dir, { recursive: true, force: true })
  }
  const elapsedSeconds = (performance.now() - started) / 1000
  latenciesMs.sort((a, b) => a - b)
  return {
    medianMs: percentile(latenciesMs, 0.5),
    p99Ms: percentile(latenciesMs, 0.99),
    entriesPerSecond: ((WARMUP_SAVES + SAVES) * entriesPerSave) / elapsedSeconds,
  }
}

for (const entriesPerSave of [1, 100]) {
  const result = await measure(entriesPerSave)
  process.stdout.write(
    `save of ${String(entriesPerSave).padStart(3)} x ${VALUE_BYTES} B: median ${result.medianMs.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms, ${Math.round(result.entriesPerSecond)} entries/s (${SAVES} saves)\n`,
  )
  process.stdout.write(
    `${JSON.stringify({ bench: 'storage.save', entriesPerSave, valueBytes: VALUE_BYTES, saves: SAVES, ...result })}\n`,
  )
}
