/** Shared fixtures of the storage tests: temp dirs, entries, and raw access to a closed store's LevelDB. */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { RaftError } from '@nodeledger/raft'
import type { Entry } from '@nodeledger/raft'
import { StorageError } from '../../src/errors.ts'

export async function makeTempDir(label: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `nodeledger-storage-${label}-`))
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true })
}

export function entry(index: number, term: number, data = `${index}@${term}`): Entry {
  return { index, term, type: 'normal', data: new TextEncoder().encode(data) }
}

/** Entries `from`..`to` inclusive, all of `term`. */
export function entries(from: number, to: number, term: number): Entry[] {
  const result: Entry[] = []
  for (let index = from; index <= to; index++) result.push(entry(index, term))
  return result
}

/** The `code` of the error an action throws or rejects with, or 'none'. Anything else is rethrown. */
export async function codeOf(action: () => unknown): Promise<string> {
  try {
    await action()
  } catch (error) {
    if (error instanceof RaftError || error instanceof StorageError) return error.code
    throw error
  }
  return 'none'
}

export type RawDatabase = Level<Uint8Array, Uint8Array>

/** Open the dir's LevelDB directly (the store must be closed), run `action`, close it. */
export async function withRawDatabase<T>(dir: string, action: (db: RawDatabase) => Promise<T>): Promise<T> {
  const db: RawDatabase = new Level<Uint8Array, Uint8Array>(dir, {
    keyEncoding: 'view',
    valueEncoding: 'view',
    createIfMissing: false,
  })
  await db.open()
  try {
    return await action(db)
  } finally {
    await db.close()
  }
}

/** Every key in the dir as a readable string (`log/7`, `hard-state`, …), in LevelDB order. */
export async function rawKeys(dir: string, describe: (key: Uint8Array) => string): Promise<string[]> {
  return withRawDatabase(dir, async (db) => (await db.keys().all()).map(describe))
}
