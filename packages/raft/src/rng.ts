import type { Rng } from './types.ts'

/**
 * A small, fast, seedable generator (mulberry32). The core takes any Rng; this one is what the
 * replica and the simulator pass in, so a seed replays the same elections.
 */
export function createSeededRng(seed: number): Rng & { nextFloat(): number } {
  let state = seed >>> 0
  const nextUint32 = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return (t ^ (t >>> 14)) >>> 0
  }
  return {
    nextInt(maxExclusive: number): number {
      if (maxExclusive <= 1) return 0
      return nextUint32() % maxExclusive
    },
    nextFloat(): number {
      return nextUint32() / 4294967296
    },
  }
}
