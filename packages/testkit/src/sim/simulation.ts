import {
  MemoryStorage,
  RaftAssertionError,
  RaftError,
  RawNode,
  ConfChangeType,
  EntryType,
  ReadMode,
  Role,
} from '@nodeledger/raft'
import type { ConfChange, ConfState, Entry, Message, NodeId, Ready } from '@nodeledger/raft'
import { SafetyChecker, digestBytes } from './checker.ts'
import { SimNetwork } from './network.ts'
import type { NetworkOptions } from './network.ts'
import { SimRng } from './rng.ts'

/** Per-tick probabilities of each fault while faults run. Swarm testing: each seed draws its own mix. */
export interface FaultOptions {
  crashProbability: number
  restartProbability: number
  /** Crash between persisting a Ready and sending its messages. */
  crashMidReadyProbability: number
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
}

export interface SimulationOptions {
  seed: number
  voterCount: number
  spareNodeCount: number
  stepsPerTick: number
  faultTicks: number
  livenessTicksMax: number
  electionTimeoutTicks: number
  heartbeatTicks: number
  snapshotEveryEntries: number
  snapshotChunkBytes: number
  /** Small batches make a quorum hold old-term entries without the new leader's no-op (Figure 8). */
  entriesPerMessageMax: number
  clientCount: number
  keyCount: number
  opProbability: number
  leaseReadProbability: number
  /** The cluster serves lease reads (and so followers wait out the lease before voting). */
  leaseReads: boolean
  opTimeoutTicks: number
  network: NetworkOptions
  faults: FaultOptions
  /** Keep every trace line (for replay comparison and printing); otherwise only the rolling hash. */
  keepTrace: boolean
}

export interface SimulationResult {
  seed: number
  violations: string[]
  traceHash: string
  traceTail: string[]
  trace: string[]
  steps: number
  stats: {
    writesAcknowledged: number
    writesFailed: number
    writesUnknown: number
    readsOk: number
    readsFailed: number
    leaderChanges: number
    crashes: number
    partitions: number
    confChanges: number
    transfers: number
    snapshotsInstalled: number
    messagesSent: number
    messagesDropped: number
    livenessTicks: number
  }
}

/** A seed decides everything: cluster size, fault mix, network quality, workload. */
export function optionsForSeed(seed: number): SimulationOptions {
  const rng = new SimRng(seed ^ 0x5eed)
  const lossy = rng.chance(0.7)
  const faulty = rng.chance(0.85)
  return {
    seed,
    voterCount: seed % 2 === 0 ? 3 : 5,
    spareNodeCount: 1,
    stepsPerTick: 10,
    faultTicks: rng.intBetween(150, 400),
    livenessTicksMax: 400,
    electionTimeoutTicks: 10,
    heartbeatTicks: 2,
    snapshotEveryEntries: rng.intBetween(8, 60),
    snapshotChunkBytes: rng.pick([16, 64, 1024]),
    entriesPerMessageMax: rng.pick([1, 2, 8]),
    clientCount: 3,
    keyCount: rng.intBetween(1, 4),
    opProbability: rng.pick([0.2, 0.5, 0.9]),
    leaseReadProbability: rng.pick([0, 0.3, 0.7]),
    leaseReads: rng.chance(0.5),
    opTimeoutTicks: 60,
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
      partitionProbability: faulty ? rng.pick([0.005, 0.02, 0.05]) : 0,
      healProbability: rng.pick([0.03, 0.1, 0.3]),
      confChangeProbability: rng.pick([0, 0.01, 0.04]),
      transferProbability: rng.pick([0, 0.01, 0.03]),
      spuriousUnreachableProbability: faulty ? rng.pick([0, 0.01, 0.03]) : 0,
      crashNewLeaderProbability: faulty ? rng.pick([0, 0.1, 0.3]) : 0,
    },
    keepTrace: false,
  }
}

interface Replica {
  readonly id: NodeId
  readonly storage: MemoryStorage
  node: RawNode | undefined
  /** Tick phase: replicas' clocks are not in lockstep. */
  readonly tickOffset: number
  kv: Map<string, { value: string; index: number }>
  appliedIndex: number
  /** Reads that have a ReadState and wait for the applied index to reach it. */
  waitingReads: Array<{ op: ClientOp; index: number }>
}

interface ClientOp {
  readonly id: number
  readonly client: number
  readonly kind: 'write' | 'read'
  readonly key: string
  readonly value: string
  readonly node: NodeId
  readonly invokeTick: number
  /** Reads: the freshest write index the read must reflect (acknowledged writes and completed reads before it began). */
  readonly floorIndex: number
  ticket?: { index: number; term: number }
  context?: string
}

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder()
const EMPTY_KV = textEncoder.encode('[]')

/**
 * Runs the real Raft core for several replicas on a virtual clock over a seeded network, injecting
 * faults, driving clients, and checking safety after every step and liveness once faults stop.
 * Nothing here reads a clock or Math.random: the seed replays the identical trace.
 */
export class Simulation {
  readonly options: SimulationOptions
  private readonly rng: SimRng
  private readonly network: SimNetwork
  private readonly checker = new SafetyChecker()
  private readonly replicas = new Map<NodeId, Replica>()
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
  private lastLeaderTerm = 0
  /** Crashes scheduled for new leaders: replica id -> step. */
  private readonly scheduledCrashes = new Map<NodeId, number>()
  private probeAckedAfterHeal = false
  private healTick = 0
  private readonly stats: SimulationResult['stats'] = {
    writesAcknowledged: 0,
    writesFailed: 0,
    writesUnknown: 0,
    readsOk: 0,
    readsFailed: 0,
    leaderChanges: 0,
    crashes: 0,
    partitions: 0,
    confChanges: 0,
    transfers: 0,
    snapshotsInstalled: 0,
    messagesSent: 0,
    messagesDropped: 0,
    livenessTicks: 0,
  }

  constructor(options: SimulationOptions) {
    this.options = options
    this.rng = new SimRng(options.seed)
    this.network = new SimNetwork(this.rng, { ...options.network })
    const voters = Array.from({ length: options.voterCount }, (_, i) => i + 1)
    const conf: ConfState = { voters, learners: [] }
    for (let id = 1; id <= options.voterCount + options.spareNodeCount; id++) {
      // Spare replicas start with an empty membership: they wait to be added as learners.
      const storage = id <= options.voterCount ? MemoryStorage.bootstrap(conf, EMPTY_KV) : new MemoryStorage()
      const replica: Replica = {
        id,
        storage,
        node: undefined,
        tickOffset: this.rng.intBetween(0, options.stepsPerTick - 1),
        kv: new Map(),
        appliedIndex: 0,
        waitingReads: [],
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
      const kind = error instanceof RaftAssertionError ? 'assertion' : 'exception'
      this.checker.fail(
        this.step,
        `${kind}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
      )
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
    for (const message of this.network.takeDue(this.step)) {
      const replica = this.replicas.get(message.to)
      replica?.node?.step(message)
    }
    for (const replica of this.replicas.values()) {
      if (replica.node !== undefined && (this.step + replica.tickOffset) % this.options.stepsPerTick === 0) {
        replica.node.tick()
        // Like the replica while a synced write is in flight: heartbeats leave before the Ready.
        if (this.rng.chance(0.5))
          for (const message of replica.node.takeHeartbeats()) this.network.send(message, this.step)
      }
    }
    for (const [id, atStep] of this.scheduledCrashes) {
      if (atStep > this.step) continue
      this.scheduledCrashes.delete(id)
      const replica = this.replicas.get(id)!
      if (replica.node !== undefined && this.faultsActive) {
        this.trace(`n${id} crash (new leader)`)
        this.crash(replica)
      }
    }
    if (this.step % this.options.stepsPerTick === 0) {
      this.tickNumber++
      if (this.faultsActive) this.injectFaults()
      this.runClients()
    }
    this.processReadies()
  }

  private processReadies(): void {
    for (let round = 0; round < 8; round++) {
      let any = false
      for (const replica of this.replicas.values()) {
        const node = replica.node
        if (node === undefined || !node.hasReady()) continue
        any = true
        this.handleReady(replica, node, node.ready())
      }
      if (!any) return
    }
  }

  /** The host's side of the Ready contract: persist, send, apply, advance. */
  private handleReady(replica: Replica, node: RawNode, ready: Ready & { droppedReads: readonly string[] }): void {
    const { storage, id } = replica
    if (ready.softState !== undefined) {
      this.trace(`n${id} ${ready.softState.role} leader=${ready.softState.leader} term=${node.raft.term}`)
      if (ready.softState.role === Role.Leader) {
        this.checker.onLeader(this.step, id, node.raft.term)
        this.checker.onBecameLeader(this.step, id, node.raft.log.firstIndex(), (index) => node.raft.log.term(index))
        if (node.raft.term !== this.lastLeaderTerm) this.stats.leaderChanges++
        this.lastLeaderTerm = node.raft.term
        if (this.faultsActive && this.rng.chance(this.options.faults.crashNewLeaderProbability)) {
          this.scheduledCrashes.set(id, this.step + this.rng.intBetween(0, 3 * this.options.stepsPerTick))
        }
      }
    }
    // 1. Persist.
    if (ready.snapshot !== undefined) {
      storage.applySnapshot(ready.snapshot)
      this.stats.snapshotsInstalled++
      this.trace(`n${id} persist snapshot at ${ready.snapshot.metadata.index}`)
    }
    if (ready.entries.length > 0) {
      storage.append(ready.entries)
      for (const entry of ready.entries) {
        let previousTerm = -1
        try {
          previousTerm = storage.term(entry.index - 1)
        } catch {
          previousTerm = -1
        }
        this.checker.onPersisted(this.step, id, entry, previousTerm)
      }
    }
    if (ready.hardState !== undefined) {
      const before = storage.initialState().hardState
      if (ready.hardState.commit < before.commit)
        this.checker.fail(this.step, `replica ${id} persisted commit ${ready.hardState.commit} below ${before.commit}`)
      storage.setHardState(ready.hardState)
    }
    if (this.faultsActive && this.rng.chance(this.options.faults.crashMidReadyProbability)) {
      this.trace(`n${id} crash after persist, before send`)
      this.crash(replica)
      return
    }
    // 2. Send.
    for (const message of ready.messages) this.network.send(message, this.step)
    // 3. Apply.
    if (ready.snapshot !== undefined) this.installSnapshot(replica, ready.snapshot.data, ready.snapshot.metadata.index)
    for (const entry of ready.committedEntries) this.apply(replica, entry)
    // 4. Reads.
    for (const readState of ready.readStates) {
      const op = this.findOpByContext(readState.context)
      if (op !== undefined) replica.waitingReads.push({ op, index: readState.index })
    }
    for (const context of ready.droppedReads) {
      const op = this.findOpByContext(context)
      if (op !== undefined) this.finishRead(op, undefined, 'dropped')
    }
    this.serveWaitingReads(replica)
    node.advance(ready)
    // The application snapshots on its own schedule; the core then compacts its log.
    const snapshotIndex = storage.snapshot().metadata.index
    if (replica.appliedIndex - snapshotIndex >= this.options.snapshotEveryEntries) {
      const data = textEncoder.encode(JSON.stringify([...replica.kv.entries()].sort(([a], [b]) => (a < b ? -1 : 1))))
      storage.createSnapshot(replica.appliedIndex, node.confStateAt(replica.appliedIndex), data)
    }
  }

  private installSnapshot(replica: Replica, data: Uint8Array, index: number): void {
    const parsed = JSON.parse(textDecoder.decode(data)) as Array<[string, { value: string; index: number }]>
    replica.kv = new Map(parsed)
    replica.appliedIndex = index
    this.trace(`n${replica.id} installed snapshot at ${index}`)
    // Writes this replica proposed that the snapshot jumped over: the checker knows what was applied there.
    for (const op of this.pendingOps.values()) {
      if (op.kind !== 'write' || op.node !== replica.id || op.ticket === undefined || op.ticket.index > index) continue
      const applied = this.checker.appliedByIndex.get(op.ticket.index)
      if (applied === undefined) this.finishWrite(op, 'unknown')
      else this.finishWrite(op, applied.term === op.ticket.term ? 'ok' : 'fail')
    }
  }

  private apply(replica: Replica, entry: Entry): void {
    if (entry.index !== replica.appliedIndex + 1) {
      this.checker.fail(this.step, `replica ${replica.id} applied ${entry.index} after ${replica.appliedIndex}`)
    }
    this.checker.onApplied(this.step, replica.id, entry)
    replica.appliedIndex = entry.index
    if (entry.type === EntryType.Normal) {
      const command = JSON.parse(textDecoder.decode(entry.data)) as { key: string; value: string }
      replica.kv.set(command.key, { value: command.value, index: entry.index })
    }
    for (const op of this.pendingOps.values()) {
      if (op.kind === 'write' && op.node === replica.id && op.ticket?.index === entry.index) {
        this.finishWrite(op, op.ticket.term === entry.term ? 'ok' : 'fail')
      }
    }
  }

  private serveWaitingReads(replica: Replica): void {
    if (replica.waitingReads.length === 0) return
    const still: Replica['waitingReads'] = []
    for (const waiting of replica.waitingReads) {
      if (replica.appliedIndex >= waiting.index) {
        this.finishRead(waiting.op, replica.kv.get(waiting.op.key)?.index ?? 0, 'ok')
      } else {
        still.push(waiting)
      }
    }
    replica.waitingReads = still
  }

  private findOpByContext(context: string): ClientOp | undefined {
    const id = Number(context.slice(1))
    return this.pendingOps.get(id)
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
    for (let client = 0; client < this.options.clientCount; client++) {
      if (this.clientBusy.has(client)) continue
      // After faults stop, client 0 keeps writing: the liveness probe.
      // After faults stop only client 0 runs, writing until one write is acknowledged: the liveness
      // probe. The others finish what they started, so "no operation pending" is reachable.
      if (!this.faultsActive && (client !== 0 || this.probeAckedAfterHeal)) continue
      const mustWrite = !this.faultsActive
      if (!mustWrite && !this.rng.chance(this.options.opProbability)) continue
      this.invoke(client, mustWrite ? 'write' : this.rng.chance(0.5) ? 'write' : 'read')
    }
  }

  private pickTarget(client: number): Replica | undefined {
    const hinted = this.replicas.get(this.leaderHints.get(client) ?? 0)
    if (hinted?.node !== undefined && this.rng.chance(0.85)) return hinted
    const live = [...this.replicas.values()].filter((replica) => replica.node !== undefined)
    return live.length === 0 ? undefined : this.rng.pick(live)
  }

  private invoke(client: number, kind: 'write' | 'read'): void {
    const target = this.pickTarget(client)
    if (target?.node === undefined) return
    const key = `k${this.rng.intBetween(1, this.options.keyCount)}`
    const id = this.nextOpId++
    const floorIndex = Math.max(this.ackedFloor.get(key) ?? 0, this.readFloor.get(key) ?? 0)
    const op: ClientOp = {
      id,
      client,
      kind,
      key,
      value: `v${id}`,
      node: target.id,
      invokeTick: this.tickNumber,
      floorIndex,
    }
    try {
      if (kind === 'write') {
        op.ticket = target.node.propose(textEncoder.encode(JSON.stringify({ key, value: op.value })))
        this.trace(`c${client} write ${key}=${op.value} at n${target.id} -> ${op.ticket.index}@${op.ticket.term}`)
      } else {
        op.context = `r${id}`
        const mode = this.rng.chance(this.options.leaseReadProbability) ? ReadMode.Lease : ReadMode.Linearizable
        target.node.readIndex(op.context, mode)
        this.trace(`c${client} read ${key} (${mode}) at n${target.id}`)
      }
    } catch (error) {
      if (!(error instanceof RaftError)) throw error
      if (error.code === 'NOT_LEADER') this.leaderHints.set(client, error.leader)
      if (kind === 'write') this.stats.writesFailed++
      else this.stats.readsFailed++
      return
    }
    this.leaderHints.set(client, target.id)
    this.pendingOps.set(id, op)
    this.clientBusy.add(client)
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
    for (const replica of this.replicas.values())
      replica.waitingReads = replica.waitingReads.filter((waiting) => waiting.op.id !== op.id)
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

  private injectFaults(): void {
    const faults = this.options.faults
    const live = [...this.replicas.values()].filter((replica) => replica.node !== undefined)
    const down = [...this.replicas.values()].filter((replica) => replica.node === undefined)
    if (live.length > 0 && this.rng.chance(faults.crashProbability)) {
      const victim = this.rng.chance(0.5)
        ? (live.find((replica) => replica.node!.raft.role === Role.Leader) ?? this.rng.pick(live))
        : this.rng.pick(live)
      this.trace(`n${victim.id} crash`)
      this.crash(victim)
    }
    if (down.length > 0 && this.rng.chance(faults.restartProbability)) {
      const replica = this.rng.pick(down)
      this.trace(`n${replica.id} restart`)
      this.startReplica(replica)
    }
    if (this.rng.chance(faults.partitionProbability)) this.partitionRandomly()
    if (this.network.hasPartitions() && this.rng.chance(faults.healProbability)) {
      this.trace('heal')
      this.network.heal()
    }
    const stillLive = live.filter((replica) => replica.node !== undefined)
    if (this.rng.chance(faults.spuriousUnreachableProbability) && stillLive.length >= 2) {
      const [a, b] = this.rng.shuffle(stillLive)
      this.trace(`n${a!.id}<->n${b!.id} connection reset`)
      a!.node!.reportUnreachable(b!.id)
      b!.node!.reportUnreachable(a!.id)
    }
    const leader = [...this.replicas.values()].find((replica) => replica.node?.raft.role === Role.Leader)
    if (leader !== undefined && this.rng.chance(faults.confChangeProbability)) this.changeMembership(leader)
    if (leader !== undefined && this.rng.chance(faults.transferProbability)) {
      const voters = leader.node!.raft.currentConf().voters.filter((id) => id !== leader.id)
      if (voters.length > 0) {
        const target = this.rng.pick(voters)
        this.trace(`n${leader.id} transfer leadership to n${target}`)
        this.stats.transfers++
        leader.node!.transferLeader(target)
      }
    }
  }

  private partitionRandomly(): void {
    const ids = [...this.replicas.keys()]
    this.stats.partitions++
    const shape = this.rng.intBetween(0, 2)
    if (shape === 0) {
      const shuffled = this.rng.shuffle(ids)
      const cut = this.rng.intBetween(1, ids.length - 1)
      const groupA = shuffled.slice(0, cut)
      const groupB = shuffled.slice(cut)
      this.trace(`partition [${groupA.join(',')}] | [${groupB.join(',')}]`)
      this.network.partition(groupA, groupB)
    } else if (shape === 1) {
      const leader = [...this.replicas.values()].find((replica) => replica.node?.raft.role === Role.Leader)
      const isolated = leader?.id ?? this.rng.pick(ids)
      const others = ids.filter((id) => id !== isolated)
      this.network.partition([isolated], others)
      // Sometimes only the majority's side sees the connections close: the isolated replica (perhaps
      // a leader trusting its lease) notices nothing and must learn by timing out.
      const oneSidedClose = this.rng.chance(0.5)
      this.trace(`isolate n${isolated}${oneSidedClose ? ' (its peers see the connection close)' : ''}`)
      if (oneSidedClose) for (const id of others) this.replicas.get(id)!.node?.reportUnreachable(isolated)
    } else {
      const [from, to] = this.rng.shuffle(ids)
      this.trace(`block n${from} -> n${to}`)
      this.network.blockOneWay(from!, to!)
    }
  }

  private changeMembership(leader: Replica): void {
    const conf = leader.node!.raft.currentConf()
    const members = new Set([...conf.voters, ...conf.learners])
    const options: ConfChange[] = []
    for (const id of this.replicas.keys()) {
      if (!members.has(id)) options.push({ type: ConfChangeType.AddLearner, nodeId: id })
    }
    for (const id of conf.learners) {
      options.push({ type: ConfChangeType.AddVoter, nodeId: id })
      options.push({ type: ConfChangeType.RemoveNode, nodeId: id })
    }
    if (conf.voters.length > 3)
      for (const id of conf.voters) options.push({ type: ConfChangeType.RemoveNode, nodeId: id })
    if (options.length === 0) return
    const change = this.rng.pick(options)
    try {
      const ticket = leader.node!.proposeConfChange(change)
      this.stats.confChanges++
      this.trace(`n${leader.id} propose ${change.type} n${change.nodeId} at ${ticket.index}`)
    } catch (error) {
      if (!(error instanceof RaftError)) throw error
      this.trace(`n${leader.id} refused ${change.type} n${change.nodeId}: ${error.code}`)
    }
  }

  private crash(replica: Replica): void {
    this.stats.crashes++
    replica.node = undefined
    replica.waitingReads = []
    this.network.dropNode(replica.id)
    for (const op of [...this.pendingOps.values()]) {
      if (op.node !== replica.id) continue
      if (op.kind === 'write') this.finishWrite(op, 'unknown')
      else this.finishRead(op, undefined, 'crashed')
    }
    // A process that dies closes its connections: its peers notice at once.
    for (const other of this.replicas.values()) other.node?.reportUnreachable(replica.id)
  }

  /** Start (or restart) a replica from what its storage persisted; volatile state is rebuilt. */
  private startReplica(replica: Replica): void {
    const snapshot = replica.storage.snapshot()
    replica.kv =
      snapshot.data.byteLength > 0
        ? new Map(JSON.parse(textDecoder.decode(snapshot.data)) as Array<[string, { value: string; index: number }]>)
        : new Map()
    replica.appliedIndex = snapshot.metadata.index
    replica.waitingReads = []
    replica.node = new RawNode({
      id: replica.id,
      storage: replica.storage,
      rng: this.rng.derive(),
      applied: snapshot.metadata.index,
      electionTimeoutTicks: this.options.electionTimeoutTicks,
      heartbeatTicks: this.options.heartbeatTicks,
      entriesPerMessageMax: this.options.entriesPerMessageMax,
      inflightMessagesMax: 16,
      snapshotChunkBytes: this.options.snapshotChunkBytes,
      leaseMarginTicks: 1,
      leaseReads: this.options.leaseReads,
      leaderLostStaggerTicks: 2,
    })
  }

  private stopFaults(): void {
    this.faultsActive = false
    this.healTick = this.tickNumber
    this.trace('faults stop: heal, restart all, lossless network')
    this.network.heal()
    this.network.options = { ...this.network.options, packetLossProbability: 0, packetDuplicateProbability: 0 }
    for (const replica of this.replicas.values()) {
      if (replica.node === undefined) this.startReplica(replica)
    }
  }

  /** Liveness: one leader, every member caught up and applied, no client left waiting, a new write acknowledged. */
  private settled(): boolean {
    if (!this.probeAckedAfterHeal || this.pendingOps.size > 0) return false
    const leaders = [...this.replicas.values()].filter((replica) => replica.node?.raft.role === Role.Leader)
    if (leaders.length !== 1) return false
    const leader = leaders[0]!.node!
    const conf = leader.raft.currentConf()
    if (leader.raft.log.committed !== leader.raft.log.lastIndex()) return false
    for (const id of [...conf.voters, ...conf.learners]) {
      const replica = this.replicas.get(id)!
      const node = replica.node!
      if (node.raft.term !== leader.raft.term || replica.appliedIndex !== leader.raft.log.committed) return false
    }
    return true
  }

  /** Every acknowledged write is applied on every member once the cluster has settled. */
  private checkDurability(): void {
    const leader = [...this.replicas.values()].find((replica) => replica.node?.raft.role === Role.Leader)!.node!
    const conf = leader.raft.currentConf()
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
        const node = replica.node
        if (node === undefined) return `n${replica.id}:down`
        const raft = node.raft
        return `n${replica.id}:${raft.role}/t${raft.term}/c${raft.log.committed}/a${replica.appliedIndex}/l${raft.log.lastIndex()}`
      })
      .join(
        ' ',
      )} pendingOps=${this.pendingOps.size} probe=${this.probeAckedAfterHeal} leaderProgress=${JSON.stringify([...this.replicas.values()].find((replica) => replica.node?.raft.role === Role.Leader)?.node?.status().progress ?? {})}`
  }
}

export function runSeed(seed: number, overrides: Partial<SimulationOptions> = {}): SimulationResult {
  return new Simulation({ ...optionsForSeed(seed), ...overrides }).run()
}

export { digestBytes }
export type { Message }
