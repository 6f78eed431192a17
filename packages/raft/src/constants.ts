/**
 * Defaults for Config. Ticks are the host's unit of time; the replica drives one tick every
 * `tickIntervalMs` (10 ms), so the defaults below read as milliseconds × 10.
 */

/** 50 ms: etcd's default heartbeat; frequent enough that followers' leases stay fresh. */
export const HEARTBEAT_TICKS_DEFAULT = 5
/** 300 ms base; each replica waits a random time in [base, 2·base) (Raft §5.2). Six heartbeats of slack. */
export const ELECTION_TIMEOUT_TICKS_DEFAULT = 30
/** 64 entries per AppendEntries: enough to amortise a round trip without starving heartbeats. */
export const ENTRIES_PER_MESSAGE_MAX_DEFAULT = 64
/** 1 MiB per AppendEntries; keeps one message well under the transport's frame limit. */
export const ENTRIES_BYTES_PER_MESSAGE_MAX_DEFAULT = 1024 * 1024
/** AppendEntries in flight per follower in replicate state (pipelining depth). */
export const INFLIGHT_MESSAGES_MAX_DEFAULT = 256
/** Uncommitted bytes a leader accepts before it drops proposals: back-pressure, not unbounded memory. */
export const UNCOMMITTED_BYTES_MAX_DEFAULT = 64 * 1024 * 1024
/** Committed entries handed out per Ready: bounds the host's apply batch. */
export const COMMITTED_BYTES_PER_READY_MAX_DEFAULT = 4 * 1024 * 1024
/** 256 KiB chunks: big enough to stream quickly on loopback, small enough to interleave with heartbeats. */
export const SNAPSHOT_CHUNK_BYTES_DEFAULT = 256 * 1024
/** ReadIndex requests queued before the leader has committed an entry of its term. */
export const PENDING_READS_MAX_DEFAULT = 4096
/**
 * Ticks of clock drift the lease tolerates: the leader stops serving lease reads this long before
 * followers could vote for someone else.
 */
export const LEASE_MARGIN_TICKS_DEFAULT = 2
/**
 * When the leader's connection closes, followers campaign in order of id, this many ticks apart
 * (50 ms): more than a pre-vote round trip on a loaded host, so the next in line has granted the
 * first one's pre-vote (and stood down) before its own turn comes. At 2 ticks, two followers on a
 * busy 2-core machine both won their pre-votes and split the real vote.
 */
export const LEADER_LOST_STAGGER_TICKS_DEFAULT = 5
/** A conf change's opaque context (a member's peer id and address, as JSON): 4 KiB is plenty. */
export const CONF_CHANGE_CONTEXT_LENGTH_MAX = 4096
/**
 * A probe the follower rejected without the leader learning anything new is repeated only after
 * this many heartbeat intervals, doubling up to PROBE_BACKOFF_HEARTBEATS_MAX: a follower whose log
 * cannot match (it lost entries it once acknowledged) gets one small probe now and then, never a flood.
 */
export const PROBE_BACKOFF_HEARTBEATS_MAX = 16
