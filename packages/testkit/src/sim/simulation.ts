import {
  ConfChangeType,
  EntryType,
  confStatesEqual,
  MemoryStorage,
  MessageType,
  RaftAssertionError,
  RaftError,
  ReadMode,
  Role,
} from '@nodeledger/raft'
import type { ConfChange, ConfState, Entry, Message, NodeId, Snapshot } from '@nodeledger/raft'
import { DriverAssertionError, DriverError, ReplicaDriver } from '@nodeledger/authority/driver'
import type { DriverTime, ProposalOutcome, ReadOutcome } from '@nodeledger/authority/driver'
import { SafetyChecker, digestBytes } from './checker.ts'
import { SimDisk } from './disk.ts'
import { SimNetwork } from './network.ts'
import type { NetworkOptions } from './network.ts'
import { SimRng } from './rng.ts'

/** Per-tick probabilities of each fault while faults run. Swarm testing: each seed draws its own mix. */
export interface FaultOptions {
  crashProbability: number
  restartProbability: number
  /** Crash between persisting a Ready and sending its messages. */
  crashMidReadyProbability: number
  /**
   * Per write: the process dies while the write is in flight (kill -9 during fsync), so the write
   * never happens. Nothing the process sent may have depended on it (the driver sends after persist).
   */
  crashMidWriteProbability: number
  /** A crash is a power loss (an unsynced commit index is forgotten too) this often. */
  powerLossProbability: number
  partitionProbability: number
  healProbability: number
  confChangeProbability: number
  transferProbability: number
  /** Both ends of a link see its connection close although both processes live. */
  spuriousUnreachableProbability: number
  /**
   * A new leader crashes within a few ticks of its election, before its no-op spreads: the history
   * that leaves old-term entries on a quorum and rival terms elsewhere (the paper's Figure 8).
   */
  crashNewLeaderProbability: number
  /** ...within this many ticks of its election. */
  crashNewLeaderWithinTicks: number
  /** A replica is stopped (SIGSTOP): its timers, I/O callbacks and inbox wait while the others go on. */
  pauseProbability: number
  /** A pause strikes the leader (rather than anyone) this often. */
  pauseLeaderProbability: number
  /** A resumed process handles the messages that waited first this often (else reads or the timer first). */
  resumeMessagesFirstShare: number
  resumeProbability: number
  /** The share of partitions that cut the leader off with a minority of the voters (the rest: random cuts, an isolated replica, a one-way block). */
  leaderMinorityPartitionShare: number
  /** A replica loses its disk and restarts empty; a voter so hit must be replaced (it is retired). */
  diskLossProbability: number
  /**
   * A disk loss strikes the voter that holds entries another voter lacks (it acknowledged most
   * recently), and the leader crashes in the same event (one power failure in a rack) this often:
   * the acknowledged write then lives on fewer replicas than counted it.
   */
  diskLossWithLeaderProbability: number
  /**
   * Per tick while none runs: an operator starts a membership plan (grow by one or two voters,
   * shrink, replace a voter, remove the leader), proposing each step as soon as the last one was
   * accepted (not committed), retrying steps the leader refuses.
   */
  membershipPlanProbability: number
  /** After a membership change is accepted, the leader crashes within two ticks this often. */
  crashAfterConfChangeProbability: number
  /** After a membership change is accepted, the network partitions within two ticks this often. */
  partitionAfterConfChangeProbability: number
}

export interface SimulationOptions {
  seed: number
  /** The family of faults the seed leans on (see optionsForSeed). */
  profile: SeedProfile
  voterCount: number
  spareNodeCount: number
  /** Simulator steps per tick; one step is one virtual millisecond. */
  stepsPerTick: number
  faultTicks: number
  livenessTicksMax: number
  electionTimeoutTicks: number
  heartbeatTicks: number
  snapshotEveryEntries: number
  snapshotChunkBytes: number
  /** Small batches make a quorum hold old-term entries without the new leader's no-op (Figure 8). */
  entriesPerMessageMax: number
  /** fsync latency of a write, uniform in [0, fsyncLatencyMsMax] virtual ms. */
  fsyncLatencyMsMax: number
  clientCount: number
  /** Clients that always go back to the replica they last believed led, deposed or not. */
  stickyClientCount: number
  keyCount: number
  opProbability: number
  /** The share of client operations that are reads (a registry is read far more than written). */
  readFraction: number
  leaseReadProbability: number
  /** The cluster serves lease reads (and so followers wait out the lease before voting). */
  leaseReads: boolean
  opTimeoutTicks: number
  network: NetworkOptions
  faults: FaultOptions
  /** Keep every trace line (for replay comparison and printing); otherwise only the rolling hash. */
  keepTrace: boolean
}

export interface SimulationStats {
  writesAcknowledged: number
  writesFailed: number
  writesUnknown: number
  readsOk: number
  readsFailed: number
  leaseReadsOk: number
  leaderChanges: number
  crashes: number
  partitions: number
  confChanges: number
  transfers: number
  snapshotsInstalled: number
  messagesSent: number
  messagesDropped: number
  livenessTicks: number
  pauses: number
  diskLosses: number
  /** Writes that carried the entries of several proposals (group commit). */
  groupCommits: number
  /** Heartbeats the drivers sent while a write was in flight. */
  earlyHeartbeats: number
  /** Stalls the drivers reported to the lease clock (a paused replica resuming). */
  stalls: number
  /** Lease reads served by a leader that had been paused (it had to re-check first). */
  leaseReadsAfterPause: number
}

export interface SimulationResult {
  seed: number
  violations: string[]
  traceHash: string
  traceTail: string[]
  trace: string[]
  steps: number
  stats: SimulationStats
}

/**
 * Each seed leans on one family of faults (swarm testing: a seed that runs every fault at once
 * rarely lines up the few that one bug needs). `mixed` draws every knob on its own; the others draw
 * the same way, then turn their family up.
 */
export const SEED_PROFILES = ['mixed', 'leases', 'membership', 'disks', 'elections', 'durability'] as const
export type SeedProfile = (typeof SEED_PROFILES)[number]

/** A seed decides everything: cluster size, fault mix, network quality, workload. */
export function optionsForSeed(seed: number): SimulationOptions {
  const rng = new SimRng(seed ^ 0x5eed)
  const lossy = rng.chance(0.7)
  const faulty = rng.chance(0.85)
  const options: SimulationOptions = {
    seed,
    profile: 'mixed',
    voterCount: seed % 2 === 0 ? 3 : 5,
    spareNodeCount: 2,
    stepsPerTick: 10,
    faultTicks: rng.intBetween(150, 400),
    livenessTicksMax: 600,
    electionTimeoutTicks: 10,
    heartbeatTicks: 2,
    snapshotEveryEntries: rng.intBetween(8, 60),
    snapshotChunkBytes: rng.pick([16, 64, 1024]),
    entriesPerMessageMax: rng.pick([1, 1, 2, 8]),
    fsyncLatencyMsMax: rng.pick([0, 2, 6, 15]),
    clientCount: 4,
    stickyClientCount: rng.intBetween(1, 2),
    keyCount: rng.intBetween(1, 4),
    opProbability: rng.pick([0.2, 0.5, 0.9]),
    readFraction: rng.pick([0.5, 0.8]),
    leaseReadProbability: rng.pick([0, 0.3, 0.7]),
    leaseReads: rng.chance(0.5),
    // Impatient clients give up on a replica that does not answer (a paused one) and ask again.
    opTimeoutTicks: rng.pick([12, 25, 60]),
    network: {
      packetLossProbability: lossy ? rng.pick([0.01, 0.05, 0.15]) : 0,
      packetDuplicateProbability: lossy ? rng.pick([0, 0.02, 0.1]) : 0,
      oneWayDelayMinSteps: 1,
      oneWayDelayMaxSteps: rng.pick([3, 8, 25]),
      inFlightMessagesMax: 20_000,
    },
    faults: {
      crashProbability: faulty ? rng.pick([0.005, 0.02, 0.05]) : 0,
      restartProbability: rng.pick([0.05, 0.2]),
      crashMidReadyProbability: faulty ? rng.pick([0, 0.001, 0.005]) : 0,
      powerLossProbability: rng.pick([0, 0.5]),
      partitionProbability: faulty ? rng.pick([0.005, 0.02, 0.05]) : 0,
      healProbability: rng.pick([0.03, 0.1, 0.3]),
      confChangeProbability: rng.pick([0, 0.02, 0.06, 0.12]),
      transferProbability: rng.pick([0, 0.01, 0.03]),
      spuriousUnreachableProbability: faulty ? rng.pick([0, 0.01, 0.03]) : 0,
      crashNewLeaderProbability: faulty ? rng.pick([0, 0.1, 0.3, 0.6]) : 0,
      crashNewLeaderWithinTicks: 3,
      pauseProbability: faulty ? rng.pick([0, 0.01, 0.03]) : 0,
      pauseLeaderProbability: 0.5,
      resumeMessagesFirstShare: 1 / 3,
      leaderMinorityPartitionShare: 0.25,
      resumeProbability: rng.pick([0.03, 0.08]),
      diskLossProbability: faulty ? rng.pick([0, 0, 0.004, 0.015]) : 0,
      crashMidWriteProbability: faulty ? rng.pick([0, 0.002, 0.01]) : 0,
      diskLossWithLeaderProbability: rng.pick([0, 0.5]),
      membershipPlanProbability: rng.pick([0, 0.02, 0.06]),
      crashAfterConfChangeProbability: faulty ? rng.pick([0, 0.1, 0.3]) : 0,
      partitionAfterConfChangeProbability: faulty ? rng.pick([0, 0.2, 0.5]) : 0,
    },
    keepTrace: false,
  }
  // Weighted by how long a chain of events their bugs need: Figure 8 the longest (elections), then
  // a paused leader's reads (leases) and a voter restored after losing its disk (disks).
  const profile = rng.pick([...SEED_PROFILES, 'leases', 'disks', 'disks', 'elections', 'elections'] as const)
  options.profile = profile
  const faults = options.faults
  switch (profile) {
    case 'mixed':
      break
    case 'leases':
      // Reads served by a leader that was paused or cut off: leases, ReadIndex rounds, the lease clock.
      // Without leases the majority campaigns as soon as it sees the old leader's connections close,
      // which leaves the old leader longest believing it leads: the ReadIndex round's test.
      options.leaseReads = rng.chance(0.5)
      options.leaseReadProbability = rng.pick([0.5, 0.9])
      options.readFraction = 0.8
      options.opTimeoutTicks = rng.pick([8, 12, 25])
      faults.pauseProbability = rng.pick([0.02, 0.05])
      faults.pauseLeaderProbability = 0.9
      faults.resumeMessagesFirstShare = 0.1
      faults.leaderMinorityPartitionShare = 0.7
      faults.healProbability = rng.pick([0.03, 0.06])
      faults.resumeProbability = rng.pick([0.03, 0.06])
      faults.partitionProbability = rng.pick([0.02, 0.05])
      break
    case 'membership':
      // Operators reconfiguring a cluster that fails meanwhile.
      faults.membershipPlanProbability = rng.pick([0.05, 0.15])
      faults.confChangeProbability = rng.pick([0.02, 0.06])
      faults.crashAfterConfChangeProbability = rng.pick([0.2, 0.5])
      faults.partitionAfterConfChangeProbability = rng.pick([0.3, 0.7])
      faults.crashNewLeaderProbability = rng.pick([0.1, 0.3])
      break
    case 'disks':
      // Disks die under replicas that just acknowledged, with the leader in the same power event.
      // The next leader dies young too, while the replaced voter is still catching up (one entry per
      // message, from a snapshot well behind the commit).
      options.entriesPerMessageMax = 1
      options.snapshotEveryEntries = rng.intBetween(30, 60)
      options.network.packetLossProbability = rng.pick([0.05, 0.15])
      faults.diskLossProbability = rng.pick([0.01, 0.03])
      faults.diskLossWithLeaderProbability = rng.pick([0.5, 0.9])
      faults.crashNewLeaderProbability = rng.pick([0.5, 0.8])
      faults.crashNewLeaderWithinTicks = 6
      faults.restartProbability = rng.pick([0.1, 0.3])
      break
    case 'elections':
      // Leaders that die young (Figure 8): crashes right after an election or before a write leaves,
      // quick restarts, short election timeouts (more elections per run), write-heavy clients.
      options.electionTimeoutTicks = 6
      options.faultTicks = rng.intBetween(300, 400)
      options.entriesPerMessageMax = 1
      options.opProbability = 0.9
      options.readFraction = 0.2
      options.network.packetLossProbability = rng.pick([0.05, 0.15])
      options.network.oneWayDelayMaxSteps = rng.pick([8, 25])
      faults.crashProbability = rng.pick([0.02, 0.05])
      faults.restartProbability = 0.3
      faults.crashMidReadyProbability = 0.03
      faults.crashNewLeaderProbability = 0.8
      faults.crashNewLeaderWithinTicks = 6
      break
    case 'durability':
      // Kill -9 during fsync and power losses: what was sent must not outrun what is durable.
      options.fsyncLatencyMsMax = rng.pick([6, 15])
      faults.crashMidWriteProbability = rng.pick([0.01, 0.03])
      faults.powerLossProbability = rng.pick([0.5, 1])
      faults.crashProbability = rng.pick([0.02, 0.05])
      break
  }
  return options
}

interface KvValue {
  readonly value: string
  readonly index: number
}

/** One step of an operator's membership plan, resolved against the leader's membership when it runs. */
type PlanStep = 'add-learner' | 'promote' | 'remove-follower' | 'remove-leader' | 'remove-any'

/**
 * What operators do to a running cluster. Each step is proposed as soon as the last was accepted
 * (a script does not wait for the commit); the leader must refuse while a change is uncommitted.
 */
const MEMBERSHIP_PLANS: ReadonlyArray<{ name: string; steps: readonly PlanStep[] }> = [
  { name: 'grow by one', steps: ['add-learner', 'promote'] },
  { name: 'grow by two', steps: ['add-learner', 'add-learner', 'promote', 'promote'] },
  { name: 'shrink by one', steps: ['remove-follower'] },
  { name: 'shrink by two', steps: ['remove-follower', 'remove-follower'] },
  { name: 'replace a voter', steps: ['add-learner', 'promote', 'remove-any'] },
  { name: 'replace the leader', steps: ['add-learner', 'promote', 'remove-leader'] },
  { name: 'remove the leader', steps: ['remove-leader'] },
]
/** Plans keep 3 to 6 voters (even sizes included: that is where single-server changes are delicate). */
const PLAN_VOTERS_MIN = 3
const PLAN_VOTERS_MAX = 6
/** A plan still unfinished after this many ticks is abandoned (its learner may never catch up). */
const PLAN_TICKS_MAX = 120

/** One simulated replica process: its disk survives crashes; everything else is rebuilt on restart. */
interface SimReplica {
  readonly id: NodeId
  readonly disk: SimDisk
  driver: ReplicaDriver<void> | undefined
  /** Tick phase: replicas' clocks are not in lockstep. */
  readonly tickOffsetMs: number
  timer: (() => void) | undefined
  /** The driver's deferred work ("soon"), run when this process next gets to run. */
  deferred: Array<() => void>
  /** Writes that completed while the process was stopped: their callbacks run once it resumes. */
  diskCallbacks: Array<() => void>
  paused: boolean
  pausedAtTick: number
  /** Messages that arrived while paused, delivered (in order) once it resumes. */
  inbox: Message[]
  kv: Map<string, KvValue>
  appliedIndex: number
  /** Lost its disk while a voter: it must be removed from the membership and is never reused. */
  retired: boolean
  /** Highest term this replica persisted (the pre-vote check). */
  persistedTerm: number
  /** The commit index up to which this process's committed entries were told to the checker. */
  commitObserved: number
  /** Was ever made a voter (a founder, or a promotion some leader accepted). */
  wasVoter: boolean
}

interface ClientOp {
  readonly id: number
  readonly client: number
  readonly kind: 'write' | 'read'
  readonly key: string
  readonly value: string
  readonly node: NodeId
  readonly invokeTick: number
  readonly mode: ReadMode | undefined
  /** Reads: the freshest write index the read must reflect (acknowledged writes and completed reads before it began). */
  readonly floorIndex: number
  /** Reads: the highest index committed anywhere when the read began (real-time order). */
  readonly commitFloor: number
  ticket?: { index: number; term: number }
}

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder()
const EMPTY_KV = textEncoder.encode('[]')
/** Rounds of deferred work per step before the simulator calls it a livelock. */
const QUIESCE_ROUNDS_MAX = 10_000

/**
 * Runs the replica's own driver (packages/authority/src/replica/driver.ts) around the real Raft
 * core, for several replicas, on a virtual clock over a seeded network and simulated disks:
 * fsync latency, crashes that lose what was in flight, power losses that forget an unsynced commit,
 * whole-disk loss, process pauses, partitions, membership changes and transfers. Clients write and
 * read (some stubbornly at the replica they last believed led); safety is checked after every step
 * and liveness once faults stop. Nothing here reads a clock or Math.random: a seed replays exactly.
 */
export class Simulation {
  readonly options: SimulationOptions
  private readonly rng: SimRng
  private readonly network: SimNetwork
  private readonly checker = new SafetyChecker()
  private readonly replicas = new Map<NodeId, SimReplica>()
  private step = 0
  private tickNumber = 0
  private faultsActive = true
  private traceLines: string[] = []
  private traceHash = 0x811c9dc5
  private nextOpId = 1
  private readonly pendingOps = new Map<number, ClientOp>()
  private readonly clientBusy = new Set<number>()
  /** Each client's own idea of who leads: a stale one sends it to a deposed leader, as in life. */
  private readonly leaderHints = new Map<number, NodeId>()
  /** Per key: the highest log index of an acknowledged write, and of a value a completed read saw. */
  private readonly ackedFloor = new Map<string, number>()
  private readonly readFloor = new Map<string, number>()
  private readonly ackedWrites: Array<{ key: string; index: number; term: number }> = []
  /** The highest commit index any replica has known: committed, so every later read must reflect it. */
  private commitSeen = 0
  /** Terms some replica campaigned in (persisted with a vote for itself) or led: the only terms anyone may adopt. */
  private readonly campaignTerms = new Set<number>([0, 1])
  private lastLeaderTerm = 0
  /** Every replica that has been a voter in some membership: its id is never added again. */
  private readonly everVoters = new Set<NodeId>()
  /** Crashes scheduled (a new leader, a write in flight, a leader that just changed the membership). */
  private readonly scheduledCrashes = new Map<NodeId, { atStep: number; why: string }>()
  /** A partition scheduled after a membership change (-1: none). */
  private scheduledPartitionStep = -1
  /** The operator's membership plan in progress: the steps left, the learner it added, when it began. */
  private plan: { name: string; steps: PlanStep[]; learner: NodeId; startTick: number } | undefined
  private probeAckedAfterHeal = false
  private healTick = 0
  private readonly stats: SimulationStats = {
    writesAcknowledged: 0,
    writesFailed: 0,
    writesUnknown: 0,
    readsOk: 0,
    readsFailed: 0,
    leaseReadsOk: 0,
    leaderChanges: 0,
    crashes: 0,
    partitions: 0,
    confChanges: 0,
    transfers: 0,
    snapshotsInstalled: 0,
    messagesSent: 0,
    messagesDropped: 0,
    livenessTicks: 0,
    pauses: 0,
    diskLosses: 0,
    groupCommits: 0,
    earlyHeartbeats: 0,
    stalls: 0,
    leaseReadsAfterPause: 0,
  }

  constructor(options: SimulationOptions) {
    this.options = options
    this.rng = new SimRng(options.seed)
    this.network = new SimNetwork(this.rng, { ...options.network })
    const voters = Array.from({ length: options.voterCount }, (_, i) => i + 1)
    for (const id of voters) this.everVoters.add(id)
    const conf: ConfState = { voters, learners: [] }
    for (let id = 1; id <= options.voterCount + options.spareNodeCount; id++) {
      // Spare replicas start with an empty membership: they wait to be added as learners.
      const storage = id <= options.voterCount ? MemoryStorage.bootstrap(conf, EMPTY_KV) : new MemoryStorage()
      const disk = new SimDisk(
        storage,
        {
          persistedEntry: (entry, previousTerm) => this.checker.onPersisted(this.step, id, entry, previousTerm),
          persistedHardState: (hardState) => this.checkTermAdopted(replica, hardState.term, hardState.vote),
          writeIssued: (completeAtMs) => this.maybeCrashMidWrite(replica, completeAtMs),
        },
        () => this.rng.intBetween(0, options.fsyncLatencyMsMax),
      )
      const replica: SimReplica = {
        id,
        disk,
        driver: undefined,
        tickOffsetMs: this.rng.intBetween(0, options.stepsPerTick - 1),
        timer: undefined,
        deferred: [],
        diskCallbacks: [],
        paused: false,
        pausedAtTick: 0,
        inbox: [],
        kv: new Map(),
        appliedIndex: 0,
        retired: false,
        persistedTerm: storage.initialState().hardState.term,
        commitObserved: 0,
        wasVoter: id <= options.voterCount,
      }
      this.replicas.set(id, replica)
      this.startReplica(replica)
    }
  }

  run(): SimulationResult {
    const { stepsPerTick, faultTicks, livenessTicksMax } = this.options
    try {
      const faultSteps = faultTicks * stepsPerTick
      while (this.step < faultSteps && this.checker.violations.length === 0) this.runStep()
      this.stopFaults()
      const livenessEndStep = this.step + livenessTicksMax * stepsPerTick
      let settled = false
      while (this.step < livenessEndStep && this.checker.violations.length === 0) {
        this.runStep()
        if (this.step % stepsPerTick === 0 && this.settled()) {
          settled = true
          break
        }
      }
      this.stats.livenessTicks = this.tickNumber - this.healTick
      if (!settled && this.checker.violations.length === 0) {
        this.checker.fail(
          this.step,
          `liveness: cluster did not settle within ${livenessTicksMax} ticks after faults stopped (${this.describeCluster()})`,
        )
      }
      if (settled) this.checkDurability()
    } catch (error) {
      const kind =
        error instanceof RaftAssertionError || error instanceof DriverAssertionError ? 'assertion' : 'exception'
      this.checker.fail(
        this.step,
        `${kind}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
      )
    }
    for (const replica of this.replicas.values()) {
      const counters = replica.driver?.counters
      if (counters !== undefined) this.collectDriverCounters(counters)
    }
    this.stats.messagesSent = this.network.messagesSent
    this.stats.messagesDropped = this.network.messagesDropped
    return {
      seed: this.options.seed,
      violations: this.checker.violations,
      traceHash: (this.traceHash >>> 0).toString(16).padStart(8, '0'),
      traceTail: this.traceLines.slice(-80),
      trace: this.options.keepTrace ? this.traceLines : [],
      steps: this.step,
      stats: this.stats,
    }
  }

  // ---------------------------------------------------------------------------------------------

  private trace(line: string): void {
    const text = `s${this.step} ${line}`
    for (let i = 0; i < text.length; i++) {
      this.traceHash ^= text.charCodeAt(i)
      this.traceHash = Math.imul(this.traceHash, 0x01000193) >>> 0
    }
    this.traceLines.push(text)
    if (!this.options.keepTrace && this.traceLines.length > 400) this.traceLines = this.traceLines.slice(-200)
  }

  private runStep(): void {
    this.step++
    // 1. The network: what is due reaches running processes; a stopped one finds it on resume.
    const arrivals = new Map<NodeId, Message[]>()
    for (const message of this.network.takeDue(this.step)) {
      const replica = this.replicas.get(message.to)
      if (replica?.driver === undefined) continue
      if (replica.paused) {
        replica.inbox.push(message)
        continue
      }
      const batch = arrivals.get(replica.id)
      if (batch === undefined) arrivals.set(replica.id, [message])
      else batch.push(message)
    }
    for (const [id, messages] of arrivals) this.replicas.get(id)!.driver?.step(messages)
    // 2. Timers: each running process's tick timer, at its own phase.
    for (const replica of this.replicas.values()) {
      if (replica.driver === undefined || replica.paused || replica.timer === undefined) continue
      if ((this.step + replica.tickOffsetMs) % this.options.stepsPerTick === 0) replica.timer()
    }
    for (const [id, crash] of this.scheduledCrashes) {
      if (crash.atStep > this.step) continue
      this.scheduledCrashes.delete(id)
      const replica = this.replicas.get(id)!
      if (replica.driver !== undefined && this.faultsActive) {
        this.trace(`n${id} crash (${crash.why})`)
        this.crash(replica)
      }
    }
    if (this.scheduledPartitionStep === this.step) {
      this.scheduledPartitionStep = -1
      if (this.faultsActive) this.partitionRandomly()
    }
    this.quiesce()
    if (this.step % this.options.stepsPerTick === 0) {
      this.tickNumber++
      if (this.faultsActive) this.injectFaults()
      this.operate()
      this.runClients()
      this.quiesce()
    }
    this.observeCommit()
  }

  /** Run every running process's due work (completed writes, deferred pipeline work) until all is quiet. */
  private quiesce(): void {
    for (let round = 0; round < QUIESCE_ROUNDS_MAX; round++) {
      let ran = false
      for (const replica of this.replicas.values()) {
        if (replica.driver === undefined) continue
        replica.disk.nowMs = this.step
        // A write that is due is durable now, whether or not its process runs.
        for (const callback of replica.disk.completeDue(this.step)) replica.diskCallbacks.push(callback)
        if (replica.paused) continue
        while (replica.diskCallbacks.length > 0 && replica.driver !== undefined) {
          const callback = replica.diskCallbacks.shift()!
          if (this.faultsActive && this.rng.chance(this.options.faults.crashMidReadyProbability)) {
            // Durable, but the process dies before it sends or applies anything of this Ready.
            this.trace(`n${replica.id} crash after persist, before send`)
            this.crash(replica)
            break
          }
          callback()
          ran = true
        }
        while (replica.deferred.length > 0 && replica.driver !== undefined && !replica.paused) {
          const work = replica.deferred.splice(0)
          for (const callback of work) callback()
          ran = true
        }
      }
      if (!ran) return
    }
    throw new Error(`livelock: replicas kept producing work within step ${this.step}`)
  }

  /**
   * Real-time order: the highest commit index anyone has reached is committed for every later read.
   * Every entry a commit index covers is told to the checker (committed entries never change).
   */
  private observeCommit(): void {
    for (const replica of this.replicas.values()) {
      const driver = replica.driver
      if (driver === undefined) continue
      const status = driver.basicStatus()
      const commit = status.commit
      if (commit > this.commitSeen) this.commitSeen = commit
      if (commit <= replica.commitObserved) continue
      for (let index = Math.max(replica.commitObserved + 1, status.firstIndex); index <= commit; index++) {
        const term = driver.logTerm(index)
        if (term !== undefined) this.checker.onCommitted(this.step, replica.id, index, term, status.term)
      }
      replica.commitObserved = commit
    }
  }

  /** Raft terms come only from campaigns: PreVote (thesis §9.6) must never change anyone's term. */
  private checkTermAdopted(replica: SimReplica, term: number, vote: NodeId): void {
    if (term <= replica.persistedTerm) return
    replica.persistedTerm = term
    // A candidate's own term, durable with its vote for itself, is a campaign even if its vote
    // requests never leave (it may crash first); others can then learn the term from it.
    if (vote === replica.id) this.campaignTerms.add(term)
    if (this.campaignTerms.has(term)) return
    this.checker.fail(
      this.step,
      `pre-vote safety: replica ${replica.id} adopted term ${term}, which no replica campaigned or led in (a pre-vote raised a term)`,
    )
  }

  // ---------------------------------------------------------------------------------------------
  // Processes

  /** Start (or restart) a replica from what its disk holds; everything else is rebuilt. */
  private startReplica(replica: SimReplica): void {
    const snapshot = replica.disk.snapshot()
    replica.kv = this.decodeKv(snapshot.data)
    replica.appliedIndex = snapshot.metadata.index
    replica.deferred = []
    replica.diskCallbacks = []
    replica.inbox = []
    replica.paused = false
    replica.timer = undefined
    replica.persistedTerm = replica.disk.initialState().hardState.term
    replica.commitObserved = 0
    const time: DriverTime = {
      nowMs: () => this.step,
      every: (_intervalMs, callback) => {
        replica.timer = callback
        return () => {
          replica.timer = undefined
        }
      },
      soon: (callback) => replica.deferred.push(callback),
    }
    const driver = new ReplicaDriver<void>({
      id: replica.id,
      storage: replica.disk,
      transport: {
        send: (messages) => {
          for (const message of messages) {
            // A vote request is a campaign in its term, whether or not the candidate's own write of
            // that term is durable yet (the driver's order is the driver's business, checked elsewhere).
            if (message.type === MessageType.Vote) this.campaignTerms.add(message.term)
            this.network.send(message, this.step)
          }
        },
      },
      time,
      stateMachine: {
        apply: (entry) => this.apply(replica, entry),
        restore: (snapshot) => this.restoreSnapshot(replica, snapshot),
        snapshot: () => this.encodeKv(replica.kv),
      },
      events: {
        softState: (state, term) => this.onSoftState(replica, state.role, state.leader, term),
        appending: (entries) => {
          if (
            replica.driver?.isLeader === true &&
            entries.filter((entry) => entry.type === EntryType.Normal).length > 1
          ) {
            this.stats.groupCommits++
          }
        },
        fatal: (error) => {
          throw error
        },
      },
      raft: {
        rng: this.rng.derive(),
        electionTimeoutTicks: this.options.electionTimeoutTicks,
        heartbeatTicks: this.options.heartbeatTicks,
        entriesPerMessageMax: this.options.entriesPerMessageMax,
        inflightMessagesMax: 16,
        snapshotChunkBytes: this.options.snapshotChunkBytes,
        leaseMarginTicks: 1,
        leaseReads: this.options.leaseReads,
        leaderLostStaggerTicks: 2,
      },
      tickIntervalMs: this.options.stepsPerTick,
      snapshotEveryEntries: this.options.snapshotEveryEntries,
    })
    replica.disk.nowMs = this.step
    replica.driver = driver
    driver.start()
  }

  private scheduleCrash(id: NodeId, atStep: number, why: string): void {
    const existing = this.scheduledCrashes.get(id)
    if (existing === undefined || existing.atStep > atStep) this.scheduledCrashes.set(id, { atStep, why })
  }

  /** Kill -9 during fsync: the process dies at some step before the write it just issued is durable. */
  private maybeCrashMidWrite(replica: SimReplica, completeAtMs: number): void {
    if (!this.faultsActive || completeAtMs <= this.step) return
    if (!this.rng.chance(this.options.faults.crashMidWriteProbability)) return
    this.scheduleCrash(replica.id, this.rng.intBetween(this.step + 1, completeAtMs), 'a write in flight')
  }

  private crash(replica: SimReplica): void {
    this.stats.crashes++
    if (replica.driver !== undefined) this.collectDriverCounters(replica.driver.counters)
    replica.driver = undefined
    replica.timer = undefined
    replica.deferred = []
    replica.diskCallbacks = []
    replica.inbox = []
    replica.paused = false
    replica.disk.crash(this.rng.chance(this.options.faults.powerLossProbability))
    this.network.dropNode(replica.id)
    for (const op of [...this.pendingOps.values()]) {
      if (op.node !== replica.id) continue
      if (op.kind === 'write') this.finishWrite(op, 'unknown')
      else this.finishRead(op, undefined, 'crashed')
    }
    // A process that dies closes its connections: its peers notice at once.
    for (const other of this.replicas.values()) if (!other.paused) other.driver?.reportUnreachable(replica.id)
  }

  private collectDriverCounters(counters: ReplicaDriver<void>['counters']): void {
    this.stats.earlyHeartbeats += counters.heartbeatsEarly
    this.stats.stalls += counters.stalls
    this.stats.snapshotsInstalled += counters.snapshotsInstalled
  }

  private pause(replica: SimReplica): void {
    replica.paused = true
    replica.pausedAtTick = this.tickNumber
    this.stats.pauses++
    this.trace(`n${replica.id} paused (${replica.driver?.basicStatus().role})`)
  }

  private resume(replica: SimReplica): void {
    replica.paused = false
    const inbox = replica.inbox
    replica.inbox = []
    // Which of its pending events the process handles first depends on where in its event loop it
    // was stopped: the peers' messages, the clients' requests (a lease read then comes before any
    // news of a new leader and before the tick timer fires), or the overdue tick timer (Node runs
    // expired timers before it polls sockets), then the requests, then the messages.
    const order = this.rng.chance(this.options.faults.resumeMessagesFirstShare)
      ? 'messages first'
      : this.rng.pick(['reads first', 'timer first'] as const)
    this.trace(
      `n${replica.id} resumed after ${this.tickNumber - replica.pausedAtTick} ticks (${inbox.length} messages waiting, ${order})`,
    )
    if (order === 'timer first') replica.timer?.()
    if (inbox.length === 0) return
    if (order === 'messages first') replica.driver?.step(inbox)
    else replica.deferred.push(() => replica.driver?.step(inbox))
  }

  // ---------------------------------------------------------------------------------------------
  // The state machine: a key-value map, one key per write.

  private apply(replica: SimReplica, entry: Entry): void {
    if (entry.index !== replica.appliedIndex + 1) {
      this.checker.fail(this.step, `replica ${replica.id} applied ${entry.index} after ${replica.appliedIndex}`)
    }
    this.checker.onApplied(this.step, replica.id, entry, replica.driver?.basicStatus().term ?? Number.POSITIVE_INFINITY)
    replica.appliedIndex = entry.index
    if (entry.type === EntryType.Normal) {
      const command = JSON.parse(textDecoder.decode(entry.data)) as { key: string; value: string }
      replica.kv.set(command.key, { value: command.value, index: entry.index })
    }
  }

  private restoreSnapshot(replica: SimReplica, snapshot: Snapshot): void {
    replica.kv = this.decodeKv(snapshot.data)
    replica.appliedIndex = snapshot.metadata.index
    this.trace(`n${replica.id} installed snapshot at ${snapshot.metadata.index}`)
  }

  private encodeKv(kv: ReadonlyMap<string, KvValue>): Uint8Array {
    return textEncoder.encode(JSON.stringify([...kv.entries()].sort(([a], [b]) => (a < b ? -1 : 1))))
  }

  private decodeKv(data: Uint8Array): Map<string, KvValue> {
    if (data.byteLength === 0) return new Map()
    return new Map(JSON.parse(textDecoder.decode(data)) as Array<[string, KvValue]>)
  }

  private onSoftState(replica: SimReplica, role: Role, leader: NodeId, term: number): void {
    this.trace(`n${replica.id} ${role} leader=${leader} term=${term}`)
    if (role === Role.Candidate) this.campaignTerms.add(term)
    if (role !== Role.Leader) return
    this.campaignTerms.add(term)
    const driver = replica.driver!
    this.checker.onLeader(this.step, replica.id, term)
    this.checker.onBecameLeader(this.step, replica.id, term, driver.basicStatus().firstIndex, (index) =>
      driver.logTerm(index),
    )
    if (term !== this.lastLeaderTerm) this.stats.leaderChanges++
    this.lastLeaderTerm = term
    if (this.faultsActive && this.rng.chance(this.options.faults.crashNewLeaderProbability)) {
      this.scheduleCrash(
        replica.id,
        this.step + this.rng.intBetween(0, this.options.faults.crashNewLeaderWithinTicks * this.options.stepsPerTick),
        'new leader',
      )
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Clients

  private runClients(): void {
    for (const op of [...this.pendingOps.values()]) {
      if (this.tickNumber - op.invokeTick > this.options.opTimeoutTicks) {
        if (op.kind === 'write') this.finishWrite(op, 'unknown')
        else this.finishRead(op, undefined, 'timeout')
      }
    }
    this.observeCommit()
    for (let client = 0; client < this.options.clientCount; client++) {
      if (this.clientBusy.has(client)) continue
      // After faults stop only client 0 runs, writing until one write is acknowledged: the liveness
      // probe. The others finish what they started, so "no operation pending" is reachable.
      if (!this.faultsActive && (client !== 0 || this.probeAckedAfterHeal)) continue
      const mustWrite = !this.faultsActive
      if (!mustWrite && !this.rng.chance(this.options.opProbability)) continue
      this.invoke(client, mustWrite ? 'write' : this.rng.chance(this.options.readFraction) ? 'read' : 'write')
    }
  }

  /** Sticky clients (the last ones) always return to the replica they last believed led. */
  private pickTarget(client: number): SimReplica | undefined {
    const sticky = client >= this.options.clientCount - this.options.stickyClientCount
    const hinted = this.replicas.get(this.leaderHints.get(client) ?? 0)
    if (hinted?.driver !== undefined && (sticky || this.rng.chance(0.85))) return hinted
    const live = [...this.replicas.values()].filter((replica) => replica.driver !== undefined)
    return live.length === 0 ? undefined : this.rng.pick(live)
  }

  private invoke(client: number, kind: 'write' | 'read'): void {
    const target = this.pickTarget(client)
    const driver = target?.driver
    if (target === undefined || driver === undefined || target.paused) {
      // A stopped process takes the request; it waits in its socket until the process resumes.
      if (target?.paused === true && kind === 'read') this.invokeLater(client, target)
      return
    }
    const key = `k${this.rng.intBetween(1, this.options.keyCount)}`
    const id = this.nextOpId++
    const floorIndex = Math.max(this.ackedFloor.get(key) ?? 0, this.readFloor.get(key) ?? 0)
    const mode =
      kind === 'read'
        ? this.rng.chance(this.options.leaseReadProbability)
          ? ReadMode.Lease
          : ReadMode.Linearizable
        : undefined
    const op: ClientOp = {
      id,
      client,
      kind,
      key,
      value: `v${id}`,
      node: target.id,
      invokeTick: this.tickNumber,
      mode,
      floorIndex,
      commitFloor: this.commitSeen,
    }
    this.pendingOps.set(id, op)
    this.clientBusy.add(client)
    try {
      if (kind === 'write') {
        op.ticket = driver.propose(textEncoder.encode(JSON.stringify({ key, value: op.value })), (outcome) =>
          this.onProposalOutcome(op, outcome),
        )
        this.trace(`c${client} write ${key}=${op.value} at n${target.id} -> ${op.ticket.index}@${op.ticket.term}`)
      } else {
        this.trace(`c${client} read ${key} (${mode}) at n${target.id}`)
        driver.read(mode!, (outcome) => this.onReadOutcome(op, target, outcome))
      }
    } catch (error) {
      if (!(error instanceof RaftError) && !(error instanceof DriverError)) throw error
      this.pendingOps.delete(id)
      this.clientBusy.delete(client)
      if (error instanceof RaftError && error.code === 'NOT_LEADER') this.leaderHints.set(client, error.leader)
      if (kind === 'write') this.stats.writesFailed++
      else this.stats.readsFailed++
      return
    }
    this.leaderHints.set(client, target.id)
  }

  /** A read sent to a stopped process is served when it resumes: exactly when a lease may have run out. */
  private invokeLater(client: number, target: SimReplica): void {
    const key = `k${this.rng.intBetween(1, this.options.keyCount)}`
    const id = this.nextOpId++
    const floorIndex = Math.max(this.ackedFloor.get(key) ?? 0, this.readFloor.get(key) ?? 0)
    const mode = this.rng.chance(this.options.leaseReadProbability) ? ReadMode.Lease : ReadMode.Linearizable
    const op: ClientOp = {
      id,
      client,
      kind: 'read',
      key,
      value: '',
      node: target.id,
      invokeTick: this.tickNumber,
      mode,
      floorIndex,
      commitFloor: this.commitSeen,
    }
    this.pendingOps.set(id, op)
    this.clientBusy.add(client)
    this.trace(`c${client} read ${key} (${mode}) at paused n${target.id}`)
    target.deferred.push(() => {
      if (!this.pendingOps.has(id)) return
      try {
        if (mode === ReadMode.Lease && this.tickNumber - target.pausedAtTick > 0) this.stats.leaseReadsAfterPause++
        target.driver!.read(mode, (outcome) => this.onReadOutcome(op, target, outcome))
      } catch (error) {
        if (!(error instanceof RaftError) && !(error instanceof DriverError)) throw error
        this.finishRead(op, undefined, 'dropped')
      }
    })
  }

  private onProposalOutcome(op: ClientOp, outcome: ProposalOutcome<void>): void {
    if (outcome.status === 'applied') this.finishWrite(op, 'ok')
    else if (outcome.status === 'lost') this.finishWrite(op, 'fail')
    else this.finishWrite(op, 'unknown')
  }

  private onReadOutcome(op: ClientOp, replica: SimReplica, outcome: ReadOutcome): void {
    if (outcome.status === 'dropped') {
      this.finishRead(op, undefined, 'dropped')
      return
    }
    if (op.mode === ReadMode.Lease) this.stats.leaseReadsOk++
    // Real-time order: the state served must include everything committed before the read began.
    if (replica.appliedIndex < op.commitFloor) {
      this.checker.fail(
        this.step,
        `stale read: client ${op.client} read ${op.key} (${op.mode}) at replica ${replica.id}, served at applied index ${replica.appliedIndex}, but index ${op.commitFloor} was committed before the read began`,
      )
    }
    this.finishRead(op, replica.kv.get(op.key)?.index ?? 0, 'ok')
  }

  private finishWrite(op: ClientOp, outcome: 'ok' | 'fail' | 'unknown'): void {
    if (!this.pendingOps.delete(op.id)) return
    this.clientBusy.delete(op.client)
    this.trace(`c${op.client} write ${op.key}=${op.value} ${outcome}`)
    if (outcome === 'ok') {
      this.stats.writesAcknowledged++
      const index = op.ticket!.index
      this.ackedFloor.set(op.key, Math.max(this.ackedFloor.get(op.key) ?? 0, index))
      this.ackedWrites.push({ key: op.key, index, term: op.ticket!.term })
      if (!this.faultsActive && op.invokeTick >= this.healTick) this.probeAckedAfterHeal = true
    } else if (outcome === 'fail') {
      this.stats.writesFailed++
    } else {
      this.stats.writesUnknown++
    }
  }

  /**
   * A read completes having seen the write at `observedIndex` for its key. Linearizability for
   * registers whose writes are ordered by log index: the read must reflect every write acknowledged
   * before it began and everything a read completed before it began had seen.
   */
  private finishRead(
    op: ClientOp,
    observedIndex: number | undefined,
    outcome: 'ok' | 'dropped' | 'timeout' | 'crashed',
  ): void {
    if (!this.pendingOps.delete(op.id)) return
    this.clientBusy.delete(op.client)
    if (outcome !== 'ok' || observedIndex === undefined) {
      this.stats.readsFailed++
      this.trace(`c${op.client} read ${op.key} ${outcome}`)
      return
    }
    this.stats.readsOk++
    this.trace(`c${op.client} read ${op.key} ok saw index ${observedIndex} (floor ${op.floorIndex})`)
    if (observedIndex < op.floorIndex) {
      this.checker.fail(
        this.step,
        `stale read: client ${op.client} read ${op.key} at replica ${op.node} and saw the write at index ${observedIndex}, but the write at ${op.floorIndex} was acknowledged or seen before the read began`,
      )
    }
    this.readFloor.set(op.key, Math.max(this.readFloor.get(op.key) ?? 0, observedIndex))
  }

  // ---------------------------------------------------------------------------------------------
  // Faults

  private leader(): SimReplica | undefined {
    let best: SimReplica | undefined
    for (const replica of this.replicas.values()) {
      const status = replica.driver?.basicStatus()
      if (status?.role !== Role.Leader || replica.paused) continue
      if (best === undefined || status.term > best.driver!.basicStatus().term) best = replica
    }
    return best
  }

  private injectFaults(): void {
    const faults = this.options.faults
    const live = [...this.replicas.values()].filter((replica) => replica.driver !== undefined)
    const down = [...this.replicas.values()].filter((replica) => replica.driver === undefined && !replica.retired)
    if (live.length > 0 && this.rng.chance(faults.crashProbability)) {
      const victim = this.rng.chance(0.5)
        ? (live.find((replica) => replica.driver!.isLeader) ?? this.rng.pick(live))
        : this.rng.pick(live)
      this.trace(`n${victim.id} crash`)
      this.crash(victim)
    }
    if (down.length > 0 && this.rng.chance(faults.restartProbability)) {
      const replica = this.rng.pick(down)
      this.trace(`n${replica.id} restart`)
      this.startReplica(replica)
    }
    this.maybeLoseDisk()
    const running = [...this.replicas.values()].filter((replica) => replica.driver !== undefined)
    if (this.rng.chance(faults.pauseProbability)) {
      const candidates = running.filter((replica) => !replica.paused)
      if (candidates.length > 0) {
        // Often the leader: the case a lease must survive.
        const victim = this.rng.chance(faults.pauseLeaderProbability)
          ? (candidates.find((replica) => replica.driver!.isLeader) ?? this.rng.pick(candidates))
          : this.rng.pick(candidates)
        this.pause(victim)
      }
    }
    for (const replica of running) {
      if (replica.paused && this.rng.chance(faults.resumeProbability)) this.resume(replica)
    }
    const partitioned = this.rng.chance(faults.partitionProbability)
    if (partitioned) this.partitionRandomly()
    if (!partitioned && this.network.hasPartitions() && this.rng.chance(faults.healProbability)) {
      this.trace('heal')
      this.network.heal()
    }
    const stillLive = running.filter((replica) => replica.driver !== undefined && !replica.paused)
    if (this.rng.chance(faults.spuriousUnreachableProbability) && stillLive.length >= 2) {
      const [a, b] = this.rng.shuffle(stillLive)
      this.trace(`n${a!.id}<->n${b!.id} connection reset`)
      a!.driver!.reportUnreachable(b!.id)
      b!.driver!.reportUnreachable(a!.id)
    }
    const leader = this.leader()
    // An operator replaces a failed member before changing anything else (operate() removes it):
    // shrinking meanwhile could leave a quorum that needs the dead one's vote.
    const conf = leader?.driver?.confState()
    const failedMember = [...this.replicas.values()].some(
      (replica) => replica.retired && conf !== undefined && [...conf.voters, ...conf.learners].includes(replica.id),
    )
    if (leader !== undefined && !failedMember) {
      if (this.rng.chance(faults.confChangeProbability)) this.changeMembership(leader)
      if (leader.driver !== undefined) this.runPlan(leader)
    }
    if (leader !== undefined && this.rng.chance(faults.transferProbability)) {
      const voters = leader.driver!.confState().voters.filter((id) => id !== leader.id)
      if (voters.length > 0) {
        const target = this.rng.pick(voters)
        this.trace(`n${leader.id} transfer leadership to n${target}`)
        this.stats.transfers++
        try {
          leader.driver!.transferLeader(target)
        } catch (error) {
          if (!(error instanceof RaftError) && !(error instanceof DriverError)) throw error
        }
      }
    }
  }

  /**
   * A disk dies. A voter so hit is retired: it restarts empty (its protections must hold: it never
   * votes, never takes a snapshot as a voter) and the operator replaces it. Only one voter is
   * retired at a time, and only while a spare is left to replace it with.
   */
  private maybeLoseDisk(): void {
    if (!this.rng.chance(this.options.faults.diskLossProbability)) return
    const leader = this.leader()
    if (leader === undefined) return
    const conf = leader.driver!.confState()
    const candidates = [...this.replicas.values()].filter((replica) => !replica.retired && replica.driver !== undefined)
    if (candidates.length === 0) return
    let victim = this.rng.pick(candidates)
    let withLeader = false
    if (this.rng.chance(this.options.faults.diskLossWithLeaderProbability)) {
      // The voter that acknowledged the most while another voter lags: what it lost was counted
      // towards a commit, and now lives on fewer replicas than counted it. The leader goes down in
      // the same event, so the lagging voters are the ones left to elect someone.
      const progress = leader.driver!.status().progress ?? {}
      const followers = conf.voters.filter((id) => id !== leader.id && candidates.some((replica) => replica.id === id))
      const match = (id: NodeId): number => (id === leader.id ? Number.POSITIVE_INFINITY : (progress[id]?.match ?? 0))
      let best: NodeId | undefined
      for (const id of followers) if (best === undefined || match(id) > match(best)) best = id
      if (best !== undefined && match(best) > Math.min(...conf.voters.map(match))) {
        victim = this.replicas.get(best)!
        withLeader = true
      }
    }
    // A member anywhere (some replica's log may already make it a voter) is retired: an empty voter
    // can never be restored in place. A replica no one has added yet holds nothing to lose.
    const member = [...this.replicas.values()].some((replica) => {
      const view = replica.driver?.confState()
      return view !== undefined && (view.voters.includes(victim.id) || view.learners.includes(victim.id))
    })
    if (member) {
      const retiredMembers = [...this.replicas.values()].filter(
        (replica) => replica.retired && (conf.voters.includes(replica.id) || conf.learners.includes(replica.id)),
      )
      const spares = [...this.replicas.values()].filter(
        (replica) => !replica.retired && !conf.voters.includes(replica.id) && !conf.learners.includes(replica.id),
      )
      if (retiredMembers.length > 0 || spares.length === 0) return
      // Nor while a membership change is uncommitted: a leader removing itself that crashes then
      // needs every other voter's help (it no longer campaigns, its longer log refuses the others).
      const status = leader.driver!.basicStatus()
      if (!confStatesEqual(conf, leader.driver!.confStateAt(status.commit))) return
      // Losing it must leave a quorum of healthy voters in every membership some replica may be
      // using (an uncommitted change included): past that, the cluster is lost for good, in life too.
      for (const replica of this.replicas.values()) {
        const view = replica.driver?.confState()
        if (view === undefined || view.voters.length === 0) continue
        const healthy = view.voters.filter((id) => id !== victim.id && !this.replicas.get(id)!.retired)
        if (view.voters.length < 3 || healthy.length < Math.floor(view.voters.length / 2) + 1) return
      }
      victim.retired = true
    } else if (victim.wasVoter) {
      // A former voter whose disk is gone is not brought back under its old id (etcd never reuses a
      // member id either). The core cannot take it back: the leader's newest snapshot may still list
      // it as a voter, and an empty voter refuses such a snapshot for good (a liveness gap in the core).
      victim.retired = true
    }
    this.stats.diskLosses++
    this.trace(
      `n${victim.id} loses its disk${member ? ' (a member: retired, to be replaced)' : ''}${withLeader ? `; leader n${leader.id} crashes with it` : ''}`,
    )
    this.crash(victim)
    victim.disk.lose()
    this.startReplica(victim)
    if (withLeader && leader.driver !== undefined) this.crash(leader)
  }

  /**
   * The operator: a retired voter is removed from the membership (and its process stopped once the
   * removal is in the leader's log); at most one change in flight, as the core requires.
   */
  private operate(): void {
    const leader = this.leader()
    if (leader === undefined) return
    const conf = leader.driver!.confState()
    for (const replica of this.replicas.values()) {
      if (!replica.retired) continue
      const member = conf.voters.includes(replica.id) || conf.learners.includes(replica.id)
      if (!member) {
        if (
          replica.driver !== undefined &&
          leader.driver!.basicStatus().commit >= leader.driver!.basicStatus().lastIndex
        ) {
          this.trace(`n${replica.id} stopped for good (removed from the membership)`)
          this.crash(replica)
        }
        continue
      }
      this.proposeChange(leader, { type: ConfChangeType.RemoveNode, nodeId: replica.id })
      return
    }
  }

  private partitionRandomly(): void {
    const ids = [...this.replicas.keys()]
    this.stats.partitions++
    // The network changes shape: half the time the old cuts heal as the new one appears.
    if (this.network.hasPartitions() && this.rng.chance(0.5)) this.network.heal()
    const shape = this.rng.chance(this.options.faults.leaderMinorityPartitionShare) ? 3 : this.rng.intBetween(0, 2)
    const leader = this.leader()
    if (shape === 3 && leader !== undefined) {
      // The leader's rack or zone is cut off with fewer than a quorum of the voters: the majority
      // elects a new leader while the old one, with a follower or two, still believes it leads.
      const conf = leader.driver!.confState()
      const others = this.rng.shuffle(conf.voters.filter((id) => id !== leader.id))
      const most = Math.floor((others.length + 1) / 2) - 1
      const count = this.rng.chance(0.7) ? most : this.rng.intBetween(0, Math.max(0, most))
      const minority = new Set([leader.id, ...others.slice(0, count)])
      for (const id of ids) if (!conf.voters.includes(id) && this.rng.chance(0.5)) minority.add(id)
      const groupA = ids.filter((id) => minority.has(id))
      const groupB = ids.filter((id) => !minority.has(id))
      // Sometimes the majority's side sees its connections to the leader's side close (resets):
      // without leases to wait out it campaigns at once, while the old leader has yet to notice.
      const majoritySeesClose = this.rng.chance(0.5)
      this.trace(
        `partition [${groupA.join(',')}] (the leader's, a minority) | [${groupB.join(',')}]${majoritySeesClose ? ' (the majority sees the connections close)' : ''}`,
      )
      this.network.partition(groupA, groupB)
      if (majoritySeesClose) {
        for (const id of groupB) {
          const other = this.replicas.get(id)!
          if (other.paused) continue
          for (const gone of groupA) other.driver?.reportUnreachable(gone)
        }
      }
    } else if (shape === 0 || shape === 3) {
      const shuffled = this.rng.shuffle(ids)
      const cut = this.rng.intBetween(1, ids.length - 1)
      const groupA = shuffled.slice(0, cut)
      const groupB = shuffled.slice(cut)
      this.trace(`partition [${groupA.join(',')}] | [${groupB.join(',')}]`)
      this.network.partition(groupA, groupB)
    } else if (shape === 1) {
      const isolated = leader?.id ?? this.rng.pick(ids)
      const others = ids.filter((id) => id !== isolated)
      this.network.partition([isolated], others)
      // Sometimes only the majority's side sees the connections close: the isolated replica (perhaps
      // a leader trusting its lease) notices nothing and must learn by timing out.
      const oneSidedClose = this.rng.chance(0.5)
      this.trace(`isolate n${isolated}${oneSidedClose ? ' (its peers see the connection close)' : ''}`)
      if (oneSidedClose) {
        for (const id of others) {
          const other = this.replicas.get(id)!
          if (!other.paused) other.driver?.reportUnreachable(isolated)
        }
      }
    } else {
      const [from, to] = this.rng.shuffle(ids)
      this.trace(`block n${from} -> n${to}`)
      this.network.blockOneWay(from!, to!)
    }
  }

  private changeMembership(leader: SimReplica): void {
    const driver = leader.driver!
    const conf = driver.confState()
    const progress = driver.status().progress ?? {}
    const commit = driver.basicStatus().commit
    const members = new Set([...conf.voters, ...conf.learners])
    const options: ConfChange[] = []
    // Ids are never reused once they voted (as in production: `member add` refuses a retired id): a
    // snapshot taken while it voted would list it as a voter, and a learner that lost its disk under
    // that id could never be restored.
    for (const id of conf.voters) this.everVoters.add(id)
    for (const replica of this.replicas.values()) {
      if (!members.has(replica.id) && !replica.retired && !this.everVoters.has(replica.id)) {
        options.push({ type: ConfChangeType.AddLearner, nodeId: replica.id })
      }
    }
    for (const id of conf.learners) {
      // Promote only a learner that has caught up (as `member promote` requires).
      if ((progress[id]?.match ?? 0) >= commit) options.push({ type: ConfChangeType.AddVoter, nodeId: id })
      options.push({ type: ConfChangeType.RemoveNode, nodeId: id })
    }
    if (conf.voters.length > 3)
      for (const id of conf.voters) options.push({ type: ConfChangeType.RemoveNode, nodeId: id })
    if (options.length === 0) return
    this.proposeChange(leader, this.rng.pick(options))
  }

  /** Returns whether the leader accepted the change (it may still be lost). */
  private proposeChange(leader: SimReplica, change: ConfChange): boolean | 'invalid' {
    // Once proposed, some log may hold it: the id counts as having voted.
    if (change.type === ConfChangeType.AddVoter) this.everVoters.add(change.nodeId)
    try {
      const ticket = leader.driver!.proposeConfChange(change, () => {})
      if (change.type === ConfChangeType.AddVoter) this.replicas.get(change.nodeId)!.wasVoter = true
      this.stats.confChanges++
      this.trace(`n${leader.id} propose ${change.type} n${change.nodeId} at ${ticket.index}`)
    } catch (error) {
      if (!(error instanceof RaftError) && !(error instanceof DriverError)) throw error
      this.trace(`n${leader.id} refused ${change.type} n${change.nodeId}: ${error.code}`)
      return error instanceof RaftError && error.code === 'INVALID' ? 'invalid' : false
    }
    if (!this.faultsActive) return true
    // Reconfigurations happen when things fail: the leader may die, or the network split, while the
    // change is still on its way to a quorum.
    const faults = this.options.faults
    if (this.rng.chance(faults.crashAfterConfChangeProbability))
      this.scheduleCrash(
        leader.id,
        this.step + this.rng.intBetween(0, 2 * this.options.stepsPerTick),
        'after a membership change',
      )
    if (this.scheduledPartitionStep < 0 && this.rng.chance(faults.partitionAfterConfChangeProbability))
      this.scheduledPartitionStep = this.step + this.rng.intBetween(1, 2 * this.options.stepsPerTick)
    return true
  }

  /** The operator's plan: start one now and then, and propose its next step to the current leader. */
  private runPlan(leader: SimReplica): void {
    const plan = this.plan
    if (plan === undefined) {
      if (!this.rng.chance(this.options.faults.membershipPlanProbability)) return
      const chosen = this.rng.pick(MEMBERSHIP_PLANS)
      this.plan = { name: chosen.name, steps: [...chosen.steps], learner: 0, startTick: this.tickNumber }
      this.trace(`operator plan: ${chosen.name}`)
      return
    }
    if (this.tickNumber - plan.startTick > PLAN_TICKS_MAX) {
      this.trace(`operator plan abandoned: ${plan.name}`)
      this.plan = undefined
      return
    }
    const driver = leader.driver!
    const conf = driver.confState()
    const step = plan.steps[0]!
    let change: ConfChange | undefined
    const removable = conf.voters.length > PLAN_VOTERS_MIN
    if (step === 'add-learner') {
      const candidates = [...this.replicas.values()].filter(
        (replica) =>
          !replica.retired &&
          replica.driver !== undefined &&
          !conf.voters.includes(replica.id) &&
          !conf.learners.includes(replica.id),
      )
      if (candidates.length > 0) {
        plan.learner = this.rng.pick(candidates).id
        change = { type: ConfChangeType.AddLearner, nodeId: plan.learner }
      }
    } else if (step === 'promote') {
      const progress = driver.status().progress ?? {}
      const commit = driver.basicStatus().commit
      const learners = conf.learners.filter((id) => !this.replicas.get(id)!.retired)
      if (learners.length > 0 && conf.voters.length < PLAN_VOTERS_MAX) {
        const caughtUp = learners.filter((id) => (progress[id]?.match ?? 0) >= commit)
        // Promote only a learner that has caught up (as `member promote` requires): wait for one.
        if (caughtUp.length === 0) return
        change = {
          type: ConfChangeType.AddVoter,
          nodeId: caughtUp.includes(plan.learner) ? plan.learner : this.rng.pick(caughtUp),
        }
      }
    } else if (removable) {
      const followers = conf.voters.filter((id) => id !== leader.id)
      const target =
        step === 'remove-leader'
          ? leader.id
          : step === 'remove-follower'
            ? this.rng.pick(followers)
            : this.rng.pick(conf.voters)
      change = { type: ConfChangeType.RemoveNode, nodeId: target }
    }
    const accepted = change === undefined ? 'invalid' : this.proposeChange(leader, change)
    // Refused: try again next tick. Impossible now (no spare, too few voters): skip the step.
    if (accepted === false) return
    plan.steps.shift()
    if (plan.steps.length === 0) this.plan = undefined
  }

  private stopFaults(): void {
    this.faultsActive = false
    this.healTick = this.tickNumber
    this.trace('faults stop: heal, resume and restart all, lossless network')
    this.network.heal()
    this.network.options = { ...this.network.options, packetLossProbability: 0, packetDuplicateProbability: 0 }
    for (const replica of this.replicas.values()) {
      if (replica.paused) this.resume(replica)
      if (replica.driver === undefined && !replica.retired) this.startReplica(replica)
    }
  }

  /** Liveness: one leader, every member caught up and applied, no client left waiting, a new write acknowledged. */
  private settled(): boolean {
    if (!this.probeAckedAfterHeal || this.pendingOps.size > 0) return false
    const leaders = [...this.replicas.values()].filter((replica) => replica.driver?.isLeader === true)
    if (leaders.length !== 1) return false
    const leader = leaders[0]!.driver!
    const status = leader.basicStatus()
    const conf = leader.confState()
    if (status.commit !== status.lastIndex) return false
    for (const id of [...conf.voters, ...conf.learners]) {
      const replica = this.replicas.get(id)!
      if (replica.retired) return false
      const driver = replica.driver
      if (driver === undefined || driver.basicStatus().term !== status.term || replica.appliedIndex !== status.commit)
        return false
    }
    return true
  }

  /** Every acknowledged write is applied on every member once the cluster has settled. */
  private checkDurability(): void {
    const leader = [...this.replicas.values()].find((replica) => replica.driver?.isLeader === true)!.driver!
    const conf = leader.confState()
    for (const write of this.ackedWrites) {
      const applied = this.checker.appliedByIndex.get(write.index)
      if (applied === undefined || applied.term !== write.term) {
        this.checker.fail(
          this.step,
          `durability: acknowledged write ${write.key} at ${write.index}@${write.term} is not what the log holds there`,
        )
        return
      }
      for (const id of [...conf.voters, ...conf.learners]) {
        if (this.replicas.get(id)!.appliedIndex < write.index) {
          this.checker.fail(this.step, `durability: replica ${id} has not applied acknowledged write at ${write.index}`)
          return
        }
      }
    }
  }

  private describeCluster(): string {
    return `${[...this.replicas.values()]
      .map((replica) => {
        const driver = replica.driver
        if (driver === undefined) return `n${replica.id}:down${replica.retired ? '(retired)' : ''}`
        const status = driver.basicStatus()
        return `n${replica.id}:${status.role}/t${status.term}/c${status.commit}/a${replica.appliedIndex}/l${status.lastIndex}${replica.paused ? '/paused' : ''}${replica.retired ? '/retired' : ''}`
      })
      .join(
        ' ',
      )} pendingOps=${this.pendingOps.size} probe=${this.probeAckedAfterHeal} leaderProgress=${JSON.stringify(this.leader()?.driver?.status().progress ?? {})} conf=${JSON.stringify(this.leader()?.driver?.confState() ?? {})}`
  }
}

export function runSeed(seed: number, overrides: Partial<SimulationOptions> = {}): SimulationResult {
  return new Simulation({ ...optionsForSeed(seed), ...overrides }).run()
}

export { digestBytes }
export type { Message }
