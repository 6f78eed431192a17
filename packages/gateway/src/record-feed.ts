import { CAPABILITY_FIELD, LIST_LIMIT_DEFAULT } from '@nodeledger/registry'
import type { Changes, ListFilter, NodeData } from '@nodeledger/registry'

/** Superseded pairs the change index may hold beyond two per record before it is rebuilt. */
const CHANGE_INDEX_SLACK = 1_024

/**
 * The records a node confirmed from the log, indexed as the registry indexes them (`list` in peer
 * id order, `changesSince` by change index), for a gateway whose node holds records without a
 * Registry: a worker's tracker cache. Fed with the records the log delivered, in the order they
 * were applied; `waitForChange` wakes the event streams.
 *
 * The change index is append-only pairs (changedIndex, peerId); a pair whose record changed again
 * is skipped when read and dropped when the index is rebuilt (at twice the records), as the
 * registry's own is. A record applied out of log order (a late page) is inserted in place.
 */
export class RecordFeed {
  readonly #records = new Map<string, NodeData>()
  #changes: { changedIndex: number; peerId: string }[] = []
  #sortedPeerIds: string[] | undefined
  #lastChangedIndex = 0
  #waiters = new Set<{ index: number; resolve: () => void }>()

  /** The highest changedIndex of the records held. */
  get lastChangedIndex(): number {
    return this.#lastChangedIndex
  }

  get size(): number {
    return this.#records.size
  }

  get(peerId: string): NodeData | undefined {
    return this.#records.get(peerId)
  }

  /** Records the log changed, as it delivered them; an older one than held (a redelivery) is skipped. */
  apply(records: readonly NodeData[]): void {
    for (const record of records) {
      const held = this.#records.get(record.peerId)
      if (held !== undefined && held.changedIndex >= record.changedIndex) continue
      if (held === undefined) this.#sortedPeerIds = undefined
      this.#records.set(record.peerId, record)
      this.#index(record)
    }
    if (this.#changes.length > 2 * this.#records.size + CHANGE_INDEX_SLACK) this.#rebuild()
    this.#wake()
  }

  /** Every record replaced (the node rebuilt its cache from a snapshot of the registry). */
  replaceAll(records: readonly NodeData[]): void {
    this.#records.clear()
    for (const record of records) this.#records.set(record.peerId, record)
    this.#sortedPeerIds = undefined
    this.#rebuild()
    this.#wake()
  }

  /** As Registry.list: matching records in peer id order after `afterPeerId`, at most `limit`. */
  list(filter: ListFilter = {}): NodeData[] {
    const limit = filter.limit ?? LIST_LIMIT_DEFAULT
    const capabilityField = filter.capability === undefined ? undefined : CAPABILITY_FIELD[filter.capability]
    this.#sortedPeerIds ??= [...this.#records.keys()].sort()
    const peerIds = this.#sortedPeerIds
    let i = filter.afterPeerId === undefined ? 0 : firstAbove(peerIds, filter.afterPeerId)
    const matches: NodeData[] = []
    for (; i < peerIds.length && matches.length < limit; i++) {
      const record = this.#records.get(peerIds[i]!)!
      if (filter.active !== undefined && record.isActive !== filter.active) continue
      if (filter.staked !== undefined && record.isStaked !== filter.staked) continue
      if (capabilityField !== undefined && !record[capabilityField]) continue
      if (filter.updatedSinceMs !== undefined && record.lastUpdatedMs < filter.updatedSinceMs) continue
      matches.push(record)
    }
    return matches
  }

  /** As Registry.changesSince: records changed after `sinceIndex`, as they are now, in log order. */
  changesSince(sinceIndex: number, limit: number): Changes {
    const records: NodeData[] = []
    let more = false
    let low = 0
    let high = this.#changes.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if (this.#changes[middle]!.changedIndex <= sinceIndex) low = middle + 1
      else high = middle
    }
    for (let i = low; i < this.#changes.length; i++) {
      const change = this.#changes[i]!
      const record = this.#records.get(change.peerId)
      if (record === undefined || record.changedIndex !== change.changedIndex) continue
      const last = records[records.length - 1]
      if (last !== undefined && records.length >= limit && record.changedIndex !== last.changedIndex) {
        more = true
        break
      }
      records.push(record)
    }
    const last = records[records.length - 1]
    const throughIndex = more && last !== undefined ? last.changedIndex : Math.max(sinceIndex, this.#lastChangedIndex)
    return { records, throughIndex, more }
  }

  /** Resolves once a record changed after `index` is held; rejects with the signal's reason when it aborts. */
  waitForChange(index: number, signal: AbortSignal): Promise<void> {
    if (this.#lastChangedIndex > index) return Promise.resolve()
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason)
        return
      }
      const waiter = {
        index,
        resolve: () => {
          signal.removeEventListener('abort', onAbort)
          resolve()
        },
      }
      const onAbort = (): void => {
        this.#waiters.delete(waiter)
        reject(signal.reason)
      }
      signal.addEventListener('abort', onAbort, { once: true })
      this.#waiters.add(waiter)
    })
  }

  #index(record: NodeData): void {
    const pair = { changedIndex: record.changedIndex, peerId: record.peerId }
    if (record.changedIndex >= this.#lastChangedIndex) {
      this.#changes.push(pair)
      this.#lastChangedIndex = record.changedIndex
      return
    }
    // Out of log order: keep the index sorted, so the binary search in changesSince stays right.
    this.#changes.splice(firstAboveIndex(this.#changes, record.changedIndex), 0, pair)
  }

  #rebuild(): void {
    this.#changes = [...this.#records.values()]
      .map((record) => ({ changedIndex: record.changedIndex, peerId: record.peerId }))
      .sort((a, b) => a.changedIndex - b.changedIndex)
    this.#lastChangedIndex = this.#changes[this.#changes.length - 1]?.changedIndex ?? 0
  }

  #wake(): void {
    for (const waiter of this.#waiters) {
      if (this.#lastChangedIndex <= waiter.index) continue
      this.#waiters.delete(waiter)
      waiter.resolve()
    }
  }
}

function firstAbove(sorted: readonly string[], value: string): number {
  let low = 0
  let high = sorted.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (sorted[middle]! <= value) low = middle + 1
    else high = middle
  }
  return low
}

function firstAboveIndex(changes: readonly { changedIndex: number }[], index: number): number {
  let low = 0
  let high = changes.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (changes[middle]!.changedIndex <= index) low = middle + 1
    else high = middle
  }
  return low
}
