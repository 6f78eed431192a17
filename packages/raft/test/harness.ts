/**
 * A deterministic network of RawNodes in one process, for scenario tests that read like the Raft
 * paper (STYLE §7): `cluster.elect(1)`, `cluster.partition([1], [2, 3])`, `cluster.deliverAll()`.
 *
 * Nothing here sleeps, reads a clock or calls Math.random. Time moves only when a test ticks;
 * messages move only when a test delivers them. Each Ready is handled in the order written on the
 * Ready type: persist (snapshot, entries, hard state) to the node's MemoryStorage, send (into the
 * network queue), apply (snapshot, committed entries), hand over read states, advance.
 */
import { MemoryStorage, RaftError, RawNode, Role, createSeededRng } from '../src/index.ts'
import type {
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

/** Small timeouts keep scenarios short; the ratio (heartbeat well under the election timeout) is what matters. */
export const ELECTION_TIMEOUT_TICKS = 10
export const HEARTBEAT_TICKS = 2

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
  node: RawNode | undefined
  readonly storage: MemoryStorage
  /** Entries applied to the state machine, in order (since the last snapshot install or restart). */
  applied: Entry[]
  /** Index up to which the state machine reflects the log (snapshot installs jump it forward). */
  appliedIndex: number
  /** Snapshots installed from a leader. */
  readonly installedSnapshots: Snapshot[]
  readonly readStates: ReadState[]
  readonly droppedReads: string[]
}

export class PatientRng implements Rng {
  nextInt(maxExclusive: number): number {
    return maxExclusive <= 1 ? 0 : maxExclusive - 1
  }
}

export class Cluster {
  readonly replicas = new Map<NodeId, Replica>()
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
    const rng =
      options.timers === 'random' ? createSeededRng((options.seed ?? 1) * 1009 + replica.id) : new PatientRng()
    replica.node = new RawNode({
      electionTimeoutTicks: ELECTION_TIMEOUT_TICKS,
      heartbeatTicks: HEARTBEAT_TICKS,
      ...options.config,
      ...options.nodeConfig?.[replica.id],
      id: replica.id,
      storage: replica.storage,
      rng,
    })
    replica.appliedIndex = replica.storage.snapshot().metadata.index
    replica.applied = []
  }

  replica(id: NodeId): Replica {
    const replica = this.replicas.get(id)
    if (replica === undefined) throw new Error(`no replica ${id}`)
    return replica
  }

  node(id: NodeId): RawNode {
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
    this.replica(id).node = undefined
  }

  /** A new RawNode on the same storage: what a process restart recovers. */
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
    return status.commit >= status.firstIndex && this.node(id).raft.log.term(status.commit) === status.term
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
    const confState: ConfState = this.node(id).confStateAt(replica.appliedIndex)
    return replica.storage.createSnapshot(replica.appliedIndex, confState, data)
  }

  // ---------------------------------------------------------------------------------------------
  // The host's side of the Ready contract

  processReadies(): void {
    for (let round = 0; round < DELIVERY_ROUNDS_MAX; round++) {
      let any = false
      for (const replica of this.replicas.values()) {
        const node = replica.node
        if (node === undefined || !node.hasReady()) continue
        any = true
        this.handleReady(replica, node)
      }
      if (!any) return
    }
    throw new Error('nodes kept producing Readies')
  }

  private handleReady(replica: Replica, node: RawNode): void {
    const ready = node.ready()
    const storage = replica.storage
    // 1. Persist: snapshot, then entries and hard state.
    if (ready.snapshot !== undefined) storage.applySnapshot(ready.snapshot)
    storage.append(ready.entries)
    if (ready.hardState !== undefined) storage.setHardState(ready.hardState)
    // 2. Send.
    for (const message of ready.messages) {
      this.sent.push(message)
      this.queue.push(message)
    }
    // 3. Apply.
    if (ready.snapshot !== undefined) {
      replica.installedSnapshots.push(ready.snapshot)
      replica.appliedIndex = ready.snapshot.metadata.index
    }
    for (const entry of ready.committedEntries) {
      if (entry.index !== replica.appliedIndex + 1)
        throw new Error(`replica ${replica.id} applies ${entry.index} after ${replica.appliedIndex}`)
      replica.applied.push(entry)
      replica.appliedIndex = entry.index
    }
    // 4. Reads.
    replica.readStates.push(...ready.readStates)
    replica.droppedReads.push(...ready.droppedReads)
    // 5. Advance.
    node.advance(ready)
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
