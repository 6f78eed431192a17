/**
 * NodeEventTracker defaults, each with its reason. The lease TTL itself is the cluster's
 * (cluster file `liveness.ttlMs`, 10 s by default); a worker's interval must stay well below it.
 */

/** A heartbeat every 3 s: a third of the default 10 s lease, so two lost heartbeats do not expire it. */
export const HEARTBEAT_INTERVAL_MS_DEFAULT = 3_000
/**
 * The lease TTL a tracker assumes when it is not told the cluster's (NodeEventTrackerOptions
 * leaseTtlMs, from the cluster file's `liveness.ttlMs`): the authority's default, DEFAULT_LIVENESS
 * (a test keeps the two equal; the worker does not depend on the authority package).
 */
export const LEASE_TTL_MS_DEFAULT = 10_000
/**
 * Anti-entropy: a `since(appliedIndex)` every 5 s closes any gap the watch might leave (a watch
 * that stalls on a paused leader, a lost event). It costs one small round trip when nothing changed.
 */
export const ANTI_ENTROPY_INTERVAL_MS_DEFAULT = 5_000
/** Gossip connections a worker keeps to other workers: gossipsub's mesh degree D is 6. */
export const GOSSIP_PEERS_TARGET_DEFAULT = 6
/** How often the worker tops up its gossip connections from the registry's active nodes. */
export const PEER_MAINTENANCE_INTERVAL_MS = 2_000
/** Dials started per maintenance round: bounded, so a large registry cannot start a dial storm. */
export const PEER_DIALS_PER_ROUND_MAX = 3
/** Records per `since` page during sync (the API's own limit is higher; this keeps frames small). */
export const SYNC_PAGE_RECORDS = 2_000
/** Pause between watch attempts after the client gave up on every replica. */
export const WATCH_RETRY_DELAY_MS = 500
/** Change events buffered for listeners per apply; a larger apply emits one `resync` instead. */
export const CHANGE_EVENTS_PER_APPLY_MAX = 10_000
/** Client deadline per request; a worker waits through elections (well under a second) by retrying. */
export const REQUEST_TIMEOUT_MS_DEFAULT = 2_000
/** Client attempts per request before a worker-level retry takes over. */
export const REQUEST_ATTEMPTS_MAX_DEFAULT = 10
/** Connections a worker's host keeps at most (replicas, gossip peers, peers dialing in). */
export const WORKER_CONNECTIONS_MAX = 64
/**
 * A worker is ready (GET /ready 200) once synced, while the leader has acknowledged a heartbeat
 * within this many heartbeat intervals (it then follows a leader: presence is the leader's alone)
 * and its applied index is within READY_APPLIED_LAG_ENTRIES_MAX of the leader's. Three intervals:
 * one lost heartbeat, or an election, does not flip it; a worker cut off from the leader does so
 * well before its lease (the TTL is over three intervals) expires.
 */
export const READY_HEARTBEAT_INTERVALS_MAX = 3
/** The same bound a replica is held to (authority READY_APPLIED_LAG_ENTRIES_MAX). */
export const READY_APPLIED_LAG_ENTRIES_MAX = 1_000

/**
 * libp2p's connection monitor pings each of a worker's connections this often (a new stream each
 * time) and aborts one whose ping fails. At libp2p's 10 s, every worker cost every replica it talks
 * to a stream every 10 s; the requests' own deadlines and the lease TTL already notice a dead
 * replica, so the monitor only has to keep dead connections from lingering.
 */
export const WORKER_PING_INTERVAL_MS = 60_000
