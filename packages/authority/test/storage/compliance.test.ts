/**
 * The storage contract (storage-suite-async.ts) run three ways: against the reference MemoryStorage,
 * against LevelStorage, and against LevelStorage closed and reopened after every write, so that each
 * case also round-trips through the disk.
 */
import { afterAll } from 'vitest'
import { MemoryStorage } from '@nodeledger/raft'
import type { ConfState, Entry, HardState, Snapshot } from '@nodeledger/raft'
import { LevelStorage } from '../../src/storage/index.ts'
import type { StorageUpdate } from '../../src/storage/index.ts'
import { asyncStorageSuite } from './storage-suite-async.ts'
import type { AsyncWritableStorage } from './storage-suite-async.ts'
import { makeTempDir, removeDir } from './helpers.ts'

/** MemoryStorage behind the asynchronous write side, writing in the order a Ready is persisted. */
class AsyncMemoryStorage implements AsyncWritableStorage {
  private readonly inner = new MemoryStorage()

  initialState(): { hardState: HardState; confState: ConfState } {
    return this.inner.initialState()
  }
  entries(low: number, high: number, bytesMax: number): Entry[] {
    return this.inner.entries(low, high, bytesMax)
  }
  term(index: number): number {
    return this.inner.term(index)
  }
  firstIndex(): number {
    return this.inner.firstIndex()
  }
  lastIndex(): number {
    return this.inner.lastIndex()
  }
  snapshot(): Snapshot {
    return this.inner.snapshot()
  }
  async save(update: StorageUpdate): Promise<void> {
    if (update.snapshot !== undefined) this.inner.applySnapshot(update.snapshot)
    this.inner.append(update.entries)
    if (update.hardState !== undefined) this.inner.setHardState(update.hardState)
  }
  async createSnapshot(index: number, confState: ConfState, data: Uint8Array): Promise<Snapshot> {
    return this.inner.createSnapshot(index, confState, data)
  }
}

/** A LevelStorage that closes and reopens itself after every successful write. */
class ReopeningLevelStorage implements AsyncWritableStorage {
  private current: LevelStorage
  private readonly dir: string

  constructor(current: LevelStorage, dir: string) {
    this.current = current
    this.dir = dir
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    return this.current.initialState()
  }
  entries(low: number, high: number, bytesMax: number): Entry[] {
    return this.current.entries(low, high, bytesMax)
  }
  term(index: number): number {
    return this.current.term(index)
  }
  firstIndex(): number {
    return this.current.firstIndex()
  }
  lastIndex(): number {
    return this.current.lastIndex()
  }
  snapshot(): Snapshot {
    return this.current.snapshot()
  }
  async save(update: StorageUpdate): Promise<void> {
    await this.current.save(update)
    await this.reopen()
  }
  async createSnapshot(index: number, confState: ConfState, data: Uint8Array): Promise<Snapshot> {
    const snapshot = await this.current.createSnapshot(index, confState, data)
    await this.reopen()
    return snapshot
  }
  async close(): Promise<void> {
    await this.current.close()
  }
  private async reopen(): Promise<void> {
    await this.current.close()
    this.current = await LevelStorage.open(this.dir)
  }
}

const dirs: string[] = []
afterAll(async () => {
  for (const dir of dirs.splice(0)) await removeDir(dir)
})
async function newDir(): Promise<string> {
  const dir = await makeTempDir('compliance')
  dirs.push(dir)
  return dir
}

asyncStorageSuite('MemoryStorage (reference)', { create: async () => new AsyncMemoryStorage() })

asyncStorageSuite('LevelStorage', {
  create: async () => LevelStorage.open(await newDir()),
  dispose: (storage) => storage.close(),
})

asyncStorageSuite('LevelStorage, reopened after every write', {
  create: async () => {
    const dir = await newDir()
    return new ReopeningLevelStorage(await LevelStorage.open(dir), dir)
  },
  dispose: (storage) => storage.close(),
})
