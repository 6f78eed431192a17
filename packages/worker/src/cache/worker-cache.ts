import { mkdir, readdir } from 'node:fs/promises'
import { Level } from 'level'
import { levelFailure, writeMarkerFile } from '@nodeledger/leveldb'
import { RECORDS_MAX } from '@nodeledger/registry'
import type { NodeData } from '@nodeledger/registry'
import { WorkerCacheError, assert } from '../errors.ts'
import type { WorkerCacheErrorCode } from '../errors.ts'
import {
  FORMAT_VERSION,
  KEY_META,
  KEY_STATE,
  decodeCachedRecord,
  decodeMeta,
  decodeState,
  encodeCachedRecord,
  encodeMeta,
  encodeState,
  parseRecordKey,
  recordKey,
} from './codec.ts'
import type { CacheState } from './codec.ts'
import { KEYS_LISTED_MAX, LEVELDB_CURRENT_FILE, MARKER_FILE, PROVISIONAL_RECORDS_MAX } from './constants.ts'

type Database = Level<string, Uint8Array>
type Operation = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string }

interface Loaded {
  readonly state: CacheState
  readonly confirmed: Map<string, NodeData>
  readonly provisional: Map<string, NodeData>
}

const LEVEL_OPTIONS = { keyEncoding: 'utf8', valueEncoding: 'view' } as const
const INITIAL_STATE: CacheState = { appliedIndex: 0, ownSeq: 0 }

/**
 * The worker's durable local cache: every NodeData record it knows, the last log index it applied,
 * and its own origin seq, in its own LevelDB. Everything is loaded and validated on open and served
 * from memory; every write is one synced LevelDB batch, and the in-memory view changes only after
 * that batch is durable. Writes run one at a time, in call order.
 *
 * A record is `confirmed` (as the log has it) or `provisional` (learned from gossip, newer than what
 * the log has delivered so far). Both are kept: a provisional record overlays the confirmed one
 * until the log delivers a record with at least its originSeq, so a gossip message the leader never
 * commits cannot hide the log's record forever, only until the log catches up past it.
 */
export class WorkerCache {
  private readonly db: Database
  private readonly dir: string
  private state: CacheState
  private readonly confirmed: Map<string, NodeData>
  private readonly provisional: Map<string, NodeData>
  /** The last queued write; the next one starts after it settles. */
  private tail: Promise<unknown> = Promise.resolve()
  private closing = false
  /** Set once a batch fails: disk and memory may then disagree, so no further write is allowed. */
  private writeFailure: unknown = undefined

  private constructor(db: Database, dir: string, loaded: Loaded) {
    this.db = db
    this.dir = dir
    this.state = loaded.state
    this.confirmed = loaded.confirmed
    this.provisional = loaded.provisional
  }

  /**
   * Open (or create) the cache in `dir` and load all of it. A dir that fails validation is refused
   * with WorkerCacheError CORRUPT or UNSUPPORTED_VERSION naming the key at fault, never repaired; a
   * dir another cache has open is refused with LOCKED.
   */
  static async open(dir: string): Promise<WorkerCache> {
    await mkdir(dir, { recursive: true })
    const files = new Set(await readdir(dir))
    const initialized = files.has(MARKER_FILE)
    if (initialized && !files.has(LEVELDB_CURRENT_FILE)) {
      throw new WorkerCacheError(
        'CORRUPT',
        `cache dir ${dir} refused: it has ${MARKER_FILE} but LevelDB's ${LEVELDB_CURRENT_FILE} file is missing: the database files were removed or truncated`,
      )
    }
    const db: Database = new Level<string, Uint8Array>(dir, { ...LEVEL_OPTIONS, createIfMissing: !initialized })
    try {
      await db.open()
    } catch (error) {
      throw levelOpenError(dir, error)
    }
    try {
      let loaded = await load(db)
      if (loaded === undefined) {
        if (initialized)
          throw new WorkerCacheError(
            'CORRUPT',
            `it has ${MARKER_FILE} but its database holds no records: the database files were removed or truncated`,
          )
        await db.batch(
          [
            { type: 'put', key: KEY_META, value: encodeMeta(FORMAT_VERSION) },
            { type: 'put', key: KEY_STATE, value: encodeState(INITIAL_STATE) },
          ],
          { sync: true },
        )
        loaded = { state: INITIAL_STATE, confirmed: new Map(), provisional: new Map() }
      }
      if (!initialized) await writeMarker(dir)
      return new WorkerCache(db, dir, loaded)
    } catch (error) {
      await db.close().catch(() => undefined)
      if (error instanceof WorkerCacheError)
        throw new WorkerCacheError(error.code, `cache dir ${dir} refused: ${error.message}`, { cause: error.cause })
      throw levelError(`reading cache dir ${dir}`, error)
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Reads: synchronous, from memory.

  /** The newest record known for `peerId`: the provisional one if gossip is ahead of the log. */
  get(peerId: string): NodeData | undefined {
    return this.provisional.get(peerId) ?? this.confirmed.get(peerId)
  }

  /** Every record, as `get` returns it: confirmed ones first (in peer id order after a reopen), then provisional-only ones. */
  all(): NodeData[] {
    const result: NodeData[] = []
    for (const [peerId, record] of this.confirmed) result.push(this.provisional.get(peerId) ?? record)
    for (const [peerId, record] of this.provisional) if (!this.confirmed.has(peerId)) result.push(record)
    return result
  }

  /** Every record the log delivered (no gossip), in the order they were last applied. */
  allConfirmed(): NodeData[] {
    return [...this.confirmed.values()]
  }

  /** How many peers the cache holds a record for. */
  get size(): number {
    let provisionalOnly = 0
    for (const peerId of this.provisional.keys()) if (!this.confirmed.has(peerId)) provisionalOnly++
    return this.confirmed.size + provisionalOnly
  }

  /** The last log index applied: resume the watch from here. */
  get appliedIndex(): number {
    return this.state.appliedIndex
  }

  /** The highest own origin seq reserved; never handed out again. */
  get ownSeq(): number {
    return this.state.ownSeq
  }

  /** Whether `get(peerId)` answers with a record the log has not delivered yet. */
  isProvisional(peerId: string): boolean {
    return this.provisional.has(peerId)
  }

  // ---------------------------------------------------------------------------------------------
  // Writes: one synced batch each, in call order.

  /**
   * Apply records the log delivered (watch or since) through `throughIndex`, in log order. Each one
   * becomes the confirmed record of its peer and drops a provisional one it catches up with. A
   * record older (by changedIndex) than the confirmed one held is a redelivery and is skipped.
   */
  applyConfirmed(records: readonly NodeData[], throughIndex: number): Promise<void> {
    return this.enqueue(async () => {
      assertIndex(throughIndex)
      assert(
        throughIndex >= this.state.appliedIndex,
        () => `applied index never decreases: ${this.state.appliedIndex} -> ${throughIndex}`,
      )
      assert(records.length <= RECORDS_MAX, () => `${records.length} records in one apply, at most ${RECORDS_MAX}`)
      const confirmed = new Map<string, NodeData>()
      for (const record of records) {
        assert(
          record.changedIndex <= throughIndex,
          () =>
            `record ${record.peerId} changed at ${record.changedIndex}, beyond the ${throughIndex} it is applied through`,
        )
        const held = confirmed.get(record.peerId) ?? this.confirmed.get(record.peerId)
        if (held !== undefined && held.changedIndex > record.changedIndex) continue
        confirmed.set(record.peerId, record)
      }
      const state = { ...this.state, appliedIndex: throughIndex }
      const dropped = this.provisionalCaughtUp(confirmed)
      const operations: Operation[] = [{ type: 'put', key: KEY_STATE, value: encodeState(state) }]
      for (const [peerId, record] of confirmed)
        operations.push({ type: 'put', key: recordKey('confirmed', peerId), value: encodeCachedRecord(record) })
      for (const peerId of dropped) operations.push({ type: 'del', key: recordKey('provisional', peerId) })

      await this.write(operations)

      for (const [peerId, record] of confirmed) this.confirmed.set(peerId, record)
      for (const peerId of dropped) this.provisional.delete(peerId)
      this.state = state
    })
  }

  /**
   * Hold a record learned from gossip until the log confirms it. Ignored (resolves false) unless its
   * originSeq is above both the confirmed and the provisional record held for its peer, or when the
   * provisional set is full and the peer is new to it.
   */
  putProvisional(record: NodeData): Promise<boolean> {
    return this.enqueue(async () => {
      const confirmed = this.confirmed.get(record.peerId)
      const provisional = this.provisional.get(record.peerId)
      if (confirmed !== undefined && record.originSeq <= confirmed.originSeq) return false
      if (provisional !== undefined && record.originSeq <= provisional.originSeq) return false
      if (provisional === undefined && this.provisional.size >= PROVISIONAL_RECORDS_MAX) return false

      await this.write([
        { type: 'put', key: recordKey('provisional', record.peerId), value: encodeCachedRecord(record) },
      ])

      this.provisional.set(record.peerId, record)
      return true
    })
  }

  /**
   * The worker's next origin seq, durable before it is returned: a crash after this can skip the
   * seq but never hand it out again. Concurrent calls get distinct, increasing values.
   */
  reserveSeq(): Promise<number> {
    return this.enqueue(async () => {
      const state = { ...this.state, ownSeq: this.state.ownSeq + 1 }
      assertIndex(state.ownSeq)
      await this.write([{ type: 'put', key: KEY_STATE, value: encodeState(state) }])
      this.state = state
      return state.ownSeq
    })
  }

  /** Raise ownSeq to at least `seq` (the authority's last seq of this worker, after a wiped dir). Never lowers it. */
  setOwnSeqAtLeast(seq: number): Promise<void> {
    return this.enqueue(async () => {
      assertIndex(seq)
      if (seq <= this.state.ownSeq) return
      const state = { ...this.state, ownSeq: seq }
      await this.write([{ type: 'put', key: KEY_STATE, value: encodeState(state) }])
      this.state = state
    })
  }

  /**
   * Replace every confirmed record with `records`, the registry as of `throughIndex` (a snapshot,
   * after the cache's index was compacted away). Provisional records the snapshot catches up with
   * are dropped; newer ones stay.
   */
  replaceAll(records: readonly NodeData[], throughIndex: number): Promise<void> {
    return this.enqueue(async () => {
      assertIndex(throughIndex)
      assert(
        throughIndex >= this.state.appliedIndex,
        () => `applied index never decreases: ${this.state.appliedIndex} -> ${throughIndex}`,
      )
      assert(records.length <= RECORDS_MAX, () => `${records.length} records in a snapshot, at most ${RECORDS_MAX}`)
      const confirmed = new Map<string, NodeData>()
      for (const record of records) {
        assert(!confirmed.has(record.peerId), () => `snapshot holds ${record.peerId} twice`)
        assert(
          record.changedIndex <= throughIndex,
          () => `record ${record.peerId} changed at ${record.changedIndex}, beyond the snapshot at ${throughIndex}`,
        )
        confirmed.set(record.peerId, record)
      }
      const state = { ...this.state, appliedIndex: throughIndex }
      const dropped = this.provisionalCaughtUp(confirmed)
      const operations: Operation[] = [{ type: 'put', key: KEY_STATE, value: encodeState(state) }]
      for (const peerId of this.confirmed.keys())
        if (!confirmed.has(peerId)) operations.push({ type: 'del', key: recordKey('confirmed', peerId) })
      for (const [peerId, record] of confirmed)
        operations.push({ type: 'put', key: recordKey('confirmed', peerId), value: encodeCachedRecord(record) })
      for (const peerId of dropped) operations.push({ type: 'del', key: recordKey('provisional', peerId) })

      await this.write(operations)

      this.confirmed.clear()
      for (const [peerId, record] of confirmed) this.confirmed.set(peerId, record)
      for (const peerId of dropped) this.provisional.delete(peerId)
      this.state = state
    })
  }

  /** Wait for queued writes, then close the database. Later calls are no-ops. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closing = true
      this.tail = this.tail.then(() => this.db.close())
    }
    return this.tail.then(() => undefined)
  }

  /** The provisional records that `confirmed` catches up with (originSeq at least theirs). */
  private provisionalCaughtUp(confirmed: ReadonlyMap<string, NodeData>): string[] {
    const dropped: string[] = []
    for (const [peerId, record] of confirmed) {
      const provisional = this.provisional.get(peerId)
      if (provisional !== undefined && provisional.originSeq <= record.originSeq) dropped.push(peerId)
    }
    return dropped
  }

  private enqueue<T>(job: () => Promise<T>): Promise<T> {
    if (this.closing) return Promise.reject(new WorkerCacheError('CLOSED', `cache at ${this.dir} is closed`))
    const run = this.tail.then(job)
    this.tail = run.catch(() => undefined)
    return run
  }

  /** One synced batch. A failure poisons the cache: memory is unchanged but the disk is unknown. */
  private async write(operations: Operation[]): Promise<void> {
    if (this.writeFailure !== undefined) {
      throw new WorkerCacheError('IO', `cache at ${this.dir} refuses writes after an earlier write failed`, {
        cause: this.writeFailure,
      })
    }
    try {
      await this.db.batch(operations, { sync: true })
    } catch (error) {
      this.writeFailure = error
      throw levelError(`writing to ${this.dir}`, error)
    }
  }
}

// -----------------------------------------------------------------------------------------------
// Open: load and validate

/** Read and validate the whole dir; undefined when the database holds no keys at all. */
async function load(db: Database): Promise<Loaded | undefined> {
  const metaValue = await db.get(KEY_META)
  if (metaValue === undefined) {
    const present = await db.keys({ limit: KEYS_LISTED_MAX }).all()
    if (present.length === 0) return undefined
    throw new WorkerCacheError(
      'CORRUPT',
      `record ${KEY_META} is missing but the database holds other keys (${present.join(', ')})`,
    )
  }
  const format = decodeMeta(metaValue)
  if (format !== FORMAT_VERSION) {
    throw new WorkerCacheError(
      'UNSUPPORTED_VERSION',
      `record ${KEY_META} says cache format ${format}; this build reads format ${FORMAT_VERSION} only`,
    )
  }
  const stateValue = await db.get(KEY_STATE)
  if (stateValue === undefined) throw new WorkerCacheError('CORRUPT', `record ${KEY_STATE} is missing`)
  const state = decodeState(stateValue)

  const confirmed = new Map<string, NodeData>()
  const provisional = new Map<string, NodeData>()
  const unknown: string[] = []
  for await (const [key, value] of db.iterator()) {
    if (key === KEY_META || key === KEY_STATE) continue
    const parsed = parseRecordKey(key)
    if (parsed === undefined) {
      unknown.push(key)
      continue
    }
    const record = decodeCachedRecord(key, parsed.peerId, value)
    if (parsed.state === 'confirmed') {
      if (record.changedIndex > state.appliedIndex) {
        throw new WorkerCacheError(
          'CORRUPT',
          `record ${key} changed at index ${record.changedIndex}, beyond the applied index ${state.appliedIndex} in ${KEY_STATE}`,
        )
      }
      confirmed.set(parsed.peerId, record)
    } else {
      provisional.set(parsed.peerId, record)
    }
    if (confirmed.size > RECORDS_MAX)
      throw new WorkerCacheError('CORRUPT', `the database holds more than ${RECORDS_MAX} confirmed records`)
    if (provisional.size > PROVISIONAL_RECORDS_MAX)
      throw new WorkerCacheError(
        'CORRUPT',
        `the database holds more than ${PROVISIONAL_RECORDS_MAX} provisional records`,
      )
  }
  if (unknown.length > 0) {
    throw new WorkerCacheError(
      'CORRUPT',
      `the database holds unexpected keys: ${unknown
        .slice(0, KEYS_LISTED_MAX)
        .map((key) => JSON.stringify(key))
        .join(', ')}${unknown.length > KEYS_LISTED_MAX ? ', …' : ''}`,
    )
  }
  // Writes drop a provisional record in the same batch as the confirmed one that catches up with it.
  for (const [peerId, record] of provisional) {
    const held = confirmed.get(peerId)
    if (held !== undefined && held.originSeq >= record.originSeq) {
      throw new WorkerCacheError(
        'CORRUPT',
        `record ${recordKey('provisional', peerId)} has originSeq ${record.originSeq}, not above the ${held.originSeq} of ${recordKey('confirmed', peerId)}`,
      )
    }
  }
  return { state, confirmed, provisional }
}

/** Durably mark the dir as initialized. */
function writeMarker(dir: string): Promise<void> {
  return writeMarkerFile(
    dir,
    MARKER_FILE,
    `${JSON.stringify({ format: FORMAT_VERSION, what: 'nodeledger worker cache' })}\n`,
  )
}

function assertIndex(value: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, () => `${value} is not a non-negative safe integer`)
}

function levelOpenError(dir: string, error: unknown): WorkerCacheError {
  const failure = levelFailure(error)
  if (failure.kind === 'LOCKED') {
    return new WorkerCacheError(
      'LOCKED',
      `cache dir ${dir} is locked: another process (or another open cache in this one) has it open (${failure.detail})`,
      { cause: error },
    )
  }
  return levelError(`opening cache dir ${dir}`, error)
}

function levelError(doing: string, error: unknown): WorkerCacheError {
  const failure = levelFailure(error)
  const workerCode: WorkerCacheErrorCode = failure.kind === 'CORRUPT' ? 'CORRUPT' : 'IO'
  return new WorkerCacheError(
    workerCode,
    `LevelDB failed ${doing}: ${failure.detail}${failure.code !== undefined ? ` (${failure.code})` : ''}`,
    { cause: error },
  )
}
