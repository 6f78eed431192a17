/**
 * `pnpm bench`: the same workloads against a nodeledger cluster and a 3-member etcd cluster, one
 * after the other in one run, on loopback, both fsyncing. Prints a table and one JSON line per
 * workload (nodeledger, etcd, and their ratio) on stdout, progress on stderr, and writes the lot
 * to .run/bench/<timestamp>.json.
 *
 *   pnpm bench -- --only seq,conc,reads,failover --trials 20 --duration-s 10 --no-etcd
 *   pnpm bench -- --only gossip,catchup --no-etcd --gossip-workers 50,100,200 --catchup-trials 5
 *
 * `gossip` and `catchup` measure workers (NodeEventTrackers), which etcd has no counterpart of:
 * their rows have nodeledger figures only.
 *
 * A benchmark, not a test: it fails only when a system cannot be started or stays broken.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { EtcdCluster, EtcdTarget, ETCD_TIMING_DEFAULT, etcdVersion, findEtcdBinary } from './etcd.ts'
import type { EtcdTiming } from './etcd.ts'
import { DeltaFactory, PEER_POOL_SIZE_DEFAULT, generatePeers } from './payload.ts'
import { Progress } from './progress.ts'
import { ratios, round } from './stats.ts'
import type { BenchTarget, Cleanup, SystemName } from './target.ts'
import {
  KeyPool,
  concurrentWrites,
  describe,
  failover,
  linearizableReads,
  sequentialWrites,
  HEALTHY_TIMEOUT_MS,
} from './workloads.ts'
import type { FailoverResult, ThroughputResult } from './workloads.ts'
import type { CatchupResult, GossipResult } from './worker-workloads.ts'
import {
  CATCHUP_RECORDS_DEFAULT,
  CATCHUP_TRIALS_DEFAULT,
  GOSSIP_DELTAS_DEFAULT,
  GOSSIP_WORKERS_DEFAULT,
} from './worker-protocol.ts'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..')
const WORKLOADS = ['seq', 'conc', 'reads', 'failover', 'gossip', 'catchup'] as const
type WorkloadOption = (typeof WORKLOADS)[number]

/** Equal timeouts for the second failover run: heartbeat 50 ms, election 300 ms on both systems. */
export const EQUAL_TIMING = { heartbeatIntervalMs: 50, electionTimeoutMs: 300 } as const
const TRIALS_MAX = 200
const DURATION_S_MAX = 300
/** Worker counts the gossip workload accepts: 2 (someone to gossip to) up to 1000 (20 worker hosts). */
const GOSSIP_WORKERS_MIN = 2
const GOSSIP_WORKERS_MAX = 1_000
const GOSSIP_DELTAS_MAX = 1_000
const CATCHUP_RECORDS_MAX = 1_000_000

interface Options {
  only: Set<WorkloadOption>
  trials: number
  durationS: number
  etcd: boolean
  nodeledger: boolean
  etcdPort: number
  seed: number
  submitAs: 'origin' | 'operator'
  gossipWorkers: number[]
  gossipDeltas: number
  catchupRecords: number
  catchupTrials: number
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv.filter((arg) => arg !== '--'),
    options: {
      only: { type: 'string', default: WORKLOADS.join(',') },
      trials: { type: 'string', default: '20' },
      'duration-s': { type: 'string', default: '10' },
      'no-etcd': { type: 'boolean', default: false },
      'no-nodeledger': { type: 'boolean', default: false },
      'etcd-port': { type: 'string', default: '42379' },
      seed: { type: 'string', default: String(Date.now() % 1_000_000) },
      'submit-as': { type: 'string', default: 'operator' },
      'gossip-workers': { type: 'string', default: GOSSIP_WORKERS_DEFAULT.join(',') },
      'gossip-deltas': { type: 'string', default: String(GOSSIP_DELTAS_DEFAULT) },
      'catchup-records': { type: 'string', default: String(CATCHUP_RECORDS_DEFAULT) },
      'catchup-trials': { type: 'string', default: String(CATCHUP_TRIALS_DEFAULT) },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help) {
    process.stdout.write(
      'pnpm bench -- [--only seq,conc,reads,failover,gossip,catchup] [--trials 20] [--duration-s 10] [--no-etcd] [--no-nodeledger] [--etcd-port 42379] [--seed N] [--submit-as operator|origin]\n' +
        '             [--gossip-workers 50,100,200] [--gossip-deltas 30] [--catchup-records 10000] [--catchup-trials 5]\n',
    )
    process.exit(0)
  }
  const only = new Set<WorkloadOption>()
  for (const name of values.only
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')) {
    if (!(WORKLOADS as readonly string[]).includes(name))
      throw new TypeError(`--only: unknown workload "${name}" (choose from ${WORKLOADS.join(', ')})`)
    only.add(name as WorkloadOption)
  }
  const submitAs = values['submit-as']
  if (submitAs !== 'origin' && submitAs !== 'operator')
    throw new TypeError(`--submit-as: origin or operator, got "${submitAs}"`)
  const trials = integer('--trials', values.trials, 1, TRIALS_MAX)
  const durationS = integer('--duration-s', values['duration-s'], 1, DURATION_S_MAX)
  const gossipWorkers = values['gossip-workers']
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => integer('--gossip-workers', s, GOSSIP_WORKERS_MIN, GOSSIP_WORKERS_MAX))
  if (gossipWorkers.length === 0) throw new TypeError('--gossip-workers: at least one worker count')
  return {
    only,
    trials,
    durationS,
    etcd: !values['no-etcd'],
    nodeledger: !values['no-nodeledger'],
    etcdPort: integer('--etcd-port', values['etcd-port'], 1024, 65_000),
    seed: integer('--seed', values.seed, 0, 2 ** 31 - 1),
    submitAs,
    gossipWorkers,
    gossipDeltas: integer('--gossip-deltas', values['gossip-deltas'], 1, GOSSIP_DELTAS_MAX),
    catchupRecords: integer('--catchup-records', values['catchup-records'], 1, CATCHUP_RECORDS_MAX),
    catchupTrials: integer('--catchup-trials', values['catchup-trials'], 1, TRIALS_MAX),
  }
}

function integer(name: string, text: string, min: number, max: number): number {
  const value = Number(text)
  if (!Number.isInteger(value) || value < min || value > max)
    throw new TypeError(`${name}: expected an integer from ${min} to ${max}, got "${text}"`)
  return value
}

/** mulberry32: the failover jitter replays from --seed. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// ---- cleanup: every process and temp dir this run starts goes, also on SIGINT ----

const cleanups = new Set<Cleanup>()
let cleaningUp: Promise<void> | undefined

function cleanupAll(): Promise<void> {
  cleaningUp ??= (async () => {
    for (const cleanup of [...cleanups].reverse()) {
      try {
        await cleanup()
      } catch (error) {
        process.stderr.write(`cleanup failed: ${describe(error)}\n`)
      }
    }
    cleanups.clear()
  })()
  return cleaningUp
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    process.stderr.write(`\n${signal}: stopping clusters and removing temp dirs\n`)
    void cleanupAll().finally(() => process.exit(130))
  })
}

/** Start a target, run `body`, and close the target whatever happens. */
async function withTarget<T>(open: () => Promise<BenchTarget>, body: (target: BenchTarget) => Promise<T>): Promise<T> {
  const target = await open()
  const cleanup: Cleanup = () => target.close()
  cleanups.add(cleanup)
  try {
    return await body(target)
  } finally {
    cleanups.delete(cleanup)
    await target.close()
  }
}

// ---- results ----

type SystemResults = {
  'seq-writes'?: ThroughputResult
  'conc-writes'?: ThroughputResult
  reads?: ThroughputResult
  'failover-default'?: FailoverResult & { sameAsDefault?: boolean }
  'failover-equal'?: FailoverResult & { sameAsDefault?: boolean }
  [gossip: `gossip-${number}`]: GossipResult | undefined
  'catchup-cold'?: CatchupResult
  'catchup-warm'?: CatchupResult
  error?: string
}

type WorkloadRow = {
  workload: keyof Omit<SystemResults, 'error'>
  metrics: Array<[string, string, 'higher' | 'lower']>
}

const WORKLOAD_ROWS: WorkloadRow[] = [
  {
    workload: 'seq-writes',
    metrics: [
      ['opsPerS', 'writes/s', 'higher'],
      ['p50Ms', 'p50 ms', 'lower'],
      ['p99Ms', 'p99 ms', 'lower'],
    ],
  },
  {
    workload: 'conc-writes',
    metrics: [
      ['opsPerS', 'writes/s', 'higher'],
      ['p50Ms', 'p50 ms', 'lower'],
      ['p99Ms', 'p99 ms', 'lower'],
    ],
  },
  {
    workload: 'reads',
    metrics: [
      ['opsPerS', 'reads/s', 'higher'],
      ['p50Ms', 'p50 ms', 'lower'],
      ['p99Ms', 'p99 ms', 'lower'],
    ],
  },
  {
    workload: 'failover-default',
    metrics: [
      ['p50Ms', 'gap p50 ms', 'lower'],
      ['p99Ms', 'gap p99 ms', 'lower'],
      ['failedTrials', 'failed trials', 'lower'],
    ],
  },
  {
    workload: 'failover-equal',
    metrics: [
      ['p50Ms', 'gap p50 ms', 'lower'],
      ['p99Ms', 'gap p99 ms', 'lower'],
      ['failedTrials', 'failed trials', 'lower'],
    ],
  },
]

/** One gossip row per worker count: latency to 99% of the other workers, over the deltas. */
function gossipRows(workerCounts: readonly number[]): WorkloadRow[] {
  return workerCounts.map((workers) => ({
    workload: `gossip-${workers}` as const,
    metrics: [
      ['p50Ms', 'to 99% p50 ms', 'lower'],
      ['p99Ms', 'to 99% p99 ms', 'lower'],
      ['allP99Ms', 'to 100% p99 ms', 'lower'],
      ['gossipFirstFraction', 'gossip-first share', 'higher'],
      ['failedDeltas', 'failed deltas', 'lower'],
      ['heartbeatIntervalMaxMs', 'gossipsub hb max ms', 'lower'],
    ],
  }))
}

const CATCHUP_ROWS: WorkloadRow[] = [
  {
    workload: 'catchup-cold',
    metrics: [
      ['records', 'records', 'higher'],
      ['caughtUpP50Ms', 'caught up p50 ms', 'lower'],
      ['caughtUpMaxMs', 'caught up max ms', 'lower'],
      ['startP50Ms', 'start() p50 ms', 'lower'],
      ['startMaxMs', 'start() max ms', 'lower'],
    ],
  },
  {
    workload: 'catchup-warm',
    metrics: [
      ['records', 'records', 'higher'],
      ['caughtUpP50Ms', 'caught up p50 ms', 'lower'],
      ['caughtUpMaxMs', 'caught up max ms', 'lower'],
      ['startP50Ms', 'start() p50 ms', 'lower'],
      ['startMaxMs', 'start() max ms', 'lower'],
    ],
  },
]

/** The JSON line's names: writesPerS for writes, readsPerS for reads. */
function renamed(workload: string, result: object | undefined): Record<string, unknown> | null {
  if (result === undefined) return null
  const entries = Object.entries(result).map(([key, value]) => [
    key === 'opsPerS' ? (workload === 'reads' ? 'readsPerS' : 'writesPerS') : key,
    value,
  ])
  return Object.fromEntries(entries)
}

function report(results: Record<SystemName, SystemResults>, options: Options): { lines: object[]; table: string } {
  const lines: object[] = []
  const rows: string[][] = [['workload', 'metric', 'nodeledger', 'etcd', 'ratio nl/etcd', 'better']]
  for (const { workload, metrics } of [...WORKLOAD_ROWS, ...gossipRows(options.gossipWorkers), ...CATCHUP_ROWS]) {
    const ours = results.nodeledger[workload]
    const theirs = results.etcd[workload]
    if (ours === undefined && theirs === undefined) continue
    const oursOut = renamed(workload, ours)
    const theirsOut = renamed(workload, theirs)
    lines.push({
      workload,
      nodeledger: oursOut,
      etcd: theirsOut,
      ratio: oursOut !== null && theirsOut !== null ? ratios(oursOut, theirsOut) : null,
    })
    for (const [metric, label, better] of metrics) {
      const a = (ours as Record<string, unknown> | undefined)?.[metric]
      const b = (theirs as Record<string, unknown> | undefined)?.[metric]
      const ratio =
        typeof a === 'number' && typeof b === 'number' && b !== 0 && Number.isFinite(a) && Number.isFinite(b)
          ? String(round(a / b, 2))
          : '-'
      rows.push([workload, label, cell(a), cell(b), metric.startsWith('failed') ? '-' : ratio, better])
    }
  }
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)))
  const format = (row: string[]): string =>
    row.map((text, column) => (column < 2 ? text.padEnd(widths[column]!) : text.padStart(widths[column]!))).join('  ')
  const table = [format(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(format)].join('\n')
  return { lines, table }
}

function cell(value: unknown): string {
  if (typeof value !== 'number') return '-'
  if (!Number.isFinite(value)) return String(value)
  return Math.abs(value) >= 100 ? String(Math.round(value)) : String(round(value, 2))
}

// ---- the run ----

async function runSystem(
  system: SystemName,
  options: Options,
  open: (timing: 'default' | 'equal') => Promise<BenchTarget>,
  timingOf: (timing: 'default' | 'equal') => string,
  keys: KeyPool,
  progress: Progress,
  random: () => number,
): Promise<SystemResults> {
  const results: SystemResults = {}
  const durationMs = options.durationS * 1000
  const needsMain =
    options.only.has('seq') || options.only.has('conc') || options.only.has('reads') || options.only.has('failover')
  if (needsMain) {
    await withTarget(
      () => open('default'),
      async (target) => {
        await target.waitHealthy(HEALTHY_TIMEOUT_MS)
        // A short warm-up: connections made, JIT warm, leader settled; not measured.
        await sequentialWrites(target, keys, 1_000, progress)
        if (options.only.has('seq')) results['seq-writes'] = await sequentialWrites(target, keys, durationMs, progress)
        if (options.only.has('conc'))
          results['conc-writes'] = await concurrentWrites(target, keys, durationMs, progress)
        if (options.only.has('reads')) results.reads = await linearizableReads(target, keys, durationMs, progress)
        if (options.only.has('failover'))
          results['failover-default'] = await failover(
            target,
            keys,
            options.trials,
            timingOf('default'),
            progress,
            random,
          )
      },
    )
  }
  if (options.only.has('failover')) {
    if (timingOf('equal') === timingOf('default') && results['failover-default'] !== undefined) {
      progress.log(
        `${system}: equal timeouts are its defaults (${timingOf('default')}); the default-timing failover trials stand for both`,
      )
      results['failover-equal'] = { ...results['failover-default'], sameAsDefault: true }
    } else {
      await withTarget(
        () => open('equal'),
        async (target) => {
          await target.waitHealthy(HEALTHY_TIMEOUT_MS)
          await sequentialWrites(target, keys, 500, progress)
          results['failover-equal'] = await failover(target, keys, options.trials, timingOf('equal'), progress, random)
        },
      )
    }
  }
  // Workers are nodeledger's alone; each workload starts its own cluster.
  if (system === 'nodeledger' && (options.only.has('gossip') || options.only.has('catchup'))) {
    const { catchup, gossipPropagation } = await import('./worker-workloads.ts')
    if (options.only.has('gossip')) {
      for (const workers of options.gossipWorkers) {
        results[`gossip-${workers}`] = await gossipPropagation({
          workers,
          deltas: options.gossipDeltas,
          progress,
          random,
          cleanups,
        })
      }
    }
    if (options.only.has('catchup')) {
      const { cold, warm } = await catchup({
        records: options.catchupRecords,
        trials: options.catchupTrials,
        progress,
        cleanups,
      })
      results['catchup-cold'] = cold
      results['catchup-warm'] = warm
    }
  }
  return results
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2))
  const startedAt = new Date()
  const progress = new Progress()
  cleanups.add(() => progress.stop())
  const random = seededRandom(options.seed)

  const etcdBinary = options.etcd ? findEtcdBinary() : undefined
  if (options.etcd && etcdBinary === undefined) {
    process.stderr.write(
      "etcd is not installed, so this run measures nodeledger alone. To compare with etcd, install Debian's etcd-server:\n" +
        '  sudo apt-get update && sudo apt-get install -y etcd-server\n' +
        '(or point ETCD_BIN at an etcd 3.4+ binary), then run pnpm bench again.\n',
    )
  }

  const peers = await generatePeers(PEER_POOL_SIZE_DEFAULT)
  const peerIds = peers.peerIds
  const results: Record<SystemName, SystemResults> = { nodeledger: {}, etcd: {} }
  const meta: Record<string, unknown> = {
    startedAt: startedAt.toISOString(),
    options: {
      only: [...options.only],
      trials: options.trials,
      durationS: options.durationS,
      seed: options.seed,
      ...(options.only.has('gossip')
        ? { gossipWorkers: options.gossipWorkers, gossipDeltas: options.gossipDeltas }
        : {}),
      ...(options.only.has('catchup')
        ? { catchupRecords: options.catchupRecords, catchupTrials: options.catchupTrials }
        : {}),
    },
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryBytes: totalmem(), node: process.version },
  }

  if (options.nodeledger) {
    try {
      // Imported only when used, so that a broken nodeledger build still lets etcd be measured.
      const { openNodeledger, nodeledgerTimingLabel } = await import('./nodeledger.ts')
      const factoryHolder: { factory?: DeltaFactory } = {}
      results.nodeledger = await runSystem(
        'nodeledger',
        options,
        (timing) =>
          openNodeledger({
            timing,
            peers,
            submitAs: options.submitAs,
            factoryHolder,
            cleanups,
            equalTiming: EQUAL_TIMING,
          }),
        (timing) => nodeledgerTimingLabel(timing, EQUAL_TIMING),
        new KeyPool(peerIds.length),
        progress,
        random,
      )
      meta.nodeledger = { valueBytes: factoryHolder.factory?.encodedBytes, submitAs: options.submitAs }
    } catch (error) {
      results.nodeledger.error = describe(error)
      progress.log(`nodeledger failed: ${describe(error)}`)
      if (process.env.BENCH_DEBUG !== undefined) console.error(error)
    }
  }

  if (etcdBinary !== undefined) {
    const version = etcdVersion(etcdBinary)
    const valueBytes = new DeltaFactory(peerIds[0]!, peerIds[1]!).encodedBytes
    meta.etcd = { binary: etcdBinary, version, valueBytes }
    const timingFor = (timing: 'default' | 'equal'): EtcdTiming =>
      timing === 'default' ? ETCD_TIMING_DEFAULT : EQUAL_TIMING
    try {
      results.etcd = await runSystem(
        'etcd',
        options,
        async (timing) => {
          const cluster = EtcdCluster.create(etcdBinary, timingFor(timing), options.etcdPort)
          cleanups.add(() => cluster.stopAll())
          cluster.startAll()
          return new EtcdTarget(cluster, peerIds, valueBytes)
        },
        (timing) =>
          `heartbeat ${timingFor(timing).heartbeatIntervalMs} ms, election ${timingFor(timing).electionTimeoutMs} ms`,
        new KeyPool(peerIds.length),
        progress,
        random,
      )
    } catch (error) {
      results.etcd.error = describe(error)
      progress.log(`etcd failed: ${describe(error)}`)
      if (process.env.BENCH_DEBUG !== undefined) console.error(error)
    }
  }

  progress.stop()
  const { lines, table } = report(results, options)
  const errors = (['nodeledger', 'etcd'] as const)
    .filter((s) => results[s].error !== undefined)
    .map((s) => `${s}: ${results[s].error}`)
  process.stdout.write(`\n${table}\n\n`)
  for (const line of lines) process.stdout.write(`${JSON.stringify(line)}\n`)
  for (const error of errors) process.stdout.write(`error ${error}\n`)
  const outDir = join(ROOT, '.run/bench')
  mkdirSync(outDir, { recursive: true })
  const outPath = join(outDir, `${startedAt.toISOString().replace(/[:.]/g, '-')}.json`)
  writeFileSync(
    outPath,
    `${JSON.stringify({ ...meta, finishedAt: new Date().toISOString(), results: lines, errors, table }, null, 2)}\n`,
  )
  process.stdout.write(`\nwritten to ${outPath}\n`)
  if (lines.length === 0) process.exitCode = 1
}

try {
  await main()
} catch (error) {
  process.stderr.write(`bench failed: ${describe(error)}\n`)
  process.exitCode = 1
} finally {
  await cleanupAll()
}
