import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type { BenchTarget, WriteRequest } from './target.ts'
import type { Progress } from './progress.ts'
import { round, summarize } from './stats.ts'
import type { LatencySummary } from './stats.ts'

/** Writes in flight for the concurrent-writes workload (the issue's figure). */
export const CONCURRENT_WRITES_IN_FLIGHT = 64
/** Reads in flight for the linearizable-reads workload: the same pressure as the writes. */
export const READS_IN_FLIGHT = 64
/** A workload stops after this many operations even if its duration has not run out. */
export const OPERATIONS_MAX = 2_000_000
/** A workload gives up after this many failed operations: something is broken, not slow. */
export const ERRORS_MAX = 1_000
/** Between retries of one write while a failover is under way. */
export const FAILOVER_RETRY_DELAY_MS = 2
/** A failover trial that has seen no acknowledged write this long after the kill is a failure. */
export const FAILOVER_TRIAL_TIMEOUT_MS = 15_000
/** Writes under way before the kill: long enough for the client to have settled on the leader. */
export const FAILOVER_WARMUP_MS = 300
/** Upper bound for bringing the killed member back and caught up between trials. */
export const HEALTHY_TIMEOUT_MS = 30_000

/**
 * Hands out keys of the peer-id pool so that no key has two writes in flight at once: a nodeledger
 * origin's later sequence overtaking an unacknowledged earlier one would make the earlier stale.
 */
export class KeyPool {
  private readonly seqs: number[]
  private readonly busy: boolean[]
  private cursor = 0
  /** Keys that have at least one acknowledged write: what the read workload reads. */
  readonly written = new Set<number>()

  readonly size: number

  constructor(size: number) {
    this.size = size
    this.seqs = new Array<number>(size).fill(0)
    this.busy = new Array<boolean>(size).fill(false)
  }

  take(): WriteRequest {
    for (let scanned = 0; scanned < this.size; scanned++) {
      const key = this.cursor
      this.cursor = (this.cursor + 1) % this.size
      if (this.busy[key]) continue
      this.busy[key] = true
      this.seqs[key] = this.seqs[key]! + 1
      return { key, seq: this.seqs[key]! }
    }
    throw new Error(`KeyPool: all ${this.size} keys have a write in flight`)
  }

  release(request: WriteRequest, acknowledged: boolean): void {
    this.busy[request.key] = false
    if (acknowledged) this.written.add(request.key)
  }
}

export interface ThroughputResult extends LatencySummary {
  opsPerS: number
  errors: number
  durationS: number
  inFlight: number
  firstError?: string
}

/**
 * `inFlight` loops, each doing one operation after another, for `durationMs` (or OPERATIONS_MAX
 * operations). Latency is measured per operation from send to acknowledgement.
 */
async function closedLoop(
  name: string,
  inFlight: number,
  durationMs: number,
  progress: Progress,
  operation: () => Promise<void>,
): Promise<ThroughputResult> {
  const bar = progress.phase(name, Math.ceil(durationMs / 1000), 's')
  const latenciesMs: number[] = []
  let errors = 0
  let firstError: string | undefined
  const started = performance.now()
  const deadline = started + durationMs
  const ticker = setInterval(() => {
    const elapsedS = (performance.now() - started) / 1000
    bar.update(
      Math.floor(elapsedS),
      `${latenciesMs.length} ops ${Math.round(latenciesMs.length / Math.max(elapsedS, 0.001))}/s${errors > 0 ? ` ${errors} errors` : ''}`,
    )
  }, 250)
  try {
    const loop = async (): Promise<void> => {
      while (performance.now() < deadline && latenciesMs.length < OPERATIONS_MAX && errors < ERRORS_MAX) {
        const sent = performance.now()
        try {
          await operation()
          latenciesMs.push(performance.now() - sent)
        } catch (error) {
          errors++
          firstError ??= describe(error)
        }
      }
    }
    await Promise.all(Array.from({ length: inFlight }, loop))
  } finally {
    clearInterval(ticker)
  }
  const elapsedS = (performance.now() - started) / 1000
  const result: ThroughputResult = {
    opsPerS: round(latenciesMs.length / elapsedS, 1),
    ...summarize(latenciesMs),
    errors,
    durationS: round(elapsedS, 2),
    inFlight,
  }
  if (firstError !== undefined) result.firstError = firstError
  bar.done(
    `${result.opsPerS} ops/s p50 ${result.p50Ms} ms p99 ${result.p99Ms} ms${errors > 0 ? ` ${errors} errors` : ''}`,
  )
  if (errors >= ERRORS_MAX) throw new Error(`${name}: ${errors} errors (first: ${firstError})`)
  return result
}

function writeOnce(target: BenchTarget, keys: KeyPool): () => Promise<void> {
  return async () => {
    const request = keys.take()
    let acknowledged = false
    try {
      await target.write(request)
      acknowledged = true
    } finally {
      keys.release(request, acknowledged)
    }
  }
}

export function sequentialWrites(
  target: BenchTarget,
  keys: KeyPool,
  durationMs: number,
  progress: Progress,
): Promise<ThroughputResult> {
  return closedLoop(`${target.system} seq-writes (1 client)`, 1, durationMs, progress, writeOnce(target, keys))
}

export function concurrentWrites(
  target: BenchTarget,
  keys: KeyPool,
  durationMs: number,
  progress: Progress,
): Promise<ThroughputResult> {
  return closedLoop(
    `${target.system} conc-writes (${CONCURRENT_WRITES_IN_FLIGHT} in flight)`,
    CONCURRENT_WRITES_IN_FLIGHT,
    durationMs,
    progress,
    writeOnce(target, keys),
  )
}

export function linearizableReads(
  target: BenchTarget,
  keys: KeyPool,
  durationMs: number,
  progress: Progress,
): Promise<ThroughputResult> {
  const written = [...keys.written]
  if (written.length === 0) throw new Error('linearizable reads need written keys: run a write workload first')
  let cursor = 0
  return closedLoop(
    `${target.system} reads (${READS_IN_FLIGHT} in flight)`,
    READS_IN_FLIGHT,
    durationMs,
    progress,
    () => {
      cursor = (cursor + 1) % written.length
      return target.read(written[cursor]!)
    },
  )
}

/** How long after a trial's first acknowledgement the bench waits for the election's log lines. */
export const ELECTION_LOG_TIMEOUT_MS = 2_000

/** One failover trial: what the client saw, and what the servers' logs say happened meanwhile. */
export interface FailoverTrial {
  trial: number
  killed: number
  /** The kill until the first write acknowledged after it (the client-observed gap), ms. */
  clientGapMs: number | null
  /** The kill until a new leader's log says it leads (the server-side gap), ms; null if no log says so. */
  serverGapMs: number | null
  /** The kill until the winner's campaign began, ms. */
  campaignMs: number | null
  newLeader: number | null
  term: number | null
  /** Campaigns by any member between the kill and the win (more than one: a split vote or a retry). */
  campaigns: number | null
  /** The members' role changes from the kill to the win (member, role, ms after the kill). */
  timeline: string | null
  /** nodeledger: whether the leader-lost fast path elected the new leader, or a full election timeout. */
  path: 'leader-lost' | 'timeout' | null
  /** clientGap - serverGap: the new leader was there, the client had not yet been acknowledged, ms. */
  clientAfterElectionMs: number | null
  /** Failed attempts inside the client (nodeledger) or the target (etcd) between the kill and the ack. */
  clientFailures: number
  /** Those failures by code, e.g. `UNAVAILABLE 5, NOT_LEADER 1`. */
  clientFailureCodes: string
  /** The kill until the last of those failures, ms: after it, one attempt that succeeded. */
  lastFailureMs: number | null
  /** Calls that threw (the client's attempts ran out) and that the bench loop retried. */
  callRetries: number
  error?: string
}

export interface FailoverResult extends LatencySummary {
  trials: number
  failedTrials: number
  /** Client-observed gaps (kill to first acknowledged write) of the trials that did not fail, ms. */
  gapsMs: number[]
  /** Server-side gaps (kill to a new leader elected) of the trials whose logs say, ms. */
  serverGapsMs: number[]
  serverP50Ms: number
  serverP90Ms: number
  serverP99Ms: number
  serverMaxMs: number
  /** Median of clientGap - serverGap. */
  clientAfterElectionP50Ms: number
  clientAfterElectionMaxMs: number
  /** nodeledger only: trials elected by the leader-lost fast path, and by a full election timeout. */
  leaderLostTrials?: number
  timeoutTrials?: number
  trialDetails: FailoverTrial[]
  timing: string
  firstError?: string
}

/**
 * Failover under a 1-client sequential write load. Each trial: writes for FAILOVER_WARMUP_MS (plus
 * a little jitter so the kill does not fall on one phase of the heartbeat), then, right after an
 * acknowledgement and with no write in flight, SIGKILL of the leader; the writer keeps going,
 * retrying each write every FAILOVER_RETRY_DELAY_MS until it is acknowledged. The client gap runs
 * from the kill to the first acknowledgement after it, so it includes one write's latency on the
 * new leader; the server gap from the kill to the new leader's "became leader" log line. Then the
 * killed member restarts and the cluster must be healthy again before the next trial.
 */
export async function failover(
  target: BenchTarget,
  keys: KeyPool,
  trials: number,
  timing: string,
  progress: Progress,
  random: () => number,
): Promise<FailoverResult> {
  const bar = progress.phase(`${target.system} failover (${timing})`, trials, 'trials')
  const details: FailoverTrial[] = []
  let firstError: string | undefined
  for (let trial = 0; trial < trials; trial++) {
    await target.waitHealthy(HEALTHY_TIMEOUT_MS)
    const leader = await target.leader()
    const killAfter = performance.now() + FAILOVER_WARMUP_MS + random() * 100
    let killedAt = Number.NaN
    let killedAtMs = Number.NaN
    let firstAckAfterKill = Number.NaN
    let killed: Promise<void> | undefined
    let mark: ReturnType<BenchTarget['markLogs']> | undefined
    let callRetries = 0
    const trialDeadline = killAfter + FAILOVER_TRIAL_TIMEOUT_MS
    const detail: FailoverTrial = {
      trial: trial + 1,
      killed: leader,
      clientGapMs: null,
      serverGapMs: null,
      campaignMs: null,
      newLeader: null,
      term: null,
      campaigns: null,
      timeline: null,
      path: null,
      clientAfterElectionMs: null,
      clientFailures: 0,
      clientFailureCodes: '',
      lastFailureMs: null,
      callRetries: 0,
    }
    try {
      while (Number.isNaN(firstAckAfterKill)) {
        const request = keys.take()
        let acknowledged = false
        try {
          for (;;) {
            try {
              await target.write(request)
              acknowledged = true
              break
            } catch (error) {
              if (killed === undefined) throw error
              if (performance.now() > trialDeadline)
                throw new Error(
                  `no write acknowledged within ${FAILOVER_TRIAL_TIMEOUT_MS} ms of the kill (last error: ${describe(error)})`,
                )
              callRetries++
              await sleep(FAILOVER_RETRY_DELAY_MS)
            }
          }
        } finally {
          keys.release(request, acknowledged)
        }
        const ackAt = performance.now()
        if (killed !== undefined) {
          firstAckAfterKill = ackAt
        } else if (ackAt >= killAfter) {
          mark = target.markLogs()
          target.takeClientEvents()
          killedAtMs = Date.now()
          killedAt = performance.now()
          killed = target.kill(leader)
        }
      }
      const gapMs = firstAckAfterKill - killedAt
      detail.clientGapMs = round(gapMs, 1)
      bar.update(trial + 1, `last ${Math.round(gapMs)} ms`)
    } catch (error) {
      detail.error = describe(error)
      firstError ??= detail.error
      bar.update(trial + 1, `trial ${trial + 1} failed: ${detail.error}`)
    }
    if (killed !== undefined) {
      const events = target.takeClientEvents().filter((event) => event.what === 'attempt failed')
      detail.clientFailures = events.length
      detail.clientFailureCodes = countCodes(events.map((event) => event.code ?? '?'))
      detail.lastFailureMs = events.length === 0 ? null : round(events[events.length - 1]!.atMs - killedAtMs, 1)
      detail.callRetries = callRetries
      const election = await target.election(mark!, leader, killedAtMs, ELECTION_LOG_TIMEOUT_MS)
      if (election !== undefined) {
        detail.serverGapMs = election.electedMs
        detail.campaignMs = election.campaignMs
        detail.newLeader = election.newLeader
        detail.term = election.term
        detail.campaigns = election.campaigns
        detail.timeline = election.timeline
        detail.path = election.path ?? null
        if (detail.clientGapMs !== null)
          detail.clientAfterElectionMs = round(detail.clientGapMs - election.electedMs, 1)
      }
      await killed
      await target.restart(leader)
    }
    details.push(detail)
  }
  await target.waitHealthy(HEALTHY_TIMEOUT_MS)
  const gapsMs = details.flatMap((d) => (d.error === undefined && d.clientGapMs !== null ? [d.clientGapMs] : []))
  const serverGapsMs = details.flatMap((d) => (d.serverGapMs === null ? [] : [d.serverGapMs]))
  const after = summarize(details.flatMap((d) => (d.clientAfterElectionMs === null ? [] : [d.clientAfterElectionMs])))
  const summary = summarize(gapsMs)
  const server = summarize(serverGapsMs)
  const failedTrials = details.filter((d) => d.error !== undefined).length
  const paths = details.flatMap((d) => (d.path === null ? [] : [d.path]))
  bar.done(
    `client p50 ${summary.p50Ms} ms p99 ${summary.p99Ms} ms, server p50 ${server.p50Ms} ms p99 ${server.p99Ms} ms${failedTrials > 0 ? ` ${failedTrials} failed` : ''}`,
  )
  const result: FailoverResult = {
    ...summary,
    trials,
    failedTrials,
    gapsMs,
    serverGapsMs,
    serverP50Ms: server.p50Ms,
    serverP90Ms: server.p90Ms,
    serverP99Ms: server.p99Ms,
    serverMaxMs: server.maxMs,
    clientAfterElectionP50Ms: after.p50Ms,
    clientAfterElectionMaxMs: after.maxMs,
    ...(paths.length > 0
      ? {
          leaderLostTrials: paths.filter((path) => path === 'leader-lost').length,
          timeoutTrials: paths.filter((path) => path === 'timeout').length,
        }
      : {}),
    trialDetails: details,
    timing,
  }
  if (firstError !== undefined) result.firstError = firstError
  return result
}

/** `UNAVAILABLE 5, NOT_LEADER 1`: codes by count, most first. */
function countCodes(codes: readonly string[]): string {
  const counts = new Map<string, number>()
  for (const code of codes) counts.set(code, (counts.get(code) ?? 0) + 1)
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([code, count]) => `${code} ${count}`)
    .join(', ')
}

export function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code
    return `${typeof code === 'string' ? `${code}: ` : ''}${error.message}`.slice(0, 200)
  }
  return String(error).slice(0, 200)
}
