/**
 * LevelStorage beyond the shared contract: what survives a reopen, what is on disk after truncation
 * and compaction, bootstrap, locking, and the write queue.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { MemoryStorage, RaftAssertionError } from '@nodeledger/raft'
import type { ConfState, Snapshot } from '@nodeledger/raft'
import { LevelStorage } from '../../src/storage/index.ts'
import { describeKey } from '../../src/storage/codec.ts'
import { codeOf, entries, entry, makeTempDir, rawKeys, removeDir } from './helpers.ts'

const UNLIMITED = Number.POSITIVE_INFINITY
const CONF: ConfState = { voters: [1, 2, 3], learners: [] }
const WRITER = fileURLToPath(new URL('./crash-writer.ts', import.meta.url))

const cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step()
})
async function tempDir(): Promise<string> {
  const dir = await makeTempDir('level')
  cleanup.push(() => removeDir(dir))
  return dir
}
async function open(dir: string, options?: Parameters<typeof LevelStorage.open>[1]): Promise<LevelStorage> {
  const storage = await LevelStorage.open(dir, options)
  cleanup.push(() => storage.close())
  return storage
}
const logKeys = async (dir: string): Promise<string[]> =>
  (await rawKeys(dir, describeKey)).filter((key) => key.startsWith('log/'))

describe('LevelStorage: open and bootstrap', () => {
  it('a new dir with bootstrap starts exactly like MemoryStorage.bootstrap', async () => {
    const dir = await tempDir()
    const data = new TextEncoder().encode('registry image')
    const storage = await open(dir, { bootstrap: { confState: CONF, data } })
    const reference = MemoryStorage.bootstrap(CONF, data)
    expect(storage.initialState()).toEqual(reference.initialState())
    expect(storage.snapshot()).toEqual(reference.snapshot())
    expect(storage.firstIndex()).toBe(reference.firstIndex())
    expect(storage.lastIndex()).toBe(reference.lastIndex())
    expect(storage.term(1)).toBe(reference.term(1))
    await storage.close()
    const reopened = await open(dir, { bootstrap: { confState: CONF, data } })
    expect(reopened.snapshot()).toEqual(reference.snapshot())
    expect(reopened.initialState()).toEqual(reference.initialState())
  })

  it('an existing dir ignores bootstrap: what is on disk wins', async () => {
    const dir = await tempDir()
    const storage = await open(dir)
    await storage.save({ hardState: { term: 4, vote: 2, commit: 0 }, entries: [] })
    await storage.close()
    const reopened = await open(dir, { bootstrap: { confState: CONF, data: new Uint8Array() } })
    expect(reopened.initialState().hardState).toEqual({ term: 4, vote: 2, commit: 0 })
    expect(reopened.snapshot().metadata.index).toBe(0)
  })

  it('a dir open in this process is refused LOCKED', async () => {
    const dir = await tempDir()
    await open(dir)
    expect(await codeOf(() => LevelStorage.open(dir))).toBe('LOCKED')
  })

  it('a dir open in another process is refused LOCKED', async () => {
    const dir = await tempDir()
    const child = spawn(process.execPath, [WRITER, dir, '1'], { stdio: ['ignore', 'pipe', 'inherit'] })
    cleanup.push(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL')
        await once(child, 'exit')
      }
    })
    // The writer prints `ready` once its store is open.
    await new Promise<void>((resolve, reject) => {
      let output = ''
      child.stdout.setEncoding('utf8')
      child.stdout.on('data', (chunk: string) => {
        output += chunk
        if (output.includes('ready')) resolve()
      })
      child.once('exit', (code) => reject(new Error(`writer exited with ${code} before it was ready`)))
    })
    expect(await codeOf(() => LevelStorage.open(dir))).toBe('LOCKED')
  })
})

describe('LevelStorage: round trips through reopen', () => {
  it('hard state, entries (all types and sizes), snapshot and membership survive a reopen', async () => {
    const dir = await tempDir()
    const storage = await open(dir)
    const big = new Uint8Array(200_000).map((_, i) => i % 251)
    const log = [
      { index: 1, term: 1, type: 'noop' as const, data: new Uint8Array() },
      { index: 2, term: 1, type: 'confchange' as const, data: new Uint8Array([1, 2, 3]) },
      { index: 3, term: 2, type: 'normal' as const, data: big },
      entry(4, 2),
    ]
    await storage.save({ hardState: { term: 2, vote: 3, commit: 3 }, entries: log })
    await storage.close()
    const reopened = await open(dir)
    expect(reopened.initialState().hardState).toEqual({ term: 2, vote: 3, commit: 3 })
    expect(reopened.entries(1, 5, UNLIMITED)).toEqual(log)
    expect(reopened.stats().entries).toBe(4)
    expect(reopened.stats().logBytes).toBe(storage.stats().logBytes)

    const snapshot = await reopened.createSnapshot(
      3,
      { voters: [1, 2], learners: [5] },
      new TextEncoder().encode('image at 3'),
    )
    await reopened.close()
    const again = await open(dir)
    expect(again.snapshot()).toEqual(snapshot)
    expect(again.initialState().confState).toEqual({ voters: [1, 2], learners: [5] })
    expect(again.firstIndex()).toBe(4)
    expect(again.entries(4, 5, UNLIMITED)).toEqual([entry(4, 2)])
  })

  it('a truncated conflicting suffix stays truncated after reopen, its keys deleted', async () => {
    const dir = await tempDir()
    const storage = await open(dir)
    await storage.save({ hardState: { term: 1, vote: 1, commit: 2 }, entries: entries(1, 8, 1) })
    await storage.save({ hardState: { term: 2, vote: 2, commit: 2 }, entries: [entry(4, 2), entry(5, 2)] })
    await storage.close()
    expect(await logKeys(dir)).toEqual(['log/1', 'log/2', 'log/3', 'log/4', 'log/5'])
    const reopened = await open(dir)
    expect(reopened.lastIndex()).toBe(5)
    expect(reopened.entries(1, 6, UNLIMITED)).toEqual([...entries(1, 3, 1), entry(4, 2), entry(5, 2)])
    expect(await codeOf(() => reopened.term(6))).toBe('UNAVAILABLE')
  })

  it('createSnapshot deletes the log prefix on disk in the same write', async () => {
    const dir = await tempDir()
    const storage = await open(dir)
    await storage.save({ hardState: { term: 1, vote: 1, commit: 8 }, entries: entries(1, 10, 1) })
    const bytesBefore = storage.stats().logBytes
    await storage.createSnapshot(7, CONF, new TextEncoder().encode('image'))
    expect(storage.stats()).toMatchObject({ entries: 3, snapshotIndex: 7 })
    expect(storage.stats().logBytes).toBeLessThan(bytesBefore)
    await storage.close()
    expect(await logKeys(dir)).toEqual(['log/8', 'log/9', 'log/10'])
    const reopened = await open(dir)
    expect(reopened.firstIndex()).toBe(8)
    expect(reopened.term(7)).toBe(1)
    expect(await codeOf(() => reopened.entries(7, 8, UNLIMITED))).toBe('COMPACTED')
  })

  it('a snapshot from the leader deletes the whole old log on disk', async () => {
    const dir = await tempDir()
    const storage = await open(dir)
    await storage.save({ entries: entries(1, 5, 1) })
    const snapshot: Snapshot = {
      metadata: { index: 20, term: 4, confState: CONF },
      data: new TextEncoder().encode('leader image'),
    }
    await storage.save({ snapshot, entries: entries(21, 22, 4), hardState: { term: 4, vote: 0, commit: 20 } })
    await storage.close()
    expect(await logKeys(dir)).toEqual(['log/21', 'log/22'])
    const reopened = await open(dir)
    expect(reopened.snapshot()).toEqual(snapshot)
    expect(reopened.entries(21, 23, UNLIMITED)).toEqual(entries(21, 22, 4))
  })
})

describe('LevelStorage: writes', () => {
  it('saves issued without waiting run one after another, in call order', async () => {
    const dir = await tempDir()
    const storage = await open(dir)
    const pending: Array<Promise<void>> = []
    for (let index = 1; index <= 50; index++)
      pending.push(storage.save({ hardState: { term: 1, vote: 1, commit: index - 1 }, entries: [entry(index, 1)] }))
    await Promise.all(pending)
    expect(storage.lastIndex()).toBe(50)
    expect(storage.initialState().hardState.commit).toBe(49)
    expect(storage.stats().saves).toBe(50)
  })

  it('the mirror is unchanged until the batch is durable', async () => {
    const dir = await tempDir()
    const storage = await open(dir)
    const saving = storage.save({ entries: entries(1, 3, 1) })
    expect(storage.lastIndex()).toBe(0)
    await saving
    expect(storage.lastIndex()).toBe(3)
  })

  // Raft needs no durable commit index: a commit-only Ready (sync false) costs no disk write; the
  // next synced batch, a snapshot or close() carries it, and a crash only loses it (harmlessly).
  it('a commit-only hard state is not written until the next batch, snapshot or close', async () => {
    const dir = await tempDir()
    const first = await LevelStorage.open(dir, { bootstrap: { confState: CONF, data: new Uint8Array() } })
    await first.save({ entries: entries(2, 6, 1), hardState: { term: 1, vote: 1, commit: 1 }, sync: true })
    const saves = first.stats().saves
    await first.save({ entries: [], hardState: { term: 1, vote: 1, commit: 4 }, sync: false })
    expect(first.stats().saves).toBe(saves)
    expect(first.initialState().hardState.commit).toBe(4)
    // A snapshot beyond the commit on disk carries the commit along (open() requires commit >= snapshot).
    await first.save({ entries: [], hardState: { term: 1, vote: 1, commit: 5 }, sync: false })
    await first.createSnapshot(5, CONF, new TextEncoder().encode('at 5'))
    await first.save({ entries: [], hardState: { term: 1, vote: 1, commit: 6 }, sync: false })
    await first.close()
    const second = await open(dir)
    expect(second.snapshot().metadata.index).toBe(5)
    expect(second.initialState().hardState.commit).toBe(6)
  })

  it('refuses a hard state whose commit is outside [snapshot index, last index] or whose term decreases', async () => {
    const dir = await tempDir()
    const storage = await open(dir)
    await storage.save({ hardState: { term: 2, vote: 1, commit: 0 }, entries: entries(1, 3, 1) })
    await expect(storage.save({ hardState: { term: 2, vote: 1, commit: 4 }, entries: [] })).rejects.toThrow(
      RaftAssertionError,
    )
    await expect(storage.save({ hardState: { term: 1, vote: 1, commit: 1 }, entries: [] })).rejects.toThrow(
      RaftAssertionError,
    )
    await expect(storage.createSnapshot(2, CONF, new Uint8Array())).rejects.toThrow(RaftAssertionError)
    expect(storage.initialState().hardState).toEqual({ term: 2, vote: 1, commit: 0 })
    await storage.save({ hardState: { term: 2, vote: 1, commit: 3 }, entries: [] })
    expect(storage.initialState().hardState.commit).toBe(3)
  })

  it('writes after close are refused CLOSED; close is idempotent', async () => {
    const dir = await tempDir()
    const storage = await LevelStorage.open(dir)
    await storage.close()
    await storage.close()
    expect(await codeOf(() => storage.save({ entries: [entry(1, 1)] }))).toBe('CLOSED')
    expect(await codeOf(() => storage.createSnapshot(1, CONF, new Uint8Array()))).toBe('CLOSED')
  })

  it('stats count saves and the log', async () => {
    const dir = await tempDir()
    const storage = await open(dir)
    await storage.save({ entries: entries(1, 4, 1) })
    await storage.save({ entries: [entry(5, 1)] })
    const stats = storage.stats()
    expect(stats).toMatchObject({ entries: 5, snapshotIndex: 0, saves: 2 })
    expect(stats.logBytes).toBeGreaterThan(0)
    expect(stats.saveLatencyMsLast).toBeGreaterThanOrEqual(0)
  })
})
