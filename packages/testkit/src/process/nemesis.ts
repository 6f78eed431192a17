import type { StatusResult } from '@nodeledger/protocol'
import type { SimRng } from '../sim/rng.ts'
import type { NetnsCluster } from './netns-cluster.ts'
import { MEMBER_ID_MAX, waitUntil } from './process-cluster.ts'

/**
 * The faults of issue 6, each a scheduled injection with its heal. A nemesis picks its victims
 * from what the cluster reports at the moment (the leader, a random replica), injects the fault,
 * may watch the cluster while the fault holds (`during`, which returns findings: things that
 * must not happen, such as an isolated leader that never steps down), and heals.
 *
 * What judges a run is outside: the history's linearizability, no acknowledged write lost, no two
 * leaders in one term, and recovery after every heal (chaos/run.ts).
 */

export const NEMESIS_NAMES = [
  'kill-leader',
  'kill-any',
  'pause-leader',
  'partition-leader',
  'partition-one-way',
  'kill-all',
  'clock-skew',
  'wipe-a-replica',
] as const
export type NemesisName = (typeof NEMESIS_NAMES)[number]

export interface NemesisContext {
  readonly cluster: NetnsCluster
  readonly rng: SimRng
  /** How long the fault should hold before it is healed. */
  readonly holdMs: number
  /** How many times this nemesis was injected before in this run (0 the first time). */
  readonly occurrence: number
  readonly log: (message: string) => void
  /** Test only: pause-leader makes the sticky readers read `stale` from the paused replica (ChaosOptions). */
  readonly staleReadsOnResume?: boolean
  /** Milliseconds since the run began (the axis faults are timed on). */
  readonly runMs?: () => number
}

export interface InjectedFault {
  readonly kind: NemesisName
  /** For people: what was done to whom ("SIGKILL r2 (leader, term 3)"). */
  readonly label: string
  readonly targets: readonly number[]
  /** Watches the cluster for the hold's length; returns what went wrong (nothing, usually). */
  during(): Promise<string[]>
  heal(): Promise<void>
  /** What the nemesis checked or did that is no finding, for the report (filled in as it goes). */
  readonly notes?: readonly string[]
  /** pause-leader: the sticky readers' reads waiting at the paused replica when it got SIGCONT. */
  readonly readsAtResume?: number
  /** pause-leader with staleReadsOnResume: when the readers read stale, in run ms. */
  readonly staleWindow?: { readonly startMs: number; readonly endMs: number }
}

/** An InjectedFault a nemesis fills in while it heals. */
type Mutable<T> = { -readonly [K in keyof T]: T[K] }

export interface Nemesis {
  readonly name: NemesisName
  readonly description: string
  inject(context: NemesisContext): Promise<InjectedFault>
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** The leader now, or (after up to 10 s without one) a random running replica, labelled as such. */
async function currentLeader(context: NemesisContext): Promise<{ id: number; status?: StatusResult }> {
  try {
    const status = await context.cluster.waitForLeader(10_000)
    return { id: status.id, status }
  } catch {
    const running = context.cluster.ids.filter((id) => context.cluster.isRunning(id))
    return { id: context.rng.pick(running.length > 0 ? running : context.cluster.ids) }
  }
}

function describeLeader(leader: { id: number; status?: StatusResult }): string {
  return leader.status === undefined
    ? `r${leader.id} (no leader seen)`
    : `r${leader.id} (leader, term ${leader.status.term})`
}

/** Just wait out the hold. */
function hold(context: NemesisContext): () => Promise<string[]> {
  return async () => {
    await sleep(context.holdMs)
    return []
  }
}

/**
 * While `victim` is cut off: within the hold, some other replica must lead in a higher term, and
 * the victim must stop claiming leadership (CheckQuorum, or a higher term reaching it). Waits out
 * the whole hold either way, so the fault lasts as long as scheduled.
 */
function expectStepDown(context: NemesisContext, victim: number, victimTerm: number): () => Promise<string[]> {
  return async () => {
    const started = Date.now()
    let replaced = false
    let steppedDown = false
    while (Date.now() - started < context.holdMs) {
      const observations = await context.cluster.observe().catch(() => [])
      for (const entry of observations) {
        if (entry.status === undefined) continue
        if (entry.id !== victim && entry.status.role === 'leader' && entry.status.term > victimTerm) replaced = true
        if (entry.id === victim && entry.status.role !== 'leader') steppedDown = true
      }
      if (replaced && steppedDown) {
        context.log(`r${victim} stepped down and was replaced after ${Date.now() - started} ms`)
        await sleep(Math.max(0, context.holdMs - (Date.now() - started)))
        return []
      }
      await sleep(200)
    }
    const findings: string[] = []
    if (!replaced)
      findings.push(
        `no replica other than r${victim} became leader above term ${victimTerm} within ${context.holdMs} ms of cutting r${victim} off`,
      )
    if (!steppedDown)
      findings.push(`r${victim} still claimed leadership ${context.holdMs} ms after it was cut off from the majority`)
    return findings
  }
}

const killLeader: Nemesis = {
  name: 'kill-leader',
  description: 'SIGKILL the leader; restart it when the fault is healed',
  async inject(context) {
    const leader = await currentLeader(context)
    await context.cluster.kill(leader.id)
    return {
      kind: 'kill-leader',
      label: `SIGKILL ${describeLeader(leader)}`,
      targets: [leader.id],
      during: hold(context),
      heal: async () => context.cluster.restart(leader.id),
    }
  },
}

const killAny: Nemesis = {
  name: 'kill-any',
  description: 'SIGKILL a random replica (leader or not); restart it when healed',
  async inject(context) {
    const victim = context.rng.pick(context.cluster.ids.filter((id) => context.cluster.isRunning(id)))
    const leader = await context.cluster.leader().catch(() => undefined)
    await context.cluster.kill(victim)
    const role =
      leader === undefined ? 'no leader seen' : leader.id === victim ? `leader, term ${leader.term}` : 'follower'
    return {
      kind: 'kill-any',
      label: `SIGKILL r${victim} (${role})`,
      targets: [victim],
      during: hold(context),
      heal: async () => context.cluster.restart(victim),
    }
  },
}

/** With staleReadsOnResume, the readers go on reading stale this long after SIGCONT: the resumed replica's first answers. */
const STALE_READS_AFTER_RESUME_MS = 1_000

const pauseLeader: Nemesis = {
  name: 'pause-leader',
  description:
    'SIGSTOP the leader, SIGCONT it when healed: on waking it must neither serve a stale read (the sticky readers read at lease consistency when the run enables leaseReads, and have a read waiting at it) nor commit alone',
  async inject(context) {
    const { cluster } = context
    const leader = await currentLeader(context)
    const runMs = context.runMs ?? (() => 0)
    const notes: string[] = []
    let staleFromMs: number | undefined
    if (context.staleReadsOnResume === true) {
      // The negative check: the readers, who ask the leader they know, now read stale, as the lease
      // bug once answered them; before the pause, so the reads that wait at the paused replica are.
      await cluster.agent.request('readers', { consistency: 'stale' })
      staleFromMs = runMs()
    }
    cluster.pause(leader.id)
    const fault: Mutable<InjectedFault> = {
      kind: 'pause-leader',
      label: `SIGSTOP ${describeLeader(leader)}`,
      targets: [leader.id],
      notes,
      during: hold(context),
      heal: async () => {
        // The reads that wait at the paused replica are the first it answers on waking: with a
        // lease counted in ticks (the old bug) it served them from its stale state.
        const waiting = await readsWaitingAt(cluster, leader.id).catch(() => [])
        fault.readsAtResume = waiting.length
        notes.push(
          waiting.length === 0
            ? `no reader read was waiting at r${leader.id} when it got SIGCONT`
            : `SIGCONT r${leader.id} with ${waiting.length} reader read(s) waiting at it (${waiting.map((read) => `${read.consistency}, sent ${read.ageMs} ms before`).join('; ')})`,
        )
        cluster.resume(leader.id)
        if (staleFromMs !== undefined) {
          await sleep(STALE_READS_AFTER_RESUME_MS)
          await cluster.agent.request('readers', { consistency: null })
          fault.staleWindow = { startMs: staleFromMs, endMs: runMs() }
        }
      },
    }
    return fault
  },
}

/** The sticky readers' reads in flight at replica `id` (their client's cached leader is it). */
async function readsWaitingAt(
  cluster: NetnsCluster,
  id: number,
): Promise<Array<{ client: number; ageMs: number; consistency: string }>> {
  const answer = await cluster.agent.request('inflight')
  const peerId = cluster.processes.peerIdOf(id)
  const reads = answer.reads as Array<{ client: number; ageMs: number; consistency: string; target: string | null }>
  return reads.filter((read) => read.target?.endsWith(`/p2p/${peerId}`) === true)
}

const partitionLeader: Nemesis = {
  name: 'partition-leader',
  description:
    'iptables DROP both ways between the leader and every other replica: it must step down, a new leader takes over',
  async inject(context) {
    const leader = await currentLeader(context)
    context.cluster.isolate(leader.id)
    return {
      kind: 'partition-leader',
      label: `isolate ${describeLeader(leader)}`,
      targets: [leader.id],
      during: leader.status === undefined ? hold(context) : expectStepDown(context, leader.id, leader.status.term),
      heal: async () => context.cluster.heal(),
    }
  },
}

const partitionOneWay: Nemesis = {
  name: 'partition-one-way',
  description:
    'iptables DROP in one direction only: the leader hears nobody (inbound), or nobody hears the leader (outbound); either way it must lose its leadership',
  async inject(context) {
    const leader = await currentLeader(context)
    const others = context.cluster.ids.filter((id) => id !== leader.id)
    // Alternate, so that two cycles see both directions.
    const inbound = context.occurrence % 2 === 0
    if (inbound) context.cluster.dropOneWay(others, [leader.id])
    else context.cluster.dropOneWay([leader.id], others)
    return {
      kind: 'partition-one-way',
      label: inbound
        ? `r${leader.id} hears no one (leader, term ${leader.status?.term ?? '?'})`
        : `no one hears r${leader.id} (leader, term ${leader.status?.term ?? '?'})`,
      targets: [leader.id],
      during: leader.status === undefined ? hold(context) : expectStepDown(context, leader.id, leader.status.term),
      heal: async () => context.cluster.heal(),
    }
  },
}

const killAll: Nemesis = {
  name: 'kill-all',
  description: 'SIGKILL every replica at once; restart them all together when healed',
  async inject(context) {
    const victims = context.cluster.ids.filter((id) => context.cluster.isRunning(id))
    await Promise.all(victims.map((id) => context.cluster.kill(id)))
    return {
      kind: 'kill-all',
      label: `SIGKILL all (${victims.map((id) => `r${id}`).join(' ')})`,
      targets: victims,
      during: hold(context),
      heal: async () => {
        for (const id of victims) context.cluster.restart(id)
      },
    }
  },
}

/** Skews in ±10 min to ±2 h: large enough that anything reading the wall clock would notice. */
const SKEW_MS_MIN = 10 * 60_000
const SKEW_MS_MAX = 2 * 60 * 60_000
/** A replica restarted by the clock-skew nemesis has this long to come back and catch up before the next goes down. */
const RESTART_CATCH_UP_TIMEOUT_MS = 20_000

const clockSkew: Nemesis = {
  name: 'clock-skew',
  description:
    'restart a majority of replicas (one at a time, SIGTERM) with wall clocks skewed by libfaketime, one ahead and one behind, so the leader is skewed; healed by restarting them on true time',
  async inject(context) {
    const { cluster, rng } = context
    const majority = Math.floor(cluster.ids.length / 2) + 1
    const leader = await currentLeader(context)
    // The leader first, so a skewed replica is in place before the next election.
    const victims = [leader.id, ...rng.shuffle(cluster.ids.filter((id) => id !== leader.id))].slice(0, majority)
    const skews = victims.map(
      (_, i) => (i % 2 === 0 ? 1 : -1) * rng.intBetween(SKEW_MS_MIN / 1000, SKEW_MS_MAX / 1000) * 1000,
    )
    const findings: string[] = []
    // One at a time, each back and caught up before the next goes: a majority stays up throughout,
    // so what this nemesis tests is the clocks, not an outage of its own making.
    for (const [i, id] of victims.entries()) {
      await cluster.terminate(id)
      cluster.restart(id, { skewMs: skews[i]! })
      await cluster.waitConverged(RESTART_CATCH_UP_TIMEOUT_MS).catch(() => undefined)
    }
    // If the one unskewed replica took the lead, hand it over: the skewed ones must lead for a while.
    const now = await cluster.leader().catch(() => undefined)
    if (now !== undefined && cluster.skewOf(now.id) === 0) {
      await cluster.terminate(now.id)
      cluster.restart(now.id)
      await cluster.waitConverged(RESTART_CATCH_UP_TIMEOUT_MS).catch(() => undefined)
    }
    // Confirm the skew took: the replica's own log stamps are that far off.
    for (const [i, id] of victims.entries()) {
      const logged = await waitForLogTime(cluster, id)
      if (logged === undefined || Math.abs(logged - Date.now() - skews[i]!) > 60_000) {
        findings.push(
          `r${id} was to run ${Math.round(skews[i]! / 60_000)} min off, but its log is stamped ${logged === undefined ? 'never' : `${Math.round((logged - Date.now()) / 60_000)} min off`}: libfaketime did not take`,
        )
      }
    }
    const skewed = await cluster.leader().catch(() => undefined)
    return {
      kind: 'clock-skew',
      label: `${victims.map((id, i) => `r${id} ${skews[i]! > 0 ? '+' : ''}${Math.round(skews[i]! / 60_000)}m`).join(', ')}${skewed === undefined ? '' : `; leader r${skewed.id}`}`,
      targets: victims,
      during: async () => [...findings, ...(await hold(context)())],
      heal: async () => {
        for (const id of victims) {
          await cluster.terminate(id)
          cluster.restart(id)
          await cluster.waitConverged(RESTART_CATCH_UP_TIMEOUT_MS).catch(() => undefined)
        }
      },
    }
  },
}

/** The stamp of the replica's latest log line from its current process, waiting up to 15 s for one. */
async function waitForLogTime(cluster: NetnsCluster, id: number): Promise<number | undefined> {
  for (const started = Date.now(); Date.now() - started < 15_000; await sleep(200)) {
    const logged = cluster.lastLoggedTimeMs(id)
    if (logged !== undefined) return logged
  }
  return undefined
}

/** The cluster must be whole and agree, with every member recorded as started, before a wipe. */
const WIPE_PRECONDITION_TIMEOUT_MS = 20_000
/** Acknowledged writes to see while the first replicas are down: the writes the wiped one held. */
const WIPE_WRITES_MIN = 5
const WIPE_WRITES_TIMEOUT_MS = 10_000
/** A wiped replica asks its peers before it refuses; it gets this long. */
const REFUSAL_TIMEOUT_MS = 30_000
/** The CLI's exit code for a replica that refuses to start as it is (packages/cli/src/exit-codes.ts). */
export const EXIT_REFUSED_START = 7
/** The replicas that lack the writes are watched at least this long for a leader they must not elect. */
const NO_LEADER_WATCH_MIN_MS = 2_000
const STATUS_POLL_MS = 200
const RETURN_LEADER_TIMEOUT_MS = 20_000
/** A new member gets this long to catch up before it can be promoted (NOT_READY until then). */
const PROMOTE_TIMEOUT_MS = 60_000
const PROMOTE_RETRY_MS = 500

/**
 * The operator's lost-disk sequence (test/authority-lost-disk.test.ts) as a fault, for any
 * membership: stop a minority of followers (A), let the workload write (every acknowledged write
 * is then held by the others, K, a bare majority), stop K, wipe the data dir of one of them (B),
 * start B and A together. B must refuse to start (exit 7, LOST_STATE), and A alone, which B's vote
 * would have made a majority, must elect nobody: its leader would lack the acknowledged writes.
 * The rest of K returns one by one; A and the first of them elect a leader, which must hold every
 * write acknowledged before K stopped. Healed as `member replace` does: a new member (the next id
 * never used, a new key, data dir and 127.0.0.x address) added as a learner, started with
 * --initial-cluster-state existing, promoted once caught up, and B removed; the cluster file's
 * bootstrap list becomes the new membership.
 */
const wipeAReplica: Nemesis = {
  name: 'wipe-a-replica',
  description:
    'stop a minority of followers (A); write (acknowledged by the rest, K); stop K; wipe one of K (B); start B and A: B must refuse (exit 7, LOST_STATE) and A must elect no leader; the rest of K return: the leader must hold every acknowledged write. Healed by replacing B with a new member (next id, new key, data dir, address: learner, promoted, B removed)',
  async inject(context) {
    const { cluster, rng } = context
    const notes: string[] = []
    const findings: string[] = []
    const leader = await waitUntil(
      'the cluster to agree, every member voting and recorded as started',
      async () => {
        // A follower that has not applied everything, or a member not yet marked started (its wiped
        // dir would then pass for a founder that never ran), would make the sequence another one.
        const all = await cluster.observe()
        const statuses = all.flatMap((entry) => (entry.status === undefined ? [] : [entry.status]))
        if (statuses.length !== all.length) return undefined
        const leading = statuses.filter((status) => status.role === 'leader').sort((a, b) => b.term - a.term)[0]
        if (leading === undefined || statuses.some((status) => status.applied < leading.commit)) return undefined
        const members = new Map(leading.members.map((member) => [member.id, member]))
        const ready = cluster.ids.every((id) => members.get(id)?.voter === true && members.get(id)?.started === true)
        return ready && members.size === all.length ? leading : undefined
      },
      WIPE_PRECONDITION_TIMEOUT_MS,
      STATUS_POLL_MS,
    )
    // Checked before anything is destroyed: the heal needs an id and an address.
    if (cluster.processes.nextMemberId() > MEMBER_ID_MAX)
      throw new Error(`no member id left for the replacement (ids are never reused; the last is ${MEMBER_ID_MAX})`)
    const ids = cluster.ids
    const majority = Math.floor(ids.length / 2) + 1
    const stoppedFirst = rng
      .shuffle(ids.filter((id) => id !== leader.id))
      .slice(0, ids.length - majority)
      .sort((a, b) => a - b)
    const holders = ids.filter((id) => !stoppedFirst.includes(id))
    const wiped = rng.pick(holders)
    const returning = rng.shuffle(holders.filter((id) => id !== wiped))
    const names = (list: readonly number[]): string => list.map((id) => `r${id}`).join(' ')

    for (const id of stoppedFirst) await cluster.kill(id)
    const before = (await cluster.observeWithCounts()).counts.writeOk
    const written = await waitUntil(
      `${WIPE_WRITES_MIN} writes acknowledged by ${names(holders)}`,
      async () => {
        const { writeOk } = (await cluster.observeWithCounts()).counts
        return writeOk >= before + WIPE_WRITES_MIN ? writeOk - before : undefined
      },
      WIPE_WRITES_TIMEOUT_MS,
      STATUS_POLL_MS,
    ).catch(() => 0)
    if (written === 0)
      findings.push(
        `${names(holders)}, a majority, acknowledged fewer than ${WIPE_WRITES_MIN} writes in ${WIPE_WRITES_TIMEOUT_MS} ms while ${names(stoppedFirst)} were down`,
      )
    await Promise.all(holders.map((id) => cluster.kill(id)))
    // Nothing can be acknowledged from here until a majority is back: this is what must survive.
    const acknowledged = (await cluster.agent.request('acknowledged')).acknowledged as Record<string, number>
    cluster.wipe(wiped)
    // From now on r(wiped) is not a member the harness restarts or watches for recovery (it is one
    // of record until the heal removes it).
    cluster.retire(wiped)
    notes.push(`${written} writes acknowledged by ${names(holders)} with ${names(stoppedFirst)} down; wiped r${wiped}`)

    return {
      kind: 'wipe-a-replica',
      label: `stop ${names(stoppedFirst)} (follower${stoppedFirst.length > 1 ? 's' : ''}); write on ${names(holders)}; stop them; wipe r${wiped}; start r${wiped} ${names(stoppedFirst)}`,
      targets: [...stoppedFirst, ...holders],
      notes,
      during: async () => {
        const startedMs = Date.now()
        cluster.restart(wiped)
        for (const id of stoppedFirst) cluster.restart(id)
        let exited = false
        const exit = cluster.processes.waitExit(wiped, REFUSAL_TIMEOUT_MS).then(
          (code) => {
            exited = true
            return code
          },
          () => undefined,
        )
        // Until the wiped replica is gone and the hold has passed: nobody may lead.
        const leaders = new Set<string>()
        const watchMs = Math.max(context.holdMs, NO_LEADER_WATCH_MIN_MS)
        while (Date.now() - startedMs < REFUSAL_TIMEOUT_MS && !(exited && Date.now() - startedMs >= watchMs)) {
          const observations = await cluster.observe([...stoppedFirst, wiped]).catch(() => [])
          for (const entry of observations)
            if (entry.status?.role === 'leader') leaders.add(`r${entry.id} led in term ${entry.status.term}`)
          await sleep(STATUS_POLL_MS)
        }
        const code = await exit
        if (code === undefined) {
          findings.push(
            `r${wiped}, its data dir wiped, was still running ${REFUSAL_TIMEOUT_MS} ms after it started: it must refuse to start`,
          )
          await cluster.kill(wiped)
        } else if (code !== EXIT_REFUSED_START) {
          findings.push(`r${wiped}, its data dir wiped, exited with code ${code}, not ${EXIT_REFUSED_START} (refused)`)
        }
        if (!cluster.processes.logOfLastStart(wiped).includes('LOST_STATE'))
          findings.push(`r${wiped}, its data dir wiped, did not log LOST_STATE`)
        else notes.push(`r${wiped} refused to start (exit ${code}, LOST_STATE)`)
        for (const seen of leaders)
          findings.push(
            `${seen} with only ${names(stoppedFirst)} and the wiped r${wiped} up: a leader without the writes acknowledged by ${names(holders)}`,
          )
        if (leaders.size === 0)
          notes.push(`${names(stoppedFirst)} elected no leader in ${Math.round((Date.now() - startedMs) / 1000)} s`)

        // The first of the others returns: with it, a majority that holds every acknowledged write.
        cluster.restart(returning[0]!)
        const elected = await cluster.waitForLeader(RETURN_LEADER_TIMEOUT_MS).catch(() => undefined)
        if (elected === undefined) {
          findings.push(
            `no leader within ${RETURN_LEADER_TIMEOUT_MS} ms of r${returning[0]} joining ${names(stoppedFirst)}`,
          )
        } else {
          const values = (await cluster.agent.request('verify')).values as Record<string, number | null | 'unreadable'>
          const missing = Object.entries(acknowledged).filter(([key, seq]) => {
            const read = values[key]
            return typeof read !== 'number' || read < seq
          })
          for (const [key, seq] of missing)
            findings.push(
              `after r${returning[0]} returned, r${elected.id} led (term ${elected.term}) without an acknowledged write: ${key.slice(0, 16)}… acknowledged seq ${seq}, read ${values[key]}`,
            )
          if (missing.length === 0)
            notes.push(
              `r${elected.id} led (term ${elected.term}) after r${returning[0]} returned, with every acknowledged write (${Object.keys(acknowledged).length} keys)`,
            )
        }
        for (const id of returning.slice(1)) cluster.restart(id)
        return findings
      },
      heal: async () => {
        const replacement = await replaceMember(cluster, wiped)
        notes.push(`replaced r${wiped} by r${replacement.id} (${replacement.multiaddr.split('/')[2]})`)
      },
    }
  },
}

/**
 * `member replace OLD` step by step, through the API as the operator: a new member (next id, new
 * key, data dir and address) added as a learner, started empty with --initial-cluster-state
 * existing, promoted once caught up (NOT_READY until then), OLD removed; then the bootstrap list.
 * A retry after an unknown outcome may find its change made already (CONFLICT, INVALID): that is
 * checked, not taken on trust.
 */
async function replaceMember(cluster: NetnsCluster, old: number): Promise<{ id: number; multiaddr: string }> {
  // Whatever the old replica's refused start left in its data dir.
  cluster.retire(old)
  const member = await cluster.prepareMember()
  const added = await cluster.member({
    action: 'add',
    memberId: member.id,
    peerId: member.peerId,
    multiaddr: member.multiaddr,
  })
  if (!added.ok && !(added.code === 'CONFLICT' && (await memberOfRecord(cluster, member.id)) !== undefined))
    throw new Error(`member add ${member.id}: ${added.code} ${added.message}`)
  cluster.startMember(member.id)
  const deadline = Date.now() + PROMOTE_TIMEOUT_MS
  // The leader refuses NOT_READY until the learner has caught up (it acknowledged entries and is
  // streamed to); a joiner installs a snapshot that may predate the leader, and keeps the membership
  // its peer reported until its log has one (test/authority-membership.test.ts).
  for (;;) {
    const promoted = await cluster.member({ action: 'promote', memberId: member.id })
    if (promoted.ok) break
    if (promoted.code === 'CONFLICT' && (await memberOfRecord(cluster, member.id))?.voter === true) break
    if (promoted.code !== 'NOT_READY' || Date.now() > deadline)
      throw new Error(`member promote ${member.id}: ${promoted.code} ${promoted.message}`)
    await sleep(PROMOTE_RETRY_MS)
  }
  const removed = await cluster.member({ action: 'remove', memberId: old })
  if (!removed.ok && !(removed.code === 'INVALID' && (await memberOfRecord(cluster, old)) === undefined))
    throw new Error(`member remove ${old}: ${removed.code} ${removed.message}`)
  await cluster.publishMembership()
  return member
}

/** Member `id` as the leader's status lists it, if it does. */
async function memberOfRecord(cluster: NetnsCluster, id: number): Promise<StatusResult['members'][number] | undefined> {
  const leader = await cluster.waitForLeader(10_000)
  return leader.members.find((member) => member.id === id)
}

export const NEMESES: Readonly<Record<NemesisName, Nemesis>> = {
  'kill-leader': killLeader,
  'kill-any': killAny,
  'pause-leader': pauseLeader,
  'partition-leader': partitionLeader,
  'partition-one-way': partitionOneWay,
  'kill-all': killAll,
  'clock-skew': clockSkew,
  'wipe-a-replica': wipeAReplica,
}

/** Parse "all" or a comma-separated list of nemesis names; throws TypeError naming the unknown ones. */
export function parseNemeses(text: string): NemesisName[] {
  if (text.trim() === 'all') return [...NEMESIS_NAMES]
  const names = text
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name !== '')
  const unknown = names.filter((name) => !(NEMESIS_NAMES as readonly string[]).includes(name))
  if (unknown.length > 0 || names.length === 0)
    throw new TypeError(
      `unknown nemesis ${unknown.join(', ') || '(none given)'}; choose from all, ${NEMESIS_NAMES.join(', ')}`,
    )
  return names as NemesisName[]
}
