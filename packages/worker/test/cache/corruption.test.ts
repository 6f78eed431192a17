/**
 * A damaged cache dir is refused on open with a code saying what kind of damage, never repaired:
 * a worker that silently started from a half-empty cache could reuse its own seq or skip log entries.
 */
import { readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { pack } from 'msgpackr'
import { afterEach, describe, expect, it } from 'vitest'
import { WorkerCache } from '../../src/index.ts'
import { KEY_META, KEY_STATE, encodeCachedRecord, encodeMeta, encodeState, recordKey } from '../../src/cache/codec.ts'
import { codeOf, makeTempDir, peerId, record, removeDir, withRawDatabase } from './helpers.ts'
import type { RawDatabase } from './helpers.ts'

const A = peerId(1)
const B = peerId(2)

describe('WorkerCache refuses a damaged dir', () => {
  const dirs: string[] = []
  afterEach(async () => {
    for (const dir of dirs.splice(0)) await removeDir(dir)
  })

  /** A closed cache dir with a confirmed record of A at index 5, a provisional B and own seq 3, then `damage` applied raw. */
  async function damaged(damage: (db: RawDatabase) => Promise<void>): Promise<string> {
    const dir = await makeTempDir('corrupt')
    dirs.push(dir)
    const cache = await WorkerCache.open(dir)
    await cache.applyConfirmed([record(A, 2, 5)], 5)
    await cache.putProvisional(record(B, 1, 0))
    await cache.setOwnSeqAtLeast(3)
    await cache.close()
    await withRawDatabase(dir, damage)
    return dir
  }

  async function flipByte(db: RawDatabase, key: string, offset: number): Promise<void> {
    const value = await db.get(key)
    expect(value).toBeInstanceOf(Uint8Array)
    const copy = Uint8Array.from(value!)
    copy[offset]! ^= 0x40
    await db.put(key, copy)
  }

  /** `payload` framed with a correct checksum, so only the shape check can catch it. */
  function sealed(payload: Uint8Array): Uint8Array {
    const framed = new Uint8Array(4 + payload.byteLength)
    new DataView(framed.buffer).setUint32(0, crc32(payload), false)
    framed.set(payload, 4)
    return framed
  }

  it('opens undamaged (the fixture itself is valid)', async () => {
    const dir = await damaged(async () => undefined)
    const cache = await WorkerCache.open(dir)
    expect([cache.size, cache.appliedIndex, cache.ownSeq]).toEqual([2, 5, 3])
    await cache.close()
  })

  it.each([
    ['a flipped bit in a confirmed record', (db: RawDatabase) => flipByte(db, recordKey('confirmed', A), 10)],
    ['a flipped bit in a provisional record', (db: RawDatabase) => flipByte(db, recordKey('provisional', B), 12)],
    ['a flipped bit in the state record', (db: RawDatabase) => flipByte(db, KEY_STATE, 5)],
    ['a flipped checksum byte', (db: RawDatabase) => flipByte(db, recordKey('confirmed', A), 0)],
    [
      'a record truncated to 3 bytes',
      async (db: RawDatabase) => db.put(recordKey('confirmed', A), new Uint8Array([1, 2, 3])),
    ],
    ['a missing state record', async (db: RawDatabase) => db.del(KEY_STATE)],
    ['a missing meta record', async (db: RawDatabase) => db.del(KEY_META)],
    ['an unexpected key', async (db: RawDatabase) => db.put('stray', encodeMeta(1))],
    [
      'a record stored under another peer id',
      async (db: RawDatabase) => db.put(recordKey('confirmed', B), encodeCachedRecord(record(A, 2, 5))),
    ],
    [
      'a confirmed record beyond the applied index',
      async (db: RawDatabase) => db.put(recordKey('confirmed', A), encodeCachedRecord(record(A, 2, 6))),
    ],
    [
      'a provisional record not newer than the confirmed one',
      async (db: RawDatabase) => db.put(recordKey('provisional', A), encodeCachedRecord(record(A, 2, 0))),
    ],
    [
      'a state with a negative seq under a valid checksum',
      async (db: RawDatabase) => db.put(KEY_STATE, sealed(pack([5, -1]))),
    ],
    [
      'a record that is valid msgpack but not a NodeData',
      async (db: RawDatabase) => db.put(recordKey('confirmed', A), sealed(pack([1, ['x']]))),
    ],
    [
      'a checksummed payload that is not msgpack',
      async (db: RawDatabase) => db.put(KEY_STATE, sealed(new Uint8Array([0xc1]))),
    ],
  ])('%s: CORRUPT', async (_what, damage) => {
    const dir = await damaged(damage)
    expect(await codeOf(() => WorkerCache.open(dir))).toBe('CORRUPT')
  })

  it('a format this build does not know: UNSUPPORTED_VERSION', async () => {
    const dir = await damaged(async (db) => db.put(KEY_META, encodeMeta(2)))
    expect(await codeOf(() => WorkerCache.open(dir))).toBe('UNSUPPORTED_VERSION')
  })

  it('an initialized dir whose database lost every key: CORRUPT, not a fresh empty cache', async () => {
    const dir = await damaged(async (db) => db.clear())
    expect(await codeOf(() => WorkerCache.open(dir))).toBe('CORRUPT')
  })

  it('an initialized dir whose LevelDB files were removed: CORRUPT', async () => {
    const dir = await damaged(async () => undefined)
    for (const file of await readdir(dir))
      if (file !== 'NODELEDGER-WORKER') await rm(join(dir, file), { recursive: true })
    expect(await codeOf(() => WorkerCache.open(dir))).toBe('CORRUPT')
  })

  it('a damaged dir is left as it was: opening it again still refuses', async () => {
    const dir = await damaged((db) => flipByte(db, recordKey('confirmed', A), 10))
    expect(await codeOf(() => WorkerCache.open(dir))).toBe('CORRUPT')
    expect(await codeOf(() => WorkerCache.open(dir))).toBe('CORRUPT')
  })

  it('a state record the encoder writes reads back (the sealed() helper frames like the codec)', async () => {
    expect(sealed(pack([5, 3]))).toEqual(encodeState({ appliedIndex: 5, ownSeq: 3 }))
  })
})
