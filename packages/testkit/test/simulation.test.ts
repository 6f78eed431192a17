import { Worker } from 'node:worker_threads'
import { describe, expect, it } from 'vitest'
import { runSeed, optionsForSeed } from '../src/index.ts'
import { SEED_PROFILES } from '../src/sim/simulation.ts'
import type { SimulationResult } from '../src/sim/simulation.ts'

/**
 * The simulator's own contract: seeds sweep 3- and 5-replica clusters through every fault with no
 * violation, and a seed replays the identical trace.
 */
const SEEDS_PER_SHARD = 500
const SHARDS = 4
/** Each shard's seeds run on this many worker threads (the CLI's own worker), in batches. */
const WORKERS = 2
const BATCH = 25

/** Run seeds `from`..`from + count - 1` on worker threads; results in seed order. */
async function runSeeds(from: number, count: number): Promise<SimulationResult[]> {
  const results: SimulationResult[] = []
  let next = from
  const end = from + count
  const work = async (): Promise<void> => {
    const worker = new Worker(new URL('../src/cli/sim-worker.ts', import.meta.url))
    try {
      while (next < end) {
        const batch: number[] = []
        while (batch.length < BATCH && next < end) batch.push(next++)
        const done = await new Promise<SimulationResult[]>((resolve, reject) => {
          worker.once('message', resolve)
          worker.once('error', reject)
          worker.postMessage(batch)
        })
        worker.removeAllListeners('error')
        results.push(...done)
      }
    } finally {
      await worker.terminate()
    }
  }
  await Promise.all(Array.from({ length: WORKERS }, () => work()))
  return results.sort((a, b) => a.seed - b.seed)
}

describe('deterministic simulation', () => {
  for (let shard = 0; shard < SHARDS; shard++) {
    const from = 1 + shard * SEEDS_PER_SHARD
    it(`seeds ${from}..${from + SEEDS_PER_SHARD - 1} hold every safety and liveness property`, async () => {
      const failures: string[] = []
      let voters3 = 0
      let voters5 = 0
      let acknowledged = 0
      let leaderChanges = 0
      for (const result of await runSeeds(from, SEEDS_PER_SHARD)) {
        const seed = result.seed
        if (optionsForSeed(seed).voterCount === 3) voters3++
        else voters5++
        acknowledged += result.stats.writesAcknowledged
        leaderChanges += result.stats.leaderChanges
        if (result.violations.length > 0) {
          failures.push(`seed ${seed}: ${result.violations.join('; ')}\n  replay: pnpm sim --seed ${seed} --trace`)
        }
      }
      console.log(
        `seeds=${SEEDS_PER_SHARD} (3 replicas: ${voters3}, 5 replicas: ${voters5}) violations=${failures.length} acknowledged_writes=${acknowledged} leader_changes=${leaderChanges}`,
      )
      expect(failures).toEqual([])
    })
  }

  // The simulator runs the replica's own driver (packages/authority/src/replica/driver.ts): these
  // are the driver's paths that only a real host hits, each seen in some seed.
  it('seeds exercise group commit, early heartbeats, pauses with lease reads, and disk loss', async () => {
    const firstSeedWith: Record<string, number | undefined> = {}
    const features = [
      'groupCommits',
      'earlyHeartbeats',
      'pauses',
      'stalls',
      'leaseReadsAfterPause',
      'diskLosses',
      'confChanges',
      'transfers',
    ] as const
    for (const { seed, stats } of await runSeeds(1, 200)) {
      for (const feature of features)
        if (stats[feature] > 0 && firstSeedWith[feature] === undefined) firstSeedWith[feature] = seed
    }
    console.log(`first seed with each: ${JSON.stringify(firstSeedWith)}`)
    for (const feature of features) expect(firstSeedWith[feature], feature).toBeGreaterThan(0)
  })

  it('every seed profile appears in the first hundred seeds, for 3 and for 5 voters', () => {
    const seen = new Set<string>()
    for (let seed = 1; seed <= 100; seed++) {
      const options = optionsForSeed(seed)
      seen.add(`${options.profile}/${options.voterCount}`)
    }
    for (const profile of SEED_PROFILES) for (const voters of [3, 5]) expect(seen).toContain(`${profile}/${voters}`)
  })

  it('replays a seed to the identical trace', () => {
    const first = runSeed(4242, { keepTrace: true })
    const second = runSeed(4242, { keepTrace: true })
    expect(second.traceHash).toBe(first.traceHash)
    expect(second.trace).toEqual(first.trace)
    expect(first.trace.length).toBeGreaterThan(100)
  })

  it('different seeds explore different histories', () => {
    expect(runSeed(1).traceHash).not.toBe(runSeed(2).traceHash)
  })
})
