import type { Category, Changes, ListFilter, NodeData, SelfReported } from '@nodeledger/registry'

/** What GET /v1/status answers; a source adds what it knows about itself (term, readiness...). */
export interface GatewayStatus {
  readonly role: 'worker' | 'replica'
  readonly peerId: string
  /** The log index this node's records reflect. */
  readonly appliedIndex: number
  /** The leader as this node knows it, or null while it knows none. */
  readonly leader: { readonly peerId: string; readonly [detail: string]: unknown } | null
  /** How many entries this node is behind what it knows the log holds; null when it cannot say. */
  readonly lagEntries: number | null
  readonly [detail: string]: unknown
}

/** What PUT /v1/self answers once the log has the change. */
export interface SelfUpdateResult {
  /** The origin seq the update was published with. */
  readonly seq: number
  /** The log index that applied it (or that had applied it, for a retry answered as a duplicate). */
  readonly index: number
}

/**
 * The node's state the gateway serves, read from memory: the worker's tracker cache or the
 * replica's state machine. Reads are synchronous and describe one moment (the `appliedIndex`
 * read with them). A source that is not ready (starting, stopping) throws GatewayError UNAVAILABLE.
 */
export interface GatewaySource {
  readonly role: 'worker' | 'replica'
  appliedIndex(): number
  get(peerId: string): NodeData | undefined
  /** The registry's `list`: records matching the filter in peer id order, after `afterPeerId`, at most `limit`. */
  list(filter: ListFilter): NodeData[]
  /**
   * The registry's `changesSince`: the records changed after `index`, as they are now, in log
   * order (a record changed several times since `index` is there once, at its latest change);
   * never splits the records of one entry; `throughIndex` is where the next page starts.
   */
  changesSince(index: number, limit: number): Changes
  /** Resolves once a change after `index` can be read (or rejects when `signal` aborts). */
  waitForChange(index: number, signal: AbortSignal): Promise<void>
  status(): GatewayStatus
  /** The ranking for `category` (active, staked, capable, most reliable first); absent: no route. */
  readonly eligible?: (category: Category) => NodeData[]
  /**
   * Publishes this node's own fields (already validated as a delta's), gossiped and submitted;
   * resolves when the log has it. Absent (a replica): PUT /v1/self is not mounted.
   */
  readonly updateSelf?: (fields: Partial<SelfReported>) => Promise<SelfUpdateResult>
}
