/**
 * Cache defaults, each with its reason.
 */

/**
 * Written beside LevelDB's files once the dir is initialized. LevelDB alone cannot tell a new dir
 * from one whose files were deleted (it would create a fresh, empty database), and a cache that
 * silently restarts empty would also forget the worker's own seq and reuse it. With the marker
 * present, a database without records or without CURRENT is refused as CORRUPT.
 */
export const MARKER_FILE = 'NODELEDGER-WORKER'
/** The LevelDB file that names the live manifest; without it LevelDB sees no database at all. */
export const LEVELDB_CURRENT_FILE = 'CURRENT'
/** How many keys an error message lists when it reports unexpected ones. */
export const KEYS_LISTED_MAX = 5
/**
 * Provisional records are learned from gossip, before the log has them. The topic validator admits
 * only signed deltas from their origin, but a flood of new identities could still grow this set
 * without bound; beyond the cap a provisional record for a peer not yet held is dropped, and the log
 * delivers it (confirmed) soon after anyway.
 */
export const PROVISIONAL_RECORDS_MAX = 100_000
