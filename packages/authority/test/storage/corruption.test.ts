/**
 * A corrupt or truncated data dir is refused on open with StorageError CORRUPT (or
 * UNSUPPORTED_VERSION), never served and never repaired. Each case builds a good store, damages it
 * the way a disk, an operator or a bug might, and checks the code; the dir is then refused again
 * with the same code, so a refusal leaves nothing half-open behind it.
 */
import { readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { ConfState } from '@nodeledger/raft'
import { LevelStorage } from '../../src/storage/index.ts'
import {
  KEY_HARD_STATE,
  KEY_META,
  KEY_SNAPSHOT_DATA,
  encodeEntry,
  encodeHardState,
  encodeMeta,
  logKey,
} from '../../src/storage/codec.ts'
import { codeOf, entries, entry, makeTempDir, removeDir, withRawDatabase } from './helpers.ts'
import type { RawDatabase } from './helpers.ts'

const CONF: ConfState = { voters: [1, 2, 3], learners: [] }
const dirs: string[] = []
afterEach(async () => {
  for (const dir of dirs.splice(0)) await removeDir(dir)
})

/** A closed store: snapshot at 2 (from entries 1..2), log 3..8 in terms 1 and 2, commit 6. */
async function goodStore(): Promise<string> {
  const dir = await makeTempDir('corrupt')
  dirs.push(dir)
  const storage = await LevelStorage.open(dir)
  await storage.save({
    hardState: { term: 2, vote: 1, commit: 6 },
    entries: [...entries(1, 5, 1), ...entries(6, 8, 2)],
  })
  await storage.createSnapshot(2, CONF, new TextEncoder().encode('image'))
  await storage.close()
  return dir
}

async function damage(action: (db: RawDatabase) => Promise<void>): Promise<string> {
  const dir = await goodStore()
  await withRawDatabase(dir, action)
  return dir
}

/** The code open refuses with, checked twice to show the refusal is stable. */
async function refusal(dir: string): Promise<string> {
  const first = await codeOf(() => LevelStorage.open(dir))
  const second = await codeOf(() => LevelStorage.open(dir))
  expect(second).toBe(first)
  return first
}

describe('LevelStorage refuses a damaged dir', () => {
  it('the undamaged store opens (the baseline every case below damages)', async () => {
    const dir = await goodStore()
    const storage = await LevelStorage.open(dir)
    expect([storage.firstIndex(), storage.lastIndex(), storage.initialState().hardState.commit]).toEqual([3, 8, 6])
    await storage.close()
  })

  it('flipped bytes in an entry value: CORRUPT (checksum)', async () => {
    const dir = await damage(async (db) => {
      const value = (await db.get(logKey(5)))!
      const flipped = Uint8Array.from(value)
      flipped[flipped.length - 1]! ^= 0xff
      flipped[6]! ^= 0x01
      await db.put(logKey(5), flipped)
    })
    expect(await refusal(dir)).toBe('CORRUPT')
  })

  it('a flipped checksum byte: CORRUPT', async () => {
    const dir = await damage(async (db) => {
      const value = Uint8Array.from((await db.get(logKey(3)))!)
      value[0]! ^= 0x80
      await db.put(logKey(3), value)
    })
    expect(await refusal(dir)).toBe('CORRUPT')
  })

  it('a value cut short: CORRUPT', async () => {
    const dir = await damage(async (db) => db.put(logKey(7), (await db.get(logKey(7)))!.subarray(0, 3)))
    expect(await refusal(dir)).toBe('CORRUPT')
  })

  it('an entry deleted from the middle of the log: CORRUPT (not contiguous)', async () => {
    const dir = await damage((db) => db.del(logKey(5)))
    expect(await refusal(dir)).toBe('CORRUPT')
  })

  it('the first entry after the snapshot deleted: CORRUPT', async () => {
    const dir = await damage((db) => db.del(logKey(3)))
    expect(await refusal(dir)).toBe('CORRUPT')
  })

  it('an entry stored under another index: CORRUPT (key and value disagree)', async () => {
    const dir = await damage((db) => db.put(logKey(5), encodeEntry(entry(4, 1))))
    expect(await refusal(dir)).toBe('CORRUPT')
  })

  it('a term that decreases along the log: CORRUPT', async () => {
    const dir = await damage((db) => db.put(logKey(7), encodeEntry(entry(7, 1))))
    expect(await refusal(dir)).toBe('CORRUPT')
  })

  it('an entry the snapshot covers still stored: CORRUPT', async () => {
    const dir = await damage((db) => db.put(logKey(2), encodeEntry(entry(2, 1))))
    expect(await refusal(dir)).toBe('CORRUPT')
  })

  it('a hard state committing beyond the last index: CORRUPT', async () => {
    const dir = await damage((db) => db.put(KEY_HARD_STATE, encodeHardState({ term: 2, vote: 1, commit: 9 })))
    expect(await refusal(dir)).toBe('CORRUPT')
  })

  it('a hard state committing below the snapshot index: CORRUPT', async () => {
    const dir = await damage((db) => db.put(KEY_HARD_STATE, encodeHardState({ term: 2, vote: 1, commit: 1 })))
    expect(await refusal(dir)).toBe('CORRUPT')
  })

  it('a hard state that is not a hard state: CORRUPT', async () => {
    const dir = await damage((db) => db.put(KEY_HARD_STATE, new TextEncoder().encode('garbage bytes')))
    expect(await refusal(dir)).toBe('CORRUPT')
  })

  it('a missing hard state while a snapshot exists: CORRUPT', async () => {
    const dir = await damage((db) => db.del(KEY_HARD_STATE))
    expect(await refusal(dir)).toBe('CORRUPT')
  })

  it('snapshot metadata without its data: CORRUPT', async () => {
    const dir = await damage((db) => db.del(KEY_SNAPSHOT_DATA))
    expect(await refusal(dir)).toBe('CORRUPT')
  })

  it('an unknown format version: UNSUPPORTED_VERSION', async () => {
    const dir = await damage((db) => db.put(KEY_META, encodeMeta({ format: 2 })))
    expect(await refusal(dir)).toBe('UNSUPPORTED_VERSION')
  })

  it('a missing format record with data present: CORRUPT', async () => {
    const dir = await damage((db) => db.del(KEY_META))
    expect(await refusal(dir)).toBe('CORRUPT')
  })

  it('a key the format does not define: CORRUPT', async () => {
    const dir = await damage((db) => db.put(new TextEncoder().encode('stray'), new Uint8Array([1])))
    expect(await refusal(dir)).toBe('CORRUPT')
  })

  it('a malformed log key: CORRUPT', async () => {
    const dir = await damage((db) => db.put(Uint8Array.from([...logKey(9), 0]), encodeEntry(entry(9, 2))))
    expect(await refusal(dir)).toBe('CORRUPT')
  })

  it('every record deleted (LevelDB files intact but empty): CORRUPT, not a fresh start', async () => {
    const dir = await damage((db) => db.clear())
    expect(await refusal(dir)).toBe('CORRUPT')
  })

  it("LevelDB's CURRENT file removed: CORRUPT, not a fresh start", async () => {
    const dir = await goodStore()
    await rm(join(dir, 'CURRENT'))
    expect(await refusal(dir)).toBe('CORRUPT')
  })

  it('a table file removed: CORRUPT', async () => {
    const dir = await goodStore()
    // Push everything from the write-ahead log into table files, then lose them.
    // `level` types the database generically; on Node it is classic-level, which has compactRange.
    const compact = (db: RawDatabase): Promise<void> =>
      (db as unknown as { compactRange(start: Uint8Array, end: Uint8Array): Promise<void> }).compactRange(
        new Uint8Array([0]),
        new Uint8Array([0xff]),
      )
    await withRawDatabase(dir, compact)
    const tables = (await readdir(dir)).filter((name) => name.endsWith('.ldb') || name.endsWith('.sst'))
    expect(tables.length).toBeGreaterThan(0)
    for (const name of tables) await rm(join(dir, name))
    expect(await refusal(dir)).toBe('CORRUPT')
  })
})
