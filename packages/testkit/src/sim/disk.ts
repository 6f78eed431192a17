import { MemoryStorage } from '@nodeledger/raft'
import type { ConfState, Entry, HardState, Snapshot } from '@nodeledger/raft'
import type { DriverStorage, StorageUpdate } from '@nodeledger/authority/driver'

/** What the simulator is told as writes become durable (the checker sees every persisted entry). */
export interface DiskObserver {
  persistedEntry(entry: Entry, previousTerm: number): void
  persistedHardState(hardState: HardState): void
}

interface PendingWrite {
  readonly completeAtMs: number
  readonly run: () => void
  readonly done: (error?: Error) => void
}

/**
 * A simulated disk under the real driver: writes complete after a seeded fsync latency, in the
 * order they were issued, and change what the core reads only once complete (as LevelStorage's
 * mirror does). A crash loses every write still in flight; a power loss also forgets an unsynced
 * commit index (the only thing ever written without fsync); a disk loss is a new, empty disk.
 */
export class SimDisk implements DriverStorage {
  /** What survived on the platter. */
  storage: MemoryStorage
  readonly #observer: DiskObserver
  readonly #latencyMs: () => number
  #pending: PendingWrite[] = []
  /** The hard state as of the last synced write: what a power loss leaves. */
  #syncedHardState: HardState
  #lastCompleteAtMs = 0
  writes = 0
  unsyncedWrites = 0

  /** `latencyMs` draws each write's fsync latency. */
  constructor(storage: MemoryStorage, observer: DiskObserver, latencyMs: () => number) {
    this.storage = storage
    this.#observer = observer
    this.#latencyMs = latencyMs
    this.#syncedHardState = storage.initialState().hardState
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
      if (update.sync) this.#syncedHardState = storage.initialState().hardState
      else this.unsyncedWrites++
    })
  }

  createSnapshot(index: number, confState: ConfState, data: Uint8Array, done: (error?: Error) => void): void {
    this.#enqueue(done, () => {
      this.storage.createSnapshot(index, confState, data)
      this.#syncedHardState = this.storage.initialState().hardState
    })
  }

  #enqueue(done: (error?: Error) => void, run: () => void): void {
    // Writes complete in order: a fast one never overtakes a slow one before it.
    const completeAtMs = Math.max(this.nowMs + this.#latencyMs(), this.#lastCompleteAtMs)
    this.#lastCompleteAtMs = completeAtMs
    this.#pending.push({ completeAtMs, run, done })
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

  /** The process died: writes in flight never happened. With `powerLoss`, an unsynced commit is forgotten too. */
  crash(powerLoss: boolean): void {
    this.#pending = []
    this.#lastCompleteAtMs = 0
    const hardState = this.storage.initialState().hardState
    if (powerLoss && hardState.commit !== this.#syncedHardState.commit) {
      // Only a commit-only hard state is ever written unsynced (Ready.mustSync); term and vote match.
      this.storage.setHardState({
        ...hardState,
        commit: Math.max(this.#syncedHardState.commit, this.storage.firstIndex() - 1),
      })
    }
    this.#syncedHardState = this.storage.initialState().hardState
  }

  /** The disk is replaced by an empty one. */
  lose(): void {
    this.#pending = []
    this.#lastCompleteAtMs = 0
    this.storage = new MemoryStorage()
    this.#syncedHardState = this.storage.initialState().hardState
  }
}
