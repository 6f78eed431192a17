import { cpSync, existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { checkHistory } from '../linearizability/index.ts'
import type { HistoryEvent, RegisterValue, Verdict } from '../linearizability/index.ts'
import { NEMESES } from '../process/nemesis.ts'
import type { InjectedFault, NemesisName } from '../process/nemesis.ts'
import { NetnsCluster } from '../process/netns-cluster.ts'
import type { FinalReads, ReplicaObservation } from '../process/netns-cluster.ts'
import { SimRng } from '../sim/rng.ts'
import { readHistory } from './history-file.ts'
import type { WorkloadClientInfo } from './workload.ts'

/**
 * One chaos run on real processes: a cluster in a network namespace, the workload recording a
 * history, nemeses injected and healed in turn while the harness watches every replica's status,
 * then the verdicts: the history is linearizable, no acknowledged write is lost, no two replicas
 * led in the same term, the cluster recovered after every heal. The short tests (test/chaos) and
 * `pnpm chaos` both run this.
 */

export interface ChaosOptions {
  readonly nemeses: readonly NemesisName[]
  readonly replicas: 3 | 5
  /** Faults to inject (in turn through `nemeses`); with `durationMs`, whichever ends first. */
  readonly cycles?: number
  /** Inject no new fault after this long (the last one is still healed and recovered from). */
  readonly durationMs?: number
  /** Workload before the first fault. */
  readonly warmupMs?: number
  /** How long each fault holds before its heal. */
  readonly holdMs?: number
  /** Healthy time after each recovery, before the next fault. */
  readonly quietMs?: number
  readonly clients?: number
  readonly keys?: number
  readonly thinkMs?: number
  /** The clients' reads; `stale` makes the negative control (a run that must be found not linearizable). */
  readonly readConsistency?: 'linearizable' | 'lease' | 'stale'
  /**
   * The cluster file's `timing.leaseReads`, and `lease` reads by the sticky readers (the writers'
   * reads stay `readConsistency`). Default: on when pause-leader is among the nemeses, for the whole
   * run: the setting is the cluster file's, read by a replica when it starts, so switching it for
   * one nemesis would mean restarting every replica, a fault of its own that would blur what each
   * nemesis shows; and lease reads under the other nemeses (a cut-off or deposed leader's lease) are
   * worth judging too.
   */
  readonly leaseReads?: boolean
  /**
   * Test only (the pause-leader negative check): while pause-leader holds, and for a second after
   * SIGCONT, the sticky readers read `stale` from the paused replica (as the lease bug once served
   * them), which the checker must find not linearizable.
   */
  readonly staleReadsOnResume?: boolean
  /** Where the history, the status samples and (on failure) the replicas' logs are kept. */
  readonly runDir: string
  readonly seed?: number
  readonly onProgress?: (progress: ChaosProgress) => void
  readonly log?: (message: string) => void
}

export interface ChaosProgress {
  readonly elapsedMs: number
  readonly faults: number
  readonly nemesis: string
  readonly ops: number
  readonly leader: number | undefined
}

/** Times in ms since the workload started (wall clock of the harness). */
export interface FaultRecord {
  readonly kind: NemesisName
  readonly label: string
  readonly targets: readonly number[]
  readonly startMs: number
  readonly healMs: number
  /** When a leader was back and every replica had caught up; null if that did not happen in time. */
  readonly recoveredMs: number | null
  readonly findings: readonly string[]
  /** What the nemesis saw that is no fault (what it checked, a replacement's new id). */
  readonly notes: readonly string[]
  /** pause-leader: reads by sticky readers waiting at the paused replica when it got SIGCONT. */
  readonly readsAtResume?: number
  /** pause-leader with staleReadsOnResume: when the readers read stale (run ms). */
  readonly staleWindow?: { readonly startMs: number; readonly endMs: number }
}

export interface StatusSample {
  readonly timeMs: number
  readonly replicas: ReadonlyArray<{
    readonly id: number
    readonly role?: string
    readonly term?: number
    readonly commit?: number
    readonly error?: string
  }>
}

export interface LeaderSpan {
  readonly id: number
  readonly term: number
  readonly startMs: number
  readonly endMs: number
}

export interface LatencyPoint {
  readonly timeMs: number
  readonly latencyMs: number
  readonly outcome: 'ok' | 'info'
}

export interface KeyFigures {
  readonly key: string
  readonly verdict: 'valid' | 'invalid' | 'unknown'
  readonly operations: number
  readonly acknowledgedSeqMax: number
  readonly finalSeq: number | null | 'unreadable'
  readonly explanation?: string
}

export interface ChaosReport {
  readonly startedAt: string
  readonly seed: number
  readonly replicas: number
  readonly nemeses: readonly NemesisName[]
  /** Whether the cluster served lease reads (cluster file timing.leaseReads). */
  readonly leaseReads: boolean
  /** Each client: role, implementation, whether it sticks, the consistency of its reads. */
  readonly clients: readonly WorkloadClientInfo[]
  /** The members at the end (ids grow as replicas are replaced). */
  readonly finalMembers: readonly number[]
  /** Add to a history time to get run time (ms since the workload started, as faults are timed). */
  readonly historyToRunMs: number
  readonly durationMs: number
  readonly ops: {
    readonly total: number
    readonly readOk: number
    readonly readFail: number
    readonly writeOk: number
    readonly writeInfo: number
  }
  readonly faults: readonly FaultRecord[]
  readonly faultsByKind: Readonly<Record<string, number>>
  readonly leaderChanges: number
  readonly leaderSpans: readonly LeaderSpan[]
  readonly unavailability: {
    readonly thresholdMs: number
    readonly windows: ReadonlyArray<{ readonly startMs: number; readonly endMs: number }>
    readonly longestMs: number
    readonly totalMs: number
  }
  readonly writeLatencyMs: { readonly p50: number; readonly p99: number; readonly max: number }
  readonly verdict: Verdict
  readonly keys: readonly KeyFigures[]
  readonly lostWrites: ReadonlyArray<{
    readonly key: string
    readonly acknowledgedSeq: number
    readonly finalSeq: number | null | 'unreadable'
  }>
  readonly splitBrain: readonly string[]
  /** Everything else that must not happen: a nemesis's own findings, no recovery after a heal. */
  readonly findings: readonly string[]
  readonly valid: boolean
  readonly files: { readonly runDir: string; readonly history: string; readonly logs: string }
  /** For the timeline picture. */
  readonly samples: readonly StatusSample[]
  readonly latency: readonly LatencyPoint[]
}

export const CHAOS_DEFAULTS = {
  warmupMs: 2_000,
  holdMs: 4_000,
  quietMs: 2_000,
  clients: 5,
  keys: 5,
  thinkMs: 10,
} as const
/** A gap this long between acknowledged writes counts as a window of unavailability. */
export const UNAVAILABILITY_THRESHOLD_MS = 500
/** After a heal the cluster has this long to elect a leader and catch every replica up. */
export const RECOVERY_TIMEOUT_MS = 30_000
const SAMPLE_INTERVAL_MS = 250
/** Latency points kept for the picture: slow and failed ones all, the rest sampled. */
const LATENCY_POINTS_MAX = 5_000

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const seed = options.seed ?? Date.now() % 1_000_000_007
  const rng = new SimRng(seed)
  const warmupMs = options.warmupMs ?? CHAOS_DEFAULTS.warmupMs
  const holdMs = options.holdMs ?? CHAOS_DEFAULTS.holdMs
  const quietMs = options.quietMs ?? CHAOS_DEFAULTS.quietMs
  const log = options.log ?? (() => {})
  if (options.cycles === undefined && options.durationMs === undefined)
    throw new TypeError('runChaos: give cycles or durationMs')
  if (options.nemeses.length === 0) throw new TypeError('runChaos: at least one nemesis')
  mkdirSync(options.runDir, { recursive: true })
  const historyPath = join(options.runDir, 'history.jsonl')
  const startedAt = new Date().toISOString()

  const leaseReads = options.leaseReads ?? options.nemeses.includes('pause-leader')
  const readConsistency = options.readConsistency ?? 'linearizable'
  const cluster = NetnsCluster.start({ replicas: options.replicas, leaseReads })
  let keepLogs = true
  try {
    const agent = await cluster.startAgent({
      historyPath,
      clients: options.clients ?? CHAOS_DEFAULTS.clients,
      keys: options.keys ?? CHAOS_DEFAULTS.keys,
      thinkMs: options.thinkMs ?? CHAOS_DEFAULTS.thinkMs,
      readConsistency,
      // The readers that stick to the replica they last believed led: lease reads when leases are
      // on, so they ask a paused old leader the moment it resumes; the negative control's stale
      // reads are everyone's.
      readerConsistency: leaseReads && readConsistency === 'linearizable' ? 'lease' : readConsistency,
    })
    await cluster.waitForLeader(30_000)
    await agent.request('start')
    const runStartWallMs = Date.now()
    const now = (): number => Date.now() - runStartWallMs

    // The watcher: every replica's role and term, all run long; two leaders in one term is split brain.
    const samples: StatusSample[] = []
    const leadersByTerm = new Map<number, number>()
    const splitBrain: string[] = []
    let ops = 0
    let currentNemesis = 'warm-up'
    let faultCount = 0
    let latestLeader: number | undefined
    let watching = true
    const record = (observations: readonly ReplicaObservation[], timeMs: number): void => {
      samples.push({
        timeMs,
        replicas: observations.map((entry) =>
          entry.status === undefined
            ? { id: entry.id, error: entry.error ?? 'UNAVAILABLE' }
            : { id: entry.id, role: entry.status.role, term: entry.status.term, commit: entry.status.commit },
        ),
      })
      for (const entry of observations) {
        if (entry.status?.role !== 'leader') continue
        const previous = leadersByTerm.get(entry.status.term)
        if (previous === undefined) leadersByTerm.set(entry.status.term, entry.id)
        else if (previous !== entry.id)
          splitBrain.push(
            `r${previous} and r${entry.id} both reported role leader in term ${entry.status.term} (seen at ${timeMs} ms)`,
          )
      }
      const leader = observations
        .filter((entry) => entry.status?.role === 'leader')
        .sort((a, b) => b.status!.term - a.status!.term)[0]
      latestLeader = leader?.id
    }
    const watcher = (async () => {
      while (watching) {
        const started = Date.now()
        try {
          // The members of the moment: a replaced replica leaves, its replacement comes in.
          const { observations, counts } = await cluster.observeWithCounts()
          record(observations, now())
          ops = counts.ok + counts.fail + counts.info
        } catch {
          // The agent is busy or gone; the next round tries again.
        }
        options.onProgress?.({
          elapsedMs: now(),
          faults: faultCount,
          nemesis: currentNemesis,
          ops,
          leader: latestLeader,
        })
        await sleep(Math.max(0, SAMPLE_INTERVAL_MS - (Date.now() - started)))
      }
    })()

    const faults: FaultRecord[] = []
    const findings: string[] = []
    const occurrences = new Map<NemesisName, number>()
    await sleep(warmupMs)
    for (let cycle = 0; ; cycle++) {
      if (options.cycles !== undefined && cycle >= options.cycles) break
      if (options.durationMs !== undefined && now() >= options.durationMs) break
      const nemesis = NEMESES[options.nemeses[cycle % options.nemeses.length]!]
      currentNemesis = nemesis.name
      const startMs = now()
      let fault: InjectedFault
      try {
        const occurrence = occurrences.get(nemesis.name) ?? 0
        occurrences.set(nemesis.name, occurrence + 1)
        fault = await nemesis.inject({
          cluster,
          rng,
          holdMs,
          occurrence,
          log,
          staleReadsOnResume: options.staleReadsOnResume === true,
          runMs: now,
        })
      } catch (error) {
        findings.push(`${nemesis.name}: injection failed: ${(error as Error).message}`)
        cluster.ensureWhole()
        continue
      }
      faultCount++
      log(`${fault.kind}: ${fault.label}`)
      const during = await fault.during()
      currentNemesis = `${nemesis.name} (healing)`
      const healMs = now()
      try {
        await fault.heal()
      } catch (error) {
        during.push(`the heal failed: ${(error as Error).message}`)
        cluster.ensureWhole()
      }
      let recoveredMs: number | null = null
      try {
        await cluster.waitConverged(RECOVERY_TIMEOUT_MS)
        recoveredMs = now()
      } catch (error) {
        during.push(`no recovery within ${RECOVERY_TIMEOUT_MS} ms of healing: ${(error as Error).message}`)
        cluster.ensureWhole()
      }
      faults.push({
        kind: fault.kind,
        label: fault.label,
        targets: fault.targets,
        startMs,
        healMs,
        recoveredMs,
        findings: during,
        notes: fault.notes ?? [],
        ...(fault.readsAtResume === undefined ? {} : { readsAtResume: fault.readsAtResume }),
        ...(fault.staleWindow === undefined ? {} : { staleWindow: fault.staleWindow }),
      })
      findings.push(...during.map((finding) => `${fault.kind} at ${startMs} ms: ${finding}`))
      currentNemesis = 'quiet'
      await sleep(quietMs)
    }

    // Healed for good: everyone up, caught up, agreeing; then the last reads, then the verdicts.
    cluster.ensureWhole()
    try {
      await cluster.waitConverged(RECOVERY_TIMEOUT_MS)
    } catch (error) {
      findings.push(`the cluster did not converge at the end: ${(error as Error).message}`)
    }
    currentNemesis = 'final reads'
    const finished = await agent.request('finish')
    const durationMs = now()
    watching = false
    await watcher
    await cluster.agent.close()
    const final = finished.final as FinalReads

    const events = readHistory(historyPath)
    const report = judge({
      leaseReads,
      // As of the finish: with each client's operation counts.
      clients: (finished.clients as WorkloadClientInfo[] | undefined) ?? agent.clients,
      finalMembers: cluster.ids,
      events,
      final,
      timeOriginMs: agent.timeOriginMs,
      runStartWallMs,
      samples,
      faults,
      splitBrain,
      findings,
      seed,
      startedAt,
      durationMs,
      options,
      historyPath,
    })
    keepLogs = !report.valid
    return report
  } finally {
    if (keepLogs && existsSync(cluster.dir))
      cpSync(cluster.dir, join(options.runDir, 'cluster'), {
        recursive: true,
        filter: (source) => !source.includes('/data'),
      })
    await cluster.teardown()
  }
}

interface JudgeInput {
  readonly leaseReads: boolean
  readonly clients: readonly WorkloadClientInfo[]
  readonly finalMembers: readonly number[]
  readonly events: readonly HistoryEvent[]
  readonly final: FinalReads
  readonly timeOriginMs: number
  readonly runStartWallMs: number
  readonly samples: readonly StatusSample[]
  readonly faults: readonly FaultRecord[]
  readonly splitBrain: readonly string[]
  readonly findings: readonly string[]
  readonly seed: number
  readonly startedAt: string
  readonly durationMs: number
  readonly options: ChaosOptions
  readonly historyPath: string
}

function judge(input: JudgeInput): ChaosReport {
  const { events, final } = input
  const toRunMs = (timeMs: number): number => Math.round(input.timeOriginMs + timeMs - input.runStartWallMs)
  const verdict = checkHistory(events)

  // Pair invokes with completions per process to count outcomes and measure write latency.
  const open = new Map<number, HistoryEvent>()
  const ops = { total: 0, readOk: 0, readFail: 0, writeOk: 0, writeInfo: 0 }
  const latency: LatencyPoint[] = []
  const acknowledgedOkTimes: number[] = []
  const acknowledgedSeqMax = new Map<string, number>()
  const operationsByKey = new Map<string, number>()
  for (const event of events) {
    if (event.type === 'invoke') {
      open.set(event.process, event)
      continue
    }
    const invoked = open.get(event.process)
    open.delete(event.process)
    if (invoked === undefined) continue
    ops.total++
    operationsByKey.set(event.key, (operationsByKey.get(event.key) ?? 0) + 1)
    if (event.f === 'read') {
      if (event.type === 'ok') ops.readOk++
      else ops.readFail++
      continue
    }
    const point = { timeMs: toRunMs(invoked.timeMs), latencyMs: event.timeMs - invoked.timeMs }
    if (event.type === 'ok') {
      ops.writeOk++
      latency.push({ ...point, outcome: 'ok' })
      acknowledgedOkTimes.push(toRunMs(event.timeMs))
      const seq = (event.value as RegisterValue).seq
      acknowledgedSeqMax.set(event.key, Math.max(acknowledgedSeqMax.get(event.key) ?? 0, seq))
    } else {
      ops.writeInfo++
      latency.push({ ...point, outcome: 'info' })
    }
  }

  const lostWrites: ChaosReport['lostWrites'][number][] = []
  const failureByKey = new Map(verdict.failures.map((failure) => [failure.key, failure.explanation]))
  const unknown = new Set(verdict.unknownKeys)
  const keys: KeyFigures[] = Object.keys(final).map((key) => {
    const read = final[key]!
    const finalSeq = read === 'unreadable' ? 'unreadable' : read === null ? null : read.seq
    const acknowledged = acknowledgedSeqMax.get(key) ?? 0
    if (acknowledged > 0 && (typeof finalSeq !== 'number' || finalSeq < acknowledged))
      lostWrites.push({ key, acknowledgedSeq: acknowledged, finalSeq })
    const explanation = failureByKey.get(key)
    return {
      key,
      verdict: explanation !== undefined ? 'invalid' : unknown.has(key) ? 'unknown' : 'valid',
      operations: operationsByKey.get(key) ?? 0,
      acknowledgedSeqMax: acknowledged,
      finalSeq,
      ...(explanation === undefined ? {} : { explanation }),
    }
  })

  const leaderSpans = spansOf(input.samples)
  let leaderChanges = 0
  for (let i = 1; i < leaderSpans.length; i++)
    if (leaderSpans[i]!.id !== leaderSpans[i - 1]!.id || leaderSpans[i]!.term !== leaderSpans[i - 1]!.term)
      leaderChanges++

  acknowledgedOkTimes.sort((a, b) => a - b)
  const windows: Array<{ startMs: number; endMs: number }> = []
  let previous = 0
  for (const time of [...acknowledgedOkTimes, input.durationMs]) {
    if (time - previous >= UNAVAILABILITY_THRESHOLD_MS) windows.push({ startMs: previous, endMs: time })
    previous = Math.max(previous, time)
  }
  const sortedLatency = latency
    .filter((point) => point.outcome === 'ok')
    .map((point) => point.latencyMs)
    .sort((a, b) => a - b)
  const quantile = (q: number): number =>
    sortedLatency.length === 0
      ? 0
      : round(sortedLatency[Math.min(sortedLatency.length - 1, Math.floor(q * sortedLatency.length))]!)

  const faultsByKind: Record<string, number> = {}
  for (const fault of input.faults) faultsByKind[fault.kind] = (faultsByKind[fault.kind] ?? 0) + 1
  const valid =
    verdict.valid === true && lostWrites.length === 0 && input.splitBrain.length === 0 && input.findings.length === 0
  return {
    startedAt: input.startedAt,
    seed: input.seed,
    replicas: input.options.replicas,
    nemeses: input.options.nemeses,
    leaseReads: input.leaseReads,
    clients: input.clients,
    finalMembers: input.finalMembers,
    historyToRunMs: input.timeOriginMs - input.runStartWallMs,
    durationMs: input.durationMs,
    ops,
    faults: input.faults,
    faultsByKind,
    leaderChanges,
    leaderSpans,
    unavailability: {
      thresholdMs: UNAVAILABILITY_THRESHOLD_MS,
      windows,
      longestMs: Math.max(0, ...windows.map((window) => window.endMs - window.startMs)),
      totalMs: windows.reduce((sum, window) => sum + window.endMs - window.startMs, 0),
    },
    writeLatencyMs: { p50: quantile(0.5), p99: quantile(0.99), max: quantile(1) },
    verdict,
    keys,
    lostWrites,
    splitBrain: [...new Set(input.splitBrain)],
    findings: input.findings,
    valid,
    files: { runDir: input.options.runDir, history: input.historyPath, logs: join(input.options.runDir, 'cluster') },
    samples: input.samples,
    latency: thin(latency),
  }
}

/** Consecutive samples in which one replica reports leader in one term, as spans. */
function spansOf(samples: readonly StatusSample[]): LeaderSpan[] {
  const spans: LeaderSpan[] = []
  const open = new Map<string, { id: number; term: number; startMs: number; endMs: number }>()
  for (const sample of samples) {
    const seen = new Set<string>()
    for (const replica of sample.replicas) {
      if (replica.role !== 'leader') continue
      const key = `${replica.id}/${replica.term}`
      seen.add(key)
      const span = open.get(key)
      if (span === undefined)
        open.set(key, {
          id: replica.id,
          term: replica.term!,
          startMs: sample.timeMs,
          endMs: sample.timeMs + SAMPLE_INTERVAL_MS,
        })
      else span.endMs = sample.timeMs + SAMPLE_INTERVAL_MS
    }
    for (const [key, span] of open) {
      if (seen.has(key)) continue
      spans.push(span)
      open.delete(key)
    }
  }
  spans.push(...open.values())
  return spans.sort((a, b) => a.startMs - b.startMs)
}

function thin(points: readonly LatencyPoint[]): LatencyPoint[] {
  if (points.length <= LATENCY_POINTS_MAX) return [...points]
  const notable = points.filter((point) => point.outcome === 'info' || point.latencyMs > 100)
  const rest = points.filter((point) => point.outcome === 'ok' && point.latencyMs <= 100)
  const keep = Math.max(0, LATENCY_POINTS_MAX - notable.length)
  const step = rest.length / Math.max(1, keep)
  const sampled = keep === 0 ? [] : Array.from({ length: keep }, (_, i) => rest[Math.floor(i * step)]!)
  return [...notable.slice(0, LATENCY_POINTS_MAX), ...sampled].sort((a, b) => a.timeMs - b.timeMs)
}

function round(value: number): number {
  return Math.round(value * 10) / 10
}
