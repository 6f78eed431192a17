/** Shared fixtures of the cache tests: temp dirs, peer ids, records, raw LevelDB access, a seeded rng. */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { emptyRecord } from '@nodeledger/registry'
import type { NodeData } from '@nodeledger/registry'
import { WorkerAssertionError, WorkerCacheError } from '../../src/index.ts'
import { peerIdFromSeed } from '@nodeledger/testkit/fixtures'

export async function makeTempDir(label: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `nodeledger-worker-cache-${label}-`))
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true })
}

/** A canonical Ed25519 peer id from a seed number (see the testkit fixture). */
export const peerId = peerIdFromSeed

/** A record whose contents are a pure function of (peer, originSeq, changedIndex): a reader can check it. */
export function record(peer: string, originSeq: number, changedIndex: number): NodeData {
  return {
    ...emptyRecord(peer),
    originSeq,
    changedIndex,
    version: `v${originSeq}`,
    returnedItems: originSeq * 7 + changedIndex,
    multiaddrs: [`/ip4/10.0.${originSeq % 256}.${changedIndex % 256}/tcp/4001`],
    isTwitterScraper: originSeq % 2 === 0,
  }
}

/** The `code` of the error an action throws or rejects with, 'ASSERTION' for an assertion, or 'none'. */
export async function codeOf(action: () => unknown): Promise<string> {
  try {
    await action()
  } catch (error) {
    if (error instanceof WorkerCacheError) return error.code
    if (error instanceof WorkerAssertionError) return 'ASSERTION'
    throw error
  }
  return 'none'
}

export type RawDatabase = Level<string, Uint8Array>

/** Open the dir's LevelDB directly (the cache must be closed), run `action`, close it. */
export async function withRawDatabase<T>(dir: string, action: (db: RawDatabase) => Promise<T>): Promise<T> {
  const db: RawDatabase = new Level<string, Uint8Array>(dir, {
    keyEncoding: 'utf8',
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

/** mulberry32: a small seeded generator, so a failing crash round can be replayed from its seed. */
export function seededRng(seed: number): { nextInt: (bound: number) => number } {
  let state = seed >>> 0
  return {
    nextInt(bound: number): number {
      state = (state + 0x6d2b79f5) >>> 0
      let t = state
      t = Math.imul(t ^ (t >>> 15), t | 1)
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
      return ((t ^ (t >>> 14)) >>> 0) % bound
    },
  }
}
