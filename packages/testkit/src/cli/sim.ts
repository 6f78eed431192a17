/**
 * `pnpm sim --seeds N --from S`: run seeds S..S+N-1 of the deterministic Raft simulator, on worker
 * threads (one per core). A failing seed prints its violations, the tail of its trace and the one
 * command that replays it. The last line is always `seeds=N violations=V seeds_per_s=R`.
 * `pnpm sim --seed S --trace` replays one seed and prints its whole trace.
 */
import { Command } from 'commander'
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { runSeed } from '../sim/simulation.ts'
import type { SimulationResult } from '../sim/simulation.ts'

const program = new Command()
  .name('sim')
  .description('run the deterministic Raft simulator over a range of seeds')
  .option('--seeds <count>', 'how many seeds to run', (value) => parsePositive(value, '--seeds'), 1000)
  .option('--from <seed>', 'first seed', (value) => parseNonNegative(value, '--from'), 1)
  .option('--seed <seed>', 'replay a single seed (implies --seeds 1)', (value) => parseNonNegative(value, '--seed'))
  .option('--trace', 'print the whole trace of each seed (use with --seed)', false)
  .option(
    '--workers <count>',
    'worker threads',
    (value) => parsePositive(value, '--workers'),
    Math.max(1, Math.min(availableParallelism(), 8)),
  )
  .option('--quiet', 'only the final line', false)
  .parse()

const options = program.opts<{
  seeds: number
  from: number
  seed?: number
  trace: boolean
  workers: number
  quiet: boolean
}>()
const first = options.seed ?? options.from
const count = options.seed !== undefined ? 1 : options.seeds

function parsePositive(value: string, flag: string): number {
  const parsed = Number(value)
  if (!Number.isSafeInteger(parsed) || parsed <= 0) throw new Error(`${flag} takes a positive integer (got "${value}")`)
  return parsed
}

function parseNonNegative(value: string, flag: string): number {
  const parsed = Number(value)
  if (!Number.isSafeInteger(parsed) || parsed < 0)
    throw new Error(`${flag} takes a non-negative integer (got "${value}")`)
  return parsed
}

function report(result: SimulationResult): void {
  if (result.violations.length === 0) return
  console.log(`\nseed ${result.seed} FAILED (${result.violations.length} violation(s)); trace hash ${result.traceHash}`)
  for (const violation of result.violations) console.log(`  violation: ${violation}`)
  console.log('  trace tail:')
  for (const line of result.traceTail.slice(-40)) console.log(`    ${line}`)
  console.log(`  replay: pnpm sim --seed ${result.seed} --trace`)
}

const startedMs = performance.now()
let violations = 0
let failedSeeds = 0
let done = 0

if (count === 1 || options.workers === 1) {
  for (let seed = first; seed < first + count; seed++) {
    const result = runSeed(seed, { keepTrace: options.trace })
    if (options.trace) for (const line of result.trace) console.log(line)
    if (options.trace) console.log(`trace hash ${result.traceHash}; stats ${JSON.stringify(result.stats)}`)
    violations += result.violations.length
    if (result.violations.length > 0) failedSeeds++
    report(result)
    done++
  }
  finish()
} else {
  const workerCount = Math.min(options.workers, count)
  const workerUrl = new URL('./sim-worker.ts', import.meta.url)
  let nextSeed = first
  let running = workerCount
  for (let w = 0; w < workerCount; w++) {
    const worker = new Worker(workerUrl)
    const feed = (): void => {
      if (nextSeed >= first + count) {
        void worker.terminate()
        running--
        if (running === 0) finish()
        return
      }
      const batch: number[] = []
      while (batch.length < 50 && nextSeed < first + count) batch.push(nextSeed++)
      worker.postMessage(batch)
    }
    worker.on('message', (results: SimulationResult[]) => {
      for (const result of results) {
        violations += result.violations.length
        if (result.violations.length > 0) failedSeeds++
        report(result)
        done++
      }
      if (!options.quiet && process.stderr.isTTY)
        process.stderr.write(`\r${done}/${count} seeds, ${violations} violations`)
      feed()
    })
    worker.on('error', (error) => {
      console.error(`worker failed: ${error.stack ?? error.message}`)
      process.exit(2)
    })
    feed()
  }
}

function finish(): void {
  const seconds = (performance.now() - startedMs) / 1000
  if (process.stderr.isTTY && !options.quiet) process.stderr.write('\n')
  if (failedSeeds > 0) console.log(`failed seeds: ${failedSeeds}`)
  console.log(`seeds=${done} violations=${violations} seeds_per_s=${(done / seconds).toFixed(1)}`)
  process.exitCode = violations > 0 ? 1 : 0
}
