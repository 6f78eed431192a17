import type { StatusResult } from '@nodeledger/protocol'
import type { SimRng } from '../sim/rng.ts'
import type { NetnsCluster } from './netns-cluster.ts'

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

export const NEMESES: Readonly<Record<NemesisName, Nemesis>> = {
  'kill-leader': killLeader,
  'kill-any': killAny,
  'pause-leader': pauseLeader,
  'partition-leader': partitionLeader,
  'partition-one-way': partitionOneWay,
  'kill-all': killAll,
  'clock-skew': clockSkew,
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
