/**
 * NodeData: one record per node of the network, the seed network's node record made
 * deterministic. Times are integer milliseconds since the Unix epoch; 0 means "never".
 *
 * Fields fall in three groups, and the group decides who may change a field (see merge.ts):
 *   self-reported  the node says them about itself in deltas; its highest sequence wins
 *   observed       replicas see the node connect and disconnect; the leader's stamp times them
 *   bookkeeping    derived by the state machine (originSeq, observers, changedIndex)
 */
export interface NodeData {
  /** Canonical base58btc libp2p peer id; the registry's key. */
  readonly peerId: string
  /** Canonical multiaddr strings the node listens on, in the order it reported them. */
  readonly multiaddrs: readonly string[]

  // Observed: set from observations, timed by the leader's stamp.
  readonly firstJoinedMs: number
  readonly lastJoinedMs: number
  readonly lastLeftMs: number
  /**
   * Why the node last became inactive, paired with lastLeftMs: set (possibly to '') wherever
   * lastLeftMs is, kept while the node is active again (history, like lastLeftMs). '' while it never
   * left, and when the reason is unknown: it left before codec version 2 recorded reasons, or its
   * presence ended because the replica holding it left the replica set (no verdict on the node).
   */
  readonly lastLeftReason: LastLeftReason
  /** Stamp of the last entry that changed this record: the last evidence the node was alive. */
  readonly lastUpdatedMs: number
  /** Sum of closed presence intervals; the open one (if active) is added by `uptimeMs`. */
  readonly uptimeAccumulatedMs: number
  /** True while at least one replica sees the node connected (`observers` is not empty). */
  readonly isActive: boolean

  // Self-reported.
  readonly isStaked: boolean
  readonly isValidator: boolean
  readonly isTwitterScraper: boolean
  readonly isWebScraper: boolean
  readonly isDiscordScraper: boolean
  readonly isTelegramScraper: boolean
  readonly version: string
  /** `0x` and 40 hex digits, or empty. */
  readonly ethAddress: string
  readonly returnedItems: number
  readonly returnedItemsLastMs: number
  readonly timeouts: number
  readonly timeoutsLastMs: number
  readonly notFound: number
  readonly notFoundLastMs: number

  // Bookkeeping.
  /** Highest origin sequence applied; 0 before the node's first delta. */
  readonly originSeq: number
  /** Replica peer ids that currently see the node connected, sorted. */
  readonly observers: readonly string[]
  /** Log index of the entry that last changed this record. */
  readonly changedIndex: number
}

/**
 * Why a node became inactive, as its record keeps it (the liveness reasons that end a presence):
 *   ttl           no heartbeat for the lease TTL (liveness `ttl`, or an `expire` command)
 *   left          the node said goodbye (liveness `left`)
 *   disconnected  its connection closed and did not come back (liveness `disconnected`), or the
 *                 replica that saw it connected lost it (an observation `left`, a replica reset)
 *   ''            never left, or not known (see NodeData.lastLeftReason)
 */
export type LastLeftReason = '' | 'ttl' | 'left' | 'disconnected'

export const LAST_LEFT_REASONS: readonly LastLeftReason[] = ['', 'ttl', 'left', 'disconnected']

/** The work categories of the seed network; each maps to one capability flag. */
export type Category = 'twitter' | 'web' | 'discord' | 'telegram'

export const CATEGORIES: readonly Category[] = ['twitter', 'web', 'discord', 'telegram']

export const CAPABILITY_FIELD = {
  twitter: 'isTwitterScraper',
  web: 'isWebScraper',
  discord: 'isDiscordScraper',
  telegram: 'isTelegramScraper',
} as const satisfies Record<Category, keyof NodeData>

/** The fields a delta may carry: what a node reports about itself. */
export const SELF_REPORTED_FIELDS = [
  'multiaddrs',
  'isStaked',
  'isValidator',
  'isTwitterScraper',
  'isWebScraper',
  'isDiscordScraper',
  'isTelegramScraper',
  'version',
  'ethAddress',
  'returnedItems',
  'returnedItemsLastMs',
  'timeouts',
  'timeoutsLastMs',
  'notFound',
  'notFoundLastMs',
] as const satisfies readonly (keyof NodeData)[]

export type SelfReportedField = (typeof SELF_REPORTED_FIELDS)[number]
export type SelfReported = Pick<NodeData, SelfReportedField>

/**
 * Every field, in the order the codec writes a record. Append only: reordering changes the bytes
 * of every snapshot and needs a new CODEC_VERSION. Version 1 records hold the first
 * RECORD_FIELDS_V1 fields; version 2 added lastLeftReason.
 */
export const RECORD_FIELDS = [
  'peerId',
  'multiaddrs',
  'firstJoinedMs',
  'lastJoinedMs',
  'lastLeftMs',
  'lastUpdatedMs',
  'uptimeAccumulatedMs',
  'isActive',
  'isStaked',
  'isValidator',
  'isTwitterScraper',
  'isWebScraper',
  'isDiscordScraper',
  'isTelegramScraper',
  'version',
  'ethAddress',
  'returnedItems',
  'returnedItemsLastMs',
  'timeouts',
  'timeoutsLastMs',
  'notFound',
  'notFoundLastMs',
  'originSeq',
  'observers',
  'changedIndex',
  // Codec version 2.
  'lastLeftReason',
] as const satisfies readonly (keyof NodeData)[]

/** Fields of a version 1 record: RECORD_FIELDS without lastLeftReason. */
export const RECORD_FIELDS_V1 = 25

/** A record nobody has said anything about yet. */
export function emptyRecord(peerId: string): NodeData {
  return {
    peerId,
    multiaddrs: [],
    firstJoinedMs: 0,
    lastJoinedMs: 0,
    lastLeftMs: 0,
    lastLeftReason: '',
    lastUpdatedMs: 0,
    uptimeAccumulatedMs: 0,
    isActive: false,
    isStaked: false,
    isValidator: false,
    isTwitterScraper: false,
    isWebScraper: false,
    isDiscordScraper: false,
    isTelegramScraper: false,
    version: '',
    ethAddress: '',
    returnedItems: 0,
    returnedItemsLastMs: 0,
    timeouts: 0,
    timeoutsLastMs: 0,
    notFound: 0,
    notFoundLastMs: 0,
    originSeq: 0,
    observers: [],
    changedIndex: 0,
  }
}

/**
 * Uptime at `nowMs`: the closed intervals plus the open one if the node is active. Reads may use
 * the wall clock; apply never does, which is why the open interval is not stored.
 */
export function uptimeMs(record: NodeData, nowMs: number): number {
  if (!record.isActive) return record.uptimeAccumulatedMs
  return record.uptimeAccumulatedMs + Math.max(0, nowMs - record.lastJoinedMs)
}

/** Whether the node offers `category` work: staked and advertising the capability (seed's CanDoWork). */
export function canDoWork(record: NodeData, category: Category): boolean {
  return record.isStaked && record[CAPABILITY_FIELD[category]]
}
