/**
 * `pnpm bench`: the same workloads against a nodeledger cluster and a 3-member etcd cluster, one
 * after the other in one run, on loopback, both fsyncing. Prints a table and one JSON line per
 * workload (nodeledger, etcd, and their ratio) on stdout, the failover gaps' distribution (and,
 * with --profile, the top functions), progress on stderr, and writes the lot to
 * .run/bench/<timestamp>.json, with one SVG chart per workload (and the profiles) in
 * .run/bench/<timestamp>/.
 *
 *   pnpm bench -- --only seq,conc,reads,failover --trials 20 --duration-s 10 --no-etcd
 *   pnpm bench -- --only seq,conc --replicas 5 --profile
 *   pnpm bench -- --only failover --failover-trials 50 --client-backoff default
 *   pnpm bench -- --only gossip,catchup --no-etcd --gossip-workers 50,100,200 --catchup-trials 5
 *   pnpm bench -- --only cli --cli-runs 20 [--cli-from-source]
 *   pnpm bench -- --only scale --workers 100,250,500,1000
 *
 * Before each system's run of each workload the bench waits (up to --settle-s) for the 1-minute
 * load average to fall to 0.5 per core, records it, and marks the figures taken above that (`!`).
 *
 * `gossip` and `catchup` measure workers (NodeEventTrackers), which etcd has no counterpart of:
 * their rows have nodeledger figures only. `cli` times the command line itself (cli.ts): nodeledger's
 * installed command against etcdctl's counterparts, each a new process per run.
 *
 * A benchmark, not a test: it fails only when a system cannot be started or stays broken.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { cpuPerOps, readCpu } from './cpu.ts'
import type { CpuPerOps } from './cpu.ts'
import { COLORS, LIGHT_COLORS, curveChart, percentileChart, sortedChart } from './charts.ts'
import type { Series } from './charts.ts'
import { EtcdCluster, EtcdTarget, ETCD_TIMING_DEFAULT, etcdVersion, findEtcdBinary } from './etcd.ts'
import type { EtcdTiming } from './etcd.ts'
import { SETTLE_S_DEFAULT, loadedAbove, settleLoad, uptimeLine } from './load.ts'
import type { LoadReading } from './load.ts'
import { DeltaFactory, PEER_POOL_SIZE_DEFAULT, generatePeers } from './payload.ts'
import {
  ClientProfiler,
  covers,
  formatTop,
  monotonicUs,
  profileFiles,
  readProfile,
  sliceProfile,
  topFunctions,
} from './profile.ts'
import type { ProfileSummary, Window } from './profile.ts'
import { Progress } from './progress.ts'
import { CLI_COMMANDS, CLI_RUNS_DEFAULT } from './cli.ts'
import type { CliCommand, CliResult, CliTarget } from './cli.ts'
import { CHART_PERCENTILES, GAP_BUCKETS_MS, bucketLabel, histogram, ratios, round } from './stats.ts'
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
import type { FailoverResult, FailoverTrial, ThroughputResult } from './workloads.ts'
import type { CatchupResult, GossipResult } from './worker-workloads.ts'
import type { ScaleResult } from './scale-workload.ts'
import {
  CATCHUP_RECORDS_DEFAULT,
  CATCHUP_TRIALS_DEFAULT,
  GOSSIP_DELTAS_DEFAULT,
  GOSSIP_WORKERS_DEFAULT,
  SCALE_WORKERS_DEFAULT,
} from './worker-protocol.ts'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..')
const WORKLOADS = ['seq', 'conc', 'reads', 'failover', 'gossip', 'catchup', 'cli', 'scale'] as const
type WorkloadOption = (typeof WORKLOADS)[number]

/** Equal timeouts for the second failover run: heartbeat 50 ms, election 300 ms on both systems. */
export const EQUAL_TIMING = { heartbeatIntervalMs: 50, electionTimeoutMs: 300 } as const
/**
 * Backoff of the bench's nodeledger client between attempts: 5 ms, up to 20 ms (`--client-backoff
 * 5,20`). The etcd side looks for its new leader every 5 ms, so both clients knock at the same pace
 * and the failover gap measures the cluster, not the client's patience. `--client-backoff default`
 * runs the client's own (20 ms doubling to 500 ms), what an application gets.
 */
const CLIENT_BACKOFF_BENCH = { baseMs: 5, maxMs: 20 } as const
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
  failoverTrials: number
  durationS: number
  /** 5: the seq and conc rows run a second time against 5-replica (5-member) clusters. */
  replicas: 3 | 5
  profile: boolean
  settleS: number
  /** The nodeledger client's backoff; undefined: the client's defaults. */
  clientBackoff: { baseMs: number; maxMs: number } | undefined
  etcd: boolean
  nodeledger: boolean
  etcdPort: number
  seed: number
  submitAs: 'origin' | 'operator'
  gossipWorkers: number[]
  gossipDeltas: number
  catchupRecords: number
  catchupTrials: number
  /** Runs of each command in the cli workload. */
  cliRuns: number
  /** cli also from source (NODELEDGER_FROM_SOURCE=1: no bundle), for the before/after. */
  cliFromSource: boolean
  /** Worker counts of the scale workload. */
  scaleWorkers: number[]
  /** The scale workload's worker hosts' niceness. */
  workersNice: number
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv.filter((arg) => arg !== '--'),
    options: {
      only: { type: 'string', default: WORKLOADS.join(',') },
      trials: { type: 'string', default: '20' },
      'failover-trials': { type: 'string' },
      'duration-s': { type: 'string', default: '10' },
      replicas: { type: 'string', default: '3' },
      profile: { type: 'boolean', default: false },
      'settle-s': { type: 'string', default: String(SETTLE_S_DEFAULT) },
      'client-backoff': {
        type: 'string',
        default: `${CLIENT_BACKOFF_BENCH.baseMs},${CLIENT_BACKOFF_BENCH.maxMs}`,
      },
      'no-etcd': { type: 'boolean', default: false },
      'no-nodeledger': { type: 'boolean', default: false },
      'etcd-port': { type: 'string', default: '42379' },
      seed: { type: 'string', default: String(Date.now() % 1_000_000) },
      'submit-as': { type: 'string', default: 'operator' },
      'gossip-workers': { type: 'string', default: GOSSIP_WORKERS_DEFAULT.join(',') },
      'gossip-deltas': { type: 'string', default: String(GOSSIP_DELTAS_DEFAULT) },
      'catchup-records': { type: 'string', default: String(CATCHUP_RECORDS_DEFAULT) },
      'catchup-trials': { type: 'string', default: String(CATCHUP_TRIALS_DEFAULT) },
      'cli-runs': { type: 'string', default: String(CLI_RUNS_DEFAULT) },
      'cli-from-source': { type: 'boolean', default: false },
      workers: { type: 'string', default: SCALE_WORKERS_DEFAULT.join(',') },
      'workers-nice': { type: 'string', default: '0' },
      help: { type: 'boolean', default: false },
    },
  })
  if (values.help) {
    process.stdout.write(
      'pnpm bench -- [--only seq,conc,reads,failover,gossip,catchup,cli] [--trials 20] [--duration-s 10] [--no-etcd] [--no-nodeledger] [--etcd-port 42379] [--seed N] [--submit-as operator|origin]\n' +
        '             [--failover-trials N (default: --trials)] [--client-backoff 5,20|default] [--replicas 3|5] [--profile] [--settle-s 60]\n' +
        '             [--gossip-workers 50,100,200] [--gossip-deltas 30] [--catchup-records 10000] [--catchup-trials 5]\n' +
        '             [--cli-runs 20] [--cli-from-source] [--workers 100,250,500,1000] [--workers-nice 0]\n' +
        '  --only scale      N workers against a fresh cluster per N (--workers): time to all active, leader CPU\n' +
        '                    and RSS in the join storm and idle, per-worker cost, watch and gossip reach, elections\n' +
        '  --workers-nice N  run the scale workers at niceness N (10: the replicas get the CPU first, as with each\n' +
        '                    worker on a machine of its own)\n' +
        '  --only cli        wall time of nodeledger --help, status, get, put (the installed command, a new process\n' +
        '                    per run) against a 3-replica cluster, through the CLI agent (cli-X) and without it\n' +
        "                    (cli-X-cold, NODELEDGER_AGENT=off), and of etcdctl's counterparts if etcdctl is installed\n" +
        '  --cli-from-source also nodeledger from source (no bundle), rows marked "from source"\n' +
        '  --replicas 5      also run seq and conc against a 5-replica nodeledger cluster and a 5-member etcd\n' +
        '  --profile         CPU profiles of the leader replica and of the bench process per nodeledger workload\n' +
        '                    (seq, conc, reads), saved under .run/bench/<timestamp>/profiles, top 15 printed\n' +
        '  --settle-s N      wait up to N s before each measurement for the 1-min load to reach 0.5 per core\n' +
        '  --client-backoff  the nodeledger client\'s retry backoff, base,max ms (default 5,20; "default": the\n' +
        "                    client's own 20,500)\n",
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
  const replicas = integer('--replicas', values.replicas, 3, 5)
  if (replicas !== 3 && replicas !== 5) throw new TypeError(`--replicas: 3 or 5, got "${values.replicas}"`)
  const backoffText = values['client-backoff']
  let clientBackoff: Options['clientBackoff']
  if (backoffText !== 'default') {
    const [base, max, ...rest] = backoffText.split(',')
    if (base === undefined || max === undefined || rest.length > 0)
      throw new TypeError(`--client-backoff: base,max in ms or "default", got "${backoffText}"`)
    clientBackoff = {
      baseMs: integer('--client-backoff base', base, 1, 10_000),
      maxMs: integer('--client-backoff max', max, 1, 60_000),
    }
    if (clientBackoff.maxMs < clientBackoff.baseMs) throw new TypeError('--client-backoff: max below base')
  }
  const gossipWorkers = values['gossip-workers']
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => integer('--gossip-workers', s, GOSSIP_WORKERS_MIN, GOSSIP_WORKERS_MAX))
  if (gossipWorkers.length === 0) throw new TypeError('--gossip-workers: at least one worker count')
  const scaleWorkers = values.workers
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => integer('--workers', s, GOSSIP_WORKERS_MIN, GOSSIP_WORKERS_MAX))
  if (scaleWorkers.length === 0) throw new TypeError('--workers: at least one worker count')
  return {
    only,
    trials,
    failoverTrials:
      values['failover-trials'] === undefined
        ? trials
        : integer('--failover-trials', values['failover-trials'], 1, TRIALS_MAX),
    durationS,
    replicas,
    profile: values.profile,
    settleS: integer('--settle-s', values['settle-s'], 0, 600),
    clientBackoff,
    etcd: !values['no-etcd'],
    nodeledger: !values['no-nodeledger'],
    etcdPort: integer('--etcd-port', values['etcd-port'], 1024, 65_000),
    seed: integer('--seed', values.seed, 0, 2 ** 31 - 1),
    submitAs,
    gossipWorkers,
    gossipDeltas: integer('--gossip-deltas', values['gossip-deltas'], 1, GOSSIP_DELTAS_MAX),
    catchupRecords: integer('--catchup-records', values['catchup-records'], 1, CATCHUP_RECORDS_MAX),
    catchupTrials: integer('--catchup-trials', values['catchup-trials'], 1, TRIALS_MAX),
    cliRuns: integer('--cli-runs', values['cli-runs'], 1, TRIALS_MAX),
    cliFromSource: values['cli-from-source'],
    scaleWorkers,
    workersNice: integer('--workers-nice', values['workers-nice'], 0, 19),
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

/** A system's result of one workload, with the load it was taken under. */
type Measured<T> = T & LoadReading

type SystemResults = {
  'seq-writes'?: Measured<ThroughputResult & Partial<CpuPerOps>>
  'conc-writes'?: Measured<ThroughputResult & Partial<CpuPerOps>>
  reads?: Measured<ThroughputResult & Partial<CpuPerOps>>
  'failover-default'?: Measured<FailoverResult> & { sameAsDefault?: boolean }
  'failover-equal'?: Measured<FailoverResult> & { sameAsDefault?: boolean }
  'seq-writes-5r'?: Measured<ThroughputResult & Partial<CpuPerOps>>
  'conc-writes-5r'?: Measured<ThroughputResult & Partial<CpuPerOps>>
  [gossip: `gossip-${number}`]: Measured<GossipResult> | undefined
  [scale: `scale-${number}`]: Measured<ScaleFlat> | undefined
  'catchup-cold'?: Measured<CatchupResult>
  'catchup-warm'?: Measured<CatchupResult>
  error?: string
} & { [cli in `cli-${CliCommand}` | `cli-${CliCommand}-cold` | `cli-${CliCommand}-src`]?: Measured<CliResult> }

type WorkloadName = keyof Omit<SystemResults, 'error'>

type WorkloadRow = {
  workload: WorkloadName
  metrics: Array<[string, string, 'higher' | 'lower' | '-']>
}

const THROUGHPUT_METRICS = (ops: string): WorkloadRow['metrics'] => [
  ['opsPerS', `${ops}/s`, 'higher'],
  ['p50Ms', 'p50 ms', 'lower'],
  ['p99Ms', 'p99 ms', 'lower'],
  ['p999Ms', 'p99.9 ms', 'lower'],
  ['leaderCpuMsPer1k', 'leader CPU ms/1k', 'lower'],
  ['followersCpuMsPer1k', 'followers CPU ms/1k', 'lower'],
  ['clientCpuMsPer1k', 'client CPU ms/1k', 'lower'],
  ['leaderCpuPct', 'leader CPU %', '-'],
]

const FAILOVER_METRICS: WorkloadRow['metrics'] = [
  ['p50Ms', 'client gap p50 ms', 'lower'],
  ['p99Ms', 'client gap p99 ms', 'lower'],
  ['serverP50Ms', 'server gap p50 ms', 'lower'],
  ['serverP99Ms', 'server gap p99 ms', 'lower'],
  ['clientAfterElectionP50Ms', 'client-server p50 ms', 'lower'],
  ['clientAfterElectionMaxMs', 'client-server max ms', 'lower'],
  ['leaderLostTrials', 'leader-lost trials', 'higher'],
  ['timeoutTrials', 'timeout trials', 'lower'],
  ['failedTrials', 'failed trials', 'lower'],
]

const WORKLOAD_ROWS: WorkloadRow[] = [
  { workload: 'seq-writes', metrics: THROUGHPUT_METRICS('writes') },
  { workload: 'conc-writes', metrics: THROUGHPUT_METRICS('writes') },
  { workload: 'reads', metrics: THROUGHPUT_METRICS('reads') },
  { workload: 'failover-default', metrics: FAILOVER_METRICS },
  { workload: 'failover-equal', metrics: FAILOVER_METRICS },
  { workload: 'seq-writes-5r', metrics: THROUGHPUT_METRICS('writes') },
  { workload: 'conc-writes-5r', metrics: THROUGHPUT_METRICS('writes') },
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

/** One row per command: wall time from spawn to exit, over --cli-runs runs. */
function cliRows(fromSource: boolean): WorkloadRow[] {
  const metrics: WorkloadRow['metrics'] = [
    ['p50Ms', 'p50 ms', 'lower'],
    ['p90Ms', 'p90 ms', 'lower'],
    ['maxMs', 'max ms', 'lower'],
    ['failures', 'failed runs', 'lower'],
  ]
  return [
    ...CLI_COMMANDS.map((command) => ({ workload: `cli-${command}` as const, metrics })),
    ...CLI_COMMANDS.map((command) => ({ workload: `cli-${command}-cold` as const, metrics })),
    ...(fromSource ? CLI_COMMANDS.map((command) => ({ workload: `cli-${command}-src` as const, metrics })) : []),
  ]
}

/** A scale result with its windows' figures flattened into the row's metrics (stormLeaderCpuPct ...). */
type ScaleFlat = ScaleResult & Record<string, unknown>

function flattenScale(result: ScaleResult): ScaleFlat {
  const flat: Record<string, unknown> = { ...result }
  for (const [window, figures] of [
    ['storm', result.storm],
    ['idle', result.idle],
  ] as const) {
    for (const [key, value] of Object.entries(figures))
      flat[`${window}${key.charAt(0).toUpperCase()}${key.slice(1)}`] = value
  }
  return flat as ScaleFlat
}

/** One scale row per worker count. */
function scaleRows(workerCounts: readonly number[]): WorkloadRow[] {
  return workerCounts.map((workers) => ({
    workload: `scale-${workers}` as const,
    metrics: [
      ['activeWorkers', 'workers active', 'higher'],
      ['startToAllActiveS', 'start to all active s', 'lower'],
      ['stormLeaderCpuPct', 'leader CPU % storm', 'lower'],
      ['stormLeaderCpuPctMax', 'leader CPU % storm max', 'lower'],
      ['stormLeaderRssMb', 'leader RSS MB storm', 'lower'],
      ['stormMachineBusy', 'machine busy storm', '-'],
      ['idleLeaderCpuPct', 'leader CPU % idle', 'lower'],
      ['idleLeaderRssMb', 'leader RSS MB idle', 'lower'],
      ['idleMachineBusy', 'machine busy idle', '-'],
      ['perWorkerRssMb', 'RSS MB per worker', 'lower'],
      ['workerCpuMsPerS', 'CPU ms/s per worker', 'lower'],
      ['leaderCpuMsPerWorkerS', 'leader CPU ms/s per worker', 'lower'],
      ['idleEntriesPerMin', 'idle entries/min', 'lower'],
      ['watchP50Ms', 'watch to 99% p50 ms', 'lower'],
      ['watchP99Ms', 'watch to 99% p99 ms', 'lower'],
      ['watchFailed', 'watch failed', 'lower'],
      ['gossipP50Ms', 'gossip to 99% p50 ms', 'lower'],
      ['gossipP99Ms', 'gossip to 99% p99 ms', 'lower'],
      ['gossipFailed', 'gossip failed', 'lower'],
      ['elections', 'leader elections', 'lower'],
      ['falseExpiries', 'false expiries', 'lower'],
    ],
  }))
}

function allRows(options: Options): WorkloadRow[] {
  return [
    ...WORKLOAD_ROWS,
    ...gossipRows(options.gossipWorkers),
    ...CATCHUP_ROWS,
    ...cliRows(options.cliFromSource),
    ...scaleRows(options.scaleWorkers),
  ]
}

/** The JSON line's names: writesPerS for writes, readsPerS for reads. */
function renamed(workload: string, result: object | undefined): Record<string, unknown> | null {
  if (result === undefined) return null
  const entries = Object.entries(result).map(([key, value]) => [
    key === 'opsPerS' ? (workload === 'reads' ? 'readsPerS' : 'writesPerS') : key,
    value,
  ])
  return Object.fromEntries(entries)
}

/** The table's name of a workload: the 5-replica rows say so. */
function rowName(workload: string): string {
  if (workload.endsWith('-src')) return `${workload.slice(0, -4)} (from source)`
  return workload.endsWith('-5r') ? `${workload.slice(0, -3)} (5 replicas)` : workload
}

function report(results: Record<SystemName, SystemResults>, options: Options): { lines: object[]; table: string } {
  const lines: object[] = []
  const rows: string[][] = [['workload', 'metric', 'nodeledger', 'etcd', 'ratio nl/etcd', 'better']]
  let anyLoaded = false
  for (const { workload, metrics } of allRows(options)) {
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
    const mark = (result: LoadReading | undefined): string => (result?.loaded === true ? '!' : '')
    anyLoaded ||= ours?.loaded === true || theirs?.loaded === true
    for (const [metric, label, better] of metrics) {
      const a = (ours as Record<string, unknown> | undefined)?.[metric]
      const b = (theirs as Record<string, unknown> | undefined)?.[metric]
      if (a === undefined && b === undefined) continue
      const ratio =
        typeof a === 'number' && typeof b === 'number' && b !== 0 && Number.isFinite(a) && Number.isFinite(b)
          ? String(round(a / b, 2))
          : '-'
      rows.push([
        rowName(workload),
        label,
        cell(a, mark(ours)),
        cell(b, mark(theirs)),
        metric.endsWith('Trials') ? '-' : ratio,
        better,
      ])
    }
    rows.push([
      rowName(workload),
      'load 1m before',
      cell(ours?.loadAvg1m, mark(ours)),
      cell(theirs?.loadAvg1m, mark(theirs)),
      '-',
      '-',
    ])
  }
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)))
  const format = (row: string[]): string =>
    row.map((text, column) => (column < 2 ? text.padEnd(widths[column]!) : text.padStart(widths[column]!))).join('  ')
  const tableLines = [format(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(format)]
  if (results.etcd['seq-writes-5r'] === undefined && results.nodeledger['seq-writes-5r'] !== undefined)
    tableLines.push('(5 replicas: nodeledger only in this run)')
  if (anyLoaded)
    tableLines.push(
      `! taken while the 1-min load average was above ${loadedAbove().toFixed(2)} (0.5 per core): other work was running, the figure is noisy`,
    )
  return { lines, table: tableLines.join('\n') }
}

function cell(value: unknown, mark = ''): string {
  if (typeof value !== 'number') return '-'
  if (!Number.isFinite(value)) return String(value)
  return `${Math.abs(value) >= 100 ? String(Math.round(value)) : String(round(value, 2))}${mark}`
}

// ---- the failover gaps' distribution ----

/** Trials whose client gap is at least this many times the median count as slow. */
const SLOW_TRIAL_FACTOR = 1.5

function failoverReport(results: Record<SystemName, SystemResults>): string {
  const out: string[] = []
  for (const workload of ['failover-default', 'failover-equal'] as const) {
    const systems = (['nodeledger', 'etcd'] as const).flatMap((system) => {
      const result = results[system][workload]
      return result === undefined ? [] : [{ system, result }]
    })
    if (systems.length === 0) continue
    out.push(`${workload}: trials per gap bucket; server = kill to new leader (its log), client = kill to first ack`)
    const header = ['  gap ms'.padEnd(12)]
    for (const { system } of systems) header.push(`${system} server`.padStart(18), 'client'.padStart(7))
    out.push(header.join(''))
    const counts = systems.map(({ result }) => ({
      server: histogram(result.serverGapsMs, GAP_BUCKETS_MS),
      client: histogram(result.gapsMs, GAP_BUCKETS_MS),
    }))
    for (let bucket = 0; bucket <= GAP_BUCKETS_MS.length; bucket++) {
      if (counts.every(({ server, client }) => server[bucket] === 0 && client[bucket] === 0)) continue
      const row = [`  ${bucketLabel(GAP_BUCKETS_MS, bucket)}`.padEnd(12)]
      for (const { server, client } of counts)
        row.push(String(server[bucket]).padStart(18), String(client[bucket]).padStart(7))
      out.push(row.join(''))
    }
    for (const { system, result } of systems) {
      out.push(`  ${system} (${result.timing})${result.sameAsDefault === true ? ', the default-timing trials' : ''}:`)
      out.push(`    ${pathLine(result)}`)
      out.push(`    ${slowLine(result.trialDetails)}`)
      for (const trial of [...result.trialDetails]
        .filter((t) => t.clientGapMs !== null)
        .sort((a, b) => b.clientGapMs! - a.clientGapMs!)
        .slice(0, 3)) {
        out.push(`    ${trialLine(trial)}`)
        if (trial.timeline !== null) out.push(`      role changes after the kill (member role +ms): ${trial.timeline}`)
      }
    }
  }
  return out.join('\n')
}

function pathLine(result: FailoverResult): string {
  const parts = [`${result.trials} trials`, `${result.serverGapsMs.length} with the election in the logs`]
  if (result.leaderLostTrials !== undefined)
    parts.push(`${result.leaderLostTrials} leader-lost fast path`, `${result.timeoutTrials ?? 0} full election timeout`)
  if (result.failedTrials > 0) parts.push(`${result.failedTrials} failed (${result.firstError ?? '?'})`)
  return parts.join(', ')
}

/**
 * The hypothesis under test: a slow trial is slow because of the client (its backoff, its search
 * for the new leader) rather than the election. A slow trial whose client-server difference is
 * larger than its server gap was mostly the client's.
 */
function slowLine(trials: readonly FailoverTrial[]): string {
  const gaps = trials.flatMap((t) => (t.clientGapMs === null ? [] : [t.clientGapMs])).sort((a, b) => a - b)
  if (gaps.length === 0) return 'no trial acknowledged a write'
  const median = gaps[Math.floor((gaps.length - 1) / 2)]!
  const slow = trials.filter((t) => t.clientGapMs !== null && t.clientGapMs >= SLOW_TRIAL_FACTOR * median)
  const known = slow.filter((t) => t.serverGapMs !== null)
  const clientBound = known.filter((t) => t.clientAfterElectionMs! > t.serverGapMs!)
  return `slow trials (client gap >= ${SLOW_TRIAL_FACTOR}x the median ${Math.round(median)} ms): ${slow.length}; mostly after the election (client-bound): ${clientBound.length}, mostly the election: ${known.length - clientBound.length}${slow.length > known.length ? `, no election in the logs: ${slow.length - known.length}` : ''}`
}

function trialLine(t: FailoverTrial): string {
  if (t.error !== undefined) return `trial ${t.trial}: failed (${t.error})`
  const ms = (value: number | null): string => (value === null ? '?' : `${Math.round(value)} ms`)
  const election =
    t.serverGapMs === null
      ? 'no election in the logs'
      : `elected ${ms(t.serverGapMs)} (replica ${t.newLeader}, term ${t.term}, campaign at ${ms(t.campaignMs)}${t.path === null ? '' : `, ${t.path}`}${t.campaigns !== null && t.campaigns > 1 ? `, ${t.campaigns} campaigns` : ''})`
  const failures =
    t.clientFailures === 0
      ? 'no failed attempt'
      : `${t.clientFailures} failed attempts (${t.clientFailureCodes}), the last at ${ms(t.lastFailureMs)}`
  return `trial ${t.trial}: client ${ms(t.clientGapMs)} = ${election} + ${ms(t.clientAfterElectionMs)} client; ${failures}${t.callRetries > 0 ? `, ${t.callRetries} calls retried` : ''}`
}

// ---- charts ----

function loadNote(result: LoadReading | undefined): string {
  if (result === undefined) return '-'
  return `${result.loadAvg1m.toFixed(2)}${result.loaded ? '!' : ''}`
}

/** The scale workload's curves against the worker count: latencies, leader CPU, time to all active, memory. */
function scaleCharts(dir: string, results: SystemResults, options: Options): string[] {
  const measured = options.scaleWorkers.flatMap((workers) => {
    const result = results[`scale-${workers}`]
    return result === undefined ? [] : [{ workers, result }]
  })
  if (measured.length === 0) return []
  const counts = measured.map(({ workers }) => workers)
  const values = (key: string): number[] =>
    measured.map(({ result }) => (typeof result[key] === 'number' ? (result[key] as number) : Number.NaN))
  const loads = measured.map(({ workers, result }) => `${workers}: ${loadNote(result)}`).join(', ')
  const subtitle = `1-min load before each N: ${loads} (! above ${loadedAbove().toFixed(2)}: noisy) · ${new Date().toISOString().slice(0, 16)}`
  const charts: Array<{ name: string; title: string; yLabel: string; unit: string; series: Series[] }> = [
    {
      name: 'scale-latency',
      title: 'scale: a change to 99% of the workers',
      yLabel: 'ms (log)',
      unit: 'ms',
      series: [
        { name: 'watch p50', color: COLORS.nodeledger, values: values('watchP50Ms') },
        { name: 'watch p99', color: LIGHT_COLORS.nodeledger, dashed: true, values: values('watchP99Ms') },
        { name: 'gossip p50', color: COLORS.etcd, values: values('gossipP50Ms') },
        { name: 'gossip p99', color: LIGHT_COLORS.etcd, dashed: true, values: values('gossipP99Ms') },
      ],
    },
    {
      name: 'scale-leader-cpu',
      title: 'scale: leader CPU (% of a core)',
      yLabel: '% of a core (log)',
      unit: '%',
      series: [
        { name: 'join storm', color: COLORS.etcd, values: values('stormLeaderCpuPct') },
        { name: 'idle', color: COLORS.nodeledger, values: values('idleLeaderCpuPct') },
      ],
    },
    {
      name: 'scale-start',
      title: 'scale: start to all workers active',
      yLabel: 's (log)',
      unit: 's',
      series: [{ name: 'start to all active', color: COLORS.nodeledger, values: values('startToAllActiveS') }],
    },
    {
      name: 'scale-memory',
      title: 'scale: leader RSS and RSS per worker',
      yLabel: 'MB (log)',
      unit: 'MB',
      series: [
        { name: 'leader, storm', color: COLORS.etcd, values: values('stormLeaderRssMb') },
        { name: 'leader, idle', color: COLORS.nodeledger, values: values('idleLeaderRssMb') },
        { name: 'per worker', color: LIGHT_COLORS.nodeledger, dashed: true, values: values('perWorkerRssMb') },
      ],
    },
  ]
  return charts.map((chart) => {
    const path = join(dir, `${chart.name}.svg`)
    writeFileSync(
      path,
      curveChart({
        title: chart.title,
        subtitle,
        counts,
        series: chart.series,
        xLabel: 'workers',
        yLabel: chart.yLabel,
        unit: chart.unit,
      }),
    )
    return path
  })
}

/** One SVG per workload into `dir`; returns the paths written. */
function writeCharts(dir: string, results: Record<SystemName, SystemResults>, options: Options): string[] {
  const written: string[] = []
  const systems = ['nodeledger', 'etcd'] as const
  for (const { workload } of allRows(options)) {
    const present = systems.flatMap((system) => {
      const result = results[system][workload]
      return result === undefined ? [] : [{ system, result: result as unknown as Measured<Record<string, unknown>> }]
    })
    if (present.length === 0 || workload.startsWith('scale-')) continue
    const loads = present.map(({ system, result }) => `${system} ${loadNote(result)}`).join(', ')
    const subtitle = `1-min load before: ${loads} (! above ${loadedAbove().toFixed(2)}: noisy) · ${new Date().toISOString().slice(0, 16)}`
    let svg: string
    if (workload.startsWith('failover')) {
      const series: Series[] = present.flatMap(({ system, result }) => [
        { name: `${system} client gap`, color: COLORS[system], values: result.gapsMs as number[] },
        {
          name: `${system} server gap`,
          color: LIGHT_COLORS[system],
          dashed: true,
          values: result.serverGapsMs as number[],
        },
      ])
      svg = sortedChart({
        title: `${workload}: failover gap per trial, sorted (load ${present.map(({ result }) => loadNote(result)).join(' / ')})`,
        subtitle,
        series,
        xLabel: 'trial, fastest to slowest',
        yLabel: 'gap ms (log)',
      })
    } else if (workload.startsWith('catchup')) {
      svg = sortedChart({
        title: `${workload}: time to caught up per trial, sorted (load ${present.map(({ result }) => loadNote(result)).join(' / ')})`,
        subtitle,
        series: present.map(({ system, result }) => ({
          name: system,
          color: COLORS[system],
          values: result.caughtUpMs as number[],
        })),
        xLabel: 'trial, fastest to slowest',
        yLabel: 'ms (log)',
      })
    } else {
      svg = percentileChart({
        title: `${rowName(workload)}: latency percentiles (load ${present.map(({ result }) => loadNote(result)).join(' / ')})`,
        subtitle,
        labels: CHART_PERCENTILES.map(([, label]) => label),
        series: present.map(({ system, result }) => ({
          name: system,
          color: COLORS[system],
          values: CHART_PERCENTILES.map(([key]) =>
            typeof result[key] === 'number' ? (result[key] as number) : Number.NaN,
          ),
        })),
        yLabel: 'latency ms (log)',
      })
    }
    const path = join(dir, `${workload}.svg`)
    writeFileSync(path, svg)
    written.push(path)
  }
  written.push(...scaleCharts(dir, results.nodeledger, options))
  return written
}

// ---- profiles (--profile) ----

interface ProfiledWindow {
  workload: string
  cluster: string
  window: Window
  leader: number | undefined
  leaderAfter: number | undefined
  client: ProfileSummary
  clientFile: string
}

interface WorkloadProfile {
  /** The replica that led when the workload began (the one whose profile is reported). */
  leader: number | undefined
  /** It led when the workload ended too. */
  leaderThroughout: boolean
  windowMs: number
  leaderFile?: string
  leaderTop?: ProfileSummary
  /** Why there is no leader profile, if there is none. */
  leaderMissing?: string
  clientFile: string
  clientTop: ProfileSummary
}

/**
 * The bench process is profiled around each workload (inspector); the replicas run under
 * --cpu-prof for their cluster's whole life, write their profile when they exit, and each
 * workload's window is cut out of the leader's afterwards (finishCluster).
 */
class RunProfiler {
  readonly dir: string
  private readonly client = new ClientProfiler()
  private readonly windows: ProfiledWindow[] = []
  readonly profiles: Record<string, WorkloadProfile> = {}

  constructor(dir: string) {
    this.dir = dir
  }

  /** Where the replicas of `cluster` write their profiles. */
  rawDir(cluster: string): string {
    return join(this.dir, 'raw', cluster)
  }

  async around<T>(workload: string, cluster: string, target: BenchTarget, body: () => Promise<T>): Promise<T> {
    const leader = await target.leader().catch(() => undefined)
    await this.client.start()
    const startUs = monotonicUs()
    try {
      return await body()
    } finally {
      const endUs = monotonicUs()
      const profile = await this.client.stop()
      const dir = join(this.dir, workload)
      mkdirSync(dir, { recursive: true })
      const clientFile = join(dir, 'client.cpuprofile')
      writeFileSync(clientFile, JSON.stringify(profile))
      const leaderAfter = await target.leader().catch(() => undefined)
      this.windows.push({
        workload,
        cluster,
        window: { startUs, endUs },
        leader,
        leaderAfter,
        client: topFunctions(profile, ROOT),
        clientFile,
      })
    }
  }

  /** After `cluster`'s replicas exited: cut each of its workloads out of the leader's profile. */
  finishCluster(cluster: string): void {
    for (const entry of this.windows.filter((w) => w.cluster === cluster)) {
      const result: WorkloadProfile = {
        leader: entry.leader,
        leaderThroughout: entry.leader !== undefined && entry.leader === entry.leaderAfter,
        windowMs: Math.round((entry.window.endUs - entry.window.startUs) / 1000),
        clientFile: entry.clientFile,
        clientTop: entry.client,
      }
      if (entry.leader === undefined) {
        result.leaderMissing = 'no replica led when the workload began'
      } else {
        const files = profileFiles(join(this.rawDir(cluster), `replica-${entry.leader}`))
        const profile = files.map(readProfile).find((candidate) => covers(candidate, entry.window))
        if (profile === undefined) {
          result.leaderMissing = `no profile of replica ${entry.leader} covers the workload (${files.length} files: it did not exit on its own?)`
        } else {
          const sliced = sliceProfile(profile, entry.window)
          const leaderFile = join(this.dir, entry.workload, `leader-replica-${entry.leader}.cpuprofile`)
          writeFileSync(leaderFile, JSON.stringify(sliced))
          result.leaderFile = leaderFile
          result.leaderTop = topFunctions(sliced, ROOT)
        }
      }
      this.profiles[entry.workload] = result
    }
  }

  report(): string {
    const out: string[] = []
    for (const [workload, profile] of Object.entries(this.profiles)) {
      out.push(
        `profile ${workload} (${profile.windowMs} ms): leader replica ${profile.leader ?? '?'}${profile.leaderThroughout ? ', led throughout' : ', leadership changed during the workload'}`,
      )
      if (profile.leaderTop !== undefined && profile.leaderFile !== undefined)
        out.push(
          formatTop(`leader replica ${profile.leader} (${relative(ROOT, profile.leaderFile)})`, profile.leaderTop),
        )
      else out.push(`leader: ${profile.leaderMissing}`)
      out.push(formatTop(`client, the bench process (${relative(ROOT, profile.clientFile)})`, profile.clientTop), '')
    }
    return out.join('\n')
  }
}

// ---- the run ----

interface SystemRun {
  system: SystemName
  options: Options
  /** A cluster: default or equal timing, 3 or 5 members, profiled into `profileDir` (nodeledger only). */
  open: (timing: 'default' | 'equal', replicas: 3 | 5, profileDir?: string) => Promise<BenchTarget>
  timingOf: (timing: 'default' | 'equal') => string
  keys: KeyPool
  progress: Progress
  random: () => number
  profiler: RunProfiler | undefined
  /** The cli workload's cluster and commands (undefined: this system has no command line here). */
  openCli?: (variant: 'agent' | 'cold' | 'src') => Promise<CliTarget>
}

async function runSystem(run: SystemRun): Promise<SystemResults> {
  const { system, options, open, timingOf, keys, progress, random, profiler } = run
  const results: SystemResults = {}
  const durationMs = options.durationS * 1000
  const only = options.only
  /** Waits for the load to settle, records it, runs the workload. */
  const measure = async <T extends object>(workload: string, body: () => Promise<T>): Promise<Measured<T>> => {
    const load = await settleLoad(`${system} ${workload}`, options.settleS, progress)
    const result = await body()
    return { ...result, ...load }
  }
  /** measure, and profile with the cluster's label when profiling. */
  const measureProfiled = <T extends object>(
    workload: string,
    target: BenchTarget,
    cluster: string | undefined,
    body: () => Promise<T>,
  ): Promise<Measured<T & Partial<CpuPerOps>>> =>
    measure(workload, async () => {
      // CPU per operation, the figure a noisy machine bends least (cpu.ts): read around the body.
      const leader = await target.leader()
      const before = readCpu(target.pids())
      const startedMs = performance.now()
      const result =
        profiler !== undefined && cluster !== undefined
          ? await profiler.around(workload, cluster, target, body)
          : await body()
      const wallS = (performance.now() - startedMs) / 1000
      const operations = (result as { opsPerS?: number }).opsPerS
      const cpu =
        operations === undefined
          ? undefined
          : cpuPerOps(before, readCpu(target.pids()), leader, Math.round(operations * wallS), wallS)
      return cpu === undefined ? result : { ...result, ...cpu }
    })
  const withCluster = async (
    timing: 'default' | 'equal',
    replicas: 3 | 5,
    profiled: string | undefined,
    body: (target: BenchTarget) => Promise<void>,
  ): Promise<void> => {
    try {
      await withTarget(
        () => open(timing, replicas, profiled === undefined ? undefined : profiler?.rawDir(profiled)),
        async (target) => {
          await target.waitHealthy(HEALTHY_TIMEOUT_MS)
          // A short warm-up: connections made, JIT warm, leader settled; not measured.
          await sequentialWrites(target, keys, 1_000, progress)
          await body(target)
        },
      )
    } finally {
      if (profiled !== undefined) profiler?.finishCluster(profiled)
    }
  }

  const throughput = only.has('seq') || only.has('conc') || only.has('reads')
  // A profiled cluster must outlive its workloads' windows and end gracefully (a replica writes its
  // profile when it exits; the failover's SIGKILL would lose the leader's): failover gets its own.
  const profileMain = profiler !== undefined && throughput ? 'nodeledger-3r' : undefined
  const failoverOnMain = only.has('failover') && profileMain === undefined
  const runFailover = async (target: BenchTarget): Promise<void> => {
    results['failover-default'] = await measure('failover-default', () =>
      failover(target, keys, options.failoverTrials, timingOf('default'), progress, random),
    )
  }
  if (throughput || only.has('failover')) {
    await withCluster('default', 3, profileMain, async (target) => {
      if (only.has('seq'))
        results['seq-writes'] = await measureProfiled('seq-writes', target, profileMain, () =>
          sequentialWrites(target, keys, durationMs, progress),
        )
      if (only.has('conc'))
        results['conc-writes'] = await measureProfiled('conc-writes', target, profileMain, () =>
          concurrentWrites(target, keys, durationMs, progress),
        )
      if (only.has('reads'))
        results.reads = await measureProfiled('reads', target, profileMain, () =>
          linearizableReads(target, keys, durationMs, progress),
        )
      if (failoverOnMain) await runFailover(target)
    })
  }
  if (only.has('failover') && !failoverOnMain) await withCluster('default', 3, undefined, runFailover)
  if (only.has('failover')) {
    if (timingOf('equal') === timingOf('default') && results['failover-default'] !== undefined) {
      progress.log(
        `${system}: equal timeouts are its defaults (${timingOf('default')}); the default-timing failover trials stand for both`,
      )
      results['failover-equal'] = { ...results['failover-default'], sameAsDefault: true }
    } else {
      await withCluster('equal', 3, undefined, async (target) => {
        results['failover-equal'] = await measure('failover-equal', () =>
          failover(target, keys, options.failoverTrials, timingOf('equal'), progress, random),
        )
      })
    }
  }
  if (options.replicas === 5 && (only.has('seq') || only.has('conc'))) {
    const profile5 = profiler !== undefined ? 'nodeledger-5r' : undefined
    await withCluster('default', 5, profile5, async (target) => {
      if (only.has('seq'))
        results['seq-writes-5r'] = await measureProfiled('seq-writes-5r', target, profile5, () =>
          sequentialWrites(target, keys, durationMs, progress),
        )
      if (only.has('conc'))
        results['conc-writes-5r'] = await measureProfiled('conc-writes-5r', target, profile5, () =>
          concurrentWrites(target, keys, durationMs, progress),
        )
    })
  }
  if (only.has('cli') && run.openCli !== undefined) {
    const { runCli } = await import('./cli.ts')
    // nodeledger: through the CLI agent (rows cli-X), without it (cli-X-cold), and from source
    // (cli-X-src). etcdctl has no agent: its one pass stands against both of the first two.
    const passes: Array<'agent' | 'cold' | 'src'> =
      system !== 'nodeledger' ? ['cold'] : options.cliFromSource ? ['agent', 'cold', 'src'] : ['agent', 'cold']
    for (const variant of passes) {
      const target = await run.openCli(variant)
      try {
        const load = await settleLoad(
          `${system} cli${variant === 'agent' ? '' : ` ${variant}`}`,
          options.settleS,
          progress,
        )
        const measured = await runCli(system, target, options.cliRuns, progress)
        for (const command of CLI_COMMANDS) {
          const result = { ...measured[command], ...load }
          if (system !== 'nodeledger') {
            results[`cli-${command}`] = result
            results[`cli-${command}-cold`] = result
          } else if (variant === 'agent') results[`cli-${command}`] = result
          else results[`cli-${command}-${variant}`] = result
        }
      } finally {
        await target.close()
      }
    }
  }
  // Workers are nodeledger's alone; each workload starts its own cluster.
  if (system === 'nodeledger' && only.has('scale')) {
    const { scale } = await import('./scale-workload.ts')
    for (const workers of options.scaleWorkers) {
      try {
        results[`scale-${workers}`] = await measure(`scale-${workers}`, async () =>
          flattenScale(
            await scale({
              workers,
              progress,
              random,
              cleanups,
              workersNice: options.workersNice,
              ...(options.profile ? { profileDir: join(ROOT, '.run/bench/scale-profiles') } : {}),
            }),
          ),
        )
      } catch (error) {
        // A larger N the machine cannot carry must not lose the smaller ones' figures.
        progress.log(`scale-${workers} failed: ${describe(error)}`)
        results.error = `scale-${workers}: ${describe(error)}`
        break
      }
    }
  }
  if (system === 'nodeledger' && (only.has('gossip') || only.has('catchup'))) {
    const { catchup, gossipPropagation } = await import('./worker-workloads.ts')
    if (only.has('gossip')) {
      for (const workers of options.gossipWorkers) {
        results[`gossip-${workers}`] = await measure(`gossip-${workers}`, () =>
          gossipPropagation({
            workers,
            deltas: options.gossipDeltas,
            progress,
            random,
            cleanups,
          }),
        )
      }
    }
    if (only.has('catchup')) {
      const load = await settleLoad(`${system} catchup`, options.settleS, progress)
      const { cold, warm } = await catchup({
        records: options.catchupRecords,
        trials: options.catchupTrials,
        progress,
        cleanups,
      })
      results['catchup-cold'] = { ...cold, ...load }
      results['catchup-warm'] = { ...warm, ...load }
    }
  }
  return results
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2))
  const startedAt = new Date()
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-')
  const outRoot = join(ROOT, '.run/bench')
  const runDir = join(outRoot, stamp)
  mkdirSync(runDir, { recursive: true })
  const progress = new Progress()
  cleanups.add(() => progress.stop())
  const random = seededRandom(options.seed)
  const loadAtStart = loadavg().map((value) => round(value, 2))
  const startLine = uptimeLine()
  process.stderr.write(`${startLine}\n`)
  const profiler = options.profile ? new RunProfiler(join(runDir, 'profiles')) : undefined
  if (options.profile && !['seq', 'conc', 'reads', 'scale'].some((w) => options.only.has(w as WorkloadOption)))
    process.stderr.write(
      "--profile covers seq, conc and reads (and their 5-replica rows): failover's leader dies by SIGKILL, which writes no profile, and the workers run in processes of their own\n",
    )

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
      failoverTrials: options.failoverTrials,
      durationS: options.durationS,
      replicas: options.replicas,
      profile: options.profile,
      settleS: options.settleS,
      clientBackoff: options.clientBackoff ?? 'default',
      seed: options.seed,
      ...(options.only.has('gossip')
        ? { gossipWorkers: options.gossipWorkers, gossipDeltas: options.gossipDeltas }
        : {}),
      ...(options.only.has('catchup')
        ? { catchupRecords: options.catchupRecords, catchupTrials: options.catchupTrials }
        : {}),
      ...(options.only.has('cli') ? { cliRuns: options.cliRuns, cliFromSource: options.cliFromSource } : {}),
      ...(options.only.has('scale') ? { scaleWorkers: options.scaleWorkers, workersNice: options.workersNice } : {}),
    },
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      memoryBytes: totalmem(),
      node: process.version,
      loadAvgAtStart: loadAtStart,
      loadedAbove: loadedAbove(),
    },
  }

  if (options.nodeledger) {
    try {
      // Imported only when used, so that a broken nodeledger build still lets etcd be measured.
      const { openNodeledger, nodeledgerTimingLabel } = await import('./nodeledger.ts')
      const factoryHolder: { factory?: DeltaFactory } = {}
      results.nodeledger = await runSystem({
        system: 'nodeledger',
        options,
        open: (timing, replicas, profileDir) =>
          openNodeledger({
            timing,
            replicas,
            ...(profileDir === undefined ? {} : { profileDir }),
            clientBackoff: options.clientBackoff,
            peers,
            submitAs: options.submitAs,
            factoryHolder,
            cleanups,
            equalTiming: EQUAL_TIMING,
          }),
        timingOf: (timing) => nodeledgerTimingLabel(timing, EQUAL_TIMING),
        keys: new KeyPool(peerIds.length),
        progress,
        random,
        profiler,
        openCli: async (variant) => {
          const { openNodeledgerCli } = await import('./cli.ts')
          return openNodeledgerCli(cleanups, variant)
        },
      })
      meta.nodeledger = {
        valueBytes: factoryHolder.factory?.encodedBytes,
        submitAs: options.submitAs,
        clientBackoff: options.clientBackoff ?? 'the client defaults (20 ms doubling to 500 ms)',
      }
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
    const { findEtcdctl, openEtcdCli } = await import('./cli.ts')
    const etcdctl = options.only.has('cli') ? findEtcdctl() : undefined
    if (options.only.has('cli') && etcdctl === undefined)
      process.stderr.write(
        "etcdctl is not installed, so the cli rows have nodeledger figures only (Debian's etcd-client: apt-get install -y etcd-client)\n",
      )
    const timingFor = (timing: 'default' | 'equal'): EtcdTiming =>
      timing === 'default' ? ETCD_TIMING_DEFAULT : EQUAL_TIMING
    try {
      results.etcd = await runSystem({
        system: 'etcd',
        options,
        open: async (timing, replicas) => {
          const cluster = EtcdCluster.create(etcdBinary, timingFor(timing), options.etcdPort, replicas)
          cleanups.add(() => cluster.stopAll())
          cluster.startAll()
          return new EtcdTarget(cluster, peerIds, valueBytes)
        },
        timingOf: (timing) =>
          `heartbeat ${timingFor(timing).heartbeatIntervalMs} ms, election ${timingFor(timing).electionTimeoutMs} ms`,
        keys: new KeyPool(peerIds.length),
        progress,
        random,
        profiler: undefined,
        ...(etcdctl === undefined
          ? {}
          : { openCli: () => openEtcdCli(etcdBinary, etcdctl, options.etcdPort, cleanups) }),
      })
    } catch (error) {
      results.etcd.error = describe(error)
      progress.log(`etcd failed: ${describe(error)}`)
      if (process.env.BENCH_DEBUG !== undefined) console.error(error)
    }
  }

  progress.stop()
  const { lines, table } = report(results, options)
  const failoverText = failoverReport(results)
  const profileText = profiler?.report() ?? ''
  const errors = (['nodeledger', 'etcd'] as const)
    .filter((s) => results[s].error !== undefined)
    .map((s) => `${s}: ${results[s].error}`)
  process.stdout.write(`\nat the start: ${startLine}\nat the end:   ${uptimeLine()}\n\n${table}\n\n`)
  for (const line of lines) process.stdout.write(`${JSON.stringify(line)}\n`)
  for (const error of errors) process.stdout.write(`error ${error}\n`)
  if (failoverText !== '') process.stdout.write(`\n${failoverText}\n`)
  if (profileText !== '') process.stdout.write(`\n${profileText}`)
  const charts = writeCharts(runDir, results, options)
  const outPath = join(outRoot, `${stamp}.json`)
  writeFileSync(
    outPath,
    `${JSON.stringify(
      {
        ...meta,
        finishedAt: new Date().toISOString(),
        loadAvgAtEnd: loadavg().map((value) => round(value, 2)),
        results: lines,
        errors,
        table,
        charts: charts.map((path) => relative(ROOT, path)),
        ...(profiler === undefined ? {} : { profiles: profiler.profiles }),
      },
      null,
      2,
    )}\n`,
  )
  process.stdout.write(
    `\nwritten to ${relative(ROOT, outPath)}; charts${profiler === undefined ? '' : ' and profiles'} in ${relative(ROOT, runDir)}/\n`,
  )
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
