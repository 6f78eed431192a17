/**
 * kill -9 at any moment leaves a valid store (issue 4, Storage). A child process appends to the store
 * in a loop (crash-writer.ts) and prints what each write acknowledged; the parent SIGKILLs it at a
 * seeded random moment, reopens the dir, and checks that open succeeds (which validates checksums,
 * contiguity and the hard state), that every entry reads back as written, and that nothing the child
 * acknowledged was lost. The same dir carries on across all kills, so later rounds also kill
 * snapshots, overwrites and writes on a store that was itself recovered from a kill.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { createSeededRng } from '@nodeledger/raft'
import { LevelStorage } from '../../src/storage/index.ts'
import { entryData } from './crash-payload.ts'
import { makeTempDir, removeDir } from './helpers.ts'

const SEED = 20_240_604
const KILLS = 30
const KILL_DELAY_MS_MIN = 5
const KILL_DELAY_MS_MAX = 80

interface Acknowledged {
  readonly lastIndex: number
  readonly term: number
  readonly commit: number
  readonly snapshotIndex: number
}

/** Run the writer until the kill; the newest state it acknowledged, if any. */
async function runAndKill(dir: string, seed: number, delayMs: number): Promise<Acknowledged | undefined> {
  const writer = fileURLToPath(new URL('./crash-writer.ts', import.meta.url))
  const child = spawn(process.execPath, [writer, dir, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8')
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (chunk: string) => (stderr += chunk))
  const exited = once(child, 'exit')
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk
      if (stdout.startsWith('ready')) resolve()
    })
    void exited.then(() => reject(new Error(`writer exited before it was ready:\n${stderr}`)))
  })
  await ready
  await sleep(delayMs)
  child.kill('SIGKILL')
  const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null]
  // The writer never stops by itself: anything but our SIGKILL is a failure it reported on stderr.
  expect({ code, signal, stderr }).toEqual({ code: null, signal: 'SIGKILL', stderr: '' })
  let acknowledged: Acknowledged | undefined
  for (const line of stdout.split('\n')) {
    const match = /^ack (\d+) (\d+) (\d+) (\d+)$/.exec(line)
    if (match === null) continue
    acknowledged = {
      lastIndex: Number(match[1]),
      term: Number(match[2]),
      commit: Number(match[3]),
      snapshotIndex: Number(match[4]),
    }
  }
  return acknowledged
}

/** Open the dir as a restarting replica would and check it against what was acknowledged. */
async function checkRecovered(dir: string, acknowledged: Acknowledged | undefined): Promise<void> {
  const storage = await LevelStorage.open(dir)
  try {
    const first = storage.firstIndex()
    const last = storage.lastIndex()
    const { hardState } = storage.initialState()
    const snapshotIndex = storage.snapshot().metadata.index
    const log = last >= first ? storage.entries(first, last + 1, Number.POSITIVE_INFINITY) : []
    expect(log.length).toBe(last - first + 1)
    let previousTerm = storage.term(first - 1)
    for (const [offset, entry] of log.entries()) {
      expect(entry.index).toBe(first + offset)
      expect(entry.term).toBeGreaterThanOrEqual(previousTerm)
      expect(entry.data).toEqual(entryData(entry.index, entry.term))
      previousTerm = entry.term
    }
    expect(hardState.commit).toBeLessThanOrEqual(last)
    expect(hardState.commit).toBeGreaterThanOrEqual(snapshotIndex)
    if (acknowledged !== undefined) {
      expect(last).toBeGreaterThanOrEqual(acknowledged.lastIndex)
      expect(hardState.term).toBeGreaterThanOrEqual(acknowledged.term)
      expect(hardState.commit).toBeGreaterThanOrEqual(acknowledged.commit)
      expect(snapshotIndex).toBeGreaterThanOrEqual(acknowledged.snapshotIndex)
    }
  } finally {
    await storage.close()
  }
}

describe('LevelStorage under SIGKILL', () => {
  let dir = ''
  afterAll(async () => {
    if (dir !== '') await removeDir(dir)
  })

  it(`${KILLS} kills at seeded random moments: every reopen is valid and keeps what was acknowledged (seed ${SEED})`, async () => {
    dir = await makeTempDir('crash')
    const rng = createSeededRng(SEED)
    let acknowledgedRounds = 0
    for (let round = 0; round < KILLS; round++) {
      const delayMs = KILL_DELAY_MS_MIN + rng.nextInt(KILL_DELAY_MS_MAX - KILL_DELAY_MS_MIN + 1)
      const acknowledged = await runAndKill(dir, SEED + round, delayMs)
      if (acknowledged !== undefined) acknowledgedRounds++
      await checkRecovered(dir, acknowledged)
    }
    // Kills that all landed before the first write would prove nothing.
    expect(acknowledgedRounds).toBeGreaterThan(0)
  })
})
