/**
 * kill -9 at any moment leaves a valid cache that keeps everything it acknowledged and never hands
 * out an own seq twice. A child process (crash-writer.ts) writes in a loop and prints each
 * acknowledged write; the parent SIGKILLs it at a seeded random moment, reopens the dir (which
 * validates every checksum and invariant) and checks it against what was acknowledged. The same dir
 * carries on across all kills, so later rounds write to a cache that was itself recovered.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { WorkerCache } from '../../src/index.ts'
import { makeTempDir, peerId, record, removeDir, seededRng } from './helpers.ts'

const SEED = 20_250_105
const KILLS = 15
const KILL_DELAY_MS_MIN = 5
const KILL_DELAY_MS_MAX = 120

interface Acknowledged {
  readonly seqs: number[]
  appliedIndex: number
  /** peer seed -> the highest originSeq acknowledged for it, confirmed or provisional. */
  readonly originSeqs: Map<number, number>
}

async function runAndKill(dir: string, seed: number, delayMs: number, acknowledged: Acknowledged): Promise<void> {
  const writer = fileURLToPath(new URL('./crash-writer.ts', import.meta.url))
  const child = spawn(process.execPath, [writer, dir, String(seed)], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8')
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (chunk: string) => (stderr += chunk))
  const exited = once(child, 'exit')
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk
      if (stdout.startsWith('ready')) resolve()
    })
    void exited.then(() => reject(new Error(`writer exited before it was ready:\n${stderr}`)))
  })
  await sleep(delayMs)
  child.kill('SIGKILL')
  const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null]
  expect({ code, signal, stderr }).toEqual({ code: null, signal: 'SIGKILL', stderr: '' })
  // Only whole lines count: a line cut by the kill was never fully acknowledged.
  for (const line of stdout.split('\n').slice(0, -1)) {
    const words = line.split(' ')
    if (words[0] === 'seq') acknowledged.seqs.push(Number(words[1]))
    if (words[0] === 'applied') {
      acknowledged.appliedIndex = Math.max(acknowledged.appliedIndex, Number(words[1]))
      raise(acknowledged.originSeqs, Number(words[2]), Number(words[1]))
    }
    if (words[0] === 'gossip') raise(acknowledged.originSeqs, Number(words[1]), Number(words[2]))
  }
}

function raise(map: Map<number, number>, key: number, value: number): void {
  map.set(key, Math.max(map.get(key) ?? 0, value))
}

async function checkRecovered(dir: string, acknowledged: Acknowledged): Promise<void> {
  const cache = await WorkerCache.open(dir)
  try {
    expect(cache.appliedIndex).toBeGreaterThanOrEqual(acknowledged.appliedIndex)
    expect(cache.ownSeq).toBeGreaterThanOrEqual(Math.max(0, ...acknowledged.seqs))
    for (const [peer, originSeq] of acknowledged.originSeqs) {
      const held = cache.get(peerId(peer))
      expect(held?.originSeq ?? 0).toBeGreaterThanOrEqual(originSeq)
    }
    // Every record reads back exactly as some write made it.
    for (const held of cache.all()) expect(held).toEqual(record(held.peerId, held.originSeq, held.changedIndex))
  } finally {
    await cache.close()
  }
}

describe('WorkerCache under SIGKILL', () => {
  let dir = ''
  afterAll(async () => {
    if (dir !== '') await removeDir(dir)
  })

  it(`${KILLS} kills at seeded random moments: every reopen is valid, keeps what was acknowledged, reuses no seq (seed ${SEED})`, async () => {
    dir = await makeTempDir('crash')
    const rng = seededRng(SEED)
    const acknowledged: Acknowledged = { seqs: [], appliedIndex: 0, originSeqs: new Map() }
    for (let round = 0; round < KILLS; round++) {
      const delayMs = KILL_DELAY_MS_MIN + rng.nextInt(KILL_DELAY_MS_MAX - KILL_DELAY_MS_MIN + 1)
      await runAndKill(dir, SEED + round, delayMs, acknowledged)
      await checkRecovered(dir, acknowledged)
    }
    // A seq handed out in one life is never handed out again in a later one.
    expect(new Set(acknowledged.seqs).size).toBe(acknowledged.seqs.length)
    // Kills that all landed before the first write would prove nothing.
    expect(acknowledged.seqs.length).toBeGreaterThan(0)
    expect(acknowledged.appliedIndex).toBeGreaterThan(0)
  })
})
