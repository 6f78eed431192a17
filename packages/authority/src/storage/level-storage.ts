import { mkdir, readdir } from 'node:fs/promises'
import { performance } from 'node:perf_hooks'
import { Level } from 'level'
import { levelFailure, writeMarkerFile } from '@nodeledger/leveldb'
import { MemoryStorage, RaftAssertionError, RaftError } from '@nodeledger/raft'
import type { ConfState, Entry, HardState, Snapshot, SnapshotMetadata, Storage } from '@nodeledger/raft'
import { StorageError } from '../errors.ts'
import type { StorageErrorCode } from '../errors.ts'
import {
  FORMAT_VERSION,
  KEY_HARD_STATE,
  KEY_META,
  KEY_SNAPSHOT_DATA,
  KEY_SNAPSHOT_METADATA,
  LOG_RANGE,
  decodeEntry,
  decodeHardState,
  decodeMeta,
  decodeSnapshotData,
  decodeSnapshotMetadata,
  describeKey,
  encodeEntry,
  encodeHardState,
  encodeMeta,
  encodeSnapshotData,
  encodeSnapshotMetadata,
  keysEqual,
  logKey,
  logKeyIndex,
} from './codec.ts'
import { KEYS_LISTED_MAX, LEVELDB_CURRENT_FILE, MARKER_FILE } from './constants.ts'

export interface LevelStorageOptions {
  /**
   * The founding membership and initial state machine image. Used only when the dir is new: the
   * store then starts exactly like `MemoryStorage.bootstrap` (snapshot at index 1, term 1). A new
   * dir without it starts empty, as a replica that will be added later and sent a snapshot.
   */
  readonly bootstrap?: { readonly confState: ConfState; readonly data: Uint8Array }
}

/** What one Ready asks to make durable, in the order it is applied: snapshot, entries, hard state. */
export interface StorageUpdate {
  readonly hardState?: HardState
  readonly entries: readonly Entry[]
  readonly snapshot?: Snapshot
  /**
   * Default true. False only when the update is a hard state whose commit alone moved (no entries,
   * no snapshot, same term and vote): Raft does not need the commit index durable (a restart
   * re-learns it), so etcd skips the fsync there (MustSync), and this store skips the write: the
   * next synced batch, snapshot or close() carries the commit index along.
   */
  readonly sync?: boolean
}

export interface LevelStorageStats {
  /** Entries in the log after the snapshot. */
  readonly entries: number
  /** Encoded bytes of those entries as written (before LevelDB's own compression). */
  readonly logBytes: number
  readonly snapshotIndex: number
  /** Wall time of the newest save's synced batch. */
  readonly saveLatencyMsLast: number
  readonly saves: number
}

type Database = Level<Uint8Array, Uint8Array>
type Operation = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array }

/** Everything the store serves, as validated on open. */
interface Loaded {
  readonly hardState: HardState
  readonly snapshot: Snapshot
  readonly entries: Entry[]
  readonly entryBytes: number[]
}

const EMPTY_CONF: ConfState = { voters: [], learners: [] }
const EMPTY_SNAPSHOT: Snapshot = { metadata: { index: 0, term: 0, confState: EMPTY_CONF }, data: new Uint8Array() }
const ZERO_HARD_STATE: HardState = { term: 0, vote: 0, commit: 0 }
const LEVEL_OPTIONS = { keyEncoding: 'view', valueEncoding: 'view' } as const

/**
 * The durable Raft log of a replica, on LevelDB. Raft reads storage synchronously, so the store keeps
 * an in-memory mirror of the hard state, the snapshot and every entry after it, loaded and validated
 * on open, and writes through: each save() or createSnapshot() is one LevelDB batch with
 * `sync: true`, and the mirror changes only once that batch is durable. Writes run one at a time in
 * call order, each validated against the state the previous one left.
 *
 * @example
 * ```ts
 * const storage = await LevelStorage.open(dataDir, { bootstrap: { confState, data } })
 * const node = new RawNode({ id, storage, rng })
 * const ready = node.ready()
 * await storage.save({ hardState: ready.hardState, entries: ready.entries, snapshot: ready.snapshot })
 * ```
 */
export class LevelStorage implements Storage {
  private readonly db: Database
  private readonly dir: string
  /**
   * What the disk holds, in memory: the core reads synchronously, so reads are served by a
   * MemoryStorage that is changed only after the batch that made the same change durable.
   */
  private readonly mirror: MemoryStorage
  /** Encoded bytes of each entry as stored, by position after the snapshot (entryBytes[0] is entry firstIndex). */
  private entryBytes: number[]
  private logBytes: number
  /** The last queued write; the next one starts after it settles. */
  private tail: Promise<void> = Promise.resolve()
  private closing = false
  private closed = false
  /** Set once a batch fails: disk and mirror may then disagree, so no further write is allowed. */
  private writeFailure: unknown = undefined
  private saves = 0
  private saveLatencyMsLast = 0
  /** The mirror's commit index is newer than the disk's (commit-only Readies are not written). */
  private commitAheadOfDisk = false

  private constructor(db: Database, dir: string, loaded: Loaded) {
    this.db = db
    this.dir = dir
    this.mirror = new MemoryStorage()
    if (loaded.snapshot.metadata.index > 0) this.mirror.applySnapshot(loaded.snapshot)
    this.mirror.append(loaded.entries)
    this.mirror.setHardState(loaded.hardState)
    this.entryBytes = [...loaded.entryBytes]
    this.logBytes = loaded.entryBytes.reduce((sum, bytes) => sum + bytes, 0)
  }

  /**
   * Open (or create) the store in `dir`, validating everything in it. A dir that fails validation is
   * refused with StorageError CORRUPT or UNSUPPORTED_VERSION naming what is wrong; it is never
   * repaired. A dir another process has open is refused with LOCKED.
   */
  static async open(dir: string, options: LevelStorageOptions = {}): Promise<LevelStorage> {
    await mkdir(dir, { recursive: true })
    const files = new Set(await readdir(dir))
    const initialized = files.has(MARKER_FILE)
    if (initialized && !files.has(LEVELDB_CURRENT_FILE)) {
      throw new StorageError(
        'CORRUPT',
        `data dir ${dir} refused: it was initialized (it has ${MARKER_FILE}) but LevelDB's ${LEVELDB_CURRENT_FILE} file is missing: the database files were removed or truncated`,
      )
    }
    const db: Database = new Level<Uint8Array, Uint8Array>(dir, { ...LEVEL_OPTIONS, createIfMissing: !initialized })
    try {
      await db.open()
    } catch (error) {
      throw levelOpenError(dir, error)
    }
    try {
      let loaded = await load(db)
      if (loaded === undefined) {
        if (initialized) {
          throw new StorageError(
            'CORRUPT',
            `it was initialized (it has ${MARKER_FILE}) but its database holds no records: the database files were removed or truncated`,
          )
        }
        loaded = await initialize(db, options.bootstrap)
      }
      if (!initialized) await writeMarker(dir)
      return new LevelStorage(db, dir, loaded)
    } catch (error) {
      await db.close().catch(() => undefined)
      if (error instanceof StorageError)
        throw new StorageError(error.code, `data dir ${dir} refused: ${error.message}`, { cause: error.cause })
      throw levelError(`reading data dir ${dir}`, error)
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Storage: synchronous reads from the mirror, same contract as MemoryStorage.

  initialState(): { hardState: HardState; confState: ConfState } {
    return this.mirror.initialState()
  }

  entries(low: number, high: number, bytesMax: number): Entry[] {
    return this.mirror.entries(low, high, bytesMax)
  }

  term(index: number): number {
    return this.mirror.term(index)
  }

  firstIndex(): number {
    return this.mirror.firstIndex()
  }

  lastIndex(): number {
    return this.mirror.lastIndex()
  }

  snapshot(): Snapshot {
    return this.mirror.snapshot()
  }

  private get hardState(): HardState {
    return this.mirror.initialState().hardState
  }

  // ---------------------------------------------------------------------------------------------
  // Writes

  /**
   * Make one Ready durable in one synced batch: the snapshot (which replaces the whole log), then the
   * entries (a conflicting suffix is truncated, its keys deleted; entries the snapshot covers are
   * ignored), then the hard state. Refuses a stale snapshot (RaftError SNAPSHOT_OUT_OF_DATE); a gap
   * in the log, a decreasing term or a commit outside [snapshot index, last index] is a bug in the
   * caller and throws RaftAssertionError. Nothing is written when it throws.
   */
  save(update: StorageUpdate): Promise<void> {
    return this.enqueue(() => this.saveNow(update))
  }

  /**
   * Record a snapshot the application took at `index` (applied, hence committed) and delete the log
   * up to and including `index` in the same batch: the snapshot's metadata carries that entry's term.
   */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Promise<Snapshot> {
    return this.enqueue(() => this.createSnapshotNow(index, confState, data))
  }

  /** Whether the store holds no state at all: no snapshot and no entries (a new or wiped dir). */
  get empty(): boolean {
    return this.mirror.snapshot().metadata.index === 0 && this.mirror.lastIndex() === 0
  }

  /**
   * Seed an empty store as a founding member of a new cluster: exactly `MemoryStorage.bootstrap`
   * (snapshot at index 1, term 1) in one synced batch. Refused (RaftAssertionError) on a store that
   * holds state: a cluster is created once.
   */
  bootstrap(confState: ConfState, data: Uint8Array): Promise<void> {
    return this.enqueue(async () => {
      assertInvariant(this.empty, () => `bootstrap of ${this.dir}, which already holds state`)
      const reference = MemoryStorage.bootstrap(confState, data)
      const snapshot = reference.snapshot()
      const hardState = reference.initialState().hardState
      await this.write([
        { type: 'put', key: KEY_SNAPSHOT_METADATA, value: encodeSnapshotMetadata(snapshot.metadata) },
        { type: 'put', key: KEY_SNAPSHOT_DATA, value: encodeSnapshotData(snapshot.metadata.index, snapshot.data) },
        { type: 'put', key: KEY_HARD_STATE, value: encodeHardState(hardState) },
      ])
      this.mirror.applySnapshot(snapshot)
      this.mirror.setHardState(hardState)
    })
  }

  /** Wait for queued writes, then close the database. Later calls are no-ops. */
  async close(): Promise<void> {
    if (this.closing) return this.tail
    this.closing = true
    const done = this.tail.then(async () => {
      // A clean stop keeps the newest commit index (a crash would lose it, harmlessly).
      if (this.commitAheadOfDisk && this.writeFailure === undefined) {
        await this.write([{ type: 'put', key: KEY_HARD_STATE, value: encodeHardState(this.hardState) }], false).catch(
          () => undefined,
        )
      }
      await this.db.close()
      this.closed = true
    })
    this.tail = done
    return done
  }

  stats(): LevelStorageStats {
    return {
      entries: this.entryBytes.length,
      logBytes: this.logBytes,
      snapshotIndex: this.mirror.snapshot().metadata.index,
      saveLatencyMsLast: this.saveLatencyMsLast,
      saves: this.saves,
    }
  }

  private enqueue<T>(job: () => Promise<T>): Promise<T> {
    if (this.closing || this.closed)
      return Promise.reject(new StorageError('CLOSED', `storage at ${this.dir} is closed`))
    const run = this.tail.then(job)
    this.tail = run.then(
      () => undefined,
      () => undefined,
    )
    return run
  }

  private async saveNow(update: StorageUpdate): Promise<void> {
    const operations: Operation[] = []
    const stored = this.mirror.snapshot()
    let snapshot = stored
    let lastIndex = this.lastIndex()
    // 1. Snapshot: replaces the whole log.
    if (update.snapshot !== undefined) {
      const metadata = update.snapshot.metadata
      if (metadata.index <= snapshot.metadata.index) {
        throw new RaftError(
          'SNAPSHOT_OUT_OF_DATE',
          `snapshot at ${metadata.index} is older than the stored one at ${snapshot.metadata.index}`,
        )
      }
      assertSnapshotMetadata(metadata)
      for (let index = this.firstIndex(); index <= lastIndex; index++)
        operations.push({ type: 'del', key: logKey(index) })
      operations.push({ type: 'put', key: KEY_SNAPSHOT_METADATA, value: encodeSnapshotMetadata(metadata) })
      operations.push({
        type: 'put',
        key: KEY_SNAPSHOT_DATA,
        value: encodeSnapshotData(metadata.index, update.snapshot.data),
      })
      snapshot = update.snapshot
      lastIndex = metadata.index
    }
    // 2. Entries: drop what the snapshot covers, overwrite from the first new index, delete beyond.
    const fresh = this.freshEntries(update.entries, snapshot, lastIndex)
    const freshBytes: number[] = []
    if (fresh.length > 0) {
      for (const entry of fresh) {
        const value = encodeEntry(entry)
        freshBytes.push(value.byteLength)
        operations.push({ type: 'put', key: logKey(entry.index), value })
      }
      const newLastIndex = fresh[fresh.length - 1]!.index
      for (let index = newLastIndex + 1; index <= lastIndex; index++)
        operations.push({ type: 'del', key: logKey(index) })
      lastIndex = newLastIndex
    }
    // 3. Hard state. The invariants open() checks are checked here too, before anything is written.
    const hardState = update.hardState ?? this.hardState
    if (update.hardState !== undefined) {
      assertInvariant(
        hardState.term >= this.hardState.term,
        () => `persisted term never decreases: ${this.hardState.term} -> ${hardState.term}`,
      )
      operations.push({ type: 'put', key: KEY_HARD_STATE, value: encodeHardState(hardState) })
    }
    assertInvariant(hardState.commit <= lastIndex, () => `commit ${hardState.commit} beyond last index ${lastIndex}`)
    assertInvariant(
      hardState.commit >= snapshot.metadata.index,
      () => `commit ${hardState.commit} below snapshot index ${snapshot.metadata.index}`,
    )
    if (operations.length === 0) return

    const commitOnly =
      update.snapshot === undefined &&
      update.entries.length === 0 &&
      (update.hardState === undefined ||
        (update.hardState.term === this.hardState.term && update.hardState.vote === this.hardState.vote))
    if (commitOnly && update.sync === false) {
      // Raft needs no durable commit index (a restart re-learns it from the leader), so a Ready that
      // only moves it costs no disk write at all: the next batch, a snapshot or close() carries it.
      // That takes a LevelDB round trip off every commit's way to apply.
      this.mirror.setHardState(hardState)
      this.commitAheadOfDisk = true
      return
    }
    // Anything else is synced whatever was asked, and carries a commit index left behind.
    if (update.hardState === undefined && this.commitAheadOfDisk) {
      operations.push({ type: 'put', key: KEY_HARD_STATE, value: encodeHardState(hardState) })
    }
    await this.write(operations)
    this.commitAheadOfDisk = false

    if (snapshot !== stored) {
      this.mirror.applySnapshot(snapshot)
      this.entryBytes = []
      this.logBytes = 0
    }
    if (fresh.length > 0) {
      const keep = fresh[0]!.index - this.mirror.firstIndex()
      for (let i = keep; i < this.entryBytes.length; i++) this.logBytes -= this.entryBytes[i]!
      this.entryBytes.length = keep
      for (const bytes of freshBytes) {
        this.entryBytes.push(bytes)
        this.logBytes += bytes
      }
      this.mirror.append(fresh)
    }
    this.mirror.setHardState(hardState)
  }

  /** The part of `entries` to write, checked for gaps and term order against the log they extend. */
  private freshEntries(entries: readonly Entry[], snapshot: Snapshot, lastIndex: number): readonly Entry[] {
    if (entries.length === 0) return entries
    for (let i = 1; i < entries.length; i++) {
      assertInvariant(
        entries[i]!.index === entries[i - 1]!.index + 1,
        () => `entries to save are not contiguous: ${entries[i - 1]!.index} then ${entries[i]!.index}`,
      )
      assertInvariant(
        entries[i]!.term >= entries[i - 1]!.term,
        () => `entries to save decrease in term at ${entries[i]!.index}`,
      )
    }
    const firstIndex = snapshot.metadata.index + 1
    const first = entries[0]!.index
    if (first + entries.length - 1 < firstIndex) return []
    // Entries already covered by the snapshot are dropped, never rewritten.
    const fresh = first < firstIndex ? entries.slice(firstIndex - first) : entries
    const start = fresh[0]!.index
    assertInvariant(start <= lastIndex + 1, () => `append at ${start} leaves a gap after ${lastIndex}`)
    const previousTerm = start - 1 === snapshot.metadata.index ? snapshot.metadata.term : this.term(start - 1)
    assertInvariant(
      fresh[0]!.term >= previousTerm,
      () => `entry ${start} has term ${fresh[0]!.term}, below the ${previousTerm} of the entry before it`,
    )
    return fresh
  }

  private async createSnapshotNow(index: number, confState: ConfState, data: Uint8Array): Promise<Snapshot> {
    const offset = this.mirror.firstIndex() - 1
    const storedIndex = this.mirror.snapshot().metadata.index
    if (index <= storedIndex) {
      throw new RaftError(
        'SNAPSHOT_OUT_OF_DATE',
        `snapshot at ${index} is not newer than the stored one at ${storedIndex}`,
      )
    }
    if (index > this.lastIndex())
      throw new RaftError('UNAVAILABLE', `cannot snapshot at ${index}: last index is ${this.lastIndex()}`)
    assertInvariant(
      index <= this.hardState.commit,
      () =>
        `snapshot at ${index} beyond the persisted commit ${this.hardState.commit}: only applied entries can be snapshotted`,
    )
    const term = this.mirror.term(index)
    const snapshot: Snapshot = { metadata: { index, term, confState }, data }
    const operations: Operation[] = [
      { type: 'put', key: KEY_SNAPSHOT_METADATA, value: encodeSnapshotMetadata(snapshot.metadata) },
      { type: 'put', key: KEY_SNAPSHOT_DATA, value: encodeSnapshotData(index, data) },
    ]
    for (let deleted = offset + 1; deleted <= index; deleted++) operations.push({ type: 'del', key: logKey(deleted) })
    // On disk the commit must never fall below the snapshot (open() refuses that as CORRUPT).
    if (this.commitAheadOfDisk)
      operations.push({ type: 'put', key: KEY_HARD_STATE, value: encodeHardState(this.hardState) })

    await this.write(operations)
    this.commitAheadOfDisk = false

    for (let i = 0; i < index - offset; i++) this.logBytes -= this.entryBytes[i]!
    this.entryBytes = this.entryBytes.slice(index - offset)
    return this.mirror.createSnapshot(index, confState, data)
  }

  /** One batch, synced unless told otherwise. A failure poisons the store: the mirror is unchanged but the disk is unknown. */
  private async write(operations: Operation[], sync = true): Promise<void> {
    if (this.writeFailure !== undefined) {
      throw new StorageError('IO', `storage at ${this.dir} refuses writes after an earlier write failed`, {
        cause: this.writeFailure,
      })
    }
    const started = performance.now()
    try {
      await this.db.batch(operations, { sync })
    } catch (error) {
      this.writeFailure = error
      throw levelError(`writing to ${this.dir}`, error)
    }
    this.saveLatencyMsLast = performance.now() - started
    this.saves++
  }
}

// -----------------------------------------------------------------------------------------------
// Open: load and validate

/** Read and validate the whole dir; undefined when the database holds no records at all. */
async function load(db: Database): Promise<Loaded | undefined> {
  const metaValue = await db.get(KEY_META)
  if (metaValue === undefined) {
    const present = await db.keys({ limit: KEYS_LISTED_MAX }).all()
    if (present.length === 0) return undefined
    throw new StorageError(
      'CORRUPT',
      `record meta is missing but the database holds other keys (${present.map(describeKey).join(', ')})`,
    )
  }
  const meta = decodeMeta(metaValue)
  if (meta.format !== FORMAT_VERSION) {
    throw new StorageError(
      'UNSUPPORTED_VERSION',
      `data dir has storage format ${meta.format}; this build reads format ${FORMAT_VERSION} only`,
    )
  }
  await refuseUnknownKeys(db)

  const snapshot = await loadSnapshot(db)
  const snapshotIndex = snapshot.metadata.index
  const entries: Entry[] = []
  const entryBytes: number[] = []
  let expected = snapshotIndex + 1
  let previousTerm = snapshot.metadata.term
  for await (const [key, value] of db.iterator(LOG_RANGE)) {
    const index = logKeyIndex(key)
    if (index <= snapshotIndex) {
      throw new StorageError(
        'CORRUPT',
        `log entry ${index} is still stored but the snapshot at ${snapshotIndex} covers it (the log must start at ${snapshotIndex + 1})`,
      )
    }
    if (index !== expected) {
      throw new StorageError(
        'CORRUPT',
        `log entry ${expected} is missing: the next stored one is ${index} (the log must be contiguous from ${snapshotIndex + 1})`,
      )
    }
    const entry = decodeEntry(key, value)
    if (entry.index !== index)
      throw new StorageError(
        'CORRUPT',
        `record ${describeKey(key)} holds entry index ${entry.index}, expected ${index}`,
      )
    if (entry.term < previousTerm) {
      throw new StorageError(
        'CORRUPT',
        `log entry ${index} has term ${entry.term}, below the term ${previousTerm} before it (terms never decrease)`,
      )
    }
    entries.push(entry)
    entryBytes.push(value.byteLength)
    previousTerm = entry.term
    expected++
  }
  const lastIndex = expected - 1

  const hardStateValue = await db.get(KEY_HARD_STATE)
  const hardState = hardStateValue === undefined ? ZERO_HARD_STATE : decodeHardState(hardStateValue)
  const where =
    hardStateValue === undefined ? 'hard-state is missing, so commit is 0' : `hard-state commit ${hardState.commit}`
  if (hardState.commit > lastIndex)
    throw new StorageError('CORRUPT', `${where}, beyond the last log index ${lastIndex}`)
  if (hardState.commit < snapshotIndex)
    throw new StorageError('CORRUPT', `${where}, below the snapshot index ${snapshotIndex}`)
  return { hardState, snapshot, entries, entryBytes }
}

async function loadSnapshot(db: Database): Promise<Snapshot> {
  const [metadataValue, dataValue] = await db.getMany([KEY_SNAPSHOT_METADATA, KEY_SNAPSHOT_DATA])
  if (metadataValue === undefined && dataValue === undefined) return EMPTY_SNAPSHOT
  if (metadataValue === undefined)
    throw new StorageError('CORRUPT', 'record snapshot-data is present but snapshot-metadata is missing')
  if (dataValue === undefined)
    throw new StorageError('CORRUPT', 'record snapshot-metadata is present but snapshot-data is missing')
  const metadata = decodeSnapshotMetadata(metadataValue)
  const { index, data } = decodeSnapshotData(dataValue)
  if (metadata.index < 1)
    throw new StorageError('CORRUPT', `record snapshot-metadata has index ${metadata.index}, expected at least 1`)
  if (index !== metadata.index) {
    throw new StorageError(
      'CORRUPT',
      `record snapshot-data belongs to a snapshot at ${index}, but snapshot-metadata is at ${metadata.index}`,
    )
  }
  return { metadata, data }
}

/** Every key outside the log range must be one of the four named records. */
async function refuseUnknownKeys(db: Database): Promise<void> {
  const known = [KEY_META, KEY_HARD_STATE, KEY_SNAPSHOT_METADATA, KEY_SNAPSHOT_DATA]
  const outside = [...(await db.keys({ lt: LOG_RANGE.gte }).all()), ...(await db.keys({ gt: LOG_RANGE.lte }).all())]
  const unknown = outside.filter((key) => !known.some((name) => keysEqual(key, name)))
  if (unknown.length > 0) {
    throw new StorageError(
      'CORRUPT',
      `the database holds unexpected keys: ${unknown.slice(0, KEYS_LISTED_MAX).map(describeKey).join(', ')}${unknown.length > KEYS_LISTED_MAX ? ', …' : ''}`,
    )
  }
}

/** Write the first records of a new dir in one synced batch: the format, and the bootstrap if any. */
async function initialize(db: Database, bootstrap: LevelStorageOptions['bootstrap']): Promise<Loaded> {
  const operations: Operation[] = [{ type: 'put', key: KEY_META, value: encodeMeta({ format: FORMAT_VERSION }) }]
  if (bootstrap === undefined) {
    await db.batch(operations, { sync: true })
    return { hardState: ZERO_HARD_STATE, snapshot: EMPTY_SNAPSHOT, entries: [], entryBytes: [] }
  }
  // Derived from the reference store so the two can never disagree on where a cluster begins.
  const reference = MemoryStorage.bootstrap(bootstrap.confState, bootstrap.data)
  const snapshot = reference.snapshot()
  const hardState = reference.initialState().hardState
  operations.push({ type: 'put', key: KEY_SNAPSHOT_METADATA, value: encodeSnapshotMetadata(snapshot.metadata) })
  operations.push({
    type: 'put',
    key: KEY_SNAPSHOT_DATA,
    value: encodeSnapshotData(snapshot.metadata.index, snapshot.data),
  })
  operations.push({ type: 'put', key: KEY_HARD_STATE, value: encodeHardState(hardState) })
  await db.batch(operations, { sync: true })
  return { hardState, snapshot, entries: [], entryBytes: [] }
}

/** Durably mark the dir as initialized. */
function writeMarker(dir: string): Promise<void> {
  return writeMarkerFile(
    dir,
    MARKER_FILE,
    `${JSON.stringify({ format: FORMAT_VERSION, what: 'nodeledger raft log' })}\n`,
  )
}

// -----------------------------------------------------------------------------------------------
// Helpers

function assertSnapshotMetadata(metadata: SnapshotMetadata): void {
  assertInvariant(
    Number.isSafeInteger(metadata.index) && metadata.index >= 1,
    () => `snapshot index ${metadata.index} is not a positive integer`,
  )
  assertInvariant(
    Number.isSafeInteger(metadata.term) && metadata.term >= 1,
    () => `snapshot term ${metadata.term} is not a positive integer`,
  )
}

/** A broken invariant of the caller: crash loudly with the same error class the core uses. */
function assertInvariant(condition: boolean, message: () => string): asserts condition {
  if (!condition) throw new RaftAssertionError(`storage: ${message()}`)
}

function levelOpenError(dir: string, error: unknown): StorageError {
  const failure = levelFailure(error)
  if (failure.kind === 'LOCKED') {
    return new StorageError(
      'LOCKED',
      `data dir ${dir} is locked: another process (or another open store in this one) has it open (${failure.detail})`,
      { cause: error },
    )
  }
  return levelError(`opening data dir ${dir}`, error)
}

function levelError(doing: string, error: unknown): StorageError {
  const failure = levelFailure(error)
  const storageCode: StorageErrorCode = failure.kind === 'CORRUPT' ? 'CORRUPT' : 'IO'
  return new StorageError(
    storageCode,
    `LevelDB failed ${doing}: ${failure.detail}${failure.code !== undefined ? ` (${failure.code})` : ''}`,
    { cause: error },
  )
}
