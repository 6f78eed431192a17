import { MemoryStorage } from '@nodeledger/raft'
import type { ConfState, Entry, HardState, Snapshot } from '@nodeledger/raft'
import type { DriverStorage, StorageUpdate } from '@nodeledger/authority/driver'

/** What the simulator is told as writes become durable (the checker sees every persisted entry). */
export interface DiskObserver {
  persistedEntry(entry: Entry, previousTerm: number): void
  persistedHardState(hardState: HardState): void
  /** A write was issued; it will be durable at `completeAtMs` unless the process dies first. */
  writeIssued?(completeAtMs: number): void
}

interface PendingWrite {
  readonly completeAtMs: number
  readonly run: () => void
  readonly done: (error?: Error) => void
}

/**
 * A simulated disk under the real driver: writes complete after a seeded fsync latency, in the
 * order they were issued, and change what the core reads only once complete (as LevelStorage's
 * mirror does). A write is one LevelDB batch: synced, it is on the platter when it completes, and so
 * is every write before it (they share one write-ahead log); unsynced (`sync: false`), it completes
 * into the OS page cache, which a process crash keeps and a power loss forgets. So a crash loses every
 * write still in flight; a power loss also forgets whatever completed unsynced since the last synced
 * write (in correct code only a commit-only hard state is ever unsynced: Ready.mustSync). LevelStorage
 * does not write a commit-only hard state at all (the next batch carries it), so any crash forgets a
 * commit index that only such a write carried. The OS would flush its cache within seconds, longer
 * than a whole simulated run, so that is not modelled. A disk loss is a new, empty disk.
 */
export class SimDisk implements DriverStorage {
  /** What survived on the platter. */
  storage: MemoryStorage
  readonly #observer: DiskObserver
  readonly #latencyMs: () => number
  #pending: PendingWrite[] = []
  /**
   * The commit index as of the last write that was not commit-only: LevelStorage writes no
   * commit-only hard state (Raft needs no durable commit), so even a process crash forgets a commit
   * index newer than this.
   */
  #writtenCommit = 0
  /** The hard state as of the last synced write: what a power loss leaves. */
  #syncedHardState: HardState
  /**
   * The platter, when a write other than a commit-only one completed unsynced since the last synced
   * write (never in correct code): a copy of the store taken just before that write. Commit-only
   * unsynced writes are undone through #syncedHardState alone, which saves copying the log.
   */
  #platter: MemoryStorage | undefined
  #lastCompleteAtMs = 0
  writes = 0
  unsyncedWrites = 0
  /** Power losses that forgot more than a commit index (entries, a term or a vote written unsynced). */
  forgottenOnPowerLoss = 0

  /** `latencyMs` draws each write's fsync latency. */
  constructor(storage: MemoryStorage, observer: DiskObserver, latencyMs: () => number) {
    this.storage = storage
    this.#observer = observer
    this.#latencyMs = latencyMs
    this.#syncedHardState = storage.initialState().hardState
    this.#writtenCommit = this.#syncedHardState.commit
  }

  // Reads: the durable image.
  initialState(): { hardState: HardState; confState: ConfState } {
    return this.storage.initialState()
  }
  entries(low: number, high: number, bytesMax: number): Entry[] {
    return this.storage.entries(low, high, bytesMax)
  }
  term(index: number): number {
    return this.storage.term(index)
  }
  firstIndex(): number {
    return this.storage.firstIndex()
  }
  lastIndex(): number {
    return this.storage.lastIndex()
  }
  snapshot(): Snapshot {
    return this.storage.snapshot()
  }

  /** Virtual time now, set by the simulation. */
  nowMs = 0

  save(update: StorageUpdate, done: (error?: Error) => void): void {
    this.#enqueue(done, () => {
      const before = this.storage.initialState().hardState
      const commitOnly =
        update.snapshot === undefined &&
        update.entries.length === 0 &&
        (update.hardState === undefined ||
          (update.hardState.term === before.term && update.hardState.vote === before.vote))
      if (!update.sync && !commitOnly && this.#platter === undefined) this.#platter = copyStorage(this.storage)
      const storage = this.storage
      if (update.snapshot !== undefined) storage.applySnapshot(update.snapshot)
      if (update.entries.length > 0) {
        storage.append(update.entries)
        for (const entry of update.entries) {
          let previousTerm = -1
          try {
            previousTerm = storage.term(entry.index - 1)
          } catch {
            previousTerm = -1
          }
          this.#observer.persistedEntry(entry, previousTerm)
        }
      }
      if (update.hardState !== undefined) {
        storage.setHardState(update.hardState)
        this.#observer.persistedHardState(update.hardState)
      }
      this.writes++
      // LevelStorage does not write a commit-only hard state at all: the next batch carries it.
      if (!commitOnly) this.#writtenCommit = storage.initialState().hardState.commit
      if (update.sync) this.#synced()
      else this.unsyncedWrites++
    })
  }

  createSnapshot(index: number, confState: ConfState, data: Uint8Array, done: (error?: Error) => void): void {
    // LevelStorage writes a snapshot in one synced batch.
    this.#enqueue(done, () => {
      this.storage.createSnapshot(index, confState, data)
      this.#writtenCommit = this.storage.initialState().hardState.commit
      this.#synced()
    })
  }

  /** A synced write completed: everything written so far is on the platter. */
  #synced(): void {
    this.#syncedHardState = this.storage.initialState().hardState
    this.#platter = undefined
  }

  #enqueue(done: (error?: Error) => void, run: () => void): void {
    // Writes complete in order: a fast one never overtakes a slow one before it.
    const completeAtMs = Math.max(this.nowMs + this.#latencyMs(), this.#lastCompleteAtMs)
    this.#lastCompleteAtMs = completeAtMs
    this.#pending.push({ completeAtMs, run, done })
    this.#observer.writeIssued?.(completeAtMs)
  }

  /** Writes due by `nowMs`, made durable now; their callbacks are returned for the process to run. */
  completeDue(nowMs: number): Array<() => void> {
    const callbacks: Array<() => void> = []
    while (this.#pending.length > 0 && this.#pending[0]!.completeAtMs <= nowMs) {
      const write = this.#pending.shift()!
      write.run()
      callbacks.push(() => write.done())
    }
    return callbacks
  }

  /** Whether writes were issued and are not yet durable. */
  get busy(): boolean {
    return this.#pending.length > 0
  }

  /**
   * The process died: writes in flight never happened. With `powerLoss`, whatever completed unsynced
   * since the last synced write is forgotten too.
   */
  crash(powerLoss: boolean): void {
    this.#pending = []
    this.#lastCompleteAtMs = 0
    if (powerLoss && this.#platter !== undefined) {
      this.forgottenOnPowerLoss++
      this.storage = this.#platter
    }
    this.#platter = undefined
    const hardState = this.storage.initialState().hardState
    const durableCommit = powerLoss ? Math.min(this.#syncedHardState.commit, this.#writtenCommit) : this.#writtenCommit
    if (hardState.commit > durableCommit) {
      // What remains unwritten (or unsynced) is a commit-only hard state: term and vote are on disk.
      this.storage.setHardState({
        ...hardState,
        commit: Math.max(durableCommit, this.storage.firstIndex() - 1),
      })
    }
    this.#syncedHardState = this.storage.initialState().hardState
    this.#writtenCommit = this.#syncedHardState.commit
  }

  /** The disk is replaced by an empty one. */
  lose(): void {
    this.#pending = []
    this.#lastCompleteAtMs = 0
    this.storage = new MemoryStorage()
    this.#writtenCommit = 0
    this.#synced()
  }
}

/** A copy of a store through its public interface: the snapshot, the entries after it, the hard state. */
function copyStorage(storage: MemoryStorage): MemoryStorage {
  const copy = new MemoryStorage()
  const snapshot = storage.snapshot()
  if (snapshot.metadata.index > 0) copy.applySnapshot(snapshot)
  const first = storage.firstIndex()
  const last = storage.lastIndex()
  if (last >= first) copy.append(storage.entries(first, last + 1, Number.POSITIVE_INFINITY))
  copy.setHardState(storage.initialState().hardState)
  return copy
}
