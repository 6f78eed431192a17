/**
 * The scale workload of `pnpm bench` (issue 13), nodeledger only: N workers (NodeEventTrackers, in
 * worker-host children of up to WORKERS_PER_PROCESS_MAX each, as the gossip workload runs them)
 * against a fresh 3-replica cluster per N, started all at once (the join storm), then left idle,
 * then measured:
 *
 *   start → all active     every tracker's start() resolved (caught up, joined, first heartbeat
 *                          acknowledged: the registry holds it active)
 *   leader CPU and RSS     sampled every SAMPLE_INTERVAL_MS from /proc, during the storm and idle
 *   per-worker RSS         the worker hosts' RSS over N (a host's runtime is shared by its workers)
 *   worker CPU per second  the worker hosts' CPU while idle, per worker: what one worker costs
 *   idle entries/min       the leader's commit index over the idle window
 *   watch fan-out          an operator's write acknowledged → applied (from the log) at 99% of workers
 *   gossip delta           a worker's update → seen at 99% of the others (gossip or log)
 *   elections, expiries    "became leader" and "node inactive" lines of the replicas' logs from
 *                          the first leader on (every worker stays alive, so any expiry is false)
 *
 * The machine's busy share (/proc/stat) is recorded with each window: near 100% means 2 cores
 * could not carry N libp2p hosts plus the cluster, and the latencies measure the queue for a core.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { cores } from './load.ts'
import { machineCpuTicks, processCpuMs, processRssBytes } from './cpu.ts'
import { linesFrom, logSize } from './logs.ts'
import { DeltaFactory, generatePeers } from './payload.ts'
import { formatTop, monotonicUs, profileFiles, readProfile, sliceProfile, topFunctions } from './profile.ts'
import type { Window } from './profile.ts'
import type { Progress } from './progress.ts'
import { round, summarize } from './stats.ts'
import type { Cleanup } from './target.ts'
import type { Arrival } from './worker-protocol.ts'
import type { RegistryCluster, WorkerHostProcess, WorkerRef } from './worker-workloads.ts'
import {
  ARRIVAL_TIMEOUT_MS,
  GOSSIP_REACH_FRACTION,
  GOSSIP_SPACING_MS,
  MESH_CONNECTIONS_MIN,
  MESH_WAIT_MS_MAX,
  allStatuses,
  leaderStatus,
  measureGossipDeltas,
  openCluster,
  startWorkerHosts,
} from './worker-workloads.ts'
import { describe } from './workloads.ts'

/** Leader and host CPU/RSS are read this often. */
export const SAMPLE_INTERVAL_MS = 1_000
/** After all are active and the mesh formed: the idle window (leader CPU, entries written, worker cost). */
export const IDLE_WINDOW_MS = 30_000
/** Operator writes timed through the watch, GOSSIP_SPACING_MS apart. */
export const WATCH_CHANGES = 20
/** Worker updates timed through gossip. */
export const SCALE_GOSSIP_DELTAS = 20
/** The machine counts as saturated above this busy share of all its cores. */
export const SATURATED_BUSY_FRACTION = 0.9
/** A join storm that has not ended after this long is reported as it stands (no later phases). */
export const SCALE_START_TIMEOUT_MS = 600_000

export interface WindowFigures {
  /** Wall time of the window, s. */
  seconds: number
  /** Mean leader CPU over the window, % of one core, and the largest one-sample figure. */
  leaderCpuPct: number
  leaderCpuPctMax: number
  leaderRssMb: number
  /** Followers' CPU (both), % of one core. */
  followersCpuPct: number
  /** The worker hosts' CPU together, % of one core. */
  workersCpuPct: number
  /** The machine's busy share of all its cores, 0..1 (others' work included). */
  machineBusy: number
}

export interface ScaleResult {
  workers: number
  processes: number
  /** The worker hosts' niceness (0: equal to the replicas). */
  workersNice: number
  /** Workers whose start() resolved (all of them, unless the start timed out). */
  activeWorkers: number
  /** Start of the first worker host until every tracker's start() resolved. */
  startToAllActiveS: number
  storm: WindowFigures
  idle: WindowFigures
  /** Worker hosts' RSS over workers, MB. */
  perWorkerRssMb: number
  /** CPU ms one worker spends per second while idle (its host's share). */
  workerCpuMsPerS: number
  /** Leader CPU ms per worker per second while idle. */
  leaderCpuMsPerWorkerS: number
  idleEntriesPerMin: number
  /** Operator write acknowledged → applied at 99% of the workers; failed: under 99% in ARRIVAL_TIMEOUT_MS. */
  watchP50Ms: number
  watchP99Ms: number
  watchFailed: number
  gossipP50Ms: number
  gossipP99Ms: number
  gossipFailed: number
  /** Leader elections after the first leader, over the whole run. */
  elections: number
  /** Workers marked inactive while they ran: by reason (ttl, disconnected, left). */
  falseExpiries: number
  falseExpiriesByReason: Record<string, number>
  /** The machine was above SATURATED_BUSY_FRACTION during the storm or the idle window. */
  saturated: boolean
  watchMs: number[]
  gossipMs: number[]
  firstError?: string
}

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..')
const now = (): number => performance.timeOrigin + performance.now()

interface Sample {
  atMs: number
  leaderCpuMs: number
  followersCpuMs: number
  workersCpuMs: number
  leaderRssBytes: number
  workersRssBytes: number
  machine: { busy: number; total: number } | undefined
}

/** Reads the leader's, the followers' and the worker hosts' CPU and RSS now. */
function sample(registry: RegistryCluster, leaderId: number, hosts: readonly WorkerHostProcess[]): Sample {
  let followersCpuMs = 0
  for (const id of registry.cluster.ids) {
    if (id === leaderId) continue
    const pid = registry.cluster.pidOf(id)
    followersCpuMs += pid === undefined ? 0 : (processCpuMs(pid) ?? 0)
  }
  const leaderPid = registry.cluster.pidOf(leaderId)
  let workersCpuMs = 0
  let workersRssBytes = 0
  for (const host of hosts) {
    const pid = host.pid
    if (pid === undefined) continue
    workersCpuMs += processCpuMs(pid) ?? 0
    workersRssBytes += processRssBytes(pid) ?? 0
  }
  return {
    atMs: now(),
    leaderCpuMs: leaderPid === undefined ? 0 : (processCpuMs(leaderPid) ?? 0),
    followersCpuMs,
    workersCpuMs,
    leaderRssBytes: leaderPid === undefined ? 0 : (processRssBytes(leaderPid) ?? 0),
    workersRssBytes,
    machine: machineCpuTicks(),
  }
}

/** The figures of the samples taken between `fromMs` and `toMs`. */
function windowFigures(samples: readonly Sample[], fromMs: number, toMs: number): WindowFigures {
  const inside = samples.filter((s) => s.atMs >= fromMs && s.atMs <= toMs)
  const first = inside[0]
  const last = inside.at(-1)
  if (first === undefined || last === undefined || last === first) {
    const nan = Number.NaN
    return {
      seconds: round((toMs - fromMs) / 1000, 1),
      leaderCpuPct: nan,
      leaderCpuPctMax: nan,
      leaderRssMb: nan,
      followersCpuPct: nan,
      workersCpuPct: nan,
      machineBusy: nan,
    }
  }
  const wallMs = last.atMs - first.atMs
  const pct = (ms: number): number => round((ms / wallMs) * 100, 1)
  let leaderCpuPctMax = 0
  for (let i = 1; i < inside.length; i++) {
    const a = inside[i - 1]!
    const b = inside[i]!
    leaderCpuPctMax = Math.max(leaderCpuPctMax, ((b.leaderCpuMs - a.leaderCpuMs) / (b.atMs - a.atMs)) * 100)
  }
  const machineBusy =
    first.machine !== undefined && last.machine !== undefined && last.machine.total > first.machine.total
      ? round((last.machine.busy - first.machine.busy) / (last.machine.total - first.machine.total), 3)
      : Number.NaN
  return {
    seconds: round(wallMs / 1000, 1),
    leaderCpuPct: pct(last.leaderCpuMs - first.leaderCpuMs),
    leaderCpuPctMax: round(leaderCpuPctMax, 1),
    leaderRssMb: round(Math.max(...inside.map((s) => s.leaderRssBytes)) / 2 ** 20, 1),
    followersCpuPct: pct(last.followersCpuMs - first.followersCpuMs),
    workersCpuPct: pct(last.workersCpuMs - first.workersCpuMs),
    machineBusy,
  }
}

/** Role changes to leader and workers marked inactive in the replicas' logs from `offsets` on. */
function logEvents(
  registry: RegistryCluster,
  offsets: ReadonlyMap<number, number>,
  /** undefined: every node marked inactive counts (before the workers' ids are known, only workers have records). */
  workerPeerIds: ReadonlySet<string> | undefined,
): { leaderships: Array<{ member: number; term: number }>; inactive: Record<string, number> } {
  const leaderships: Array<{ member: number; term: number }> = []
  const inactive: Record<string, number> = {}
  for (const id of registry.cluster.ids) {
    for (const line of linesFrom(registry.cluster.logPath(id), offsets.get(id) ?? 0)) {
      if (!line.includes('"became leader"') && !line.includes('"node inactive"')) continue
      try {
        const entry = JSON.parse(line) as { msg?: string; term?: number; peer?: string; reason?: string }
        if (entry.msg === 'became leader' && typeof entry.term === 'number')
          leaderships.push({ member: id, term: entry.term })
        else if (
          entry.msg === 'node inactive' &&
          entry.peer !== undefined &&
          (workerPeerIds?.has(entry.peer) ?? true)
        ) {
          const reason = entry.reason ?? '?'
          inactive[reason] = (inactive[reason] ?? 0) + 1
        }
      } catch {
        // a line cut short: not an event
      }
    }
  }
  return { leaderships, inactive }
}

export async function scale(options: {
  workers: number
  progress: Progress
  random: () => number
  cleanups: Set<Cleanup>
  /** Profile the replicas (node --cpu-prof) into this dir; the leader's storm and idle windows are summarised. */
  profileDir?: string
  /**
   * The worker hosts' niceness. 0: they compete with the replicas for the cores as equals. 10: the
   * replicas get the CPU first, as they would with each worker on a machine of its own (the
   * workers' own figures then measure what is left over).
   */
  workersNice?: number
}): Promise<ScaleResult> {
  const { workers: total, progress } = options
  const runDir = mkdtempSync(join(tmpdir(), `nodeledger-bench-scale-${total}-`))
  const profileDir = options.profileDir === undefined ? undefined : join(options.profileDir, `scale-${total}`)
  const registry = await openCluster(options.cleanups, profileDir)
  let profileWindows: { leader: number; storm: Window; idle: Window } | undefined
  const hosts: WorkerHostProcess[] = []
  const stopHosts: Cleanup = async () => {
    await Promise.all(hosts.map((host) => host.stop()))
  }
  options.cleanups.add(stopHosts)
  const samples: Sample[] = []
  let sampler: NodeJS.Timeout | undefined
  try {
    const leader = await leaderStatus(registry.operator, 30_000, registry.cluster)
    // Elections and expiries count from here: the first leader is not an election of the run.
    const offsets = new Map(registry.cluster.ids.map((id) => [id, logSize(registry.cluster.logPath(id))]))
    sampler = setInterval(() => samples.push(sample(registry, leader.id, hosts)), SAMPLE_INTERVAL_MS)
    samples.push(sample(registry, leader.id, hosts))

    // ---- the join storm: every host starts at once ----
    const startBar = progress.phase(`nodeledger scale-${total} join storm`, total, 'workers')
    const startedAt = now()
    const stormStartUs = monotonicUs()
    let activeCount = 0
    let refs: WorkerRef[]
    try {
      refs = await startWorkerHosts({
        total,
        bootstrap: registry.cluster.multiaddrs,
        runDir,
        hosts,
        timeoutMs: SCALE_START_TIMEOUT_MS,
        nice: options.workersNice ?? 0,
        onStarted: (count) => {
          activeCount = count
          startBar.update(count, `leader CPU ${lastLeaderPct(samples)}%`)
        },
      })
    } catch (error) {
      // The machine could not carry N (or something broke): the storm's figures are the finding.
      samples.push(sample(registry, leader.id, hosts))
      const storm = windowFigures(samples, startedAt - SAMPLE_INTERVAL_MS, now())
      const events = logEvents(registry, offsets, undefined)
      profileWindows = {
        leader: leader.id,
        storm: { startUs: stormStartUs, endUs: monotonicUs() },
        idle: { startUs: monotonicUs(), endUs: monotonicUs() },
      }
      startBar.done(
        `only ${activeCount} of ${total} active after ${Math.round((now() - startedAt) / 1000)} s; ${events.leaderships.length} elections, ${sumOf(events.inactive)} expiries; leader CPU ${storm.leaderCpuPct}%, machine busy ${Math.round(storm.machineBusy * 100)}%`,
      )
      return partialResult(total, hosts.length, options.workersNice ?? 0, activeCount, storm, events, describe(error))
    }
    const allActiveAt = now()
    const stormEndUs = monotonicUs()
    samples.push(sample(registry, leader.id, hosts))
    const startToAllActiveS = round((allActiveAt - startedAt) / 1000, 1)
    const storm = windowFigures(samples, startedAt - SAMPLE_INTERVAL_MS, allActiveAt)
    startBar.done(
      `${total} active in ${startToAllActiveS} s; leader CPU ${storm.leaderCpuPct}% (max ${storm.leaderCpuPctMax}%), RSS ${storm.leaderRssMb} MB, machine busy ${Math.round(storm.machineBusy * 100)}%`,
    )

    // ---- the mesh forms (the gossip figures need it), then the idle window ----
    const meshStartedAt = now()
    while (now() - meshStartedAt < MESH_WAIT_MS_MAX) {
      const statuses = await allStatuses(hosts, false)
      if (Math.min(...statuses.workers.map((worker) => worker.gossipConnections)) >= MESH_CONNECTIONS_MIN) break
      await sleep(500)
    }
    const idleBar = progress.phase(`nodeledger scale-${total} idle`, IDLE_WINDOW_MS / 1000, 's')
    const commitBefore = (await leaderStatus(registry.operator, 30_000)).commit
    const idleFromMs = now()
    const idleStartUs = monotonicUs()
    samples.push(sample(registry, leader.id, hosts))
    while (now() - idleFromMs < IDLE_WINDOW_MS) {
      await sleep(1_000)
      idleBar.update(Math.floor((now() - idleFromMs) / 1000), `leader CPU ${lastLeaderPct(samples)}%`)
    }
    samples.push(sample(registry, leader.id, hosts))
    const idleToMs = now()
    profileWindows = {
      leader: leader.id,
      storm: { startUs: stormStartUs, endUs: stormEndUs },
      idle: { startUs: idleStartUs, endUs: monotonicUs() },
    }
    const commitAfter = (await leaderStatus(registry.operator, 30_000)).commit
    const idle = windowFigures(samples, idleFromMs, idleToMs)
    const idleSamples = samples.filter((s) => s.atMs >= idleFromMs && s.atMs <= idleToMs)
    const idleFirst = idleSamples[0]!
    const idleLast = idleSamples.at(-1)!
    const idleS = (idleLast.atMs - idleFirst.atMs) / 1000
    const idleEntriesPerMin = round(((commitAfter - commitBefore) / ((idleToMs - idleFromMs) / 1000)) * 60, 1)
    const workerCpuMsPerS = round((idleLast.workersCpuMs - idleFirst.workersCpuMs) / idleS / total, 2)
    const leaderCpuMsPerWorkerS = round((idleLast.leaderCpuMs - idleFirst.leaderCpuMs) / idleS / total, 3)
    const perWorkerRssMb = round(idleLast.workersRssBytes / total / 2 ** 20, 1)
    idleBar.done(
      `leader CPU ${idle.leaderCpuPct}%, RSS ${idle.leaderRssMb} MB; ${idleEntriesPerMin} entries/min; per worker ${perWorkerRssMb} MB, ${workerCpuMsPerS} CPU ms/s`,
    )

    // ---- watch fan-out: an operator's writes, each timed to 99% of the workers ----
    const watchBar = progress.phase(`nodeledger scale-${total} watch fan-out`, WATCH_CHANGES, 'changes')
    const subject = (await generatePeers(1)).peerIds[0]!
    const factory = new DeltaFactory(registry.operatorPeerId, subject)
    const needed = Math.ceil(GOSSIP_REACH_FRACTION * total)
    const watchMs: number[] = []
    let watchFailed = 0
    let firstError: string | undefined
    const inFlight: Array<Promise<void>> = []
    // One origin's seqs must reach the leader in order: a later seq applied first makes the earlier
    // one STALE. The submits are chained; each change is still timed from its own acknowledgement.
    let submitted: Promise<unknown> = Promise.resolve()
    for (let seq = 1; seq <= WATCH_CHANGES; seq++) {
      const roundStartedAt = now()
      const arrivalsDone = hosts.map((host) =>
        host.next('arrivals', ARRIVAL_TIMEOUT_MS + 30_000, (reply) => reply.author === subject && reply.seq === seq),
      )
      await Promise.all(
        hosts.map((host) =>
          host.request({ type: 'expect', author: subject, seq, timeoutMs: ARRIVAL_TIMEOUT_MS }, 'expecting', 10_000),
        ),
      )
      inFlight.push(
        (async () => {
          try {
            const submit = submitted.catch(() => {}).then(() => registry.operator.submit(factory.delta(subject, seq)))
            submitted = submit
            await submit
            const acknowledgedAt = now()
            const arrivals = (await Promise.all(arrivalsDone)).flatMap((reply) => reply.arrivals)
            const times = arrivals
              .filter((arrival): arrival is Arrival => arrival !== null)
              .map((arrival) => arrival.atMs - acknowledgedAt)
              .sort((a, b) => a - b)
            // A fast worker may apply before the operator has its answer: clamped at 0.
            if (times.length >= needed) watchMs.push(round(Math.max(0, times[needed - 1]!), 1))
            else watchFailed++
          } catch (error) {
            watchFailed++
            firstError ??= describe(error)
          }
          watchBar.update(watchMs.length + watchFailed, `last ${watchMs.at(-1) ?? '-'} ms to 99%`)
        })(),
      )
      await sleep(Math.max(0, GOSSIP_SPACING_MS - (now() - roundStartedAt)))
    }
    await Promise.all(inFlight)
    const watch = summarize(watchMs)
    watchBar.done(
      `to 99%: p50 ${watch.p50Ms} ms p99 ${watch.p99Ms} ms${watchFailed > 0 ? `; ${watchFailed} failed` : ''}`,
    )

    // ---- gossip: workers' updates, each timed to 99% of the others ----
    const gossipBar = progress.phase(`nodeledger scale-${total} gossip`, SCALE_GOSSIP_DELTAS, 'deltas')
    const gossip = await measureGossipDeltas({
      hosts,
      refs,
      total,
      deltas: SCALE_GOSSIP_DELTAS,
      random: options.random,
      bar: gossipBar,
    })
    firstError ??= gossip.firstError
    const gossipSummary = summarize(gossip.reachMs)
    gossipBar.done(`to 99%: p50 ${gossipSummary.p50Ms} ms p99 ${gossipSummary.p99Ms} ms`)

    // ---- what the replicas logged while the workers ran ----
    const events = logEvents(registry, offsets, new Set(refs.map((ref) => ref.peerId)))
    const falseExpiries = sumOf(events.inactive)
    const saturated = storm.machineBusy > SATURATED_BUSY_FRACTION || idle.machineBusy > SATURATED_BUSY_FRACTION
    if (saturated)
      progress.log(
        `scale-${total}: the machine was saturated (busy ${Math.round(storm.machineBusy * 100)}% of ${cores()} cores in the storm, ${Math.round(idle.machineBusy * 100)}% idle): the latencies include waiting for a core`,
      )
    return {
      workers: total,
      processes: hosts.length,
      workersNice: options.workersNice ?? 0,
      activeWorkers: total,
      startToAllActiveS,
      storm,
      idle,
      perWorkerRssMb,
      workerCpuMsPerS,
      leaderCpuMsPerWorkerS,
      idleEntriesPerMin,
      watchP50Ms: watch.p50Ms,
      watchP99Ms: watch.p99Ms,
      watchFailed,
      gossipP50Ms: gossipSummary.p50Ms,
      gossipP99Ms: gossipSummary.p99Ms,
      gossipFailed: gossip.failedDeltas,
      elections: events.leaderships.length,
      falseExpiries,
      falseExpiriesByReason: events.inactive,
      saturated,
      watchMs,
      gossipMs: gossip.reachMs,
      ...(firstError === undefined ? {} : { firstError }),
    }
  } finally {
    clearInterval(sampler)
    options.cleanups.delete(stopHosts)
    await stopHosts()
    options.cleanups.delete(registry.close)
    await registry.close()
    if (profileDir !== undefined && profileWindows !== undefined) summariseProfile(profileDir, profileWindows, progress)
    if (process.env.BENCH_DEBUG === undefined) rmSync(runDir, { recursive: true, force: true })
    else progress.log(`scale-${total}: worker host logs kept in ${runDir}`)
  }
}

/** The leader's profile cut to the storm and the idle window: the top functions, printed and saved beside it. */
function summariseProfile(
  profileDir: string,
  windows: { leader: number; storm: Window; idle: Window },
  progress: Progress,
): void {
  const files = profileFiles(join(profileDir, `replica-${windows.leader}`))
  if (files.length === 0) {
    progress.log(`no profile written by the leader (replica ${windows.leader}) in ${profileDir}`)
    return
  }
  const profile = readProfile(files[0]!)
  const text: string[] = []
  for (const name of ['storm', 'idle'] as const) {
    const slice = sliceProfile(profile, windows[name])
    writeFileSync(join(profileDir, `leader-${name}.cpuprofile`), JSON.stringify(slice))
    text.push(formatTop(`leader (replica ${windows.leader}) ${name}`, topFunctions(slice, ROOT, 25)))
  }
  writeFileSync(join(profileDir, 'leader-top.txt'), `${text.join('\n\n')}\n`)
  progress.log(`${text.join('\n\n')}\n(profiles in ${profileDir})`)
}

function sumOf(counts: Record<string, number>): number {
  return Object.values(counts).reduce((sum, n) => sum + n, 0)
}

/** A run whose join storm did not end: its figures, the rest NaN. */
function partialResult(
  workers: number,
  processes: number,
  workersNice: number,
  activeWorkers: number,
  storm: WindowFigures,
  events: ReturnType<typeof logEvents>,
  firstError: string,
): ScaleResult {
  const nan = Number.NaN
  const idle = { ...storm, seconds: 0 }
  for (const key of Object.keys(idle) as Array<keyof WindowFigures>) idle[key] = nan
  return {
    workers,
    processes,
    workersNice,
    activeWorkers,
    startToAllActiveS: nan,
    storm,
    idle,
    perWorkerRssMb: nan,
    workerCpuMsPerS: nan,
    leaderCpuMsPerWorkerS: nan,
    idleEntriesPerMin: nan,
    watchP50Ms: nan,
    watchP99Ms: nan,
    watchFailed: nan,
    gossipP50Ms: nan,
    gossipP99Ms: nan,
    gossipFailed: nan,
    elections: events.leaderships.length,
    falseExpiries: sumOf(events.inactive),
    falseExpiriesByReason: events.inactive,
    saturated: storm.machineBusy > SATURATED_BUSY_FRACTION,
    watchMs: [],
    gossipMs: [],
    firstError,
  }
}

function lastLeaderPct(samples: readonly Sample[]): string {
  const a = samples.at(-2)
  const b = samples.at(-1)
  if (a === undefined || b === undefined || b.atMs === a.atMs) return '-'
  return String(Math.round(((b.leaderCpuMs - a.leaderCpuMs) / (b.atMs - a.atMs)) * 100))
}
