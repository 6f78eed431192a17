import { createSeededRng } from '@nodeledger/raft'

/** The simulator's seeded randomness, with the few shapes it needs. One seed, one universe. */
export class SimRng {
  private readonly source: ReturnType<typeof createSeededRng>

  constructor(seed: number) {
    this.source = createSeededRng(seed)
  }

  float(): number {
    return this.source.nextFloat()
  }

  chance(probability: number): boolean {
    return probability > 0 && this.source.nextFloat() < probability
  }

  /** Uniform integer in [min, max]. */
  intBetween(min: number, max: number): number {
    return min + this.source.nextInt(max - min + 1)
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list')
    return items[this.source.nextInt(items.length)]!
  }

  /** A child generator for one replica, derived from this one so the whole run stays one seed. */
  derive(): { nextInt(maxExclusive: number): number } {
    return createSeededRng(this.source.nextInt(0x7fffffff) + 1)
  }

  shuffle<T>(items: readonly T[]): T[] {
    const result = [...items]
    for (let i = result.length - 1; i > 0; i--) {
      const j = this.source.nextInt(i + 1)
      const held = result[i]!
      result[i] = result[j]!
      result[j] = held
    }
    return result
  }
}
