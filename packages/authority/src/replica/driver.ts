/**
 * The replica's driver: the one place where the Raft core meets storage, network and time. The
 * replica runs it over LevelDB, libp2p and the process clock; the simulator runs the very same code
 * over simulated disks, a seeded network and virtual time with pauses; the Raft scenario tests run it
 * over synchronous in-memory stores. Nothing here reads a clock, starts a timer or does I/O except
 * through the ports it is given, so a seed replays it exactly.
 *
 * One Ready at a time moves through the pipeline, top to bottom:
 *
 *   persist  snapshot, entries and hard state in one write (synced when the Ready must sync)
 *   send     the Ready's messages (heartbeats may leave early, while a write is in flight)
 *   apply    install the snapshot, apply committed entries in order, answer their proposals
 *   reads    release ReadIndex answers once applied, fail the dropped ones
 *   advance  hand the Ready back; take a snapshot when the log has grown enough
 *
 * Whatever arrives while a Ready is being persisted (frames, proposals, ticks) only touches the
 * core, and rides the next Ready: that is group commit. Every port callback may run synchronously
 * (the scenario tests' stores do) or later (LevelDB); the pipeline is re-entrancy safe either way.
 */
import { MessageType, RawNode, ReadMode } from '@nodeledger/raft'
import type {
  BasicStatus,
  ConfChange,
  ConfState,
  Config,
  Entry,
  HardState,
  Message,
  NodeId,
  ProposalTicket,
  Ready,
  Snapshot,
  SnapshotMetadata,
  SoftState,
  Status,
  Storage,
} from '@nodeledger/raft'

// -----------------------------------------------------------------------------------------------
// Ports

/** What one Ready makes durable, in this order: snapshot, entries, hard state. */
export interface StorageUpdate {
  readonly hardState?: HardState
  readonly entries: readonly Entry[]
  readonly snapshot?: Snapshot
  /** fsync before `done` (Ready.mustSync); false only when the commit index alone moved. */
  readonly sync: boolean
}

/**
 * The durable log. Reads are the core's synchronous Storage; writes complete through `done`, in the
 * order they were asked for, and change what the reads return only once durable.
 */
export interface DriverStorage extends Storage {
  save(update: StorageUpdate, done: (error?: Error) => void): void
  /** Record a snapshot of the state machine at `index` (applied) and compact the log up to it. */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array, done: (error?: Error) => void): void
}

/** Sends Raft messages; grouping them by peer and into frames is the transport's business. */
export interface DriverTransport {
  send(messages: readonly Message[]): void
}

/** Time, as the host measures it. */
export interface DriverTime {
  /** Monotonic milliseconds. Ticks follow it: a process back from a pause catches up its lease clock. */
  nowMs(): number
  /** Call `callback` every `intervalMs` until the returned function is called. */
  every(intervalMs: number, callback: () => void): () => void
  /** Call `callback` once, after the event being handled now (so a burst of events makes one Ready). */
  soon(callback: () => void): void
}

/** The replicated state machine. It sees every committed entry, whatever its type, in log order. */
export interface DriverStateMachine<Result> {
  apply(entry: Entry): Result
  /** Replace the whole state with a snapshot's. */
  restore(snapshot: Snapshot): void
  /** The state as of the last applied entry, `index`. */
  snapshot(index: number): Uint8Array
}

/** What the driver tells its host. Every member is optional except `fatal`. */
export interface DriverEvents {
  /** Role or leader changed: the core's state when it handed out the Ready that carries the change. */
  softState?(state: SoftState, term: number): void
  /** Entries up to `index` are applied. */
  applied?(index: number): void
  snapshotInstalled?(metadata: SnapshotMetadata, bytes: number): void
  snapshotTaken?(index: number, bytes: number): void
  /** A write finished: how long it took, and whether it was synced. */
  persisted?(latencyMs: number, entries: number, synced: boolean): void
  /** Entries were handed to storage (before they are durable): a host learns new members early. */
  appending?(entries: readonly Entry[]): void
  /** The host's clock ran ahead of the delivered ticks by `ticks` (a pause, a starved event loop). */
  stalled?(ticks: number): void
  /** Storage failed or an invariant broke. The driver has stopped; the host must stop serving. */
  fatal(error: Error): void
}

// -----------------------------------------------------------------------------------------------
// Requests and outcomes

/**
 * How a proposal ended. `applied`: committed and applied at `index`, with the state machine's
 * result. `lost`: definitely not applied (another entry won its index, or it never left this
 * leader). `unknown`: it may or may not have been applied (a snapshot replaced the log there, or the
 * driver stopped); retrying an idempotent command is the way to learn.
 */
export type ProposalOutcome<Result> =
  | { readonly status: 'applied'; readonly index: number; readonly result: Result }
  | { readonly status: 'lost'; readonly index: number; readonly reason: string }
  | { readonly status: 'unknown'; readonly reason: string }

/** How a read barrier ended: `ready` once this replica has applied `index` (safe to read), or `dropped`. */
export type ReadOutcome =
  | { readonly status: 'ready'; readonly index: number }
  | { readonly status: 'dropped'; readonly reason: string }

export type DriverErrorCode = 'OVERLOADED' | 'STOPPED'

/** A request the driver refused before it reached the core (the core's own refusals are RaftErrors). */
export class DriverError extends Error {
  static override readonly name = 'DriverError'
  readonly code: DriverErrorCode
  constructor(code: DriverErrorCode, message: string) {
    super(message)
    this.name = 'DriverError'
    this.code = code
  }
}

export interface DriverOptions<Result> {
  readonly id: NodeId
  readonly storage: DriverStorage
  readonly transport: DriverTransport
  readonly time: DriverTime
  readonly stateMachine: DriverStateMachine<Result>
  readonly events: DriverEvents
  /** The core's configuration, less what the driver fills in (id, storage, applied). */
  readonly raft: Omit<Config, 'id' | 'storage' | 'applied'>
  readonly tickIntervalMs: number
  /** Snapshot and compact once this many entries were applied since the last snapshot. */
  readonly snapshotEveryEntries: number
  /** Proposals waiting to be applied before new ones are refused OVERLOADED. */
  readonly pendingProposalsMax?: number
  /** Read barriers waiting before new ones are refused OVERLOADED. */
  readonly pendingReadsMax?: number
}

/** Defaults, each with its reason. */
export const DRIVER_DEFAULTS = {
  /** 10,000 proposals in flight: several seconds of the fastest load we see, then back-pressure. */
  pendingProposalsMax: 10_000,
  /** As many reads as the core queues before its first commit of a term. */
  pendingReadsMax: 4096,
  /**
   * A tick timer that fires this many intervals late is a stall (a pause, a starved event loop):
   * only one tick is delivered, the rest are reported to the lease clock.
   */
  stallTicksMin: 2,
} as const

interface PendingProposal<Result> {
  readonly term: number
  readonly done: (outcome: ProposalOutcome<Result>) => void
}

interface PendingRead {
  readonly done: (outcome: ReadOutcome) => void
  /** The index the read may be served at, once the ReadState arrived. */
  index: number | undefined
}

type Stage = 'idle' | 'persisting' | 'stopped'

/**
 * Drives one RawNode. Create, then `start()`; feed it `step()`, `propose()`, `read()`,
 * `reportUnreachable()`; `stop()` when done. Proposals and reads answer through callbacks.
 *
 * @example
 * ```ts
 * const driver = new ReplicaDriver({ id, storage, transport, time, stateMachine, events, raft: { rng }, tickIntervalMs: 10, snapshotEveryEntries: 10_000 })
 * driver.start()
 * transport.onMessages = (messages) => driver.step(messages)
 * driver.propose(data, (outcome) => console.log(outcome.status))
 * ```
 */
export class ReplicaDriver<Result> {
  readonly id: NodeId
  readonly #node: RawNode
  readonly #storage: DriverStorage
  readonly #transport: DriverTransport
  readonly #time: DriverTime
  readonly #stateMachine: DriverStateMachine<Result>
  readonly #events: DriverEvents
  readonly #tickIntervalMs: number
  readonly #snapshotEveryEntries: number
  readonly #pendingProposalsMax: number
  readonly #pendingReadsMax: number

  #stage: Stage = 'idle'
  #started = false
  /** pump() is running (a synchronous storage can complete a Ready inside it). */
  #pumping = false
  #pumpAgain = false
  #pumpScheduled = false
  #cancelTimer: (() => void) | undefined
  /** The tick clock: ticks delivered plus ticks reported as a stall, since `#clockStartMs`. */
  #clockStartMs = 0
  #clockTicks = 0

  #appliedIndex: number
  #snapshotIndex: number
  #snapshotting = false
  readonly #proposals = new Map<number, PendingProposal<Result>[]>()
  #proposalCount = 0
  readonly #reads = new Map<string, PendingRead>()
  /** Reads whose ReadState arrived and that wait for the applied index, oldest first. */
  #readsWaitingApply: Array<{ context: string; index: number }> = []
  #nextReadId = 1
  #stopWaiters: Array<() => void> = []

  readonly counters = {
    readies: 0,
    /** Heartbeats (and their answers) sent while a write was in flight. */
    heartbeatsEarly: 0,
    stalls: 0,
    ticksStalled: 0,
    proposalsLost: 0,
    proposalsUnknown: 0,
    readsDropped: 0,
    snapshotsTaken: 0,
    snapshotsInstalled: 0,
  }

  constructor(options: DriverOptions<Result>) {
    this.id = options.id
    this.#storage = options.storage
    this.#transport = options.transport
    this.#time = options.time
    this.#stateMachine = options.stateMachine
    this.#events = options.events
    this.#tickIntervalMs = positive(options.tickIntervalMs, 'tickIntervalMs')
    this.#snapshotEveryEntries = positive(options.snapshotEveryEntries, 'snapshotEveryEntries')
    this.#pendingProposalsMax = positive(
      options.pendingProposalsMax ?? DRIVER_DEFAULTS.pendingProposalsMax,
      'pendingProposalsMax',
    )
    this.#pendingReadsMax = positive(options.pendingReadsMax ?? DRIVER_DEFAULTS.pendingReadsMax, 'pendingReadsMax')
    const snapshot = options.storage.snapshot()
    this.#snapshotIndex = snapshot.metadata.index
    // The state machine starts from the stored snapshot (the host restored it) and replays the log.
    this.#appliedIndex = snapshot.metadata.index
    this.#node = new RawNode({ ...options.raft, id: options.id, storage: options.storage, applied: this.#appliedIndex })
  }

  /** Start ticking. Steps and requests are accepted before (they wait in the core). */
  start(): void {
    if (this.#started) return
    this.#started = true
    this.#clockStartMs = this.#time.nowMs()
    this.#cancelTimer = this.#time.every(this.#tickIntervalMs, () => this.#onTimer())
    this.#wake()
  }

  /**
   * Stop: no more ticks or Readies; a write in flight completes first. Every proposal and read still
   * waiting is answered (`unknown` and `dropped`). `done` runs once nothing is in flight.
   */
  stop(done?: () => void): void {
    if (done !== undefined) this.#stopWaiters.push(done)
    if (this.#stage === 'stopped') {
      this.#flushStopWaiters()
      return
    }
    const persisting = this.#stage === 'persisting'
    this.#stage = 'stopped'
    this.#cancelTimer?.()
    this.#cancelTimer = undefined
    this.#failAll('the replica is stopping')
    // A write in flight calls back into #onPersisted, which sees the stage and finishes the stop.
    if (!persisting && !this.#snapshotting) this.#flushStopWaiters()
  }

  get stopped(): boolean {
    return this.#stage === 'stopped'
  }

  // ---------------------------------------------------------------------------------------------
  // Inputs

  step(messages: readonly Message[]): void {
    if (this.#stage === 'stopped') return
    for (const message of messages) this.#node.step(message)
    this.#afterInput()
  }

  /** The transport saw the connection to `peer` close. */
  reportUnreachable(peer: NodeId): void {
    if (this.#stage === 'stopped') return
    this.#node.reportUnreachable(peer)
    this.#afterInput()
  }

  /** Start an election now (operators, tests). */
  campaign(): void {
    if (this.#stage === 'stopped') return
    this.#node.campaign()
    this.#afterInput()
  }

  transferLeader(target: NodeId): void {
    this.#requireRunning()
    this.#node.transferLeader(target)
    this.#afterInput()
  }

  /**
   * Propose `data` (a Normal entry). Throws RaftError NOT_LEADER or DROPPED (never proposed) and
   * DriverError OVERLOADED or STOPPED; otherwise `done` reports the outcome exactly once.
   */
  propose(data: Uint8Array, done: (outcome: ProposalOutcome<Result>) => void): ProposalTicket {
    return this.#proposeWith(() => this.#node.propose(data), done)
  }

  /** A single-server membership change, with the same contract as propose(). */
  proposeConfChange(change: ConfChange, done: (outcome: ProposalOutcome<Result>) => void): ProposalTicket {
    return this.#proposeWith(() => this.#node.proposeConfChange(change), done)
  }

  /**
   * A read barrier: `done` says when this replica's state machine reflects every write acknowledged
   * before now (linearizable: a heartbeat round confirms leadership, thesis §6.4; lease: the leader
   * lease, counted in elapsed time, when the cluster allows it). Throws RaftError NOT_LEADER,
   * DROPPED, DriverError OVERLOADED or STOPPED.
   */
  read(mode: ReadMode, done: (outcome: ReadOutcome) => void): void {
    this.#requireRunning()
    if (this.#reads.size >= this.#pendingReadsMax)
      throw new DriverError('OVERLOADED', `too many reads waiting (${this.#pendingReadsMax})`)
    // A lease is only as good as the clock it is counted on: a process back from a pause must
    // learn how long it was away before it trusts one (the timer may not have fired yet).
    if (mode === ReadMode.Lease) this.#catchUpClock()
    const context = `${this.id}-${this.#nextReadId++}`
    this.#node.readIndex(context, mode)
    this.#reads.set(context, { done, index: undefined })
    this.#afterInput()
  }

  /** Take a snapshot now (an operator's request); `done` gets the snapshot index. */
  snapshotNow(done: (error: Error | undefined, index: number) => void): void {
    if (this.#stage === 'stopped') {
      done(new DriverError('STOPPED', 'the replica is stopping'), this.#snapshotIndex)
      return
    }
    if (this.#appliedIndex <= this.#snapshotIndex || this.#snapshotting) {
      done(undefined, this.#snapshotIndex)
      return
    }
    this.#takeSnapshot(done)
  }

  // ---------------------------------------------------------------------------------------------
  // Reading the state (cheap)

  basicStatus(): BasicStatus {
    return this.#node.basicStatus()
  }

  status(): Status {
    return this.#node.status()
  }

  confState(): ConfState {
    return this.#node.confState()
  }

  /** The membership at `index` (>= the applied index). */
  confStateAt(index: number): ConfState {
    return this.#node.confStateAt(index)
  }

  logTerm(index: number): number | undefined {
    return this.#node.logTerm(index)
  }

  get appliedIndex(): number {
    return this.#appliedIndex
  }

  get snapshotIndex(): number {
    return this.#snapshotIndex
  }

  get isLeader(): boolean {
    return this.#node.isLeader()
  }

  // ---------------------------------------------------------------------------------------------
  // Time

  #onTimer(): void {
    if (this.#stage === 'stopped') return
    const owed = this.#ticksOwed()
    // Every firing delivers one tick: timers keep their cadence. A firing that finds the lease
    // clock already caught up (a lease read did it) still ticks, so that clock may run a tick ahead
    // of real time, which only ever shortens a lease. A late firing delivers one tick and reports
    // the rest to the lease clock only (RawNode.reportStall).
    this.#clockTicks += Math.max(1, owed)
    this.#node.tick()
    if (owed >= DRIVER_DEFAULTS.stallTicksMin) this.#reportStall(owed - 1)
    this.#afterInput()
  }

  /** Tell the core about time that passed without ticks, before it judges a lease. */
  #catchUpClock(): void {
    if (!this.#started) return
    const owed = this.#ticksOwed()
    if (owed <= 0) return
    this.#clockTicks += owed
    this.#reportStall(owed)
  }

  #reportStall(ticks: number): void {
    this.#node.reportStall(ticks)
    this.counters.stalls++
    this.counters.ticksStalled += ticks
    this.#events.stalled?.(ticks)
  }

  #ticksOwed(): number {
    return Math.floor((this.#time.nowMs() - this.#clockStartMs) / this.#tickIntervalMs) - this.#clockTicks
  }

  // ---------------------------------------------------------------------------------------------
  // The pipeline

  #afterInput(): void {
    // While a write is in flight nothing else leaves, except heartbeats: a slow fsync must never
    // look like a dead leader (or a dead follower) to the others.
    if (this.#stage === 'persisting') this.counters.heartbeatsEarly += this.#sendHeartbeatsNow()
    this.#wake()
  }

  #sendHeartbeatsNow(): number {
    const heartbeats = this.#node.takeHeartbeats()
    if (heartbeats.length > 0) this.#transport.send(heartbeats)
    return heartbeats.length
  }

  #wake(): void {
    if (this.#pumpScheduled || this.#stage !== 'idle' || !this.#started) return
    this.#pumpScheduled = true
    this.#time.soon(() => {
      this.#pumpScheduled = false
      this.#pump()
    })
  }

  /** Take the next Ready if the pipeline is free. Re-entrant calls (synchronous stores) loop instead. */
  #pump(): void {
    if (this.#pumping) {
      this.#pumpAgain = true
      return
    }
    this.#pumping = true
    try {
      do {
        this.#pumpAgain = false
        if (this.#stage !== 'idle' || !this.#node.hasReady()) break
        this.#persist(this.#node.ready())
      } while (this.#pumpAgain || (this.#stage === 'idle' && this.#node.hasReady()))
    } catch (error) {
      this.#fail(error)
    } finally {
      this.#pumping = false
    }
  }

  /** 1. Persist. */
  #persist(ready: Ready): void {
    assert(this.#stage === 'idle', 'one Ready at a time')
    this.#stage = 'persisting'
    this.counters.readies++
    // The role as of this Ready, reported now: by the time the write completes, newer messages may
    // already have moved the core on (a pause, a burst), and a later report would mislabel the term.
    if (ready.softState !== undefined) this.#events.softState?.(ready.softState, this.#node.basicStatus().term)
    // A leader's AppendEntries leave now, in parallel with its own write (thesis §10.2.1): the core
    // counts the leader's entries toward commit only once advance() reports them durable. Everything
    // else (votes, acknowledgements) waits for the write: it promises what is on disk.
    const early: Message[] = []
    const late: Message[] = []
    for (const message of ready.messages) (message.type === MessageType.Append ? early : late).push(message)
    if (early.length > 0) this.#transport.send(early)
    if (ready.snapshot === undefined && ready.entries.length === 0 && ready.hardState === undefined) {
      this.#onPersisted(ready, late, undefined, 0)
      return
    }
    if (ready.entries.length > 0) this.#events.appending?.(ready.entries)
    const startedMs = this.#time.nowMs()
    const update: StorageUpdate = {
      ...(ready.hardState !== undefined ? { hardState: ready.hardState } : {}),
      entries: ready.entries,
      ...(ready.snapshot !== undefined ? { snapshot: ready.snapshot } : {}),
      sync: ready.mustSync,
    }
    this.#storage.save(update, (error) => this.#onPersisted(ready, late, error, this.#time.nowMs() - startedMs))
  }

  #onPersisted(ready: Ready, messages: readonly Message[], error: Error | undefined, latencyMs: number): void {
    try {
      if (error !== undefined) throw error
      if (ready.entries.length > 0 || ready.hardState !== undefined || ready.snapshot !== undefined) {
        this.#events.persisted?.(latencyMs, ready.entries.length, ready.mustSync)
      }
      if (ready.hardState !== undefined) {
        assert(
          ready.hardState.commit <= this.#storage.lastIndex(),
          () => `commit ${ready.hardState!.commit} beyond the last persisted index ${this.#storage.lastIndex()}`,
        )
      }
      if (this.#stage === 'stopped') {
        // Stopped while the write was in flight: what it made durable stays; nothing more is done.
        this.#flushStopWaiters()
        return
      }
      // 2. Send: only now may a vote or an acknowledgement leave (it is durable).
      this.#sendHeartbeatsNow()
      if (messages.length > 0) this.#transport.send(messages)
      // 3. Apply.
      if (ready.snapshot !== undefined) this.#installSnapshot(ready.snapshot)
      for (const entry of ready.committedEntries) this.#apply(entry)
      // 4. Reads.
      for (const readState of ready.readStates) this.#onReadState(readState.context, readState.index)
      for (const context of ready.droppedReads)
        this.#finishRead(context, { status: 'dropped', reason: 'leadership changed before the read was confirmed' })
      this.#releaseReads()
      // 5. Advance.
      this.#node.advance(ready)
      const status = this.#node.basicStatus()
      assert(
        status.applied === this.#appliedIndex,
        () => `the core's applied ${status.applied} is not the state machine's ${this.#appliedIndex}`,
      )
      assert(this.#appliedIndex <= status.commit, () => `applied ${this.#appliedIndex} beyond commit ${status.commit}`)
      assert(
        this.#snapshotIndex <= this.#appliedIndex,
        () => `snapshot ${this.#snapshotIndex} ahead of applied ${this.#appliedIndex}`,
      )
      this.#stage = 'idle'
      if (ready.committedEntries.length > 0 || ready.snapshot !== undefined) this.#events.applied?.(this.#appliedIndex)
      if (this.#appliedIndex - this.#snapshotIndex >= this.#snapshotEveryEntries && !this.#snapshotting)
        this.#takeSnapshot()
    } catch (failure) {
      this.#fail(failure)
      return
    }
    this.#pump()
  }

  #installSnapshot(snapshot: Snapshot): void {
    const { index } = snapshot.metadata
    assert(index > this.#appliedIndex, () => `snapshot at ${index} is not ahead of applied ${this.#appliedIndex}`)
    this.#stateMachine.restore(snapshot)
    this.#appliedIndex = index
    this.#snapshotIndex = index
    this.counters.snapshotsInstalled++
    // Proposals the snapshot jumped over may or may not be in it.
    for (const [proposedIndex, waiters] of this.#proposals) {
      if (proposedIndex > index) continue
      this.#proposals.delete(proposedIndex)
      for (const waiter of waiters)
        this.#finishProposal(waiter, { status: 'unknown', reason: `a snapshot at ${index} replaced the log here` })
    }
    this.#events.snapshotInstalled?.(snapshot.metadata, snapshot.data.byteLength)
  }

  #apply(entry: Entry): void {
    assert(
      entry.index === this.#appliedIndex + 1,
      () => `entries apply contiguously: ${entry.index} after ${this.#appliedIndex}`,
    )
    const result = this.#stateMachine.apply(entry)
    this.#appliedIndex = entry.index
    const waiters = this.#proposals.get(entry.index)
    if (waiters === undefined) return
    this.#proposals.delete(entry.index)
    for (const waiter of waiters) {
      if (waiter.term === entry.term) this.#finishProposal(waiter, { status: 'applied', index: entry.index, result })
      else
        this.#finishProposal(waiter, {
          status: 'lost',
          index: entry.index,
          reason: `a new leader's entry took index ${entry.index}`,
        })
    }
  }

  #takeSnapshot(done?: (error: Error | undefined, index: number) => void): void {
    const index = this.#appliedIndex
    assert(
      index > this.#snapshotIndex,
      () => `snapshot at ${index} is not ahead of the last one at ${this.#snapshotIndex}`,
    )
    const data = this.#stateMachine.snapshot(index)
    const confState = this.#node.confStateAt(index)
    this.#snapshotting = true
    this.#storage.createSnapshot(index, confState, data, (error) => {
      this.#snapshotting = false
      if (error !== undefined) {
        done?.(error, this.#snapshotIndex)
        this.#fail(error)
        return
      }
      this.#snapshotIndex = Math.max(this.#snapshotIndex, index)
      this.counters.snapshotsTaken++
      this.#events.snapshotTaken?.(index, data.byteLength)
      done?.(undefined, this.#snapshotIndex)
      if (this.#stage === 'stopped') this.#flushStopWaiters()
    })
  }

  // ---------------------------------------------------------------------------------------------
  // Proposals and reads

  #proposeWith(propose: () => ProposalTicket, done: (outcome: ProposalOutcome<Result>) => void): ProposalTicket {
    this.#requireRunning()
    if (this.#proposalCount >= this.#pendingProposalsMax)
      throw new DriverError('OVERLOADED', `too many proposals in flight (${this.#pendingProposalsMax})`)
    const ticket = propose()
    const waiters = this.#proposals.get(ticket.index)
    const waiter: PendingProposal<Result> = { term: ticket.term, done }
    if (waiters === undefined) this.#proposals.set(ticket.index, [waiter])
    else waiters.push(waiter)
    this.#proposalCount++
    this.#afterInput()
    return ticket
  }

  #finishProposal(waiter: PendingProposal<Result>, outcome: ProposalOutcome<Result>): void {
    this.#proposalCount--
    if (outcome.status === 'lost') this.counters.proposalsLost++
    if (outcome.status === 'unknown') this.counters.proposalsUnknown++
    waiter.done(outcome)
  }

  #onReadState(context: string, index: number): void {
    const read = this.#reads.get(context)
    if (read === undefined) return
    read.index = index
    this.#readsWaitingApply.push({ context, index })
  }

  #releaseReads(): void {
    if (this.#readsWaitingApply.length === 0) return
    const still: Array<{ context: string; index: number }> = []
    for (const waiting of this.#readsWaitingApply) {
      if (waiting.index <= this.#appliedIndex)
        this.#finishRead(waiting.context, { status: 'ready', index: this.#appliedIndex })
      else still.push(waiting)
    }
    this.#readsWaitingApply = still
  }

  #finishRead(context: string, outcome: ReadOutcome): void {
    const read = this.#reads.get(context)
    if (read === undefined) return
    this.#reads.delete(context)
    if (outcome.status === 'dropped') this.counters.readsDropped++
    read.done(outcome)
  }

  #failAll(reason: string): void {
    const proposals = [...this.#proposals.values()].flat()
    this.#proposals.clear()
    for (const waiter of proposals) this.#finishProposal(waiter, { status: 'unknown', reason })
    for (const context of [...this.#reads.keys()]) this.#finishRead(context, { status: 'dropped', reason })
    this.#readsWaitingApply = []
  }

  #requireRunning(): void {
    if (this.#stage === 'stopped') throw new DriverError('STOPPED', 'the replica is stopping')
  }

  #fail(error: unknown): void {
    const failure = error instanceof Error ? error : new Error(String(error))
    if (this.#stage !== 'stopped') {
      this.#stage = 'stopped'
      this.#cancelTimer?.()
      this.#cancelTimer = undefined
      this.#failAll(`the replica failed: ${failure.message}`)
    }
    this.#events.fatal(failure)
    this.#flushStopWaiters()
  }

  #flushStopWaiters(): void {
    if (this.#snapshotting) return
    const waiters = this.#stopWaiters
    this.#stopWaiters = []
    for (const waiter of waiters) waiter()
  }
}

/** A broken invariant where the driver hands off: a bug, never bad input (TIGER_STYLE). */
export class DriverAssertionError extends Error {
  static override readonly name = 'DriverAssertionError'
  constructor(message: string) {
    super(`driver invariant violated: ${message}`)
    this.name = 'DriverAssertionError'
  }
}

function assert(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) throw new DriverAssertionError(typeof message === 'string' ? message : message())
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new TypeError(`${name} must be a positive integer (got ${value})`)
  return value
}
