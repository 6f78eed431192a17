/**
 * Transport defaults, each with its reason (STYLE §4: a limit on everything, named unit last).
 */
import { RAFT_FRAME_BYTES_MAX } from '@nodeledger/protocol'

// ---------------------------------------------------------------------------------------------
// The libp2p host (createReplicaHost)

/**
 * Connections a replica holds before libp2p prunes the least valuable ones. Each worker and client
 * holds one connection to the replica it talks to (usually the leader); 1024 leaves room for a
 * network of several hundred workers plus operators. Replica peers are tagged (REPLICA_PEER_TAG)
 * and always carry open streams, so pruning never picks them.
 */
export const HOST_CONNECTIONS_MAX = 1024

/**
 * Inbound connections still in their Noise/Yamux upgrade. libp2p's default (10) is for browsers;
 * a replica that restarts sees every worker reconnect at once, so allow a burst, still bounded.
 */
export const HOST_INCOMING_PENDING_CONNECTIONS_MAX = 64

/**
 * Inbound connections one IP address may open per second. libp2p's default of 5 refuses honest
 * traffic on loopback clusters, where every replica, worker and test client shares 127.0.0.x
 * addresses and reconnects together after a fault; 100 still stops a runaway dialer.
 */
export const HOST_INBOUND_CONNECTIONS_PER_HOST_PER_SECOND_MAX = 100

/**
 * One dial (TCP connect, Noise handshake, Yamux), whole. On a LAN a live peer answers in
 * milliseconds; a peer that accepts TCP but never finishes the handshake (SIGSTOPped) must not hold
 * a dial slot for libp2p's default 10 s.
 */
export const HOST_DIAL_TIMEOUT_MS = 5_000

/** Protocol negotiation on a new stream, either direction: a round trip on a working connection. */
export const HOST_STREAM_NEGOTIATION_TIMEOUT_MS = 5_000

/**
 * libp2p's connection monitor pings every connection this often and aborts one whose ping times
 * out: the only way a connection to a paused (not dead) process ever closes. Raft does not wait for
 * it (its election timeout covers a paused leader), nor do leases (a worker's TTL ends its lease);
 * it just keeps dead connections from piling up. Each ping is a new stream (multistream-select, a
 * logger per stream): at 10 s, 250 workers cost the leader 25 new streams a second for nothing the
 * registry needs (issue 13, the idle cost per worker). 60 s bounds a dead connection's life as well.
 */
export const HOST_PING_INTERVAL_MS = 60_000

/** Name reported by identify. */
export const HOST_AGENT_NAME = 'nodeledger-authority'

// ---------------------------------------------------------------------------------------------
// PeerLinks

/** Frames queued per peer before send() drops (Raft retransmits; memory must not grow). */
export const QUEUE_FRAMES_MAX_DEFAULT = 1024

/**
 * Bytes queued per peer before send() drops: the frame count alone would let 1024 frames of 8 MiB
 * pile up for a dead peer. 64 MiB is eight maximal frames, many seconds of replication traffic.
 */
export const QUEUE_BYTES_MAX_DEFAULT = 64 * 1024 * 1024

/** Largest frame either direction; the wire limit of a Raft frame (PROTOCOL.md "Raft"). */
export const FRAME_BYTES_MAX_DEFAULT = RAFT_FRAME_BYTES_MAX

/**
 * Queued frames are written together, up to this many bytes per write (at least one frame): one
 * Yamux data frame and one syscall for a burst of small Raft messages, without holding a large
 * batch back behind a slow socket.
 */
export const WRITE_BATCH_BYTES_MAX = 1024 * 1024

/**
 * First reconnect delay after a failure (before jitter), doubled per consecutive failure. Short:
 * on loopback or a LAN a failed dial to a live peer is rare, and a peer that comes back should be
 * reached at once. A peer that dials us first cuts the wait short anyway (PeerLinks wakes the link
 * on peer:connect).
 */
export const RECONNECT_BACKOFF_BASE_MS_DEFAULT = 25

/** Ceiling of the reconnect delay: a dead peer costs one refused dial a second, at most. */
export const RECONNECT_BACKOFF_MAX_MS_DEFAULT = 1_000

/**
 * A stream that stayed open this long counts as healthy: losing it resets the backoff, so the next
 * dial is immediate. A stream refused or reset sooner (an unauthorised or misconfigured link) keeps
 * backing off instead of redialling in a tight loop.
 */
export const LINK_HEALTHY_MS = 1_000

/** One attempt to open the outbound stream (dial + negotiation) before it counts as failed. */
export const LINK_DIAL_TIMEOUT_MS = 3_000

/** stop() waits this long for queued bytes to flush before aborting a stream. */
export const LINK_CLOSE_TIMEOUT_MS = 500

/**
 * Inbound streams per connection and protocol. One is in use at a time (the peer's one outbound
 * link); the others cover a replacement that arrives before the old one's reset is processed.
 */
export const INBOUND_STREAMS_PER_CONNECTION_MAX = 4

/** Outbound streams per connection and protocol, for the same reason as the inbound limit. */
export const OUTBOUND_STREAMS_PER_CONNECTION_MAX = 4

/** Distinct refused peer ids that get a log line each; past this, refusals are only counted. */
export const REFUSED_PEERS_LOGGED_MAX = 1024

/**
 * Peer store tag on configured replicas: the connection pruner sums tag values and closes the
 * lowest first, so replica links are the last candidates. Not libp2p's KEEP_ALIVE tag, whose
 * reconnect queue would race PeerLinks' own reconnects.
 */
export const REPLICA_PEER_TAG = 'nodeledger-replica'
export const REPLICA_PEER_TAG_VALUE = 100

/** Key files are tiny (an Ed25519 key marshalled is 68 bytes); anything much larger is not a key. */
export const KEY_FILE_BYTES_MAX = 16 * 1024
