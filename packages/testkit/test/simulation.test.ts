import { describe, expect, it } from 'vitest'
import { runSeed, optionsForSeed } from '../src/index.ts'

/**
 * The simulator's own contract: seeds sweep 3- and 5-replica clusters through every fault with no
 * violation, and a seed replays the identical trace.
 */
const SEEDS_PER_SHARD = 500
const SHARDS = 4

describe('deterministic simulation', () => {
  for (let shard = 0; shard < SHARDS; shard++) {
    const from = 1 + shard * SEEDS_PER_SHARD
    it(`seeds ${from}..${from + SEEDS_PER_SHARD - 1} hold every safety and liveness property`, () => {
      const failures: string[] = []
      let voters3 = 0
      let voters5 = 0
      let acknowledged = 0
      let leaderChanges = 0
      for (let seed = from; seed < from + SEEDS_PER_SHARD; seed++) {
        const result = runSeed(seed)
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
  it('seeds exercise group commit, early heartbeats, pauses with lease reads, and disk loss', () => {
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
    for (let seed = 1; seed <= 200; seed++) {
      const { stats } = runSeed(seed)
      for (const feature of features)
        if (stats[feature] > 0 && firstSeedWith[feature] === undefined) firstSeedWith[feature] = seed
    }
    console.log(`first seed with each: ${JSON.stringify(firstSeedWith)}`)
    for (const feature of features) expect(firstSeedWith[feature], feature).toBeGreaterThan(0)
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
