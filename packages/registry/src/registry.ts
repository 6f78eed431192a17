import { decodeCommand, decodeSnapshot, encodeSnapshot, SNAPSHOT_COUNTERS } from './codec.ts'
import type { DecodeOptions, SnapshotCounters } from './codec.ts'
import type {
  ApplyResult,
  Changes,
  Command,
  CommandEnvelope,
  ListFilter,
  LivenessReason,
  RegistryLogEntry,
  RegistryStats,
  StaleReason,
} from './commands.ts'
import { CHANGES_LIMIT_DEFAULT, CODEC_VERSION, LIST_LIMIT_DEFAULT, RECORDS_MAX, REPLICAS_MAX } from './constants.ts'

/** Superseded pairs the change index may hold beyond one per record before it is rebuilt. */
const CHANGE_INDEX_SLACK = 1024
import { assert, RegistryError } from './errors.ts'
import { endPresences, mergeDelta, observeJoined, observeLeft, setLiveness } from './merge.ts'
import type { MergeOutcome } from './merge.ts'
import { CAPABILITY_FIELD, canDoWork } from './model.ts'
import type { Category, LastLeftReason, NodeData } from './model.ts'
import { compareReliability } from './ranking.ts'
import { checkPeerIdSet } from './validate.ts'

export interface RegistryOptions {
  /**
   * The replicas allowed to observe before the log says otherwise (a `replicas` command replaces
   * the set). Every replica must start with the same list, as with the Raft peers.
   */
  readonly replicaPeerIds?: readonly string[]
}

/**
 * The replicated state machine. `apply` is deterministic: its only inputs are the entries, in log
 * order; it reads no clock and no randomness, so replicas that applied the same entries hold the
 * same records and produce byte-identical snapshots.
 *
 * Records live in one Map whose iteration order is the order the log last changed them (a changed
 * record is deleted and re-inserted). `changesSince` uses a change index beside it: one
 * (changedIndex, peerId) pair per write, ascending, so a watcher that is k changes behind costs a
 * binary search plus k steps, not a walk over every record (the leader serves one watch per worker).
 *
 * Reasons and versions. A command that makes a node inactive records why in lastLeftReason: a
 * liveness entry its reason (ttl, left, disconnected), an expire `ttl`, an observation `left` or a
 * replica reset `disconnected`; a change of the replica set records '' (the node did nothing). Only
 * entries written in codec version 2 do: a version 1 entry records '', exactly what a version 1
 * build computed from it. Replicas upgraded from version 1 snapshot at different indexes, so one
 * replays with this build the version 1 entries another had applied before it upgraded (and kept in
 * its snapshot, read back with reason ''); an entry's effect must depend on the entry, not on the
 * build that applies it, or their records and digests would part.
 */
export class Registry {
  readonly #records = new Map<string, NodeData>()
  #replicas: ReadonlySet<string>
  #replicaPeerIds: readonly string[]
  #appliedIndex = 0
  #clockMs = 0
  readonly #counters: SnapshotCounters = zeroCounters()
  /**
   * Peer ids in sorted order, rebuilt lazily after a record is added (records are never removed,
   * and most entries change existing ones), so `list` and `snapshot` walk it instead of sorting.
   */
  #sortedPeerIds: string[] | undefined = []
  /**
   * Every write as (changedIndex, peerId), ascending by changedIndex. A pair whose record has since
   * changed again is superseded (the record's changedIndex differs) and skipped; the list is
   * rebuilt from the Map once superseded pairs outnumber live records.
   */
  #changes: Array<{ readonly changedIndex: number; readonly peerId: string }> = []

  constructor(options: RegistryOptions = {}) {
    this.#replicaPeerIds = checkPeerIdSet(
      [...(options.replicaPeerIds ?? [])].sort(),
      'replicaPeerIds',
      REPLICAS_MAX,
      true,
    )
    this.#replicas = new Set(this.#replicaPeerIds)
  }

  /** Index of the last entry applied (or restored from a snapshot); 0 before any. */
  get appliedIndex(): number {
    return this.#appliedIndex
  }

  get size(): number {
    return this.#records.size
  }

  get replicaPeerIds(): readonly string[] {
    return this.#replicaPeerIds
  }

  /**
   * Applies one committed entry. Indexes must increase (gaps are fine: Raft no-ops and membership
   * entries are not the registry's). Bad bytes and unauthorized commands are `rejected`, entries
   * that change nothing are `stale`; either way the index counts as applied, as on every replica.
   */
  apply(entry: RegistryLogEntry): ApplyResult {
    assert(Number.isSafeInteger(entry.index), () => `entry index ${entry.index} is an integer`)
    assert(
      entry.index > this.#appliedIndex,
      () => `entry ${entry.index} applied after ${this.#appliedIndex}: indexes increase`,
    )
    let envelope: CommandEnvelope
    try {
      envelope = decodeCommand(entry.data)
    } catch (error) {
      assert(error instanceof RegistryError, 'decodeCommand throws only RegistryError')
      return this.#rejected(entry.index, error)
    }
    return this.applyDecoded(entry.index, envelope)
  }

  /**
   * Applies the command of entry `index` already decoded: the leader proposed it and holds the
   * envelope `decodeCommand(entry.data)` would give (it encoded those bytes from it), so it need not
   * decode its own entries again. Followers decode (apply).
   */
  applyDecoded(index: number, envelope: CommandEnvelope): ApplyResult {
    const entry = { index }
    assert(
      entry.index > this.#appliedIndex,
      () => `entry ${entry.index} applied after ${this.#appliedIndex}: indexes increase`,
    )
    // A new leader's clock may lag the old one's: time in the registry never runs backwards.
    this.#clockMs = Math.max(this.#clockMs, envelope.timestampMs)
    let result: ApplyResult
    try {
      result = this.#applyCommand(envelope.command, this.#clockMs, entry.index, envelope.version ?? CODEC_VERSION)
    } catch (error) {
      if (!(error instanceof RegistryError)) throw error
      return this.#rejected(entry.index, error)
    }
    this.#appliedIndex = entry.index
    if (result.status === 'applied') this.#counters.entriesApplied++
    else this.#counters.entriesStale++
    return result
  }

  /**
   * The replicas changed (a membership change committed at `index`, which the replica's state
   * machine applies): the same rule as a `replicas` command, without a command envelope, at the
   * registry's own clock. Never throws for a valid peer id list (a committed entry must apply the same
   * everywhere); the index must follow the last one applied.
   */
  setReplicas(index: number, replicaPeerIds: readonly string[]): ApplyResult {
    assert(Number.isSafeInteger(index), () => `entry index ${index} is an integer`)
    assert(index > this.#appliedIndex, () => `entry ${index} applied after ${this.#appliedIndex}: indexes increase`)
    const sorted = checkPeerIdSet([...replicaPeerIds].sort(), 'replicaPeerIds', REPLICAS_MAX, true)
    // A membership entry has no codec version; 'replicas' records no reason in any version.
    const result = this.#applyCommand({ kind: 'replicas', replicaPeerIds: sorted }, this.#clockMs, index, CODEC_VERSION)
    this.#appliedIndex = index
    if (result.status === 'applied') this.#counters.entriesApplied++
    else this.#counters.entriesStale++
    return result
  }

  #rejected(index: number, error: RegistryError): ApplyResult {
    this.#appliedIndex = index
    this.#counters.entriesRejected++
    return { status: 'rejected', index, code: error.code, message: error.message }
  }

  #applyCommand(command: Command, nowMs: number, index: number, version: number): ApplyResult {
    const recorded = (reason: LastLeftReason): LastLeftReason => (version >= 2 ? reason : '')
    switch (command.kind) {
      case 'delta': {
        const { delta, submitterPeerId } = command
        if (submitterPeerId !== delta.originPeerId && !this.#replicas.has(submitterPeerId)) {
          throw new RegistryError(
            'UNAUTHORIZED',
            `delta for ${delta.originPeerId} submitted by ${submitterPeerId}, neither its origin nor a replica`,
          )
        }
        const existing = this.#records.get(delta.originPeerId)
        if (existing === undefined) this.#checkRoom()
        const outcome = mergeDelta(existing, delta, nowMs, index)
        if ('stale' in outcome) {
          if (outcome.stale === 'REPLAYED') this.#counters.deltasReplayed++
          else this.#counters.deltasStale++
        }
        return this.#single(command, outcome, index)
      }
      case 'observation': {
        this.#checkReplica(command.replicaPeerId)
        const existing = this.#records.get(command.peerId)
        let outcome: MergeOutcome
        if (command.event === 'joined') {
          if (existing === undefined) this.#checkRoom()
          outcome = observeJoined(existing, command.peerId, command.replicaPeerId, nowMs, index)
        } else {
          outcome = observeLeft(existing, command.replicaPeerId, nowMs, index, recorded('disconnected'))
        }
        if ('stale' in outcome) this.#counters.observationsIgnored++
        return this.#single(command, outcome, index)
      }
      case 'liveness': {
        this.#checkReplica(command.replicaPeerId)
        const existing = this.#records.get(command.peerId)
        // Only a node that has reported itself (a delta) has a record a lease can act on: an
        // anonymous connection must not create records.
        if (existing === undefined)
          throw new RegistryError('INVALID', `liveness for ${command.peerId}, which has no record`)
        const leftReason = livenessLeftReason(command.active, command.reason, version)
        const outcome = setLiveness(
          existing,
          command.peerId,
          command.replicaPeerId,
          command.active,
          nowMs,
          index,
          leftReason,
        )
        if ('stale' in outcome) this.#counters.observationsIgnored++
        return this.#single(command, outcome, index)
      }
      case 'replica-reset': {
        const replica = command.replicaPeerId
        this.#checkReplica(replica)
        return this.#endPresences(
          command,
          (record) => record.observers.includes(replica),
          (observer) => observer === replica,
          nowMs,
          index,
          false,
          recorded('disconnected'),
        )
      }
      case 'expire': {
        const deadlineMs = nowMs - command.ttlMs
        return this.#endPresences(
          command,
          (record) => record.isActive && record.lastUpdatedMs < deadlineMs,
          () => true,
          nowMs,
          index,
          false,
          recorded('ttl'),
        )
      }
      case 'replicas': {
        const next = new Set(command.replicaPeerIds)
        const changed = command.replicaPeerIds.join('\n') !== this.#replicaPeerIds.join('\n')
        this.#replicaPeerIds = command.replicaPeerIds
        this.#replicas = next
        return this.#endPresences(
          command,
          (record) => record.observers.some((observer) => !next.has(observer)),
          (observer) => !next.has(observer),
          nowMs,
          index,
          changed,
          '',
        )
      }
    }
  }

  #single(command: Command, outcome: MergeOutcome, index: number): ApplyResult {
    if ('stale' in outcome) return { status: 'stale', index, kind: command.kind, code: 'STALE', reason: outcome.stale }
    this.#put(outcome.record)
    return { status: 'applied', index, kind: command.kind, peerIds: [outcome.record.peerId] }
  }

  /** Ends presences on every record `select` picks, writing them in peer id order. */
  #endPresences(
    command: Command,
    select: (record: NodeData) => boolean,
    drop: (observer: string) => boolean,
    nowMs: number,
    index: number,
    changedAnyway: boolean,
    reason: LastLeftReason,
  ): ApplyResult {
    // Collect first: re-inserting while iterating the Map would visit records twice.
    const selected: NodeData[] = []
    for (const record of this.#records.values()) if (select(record)) selected.push(record)
    selected.sort(byPeerId)
    const peerIds: string[] = []
    for (const record of selected) {
      const next = endPresences(record, drop, nowMs, index, reason)
      if (next === undefined) continue
      this.#put(next)
      peerIds.push(next.peerId)
    }
    if (peerIds.length === 0 && !changedAnyway) {
      const reason: StaleReason = 'NO_CHANGE'
      return { status: 'stale', index, kind: command.kind, code: 'STALE', reason }
    }
    return { status: 'applied', index, kind: command.kind, peerIds }
  }

  #put(record: NodeData): void {
    if (!this.#records.delete(record.peerId)) this.#sortedPeerIds = undefined
    this.#records.set(record.peerId, record)
    const last = this.#changes[this.#changes.length - 1]
    assert(last === undefined || last.changedIndex <= record.changedIndex, 'records are written in log order')
    this.#changes.push({ changedIndex: record.changedIndex, peerId: record.peerId })
    if (this.#changes.length > 2 * this.#records.size + CHANGE_INDEX_SLACK) this.#rebuildChanges()
  }

  /** The change index from the Map, which iterates in change order: one live pair per record. */
  #rebuildChanges(): void {
    this.#changes = []
    for (const record of this.#records.values())
      this.#changes.push({ changedIndex: record.changedIndex, peerId: record.peerId })
  }

  #checkReplica(peerId: string): void {
    if (!this.#replicas.has(peerId)) throw new RegistryError('UNAUTHORIZED', `${peerId} is not a replica`)
  }

  #checkRoom(): void {
    if (this.#records.size >= RECORDS_MAX)
      throw new RegistryError('TOO_LARGE', `registry holds ${RECORDS_MAX} records, the most it may`)
  }

  #sorted(): string[] {
    if (this.#sortedPeerIds === undefined) this.#sortedPeerIds = [...this.#records.keys()].sort()
    return this.#sortedPeerIds
  }

  /** The whole state as bytes, identical on every replica that applied the same entries. */
  snapshot(): Uint8Array {
    const records = this.#sorted().map((peerId) => this.#records.get(peerId)!)
    return encodeSnapshot({
      appliedIndex: this.#appliedIndex,
      clockMs: this.#clockMs,
      replicaPeerIds: this.#replicaPeerIds,
      counters: { ...this.#counters },
      records,
    })
  }

  /**
   * Replaces the whole state with a snapshot's. Decodes fully before touching anything: a bad
   * snapshot throws RegistryError and leaves the registry as it was.
   */
  restore(bytes: Uint8Array, options: DecodeOptions = {}): void {
    const state = decodeSnapshot(bytes, options)
    // Rebuild the change order: by changedIndex, and by peer id within one entry, which is the
    // order apply writes multi-record entries in.
    const records = [...state.records].sort((a, b) => a.changedIndex - b.changedIndex || byPeerId(a, b))
    this.#records.clear()
    for (const record of records) this.#records.set(record.peerId, record)
    this.#rebuildChanges()
    this.#sortedPeerIds = state.records.map((record) => record.peerId)
    this.#replicaPeerIds = state.replicaPeerIds
    this.#replicas = new Set(state.replicaPeerIds)
    this.#appliedIndex = state.appliedIndex
    this.#clockMs = state.clockMs
    Object.assign(this.#counters, state.counters)
  }

  get(peerId: string): NodeData | undefined {
    return this.#records.get(peerId)
  }

  /** Records matching every condition of `filter`, sorted by peer id, at most `limit`. */
  list(filter: ListFilter = {}): NodeData[] {
    const limit = filter.limit ?? LIST_LIMIT_DEFAULT
    const capabilityField = filter.capability === undefined ? undefined : CAPABILITY_FIELD[filter.capability]
    const peerIds = this.#sorted()
    const matches: NodeData[] = []
    // Binary search to the cursor, then walk in order and stop at the limit.
    let i = 0
    if (filter.afterPeerId !== undefined) {
      let high = peerIds.length
      while (i < high) {
        const middle = (i + high) >>> 1
        if (peerIds[middle]! <= filter.afterPeerId) i = middle + 1
        else high = middle
      }
    }
    for (; i < peerIds.length && matches.length < limit; i++) {
      const record = this.#records.get(peerIds[i]!)!
      if (filter.active !== undefined && record.isActive !== filter.active) continue
      if (filter.staked !== undefined && record.isStaked !== filter.staked) continue
      if (capabilityField !== undefined && !record[capabilityField]) continue
      if (filter.updatedSinceMs !== undefined && record.lastUpdatedMs < filter.updatedSinceMs) continue
      matches.push(record)
    }
    return matches
  }

  /**
   * Workers that can take `category` work now (active, staked, advertising the capability), most
   * reliable first: see compareReliability for the rule.
   */
  eligible(category: Category): NodeData[] {
    const workers: NodeData[] = []
    for (const record of this.#records.values()) {
      if (record.isActive && canDoWork(record, category)) workers.push(record)
    }
    return workers.sort(compareReliability)
  }

  /**
   * Records changed by entries after `sinceIndex`, in log order, as they are now. A page holds at
   * least `limit` records unless fewer changed, and never splits the records of one entry, so
   * paging with `throughIndex` misses nothing.
   */
  changesSince(sinceIndex: number, limit: number = CHANGES_LIMIT_DEFAULT): Changes {
    assert(limit >= 1, 'changesSince limit is at least 1')
    const records: NodeData[] = []
    let more = false
    // First pair after sinceIndex (binary search), then forward, skipping superseded pairs.
    let low = 0
    let high = this.#changes.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if (this.#changes[middle]!.changedIndex <= sinceIndex) low = middle + 1
      else high = middle
    }
    for (let i = low; i < this.#changes.length; i++) {
      const change = this.#changes[i]!
      const record = this.#records.get(change.peerId)!
      if (record.changedIndex !== change.changedIndex) continue
      const last = records[records.length - 1]
      if (last !== undefined && records.length >= limit && record.changedIndex !== last.changedIndex) {
        more = true
        break
      }
      records.push(record)
    }
    const last = records[records.length - 1]
    const throughIndex = more && last !== undefined ? last.changedIndex : Math.max(sinceIndex, this.#appliedIndex)
    return { records, throughIndex, more }
  }

  stats(): RegistryStats {
    return {
      appliedIndex: this.#appliedIndex,
      clockMs: this.#clockMs,
      records: this.#records.size,
      ...this.#counters,
    }
  }
}

/**
 * What an inactive liveness entry records: its reason from version 2 on, '' for version 1. An
 * inactive entry with a reason that opens a presence (heartbeat, connected: the leader never writes
 * one) records '' too; the codec accepts any pairing, as it always has.
 */
function livenessLeftReason(active: boolean, reason: LivenessReason, version: number): LastLeftReason {
  if (active || version < 2) return ''
  return reason === 'ttl' || reason === 'left' || reason === 'disconnected' ? reason : ''
}

function byPeerId(a: NodeData, b: NodeData): number {
  return a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0
}

function zeroCounters(): SnapshotCounters {
  const counters = {} as SnapshotCounters
  for (const name of SNAPSHOT_COUNTERS) counters[name] = 0
  return counters
}
