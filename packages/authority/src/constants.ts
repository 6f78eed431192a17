/**
 * Replica defaults, each with its reason. Protocol ids and wire limits live in @nodeledger/protocol.
 */
export { API_PROTOCOL, RAFT_PROTOCOL, SNAPSHOT_PROTOCOL } from '@nodeledger/protocol'

/**
 * 10 ms ticks, heartbeat every 5 (50 ms), election timeout 30–60 ticks (300–600 ms): etcd's
 * recommended loopback/LAN timing, so a leader that is paused or cut off is replaced in well under
 * a second, while one that dies is replaced within a few ticks (its peers see the connection close).
 */
export const DEFAULT_TIMING = {
  tickIntervalMs: 10,
  heartbeatTicks: 5,
  electionTimeoutTicks: 30,
  leaseReads: false,
} as const
/** Snapshot and compact every 10,000 applied entries: restart replays at most that many. */
export const SNAPSHOT_EVERY_ENTRIES_DEFAULT = 10_000
/** Raft frames queued per peer before new ones are dropped (Raft retransmits what is lost). */
export const RAFT_QUEUE_FRAMES_MAX = 1024
/** Snapshot chunks queued per peer: a transfer is paced by acknowledgements, so a few suffice. */
export const SNAPSHOT_QUEUE_FRAMES_MAX = 16
/** One Raft frame: a batch of AppendEntries (1 MiB of entries each) to one peer, or a snapshot chunk. */
export const RAFT_FRAME_BYTES_MAX = 8 * 1024 * 1024
/** Proposals waiting to commit before new ones are refused UNAVAILABLE (back-pressure). */
export const PENDING_PROPOSALS_MAX = 10_000
/** Server-side deadline of one API request. */
export const REQUEST_TIMEOUT_MS_DEFAULT = 5_000
/** Concurrent API streams one client may hold open (watches included). */
export const API_STREAMS_PER_CONNECTION_MAX = 256
/**
 * Worker leases (etcd-style): a node with no heartbeat for 10 s is marked inactive by the leader.
 * Workers heartbeat every TTL/3 by default, so two lost heartbeats in a row do not expire a lease.
 */
export const DEFAULT_LIVENESS = { ttlMs: 10_000, disconnectGraceMs: 2_000 } as const
/** How often the leader looks for expired leases: a lease ends at most this late after its TTL. */
export const LEASE_SWEEP_INTERVAL_MS = 250
/**
 * A sweep this much later than its interval means the leader was stalled: leases are credited with
 * the stall instead of expired (lease-keeper.ts). 250 ms (a whole sweep interval): well above timer jitter
 * and a GC pause on an idle machine, far below the TTL.
 */
export const LEASE_SWEEP_STALL_MS_MIN = 250
/**
 * Back-pressure on a join storm: activations by heartbeat (a node's first heartbeat after its join
 * delta, or its return) the leader proposes at once. 64 fill a group commit or two; the rest wait.
 */
export const LEASE_ACTIVATIONS_INFLIGHT_MAX = 64
/**
 * Activations waiting for a slot; one more is refused UNAVAILABLE "retry in 500 ms" (the worker
 * retries its heartbeat). 2,048: a storm of 2,000 workers waits rather than retries.
 */
export const LEASE_ACTIVATIONS_QUEUED_MAX = 2_048
export const LEASE_ACTIVATIONS_RETRY_AFTER_MS = 500
/** Liveness transitions the leader keeps in flight at once; the rest wait for the next sweep. */
export const LEASE_TRANSITIONS_INFLIGHT_MAX = 256
/**
 * A watch wakes a linger after the first entry applied since its last event, with every entry
 * applied meanwhile in one event (PROTOCOL.md "Watch": events may be batched). A join storm of N
 * workers applies 2N entries; without it each watcher gets each entry as a frame of its own, N
 * frames per entry. The linger is 20 ms plus 0.1 ms per open watch (100 ms at 1,000 workers), at
 * most 250 ms: the frames the leader writes per second stay about constant as the network grows,
 * and a change still reaches every worker well inside the fan-out target (99% within 1 s).
 */
export const WATCH_LINGER_MS_MIN = 20
export const WATCH_LINGER_MS_PER_WATCHER = 0.1
export const WATCH_LINGER_MS_MAX = 250
/** Watch events kept encoded per applied index: one per distinct watcher position (most share one). */
export const WATCH_FRAMES_CACHED_MAX = 64
/** Software version reported by status (and `nodeledger --version`). */
export const SOFTWARE_VERSION = '0.2.0'
/**
 * A learner may be promoted to voter once it holds the log to within this many entries of the
 * leader's commit (etcd: 90% of the leader's match): it then counts toward commit without first
 * holding everyone up while it catches up.
 */
export const PROMOTE_LAG_ENTRIES_MAX = 1_000

/**
 * A replica warns when the registry's clock runs ahead of its own by more than this. The registry's
 * clock is the newest leader stamp applied (it never runs backwards: a stamp below it is clamped),
 * and a stamp normally trails the clock of the replica applying it by the commit latency, so only a
 * clock error puts it ahead. 5 s: far above NTP's error and any commit latency, half the default
 * lease TTL (10 s), so the warning comes before uptimes are off by a lease.
 */
export const CLOCK_AHEAD_WARN_MS = 5_000
