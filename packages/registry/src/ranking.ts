import type { NodeData } from './model.ts'

/**
 * The order `eligible(category)` returns workers in, most reliable first. It is the seed network's
 * SortNodesByTwitterReliability, applied to every category (the seed sorted only twitter workers;
 * the work counters are the same for all):
 *   1. fewer not-found results
 *   2. older last not-found (never, 0, is oldest)
 *   3. more returned items
 *   4. more recent last returned item: the recently productive first
 *   5. fewer timeouts
 *   6. older last timeout (never first)
 *   7. peer id, so that the order is total and the same on every replica
 */
export function compareReliability(a: NodeData, b: NodeData): number {
  if (a.notFound !== b.notFound) return a.notFound - b.notFound
  if (a.notFoundLastMs !== b.notFoundLastMs) return a.notFoundLastMs - b.notFoundLastMs
  if (a.returnedItems !== b.returnedItems) return b.returnedItems - a.returnedItems
  if (a.returnedItemsLastMs !== b.returnedItemsLastMs) return b.returnedItemsLastMs - a.returnedItemsLastMs
  if (a.timeouts !== b.timeouts) return a.timeouts - b.timeouts
  if (a.timeoutsLastMs !== b.timeoutsLastMs) return a.timeoutsLastMs - b.timeoutsLastMs
  return a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0
}
