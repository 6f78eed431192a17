/**
 * A deterministic network of replicas in one process, for scenario tests that read like the Raft
 * paper (STYLE §7): `cluster.elect(1)`, `cluster.partition([1], [2, 3])`, `cluster.deliverAll()`.
 *
 * Each replica is the replica's own driver (packages/authority/src/replica/driver.ts) around the
 * core, over a MemoryStorage whose writes complete at once and a clock that moves only when a test
 * ticks: the tests exercise the same persist → send → apply → reads → advance pipeline as the
 * replica and the simulator, not a host of their own. Work the driver defers (its "soon") runs when
 * the test delivers, ticks or calls processReadies(), so inputs given between two of those batch
 * into one Ready, as they do in production. Nothing here sleeps, reads a clock or calls Math.random.
 */
import { RaftError, Role, createSeededRng } from '../src/index.ts'
import { MemoryStorage } from '../src/index.ts'
import type {
  BasicStatus,
  Config,
  ConfChange,
  RaftErrorCode,
  ConfState,
  Entry,
  Message,
  NodeId,
  ProposalTicket,
  ReadMode,
  ReadState,
  Rng,
  Snapshot,
  Status,
} from '../src/index.ts'
// The driver lives with the replica; the core's scenario tests run it by path (no package cycle).
import { ReplicaDriver } from '../../authority/src/replica/driver.ts'
import type { DriverStorage, DriverTime, StorageUpdate } from '../../authority/src/replica/driver.ts'

/** Small timeouts keep scenarios short; the ratio (heartbeat well under the election timeout) is what matters. */
export const ELECTION_TIMEOUT_TICKS = 10
export const HEARTBEAT_TICKS = 2
/** The harness clock's tick, in its milliseconds. */
const TICK_MS = 10

/** Upper bound on delivery rounds in deliverAll(): a cluster that never goes quiet is a bug. */
const DELIVERY_ROUNDS_MAX = 10_000

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder()

export function bytes(text: string): Uint8Array {
  return textEncoder.encode(text)
}

export function text(data: Uint8Array): string {
  return textDecoder.decode(data)
}

/**
 * How election timers are drawn.
 *  - `patient` (default): every draw is the largest allowed, so a follower waits 2·electionTimeout-1
 *    ticks before it campaigns on its own. Tests choose leaders with `elect(id)`.
 *  - `random`: a seeded generator per node, for tests of randomized elections (Raft §5.2).
 */
export type Timers = 'patient' | 'random'

export interface ClusterOptions {
  voters: readonly NodeId[]
  learners?: readonly NodeId[]
  /** Config shared by every node (id, storage and rng are filled in). */
  config?: Partial<Config>
  /** Per-node config overrides. */
  nodeConfig?: Readonly<Record<number, Partial<Config>>>
  /** Pre-built storages (e.g. the logs of Raft Figure 7); others are bootstrapped from voters/learners. */
  storages?: Readonly<Record<number, MemoryStorage>>
  timers?: Timers
  seed?: number
}

/** What the host of one replica has seen: its durable store and its state machine's history. */
export interface Replica {
  readonly id: NodeId
  node: HarnessNode | undefined
  /** What survives a crash; replaced by loseDisk(). */
  storage: MemoryStorage
  /** Entries applied to the state machine, in order (since the last snapshot install or restart). */
  applied: Entry[]
  /** Index up to which the state machine reflects the log (snapshot installs jump it forward). */
  appliedIndex: number
  /** Snapshots installed from a leader. */
  readonly installedSnapshots: Snapshot[]
  /** Reads answered, by the label the test gave them, with the index they may be served at. */
  readonly readStates: ReadState[]
  /** Labels of reads that were dropped (leadership changed before they were confirmed). */
  readonly droppedReads: string[]
}

export class PatientRng implements Rng {
  nextInt(maxExclusive: number): number {
    return maxExclusive <= 1 ? 0 : maxExclusive - 1
  }
}

/** A MemoryStorage as the driver's store: every write is durable the moment it is asked for. */
class ImmediateStorage implements DriverStorage {
  readonly #storage: MemoryStorage
  /** While set, writes wait (in order) until release(): a slow disk, under the test's control. */
  held = false
  readonly #waiting: Array<() => void> = []
  constructor(storage: MemoryStorage) {
    this.#storage = storage
  }
  release(): void {
    this.held = false
    for (const write of this.#waiting.splice(0)) write()
  }
  initialState(): ReturnType<MemoryStorage['initialState']> {
    return this.#storage.initialState()
  }
  entries(low: number, high: number, bytesMax: number): Entry[] {
    return this.#storage.entries(low, high, bytesMax)
  }
  term(index: number): number {
    return this.#storage.term(index)
  }
  firstIndex(): number {
    return this.#storage.firstIndex()
  }
  lastIndex(): number {
    return this.#storage.lastIndex()
  }
  snapshot(): Snapshot {
    return this.#storage.snapshot()
  }
  save(update: StorageUpdate, done: (error?: Error) => void): void {
    const write = (): void => {
      // 1. Persist: snapshot, then entries and hard state.
      if (update.snapshot !== undefined) this.#storage.applySnapshot(update.snapshot)
      this.#storage.append(update.entries)
      if (update.hardState !== undefined) this.#storage.setHardState(update.hardState)
      done()
    }
    if (this.held) this.#waiting.push(write)
    else write()
  }
  createSnapshot(index: number, confState: ConfState, data: Uint8Array, done: (error?: Error) => void): void {
    this.#storage.createSnapshot(index, confState, data)
    done()
  }
}

/** One replica's clock: it moves only when the test ticks this replica. */
class ManualTime implements DriverTime {
  nowTicks = 0
  #timer: (() => void) | undefined
  readonly #deferred: Array<() => void>
  constructor(deferred: Array<() => void>) {
    this.#deferred = deferred
  }
  nowMs(): number {
    return this.nowTicks * TICK_MS
  }
  every(_intervalMs: number, callback: () => void): () => void {
    this.#timer = callback
    return () => {
      this.#timer = undefined
    }
  }
  soon(callback: () => void): void {
    this.#deferred.push(callback)
  }
  tick(): void {
    this.nowTicks++
    this.#timer?.()
  }
  /** Time passes but the process does not run: no timer fires. */
  pause(ticks: number): void {
    this.nowTicks += ticks
  }
}

/**
 * A replica's handle for tests: the driver's inputs, with RawNode's names and synchronous answers
 * (proposals return their ticket and throw RaftError, as the core does).
 */
export class HarnessNode {
  readonly driver: ReplicaDriver<void>
  /** @internal the harness holds and releases this replica's writes */
  disk: ImmediateStorage | undefined
  readonly #replica: Replica
  /** @internal the harness moves this replica's clock */
  readonly time: ManualTime
  readonly #time: ManualTime
  constructor(driver: ReplicaDriver<void>, replica: Replica, time: ManualTime) {
    this.time = time
    this.driver = driver
    this.#replica = replica
    this.#time = time
  }
  tick(): void {
    this.#time.tick()
  }
  step(message: Message): void {
    this.driver.step([message])
  }
  campaign(): void {
    this.driver.campaign()
  }
  propose(data: Uint8Array): ProposalTicket {
    return this.driver.propose(data, () => {})
  }
  proposeConfChange(change: ConfChange): ProposalTicket {
    return this.driver.proposeConfChange(change, () => {})
  }
  /** A ReadIndex read labelled `label`: its answer lands in replica.readStates or droppedReads. */
  readIndex(label: string, mode?: ReadMode): void {
    const replica = this.#replica
    this.driver.read(mode ?? 'linearizable', (outcome) => {
      if (outcome.status === 'ready') replica.readStates.push({ index: outcome.index, context: label })
      else replica.droppedReads.push(label)
    })
  }
  transferLeader(target: NodeId): void {
    this.driver.transferLeader(target)
  }
  reportUnreachable(peer: NodeId): void {
    this.driver.reportUnreachable(peer)
  }
  status(): Status {
    return this.driver.status()
  }
  basicStatus(): BasicStatus {
    return this.driver.basicStatus()
  }
  logTerm(index: number): number | undefined {
    return this.driver.logTerm(index)
  }
  confStateAt(index: number): ConfState {
    return this.driver.confStateAt(index)
  }
}

export class Cluster {
  readonly replicas = new Map<NodeId, Replica>()
  /** Work the drivers deferred until the current test step is done (their `soon`). */
  private readonly deferred: Array<() => void> = []
  /** Messages sent and not yet delivered or dropped. */
  queue: Message[] = []
  /** Every message any node ever sent, in order: tests count round trips with it. */
  readonly sent: Message[] = []
  /** Messages the network lost (partition, crash, or the drop filter). */
  readonly dropped: Message[] = []
  private readonly blockedLinks = new Set<string>()
  private dropFilter: ((message: Message) => boolean) | undefined
  private readonly options: ClusterOptions

  constructor(options: ClusterOptions) {
    this.options = options
    const learners = options.learners ?? []
    for (const id of [...options.voters, ...learners]) {
      const storage =
        options.storages?.[id] ?? MemoryStorage.bootstrap({ voters: [...options.voters], learners: [...learners] })
      this.addNode(id, storage)
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Nodes

  /** Start a replica on `storage` (an empty MemoryStorage for a server joining later). */
  addNode(id: NodeId, storage: MemoryStorage = new MemoryStorage()): Replica {
    const replica: Replica = {
      id,
      node: undefined,
      storage,
      applied: [],
      appliedIndex: 0,
      installedSnapshots: [],
      readStates: [],
      droppedReads: [],
    }
    this.replicas.set(id, replica)
    this.start(replica)
    return replica
  }

  private start(replica: Replica): void {
    const options = this.options
    const rng: Rng =
      options.timers === 'random' ? createSeededRng((options.seed ?? 1) * 1009 + replica.id) : new PatientRng()
    replica.appliedIndex = replica.storage.snapshot().metadata.index
    replica.applied = []
    const time = new ManualTime(this.deferred)
    const {
      id: _id,
      storage: _storage,
      rng: _rng,
      applied: _applied,
      ...config
    } = {
      ...options.config,
      ...options.nodeConfig?.[replica.id],
    }
    const disk = new ImmediateStorage(replica.storage)
    const driver = new ReplicaDriver<void>({
      id: replica.id,
      storage: disk,
      transport: {
        send: (messages) => {
          for (const message of messages) {
            this.sent.push(message)
            this.queue.push(message)
          }
        },
      },
      time,
      stateMachine: {
        apply: (entry) => {
          // 3. Apply, in order: the driver asserts contiguity too; the test sees every entry.
          if (entry.index !== replica.appliedIndex + 1) {
            throw new Error(`replica ${replica.id} applies ${entry.index} after ${replica.appliedIndex}`)
          }
          replica.applied.push(entry)
          replica.appliedIndex = entry.index
        },
        restore: (snapshot) => {
          replica.installedSnapshots.push(snapshot)
          replica.appliedIndex = snapshot.metadata.index
        },
        snapshot: () => this.nextSnapshotData,
      },
      events: {
        fatal: (error) => {
          throw error
        },
        persisted: (_latencyMs, entries, synced) => this.persistListeners.get(replica.id)?.(entries, synced),
      },
      raft: { electionTimeoutTicks: ELECTION_TIMEOUT_TICKS, heartbeatTicks: HEARTBEAT_TICKS, ...config, rng },
      tickIntervalMs: TICK_MS,
      // Snapshots only when a test takes one.
      snapshotEveryEntries: Number.MAX_SAFE_INTEGER,
    })
    replica.node = new HarnessNode(driver, replica, time)
    replica.node.disk = disk
    driver.start()
    this.processReadies()
  }

  /** What the state machine's next snapshot holds (set by snapshot()). */
  private nextSnapshotData: Uint8Array = new Uint8Array()
  private readonly persistListeners = new Map<NodeId, (entries: number, synced: boolean) => void>()

  /** Be told of every write replica `id` makes: how many entries, and whether it was synced. */
  onPersisted(id: NodeId, listener: (entries: number, synced: boolean) => void): void {
    this.persistListeners.set(id, listener)
  }

  replica(id: NodeId): Replica {
    const replica = this.replicas.get(id)
    if (replica === undefined) throw new Error(`no replica ${id}`)
    return replica
  }

  node(id: NodeId): HarnessNode {
    const node = this.replica(id).node
    if (node === undefined) throw new Error(`replica ${id} is crashed`)
    return node
  }

  status(id: NodeId): Status {
    return this.node(id).status()
  }

  storage(id: NodeId): MemoryStorage {
    return this.replica(id).storage
  }

  live(): NodeId[] {
    return [...this.replicas.values()].filter((replica) => replica.node !== undefined).map((replica) => replica.id)
  }

  /** The process stops; its MemoryStorage (everything persisted) survives. */
  crash(id: NodeId): void {
    const replica = this.replica(id)
    replica.node?.driver.stop()
    replica.node = undefined
  }

  /**
   * The replica's disk is lost: it crashes and restarts on `storage` (empty by default), knowing
   * neither its log nor its vote.
   */
  loseDisk(id: NodeId, storage: MemoryStorage = new MemoryStorage()): void {
    this.crash(id)
    this.replica(id).storage = storage
    this.restart(id)
  }

  /** Replica `id`'s disk becomes slow: its writes wait until releaseWrites(id). */
  holdWrites(id: NodeId): void {
    this.node(id).disk!.held = true
  }

  /** Replica `id`'s waiting writes complete, in order (and its pipeline moves on). */
  releaseWrites(id: NodeId): void {
    this.node(id).disk!.release()
    this.processReadies()
  }

  /** Replica `id`'s process is stopped for `ticks` (SIGSTOP): its clock moves on, nothing of it runs. */
  pause(id: NodeId, ticks: number): void {
    this.node(id).time.pause(ticks)
  }

  /** A new driver on the same storage: what a process restart recovers. */
  restart(id: NodeId): void {
    const replica = this.replica(id)
    this.start(replica)
  }

  // ---------------------------------------------------------------------------------------------
  // Network

  /** Only nodes in the same group can talk; a live node in no group is cut off from everyone. */
  partition(...groups: NodeId[][]): void {
    this.heal()
    const groupOf = new Map<NodeId, number>()
    for (const [index, group] of groups.entries()) for (const id of group) groupOf.set(id, index)
    for (const from of this.replicas.keys()) {
      for (const to of this.replicas.keys()) {
        if (from !== to && (groupOf.get(from) === undefined || groupOf.get(from) !== groupOf.get(to)))
          this.blockedLinks.add(`${from}->${to}`)
      }
    }
  }

  isolate(id: NodeId): void {
    this.partition(
      [id],
      [...this.replicas.keys()].filter((other) => other !== id),
    )
  }

  /** Cut both directions between `a` and `b` (other links unchanged). */
  cut(a: NodeId, b: NodeId): void {
    this.blockedLinks.add(`${a}->${b}`)
    this.blockedLinks.add(`${b}->${a}`)
  }

  heal(): void {
    this.blockedLinks.clear()
  }

  /** Lose every message for which `filter` returns true, until dropIf(undefined). */
  dropIf(filter: ((message: Message) => boolean) | undefined): void {
    this.dropFilter = filter
  }

  /** Deliver the messages queued now (one hop); returns how many arrived. */
  deliver(): number {
    const batch = this.queue
    this.queue = []
    let delivered = 0
    for (const message of batch) {
      const target = this.replicas.get(message.to)?.node
      if (
        target === undefined ||
        this.blockedLinks.has(`${message.from}->${message.to}`) ||
        this.dropFilter?.(message) === true
      ) {
        this.dropped.push(message)
        continue
      }
      target.step(message)
      delivered++
    }
    this.processReadies()
    return delivered
  }

  /** Deliver until no node has anything more to say. */
  deliverAll(): void {
    this.processReadies()
    for (let round = 0; round < DELIVERY_ROUNDS_MAX; round++) {
      if (this.queue.length === 0) return
      this.deliver()
    }
    throw new Error(`network did not go quiet within ${DELIVERY_ROUNDS_MAX} rounds`)
  }

  /** Messages sent from now on: `const mark = cluster.mark(); ...; cluster.sentSince(mark)`. */
  mark(): number {
    return this.sent.length
  }

  sentSince(mark: number, filter: (message: Message) => boolean = () => true): Message[] {
    return this.sent.slice(mark).filter(filter)
  }

  // ---------------------------------------------------------------------------------------------
  // Time

  /** Tick every live node `count` times, delivering all traffic after each tick. */
  tick(count = 1): void {
    for (let i = 0; i < count; i++) {
      for (const id of this.live()) this.node(id).tick()
      this.deliverAll()
    }
  }

  /** Tick one node `count` times; its messages are queued, not delivered. */
  tickNode(id: NodeId, count = 1): void {
    for (let i = 0; i < count; i++) {
      this.node(id).tick()
      this.processReadies()
    }
  }

  /** Tick until one leader is known and has committed an entry of its term; returns its id. */
  tickUntilLeader(ticksMax = 20 * ELECTION_TIMEOUT_TICKS): NodeId {
    for (let tick = 0; tick <= ticksMax; tick++) {
      const leader = this.leader()
      if (leader !== undefined && this.committedInTerm(leader)) return leader
      this.tick()
    }
    throw new Error(`no leader within ${ticksMax} ticks`)
  }

  /**
   * Make `id` leader: it campaigns each tick until the others' leader leases lapse and it wins.
   * Meant for a cluster whose old leader is gone or unreachable from `id`'s quorum.
   */
  elect(id: NodeId, ticksMax = 4 * ELECTION_TIMEOUT_TICKS): void {
    for (let tick = 0; tick <= ticksMax; tick++) {
      if (this.node(id).status().role !== Role.Leader) this.node(id).campaign()
      this.deliverAll()
      if (this.node(id).status().role === Role.Leader) return
      this.tick()
    }
    throw new Error(`replica ${id} did not become leader within ${ticksMax} ticks`)
  }

  /** The live leader of the highest term, if any. */
  leader(): NodeId | undefined {
    let best: Status | undefined
    for (const id of this.live()) {
      const status = this.status(id)
      if (status.role === Role.Leader && (best === undefined || status.term > best.term)) best = status
    }
    return best?.id
  }

  leaders(): NodeId[] {
    return this.live().filter((id) => this.status(id).role === Role.Leader)
  }

  private committedInTerm(id: NodeId): boolean {
    const status = this.status(id)
    return status.commit >= status.firstIndex && this.node(id).logTerm(status.commit) === status.term
  }

  // ---------------------------------------------------------------------------------------------
  // Client side

  /** Propose `data` on `id` and run the resulting Ready (messages are queued, not delivered). */
  propose(id: NodeId, data: string | Uint8Array): ProposalTicket {
    const ticket = this.node(id).propose(typeof data === 'string' ? bytes(data) : data)
    this.processReadies()
    return ticket
  }

  proposeConfChange(id: NodeId, change: ConfChange): ProposalTicket {
    const ticket = this.node(id).proposeConfChange(change)
    this.processReadies()
    return ticket
  }

  readIndex(id: NodeId, context: string, mode?: ReadMode): void {
    this.node(id).readIndex(context, mode)
    this.processReadies()
  }

  /** The terms of `id`'s durable log from its first stored entry to its last. */
  logTerms(id: NodeId): number[] {
    const storage = this.storage(id)
    const terms: number[] = []
    for (let index = storage.firstIndex(); index <= storage.lastIndex(); index++) terms.push(storage.term(index))
    return terms
  }

  /** `id`'s durable log entries (after its snapshot). */
  logEntries(id: NodeId): Entry[] {
    const storage = this.storage(id)
    if (storage.lastIndex() < storage.firstIndex()) return []
    return storage.entries(storage.firstIndex(), storage.lastIndex() + 1, Number.POSITIVE_INFINITY)
  }

  /** The application takes a snapshot at its applied index and the store compacts the log before it. */
  snapshot(id: NodeId, data: Uint8Array): Snapshot {
    const replica = this.replica(id)
    this.nextSnapshotData = data
    let failure: Error | undefined
    this.node(id).driver.snapshotNow((error) => {
      failure = error
    })
    if (failure !== undefined) throw failure
    return replica.storage.snapshot()
  }

  // ---------------------------------------------------------------------------------------------
  // The host's side of the Ready contract

  /** Run what the drivers deferred (their Ready pipelines) until nothing is left. */
  processReadies(): void {
    for (let round = 0; round < DELIVERY_ROUNDS_MAX; round++) {
      const work = this.deferred.splice(0)
      if (work.length === 0) return
      for (const callback of work) callback()
    }
    throw new Error('nodes kept producing Readies')
  }
}

/** A store holding the Raft Figure 7 style log `terms` (terms[0] is index 1, the bootstrap entry). */
export function storageWithTerms(confState: ConfState, terms: readonly number[], currentTerm: number): MemoryStorage {
  if (terms[0] !== 1) throw new Error('index 1 is the bootstrap entry of term 1')
  const storage = MemoryStorage.bootstrap(confState)
  storage.append(
    terms.slice(1).map((term, i) => ({ index: i + 2, term, type: 'normal', data: bytes(`${i + 2}@${term}`) })),
  )
  storage.setHardState({ term: currentTerm, vote: 0, commit: 1 })
  return storage
}

export function messagesOfType(messages: readonly Message[], type: Message['type']): Message[] {
  return messages.filter((message) => message.type === type)
}

/** Run `action`, expect it to throw a RaftError with `code`, and return the error (tests check codes, never messages). */
export function expectRaftError(action: () => unknown, code: RaftErrorCode): RaftError {
  try {
    action()
  } catch (error) {
    if (!(error instanceof RaftError)) throw error
    if (error.code !== code) throw new Error(`expected RaftError ${code}, got ${error.code}`)
    return error
  }
  throw new Error(`expected RaftError ${code}, but nothing was thrown`)
}
