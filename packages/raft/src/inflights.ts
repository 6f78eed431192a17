import { assert } from './errors.ts'

/**
 * The AppendEntries a leader has sent to one follower and not yet seen acknowledged, by the last
 * index each carried. Bounded by count and bytes: when full, the leader stops sending until
 * acknowledgements free room (etcd's Inflights, as a plain queue).
 */
export class Inflights {
  private readonly countMax: number
  private readonly bytesMax: number
  private readonly lastIndexes: number[] = []
  private readonly sizes: number[] = []
  private bytes = 0

  constructor(countMax: number, bytesMax: number) {
    this.countMax = countMax
    this.bytesMax = bytesMax
  }

  add(lastIndex: number, sizeBytes: number): void {
    assert(!this.full(), 'cannot add to full inflights')
    const previous = this.lastIndexes[this.lastIndexes.length - 1]
    assert(
      previous === undefined || lastIndex > previous,
      `inflight indexes must increase (${previous} then ${lastIndex})`,
    )
    this.lastIndexes.push(lastIndex)
    this.sizes.push(sizeBytes)
    this.bytes += sizeBytes
  }

  /** Forget every message whose last index is <= `index` (acknowledged). */
  freeLE(index: number): void {
    let count = 0
    while (count < this.lastIndexes.length && this.lastIndexes[count]! <= index) {
      this.bytes -= this.sizes[count]!
      count++
    }
    if (count > 0) {
      this.lastIndexes.splice(0, count)
      this.sizes.splice(0, count)
    }
  }

  /** Forget the oldest message (assumed lost). */
  freeFirst(): void {
    if (this.lastIndexes.length === 0) return
    this.freeLE(this.lastIndexes[0]!)
  }

  full(): boolean {
    return this.lastIndexes.length >= this.countMax || this.bytes >= this.bytesMax
  }

  count(): number {
    return this.lastIndexes.length
  }

  reset(): void {
    this.lastIndexes.length = 0
    this.sizes.length = 0
    this.bytes = 0
  }
}
