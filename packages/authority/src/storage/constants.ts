/**
 * Storage defaults, each with its reason.
 */

/**
 * A small file written beside LevelDB's own once the dir is initialized. LevelDB alone cannot tell a
 * brand-new dir from one whose files were deleted or truncated to nothing (it would happily create a
 * fresh, empty database), and a founding replica that silently restarts empty could vote twice in a
 * term. With the marker present, an empty or CURRENT-less database is refused as CORRUPT.
 */
export const MARKER_FILE = 'NODELEDGER'
/** The LevelDB file that names the live manifest; without it LevelDB sees no database at all. */
export const LEVELDB_CURRENT_FILE = 'CURRENT'
/** How many keys an error message lists when it reports unexpected ones. */
export const KEYS_LISTED_MAX = 5
