/**
 * Protocol ids, versions and limits of what crosses the wire. docs/PROTOCOL.md is the normative
 * description; each constant here names its section there.
 */

/** Raft messages between replicas (PROTOCOL.md "Raft"). Only configured replica peer ids may open it. */
export const RAFT_PROTOCOL = '/nodeledger/raft/1'

/** InstallSnapshot chunks between replicas, kept off the Raft stream so a large transfer never delays heartbeats. */
export const SNAPSHOT_PROTOCOL = '/nodeledger/snapshot/1'

/**
 * The client API (PROTOCOL.md "Client API"): one request per stream, or a session of many
 * multiplexed requests when the first request carries an `id` (PROTOCOL.md "Sessions").
 */
export const API_PROTOCOL = '/nodeledger/api/1'

/** Gossipsub topic on which workers publish their own deltas. */
export const DELTAS_TOPIC = '/nodeledger/deltas/1'

/** The `v` of every gossiped delta (PROTOCOL.md "Gossip: /nodeledger/deltas/1"); a message with another `v` is rejected. */
export const GOSSIP_DELTA_VERSION = 1

/**
 * 16 KiB per gossiped delta, checked before the bytes are parsed. The registry's field limits bound
 * the largest valid delta to about 11 KiB in this named-field form (32 multiaddrs of 320 characters
 * dominate; a test encodes that worst case), so every delta a replica would accept fits, while a
 * hostile message costs no parse and is rejected (penalising its sender) rather than relayed.
 * Gossipsub's own per-message limit must be at least this plus its envelope.
 */
export const GOSSIP_DELTA_BYTES_MAX = 16 * 1024

/** The `v` of every API frame. A frame with another `v` is answered INVALID, naming the versions spoken. */
export const PROTOCOL_VERSION = 1

/** Versions this build reads; listed in the INVALID message for an unknown `v`. */
export const PROTOCOL_VERSIONS_SUPPORTED: readonly number[] = [PROTOCOL_VERSION]

/**
 * 256 KiB per request frame: the largest request is a submit, whose delta the registry bounds to
 * 16 KiB (COMMAND_BYTES_MAX); the slack is for envelope and future fields, not for payload.
 */
export const API_REQUEST_FRAME_BYTES_MAX = 256 * 1024

/**
 * 4 MiB per response or watch-event frame: a page of 1000 typical records (300 to 600 bytes each) is
 * well under a megabyte; a server cuts pages so that a frame never exceeds this.
 */
export const API_RESPONSE_FRAME_BYTES_MAX = 4 * 1024 * 1024

/** 8 MiB per Raft frame: a batch of appended entries or one snapshot chunk. */
export const RAFT_FRAME_BYTES_MAX = 8 * 1024 * 1024

/**
 * Request ids are unsigned 32-bit integers (PROTOCOL.md "Sessions"): ample for 256 in flight with
 * reuse after an answer, and small enough for any language's integer type.
 */
export const REQUEST_ID_MAX = 2 ** 32 - 1

/**
 * 256 requests in flight per session: enough to keep a replica's group commit full from one client
 * (a batch of writes per round trip), while bounding what a server holds per stream. A server
 * stops reading a session that has this many pending; a client must not send more.
 */
export const SESSION_REQUESTS_INFLIGHT_MAX = 256

/** Records one `list` page may ask for; also the page size when the filter gives no limit. */
export const LIST_LIMIT_MAX = 1000
export const LIST_LIMIT_DEFAULT = LIST_LIMIT_MAX

/** Records one `since` page may ask for. */
export const SINCE_LIMIT_MAX = 10_000

/** Records carried by one response or watch event, whatever the op: bounds decoder work per frame. */
export const RECORDS_PER_FRAME_MAX = SINCE_LIMIT_MAX

/** 1024 characters of error message: enough to say what was wrong, not a channel for data. */
export const ERROR_MESSAGE_LENGTH_MAX = 1024

/** Members listed in a status answer; the registry's REPLICAS_MAX bounds a cluster the same way. */
export const MEMBERS_MAX = 16

/** Software version string in a status answer. */
export const SOFTWARE_VERSION_LENGTH_MAX = 64

/** A cluster id (the cluster file's `clusterId`, a UUID when `cluster init` wrote it): 128 characters at most. */
export const CLUSTER_ID_LENGTH_MAX = 128

/**
 * 1 MiB of snapshot data per chunk frame (PROTOCOL.md "Snapshot"): a quarter of the response frame
 * limit, so a chunk and its envelope never come near it, and small enough that a leader writing a
 * large snapshot yields to its event loop (heartbeats, other requests) between chunks.
 */
export const SNAPSHOT_CHUNK_BYTES_MAX = 1024 * 1024

/**
 * The largest snapshot a client accepts: the registry's own snapshot limit (1 GiB, its
 * SNAPSHOT_BYTES_MAX) plus 1 MiB for the member directory and the state machine's envelope. A header
 * announcing more is TOO_LARGE before anything is buffered.
 */
export const SNAPSHOT_DATA_BYTES_MAX = 1024 * 1024 * 1024 + 1024 * 1024

/** Bytes of a SHA-256 digest: the snapshot end frame's `sha256`. */
export const SHA256_BYTES = 32
