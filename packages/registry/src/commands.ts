import type { Category, NodeData, SelfReported } from './model.ts'
import type { RegistryErrorCode } from './errors.ts'

/**
 * A node's change to its own record: only the fields that changed, its peer id, and its sequence
 * number (monotonic per origin, kept across the origin's restarts, starting at 1).
 */
export interface Delta {
  readonly originPeerId: string
  readonly seq: number
  readonly fields: Partial<SelfReported>
}

/** What a replica saw happen to a peer's connection. */
export type ObservationEvent = 'joined' | 'left'

/**
 * Why the leader changed a node's liveness (the `liveness` command):
 *   heartbeat     a heartbeat arrived from a node the registry holds inactive
 *   connected     a known node connected to the leader while inactive
 *   ttl           no heartbeat for the lease TTL (the leader's in-memory last-seen time)
 *   left          the node said goodbye (graceful leave)
 *   disconnected  the node's last connection to the leader closed and it did not come back
 */
export type LivenessReason = 'heartbeat' | 'connected' | 'ttl' | 'left' | 'disconnected'

/**
 * The commands the registry's log carries. The Raft log itself holds opaque bytes: each entry's
 * data is one encoded CommandEnvelope.
 *
 *   delta        a node's self-reported change. `submitterPeerId` is the peer the leader
 *                authenticated: the origin itself, or a replica relaying a gossip message whose
 *                signature by the origin it verified.
 *   observation  a replica saw `peerId` connect or disconnect.
 *   liveness     the leader's lease on a node changed (etcd-lease style, see merge.ts `setLiveness`):
 *                active opens a presence interval held by `replicaPeerId`, inactive closes every
 *                presence at this entry's stamp. Heartbeats that change nothing never reach the log.
 *   replica-reset  a replica (re)started and sees nobody: every presence it held ends.
 *   expire       end the presence of every active node that has shown no sign of life for `ttlMs`:
 *                covers a replica that died holding presences and never came back.
 *   replicas     the replica set changed: only these may observe; presences held by others end.
 */
export type Command =
  | { readonly kind: 'delta'; readonly submitterPeerId: string; readonly delta: Delta }
  | {
      readonly kind: 'observation'
      readonly replicaPeerId: string
      readonly peerId: string
      readonly event: ObservationEvent
    }
  | {
      readonly kind: 'liveness'
      readonly replicaPeerId: string
      readonly peerId: string
      readonly active: boolean
      readonly reason: LivenessReason
    }
  | { readonly kind: 'replica-reset'; readonly replicaPeerId: string }
  | { readonly kind: 'expire'; readonly ttlMs: number }
  | { readonly kind: 'replicas'; readonly replicaPeerIds: readonly string[] }

export type CommandKind = Command['kind']

/**
 * What the leader proposes. `timestampMs` is the leader's wall clock when it proposed: the only
 * time apply ever uses, so every replica computes the same registry from the same log.
 */
export interface CommandEnvelope {
  readonly timestampMs: number
  readonly command: Command
  /**
   * The codec version the entry was written in, when older than CODEC_VERSION: decodeCommand sets
   * it for a version 1 entry, whose apply must stay what it was when it was written (it records no
   * lastLeftReason). Absent means CODEC_VERSION, and encoders always write that.
   */
  readonly version?: number
}

/**
 * One committed Raft entry as the registry sees it. The leader's stamp is inside `data` (the
 * encoded CommandEnvelope), not beside it: one source of truth, so a host cannot pass a stamp that
 * disagrees with the log.
 */
export interface RegistryLogEntry {
  readonly index: number
  readonly data: Uint8Array
}

/** Why an entry that decoded fine changed nothing. Counted in RegistryStats. */
export type StaleReason =
  /** Delta sequence equal to the highest applied: the same delta delivered twice. */
  | 'REPLAYED'
  /** Delta sequence below the highest applied: overtaken by a newer delta. */
  | 'STALE_SEQUENCE'
  /** A replica reported a join for a peer it already sees connected. */
  | 'DUPLICATE_JOIN'
  /** A replica reported a leave for a peer it did not see connected (or an unknown peer). */
  | 'LEAVE_WITHOUT_JOIN'
  /** A reset, expire or replicas command that ended no presence and changed nothing else. */
  | 'NO_CHANGE'

export type ApplyResult =
  | {
      readonly status: 'applied'
      readonly index: number
      readonly kind: CommandKind
      /** Records this entry changed, sorted by peer id. */
      readonly peerIds: readonly string[]
    }
  | {
      readonly status: 'stale'
      readonly index: number
      readonly kind: CommandKind
      /** Always STALE: lets a host answer a submit with one code table for stale and rejected. */
      readonly code: 'STALE'
      readonly reason: StaleReason
    }
  | {
      readonly status: 'rejected'
      readonly index: number
      readonly code: RegistryErrorCode
      readonly message: string
    }

/** Counters of what apply did. Part of the replicated state: snapshots carry them. */
export interface RegistryStats {
  readonly appliedIndex: number
  /** Highest leader stamp applied; time inside the registry never runs backwards past it. */
  readonly clockMs: number
  readonly records: number
  readonly entriesApplied: number
  readonly entriesStale: number
  readonly entriesRejected: number
  readonly deltasReplayed: number
  readonly deltasStale: number
  readonly observationsIgnored: number
}

/** Filter for `list`. Every condition given must hold. */
export interface ListFilter {
  readonly active?: boolean
  readonly staked?: boolean
  readonly capability?: Category
  /** Records whose lastUpdatedMs is at or after this. */
  readonly updatedSinceMs?: number
  /** Start after this peer id (exclusive): the cursor for the next page. */
  readonly afterPeerId?: string
  readonly limit?: number
}

/** A page of records changed after some log index, in the order the log changed them. */
export interface Changes {
  readonly records: readonly NodeData[]
  /** Pass as `sinceIndex` to get the next page. Never splits the records of one entry. */
  readonly throughIndex: number
  /** Whether more changes follow `throughIndex`. */
  readonly more: boolean
}
