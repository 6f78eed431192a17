/**
 * Limits and defaults of the registry. Every limit here is part of the replicated state machine's
 * behaviour: replicas that disagreed on one would disagree on which entries apply, so they are
 * constants, not per-replica options.
 */

/**
 * Version written into every command, record and snapshot envelope. Decoders read this one and
 * every older one down to CODEC_VERSION_OLDEST, and refuse any other (UNSUPPORTED_VERSION).
 *
 *   1  the first format: records of 25 fields
 *   2  records gain lastLeftReason (26 fields); a version 2 command that ends a presence records
 *      why in the record, a version 1 command never does (see registry.ts, "Reasons and versions")
 */
export const CODEC_VERSION = 2

/** The oldest version decoders still read: data dirs, worker caches and backups written by version 1. */
export const CODEC_VERSION_OLDEST = 1

/**
 * 16 KiB per record: a node's self-description is a few hundred bytes; the field limits below
 * bound the worst case to about 13 KiB, and this caps what one hostile delta can make us store.
 */
export const RECORD_BYTES_MAX = 16 * 1024

/** A command carries at most one record's worth of fields plus two peer ids. */
export const COMMAND_BYTES_MAX = RECORD_BYTES_MAX

/** 32 multiaddrs: a host listening on TCP, QUIC and WebSockets over v4 and v6 uses about ten. */
export const MULTIADDRS_MAX = 32

/** 320 characters: `/dns4/` plus a 253-character DNS name plus a transport suffix. */
export const MULTIADDR_LENGTH_MAX = 320

/**
 * 128 characters. Canonical peer ids are 46 (RSA, sha256) to 53 (secp256k1, identity) base58
 * characters; the slack leaves room for new key types without admitting unbounded strings.
 */
export const PEER_ID_LENGTH_MAX = 128

/** 64 characters: a semver with pre-release and build metadata fits comfortably. */
export const VERSION_LENGTH_MAX = 64

/** `0x` and 40 hex digits, or empty when the node has not reported one. */
export const ETH_ADDRESS_PATTERN = /^(0x[0-9a-fA-F]{40})?$/

/**
 * 16 replicas may observe a node at once. The design runs three to five; the bound keeps
 * `observers` (stored in every record) small even if membership grows.
 */
export const REPLICAS_MAX = 16

/**
 * One million records: at roughly 1 KiB of heap each that is about 1 GiB, the most a replica should
 * hold. A join for a new peer beyond this is rejected with TOO_LARGE, identically on every replica.
 */
export const RECORDS_MAX = 1_000_000

/** 2^31 - 1 ms (about 24 days): a TTL longer than that is a typo, not a policy. */
export const EXPIRE_TTL_MS_MAX = 2 ** 31 - 1

/** Records returned by one `list` call unless the caller asks for fewer: a page, not the world. */
export const LIST_LIMIT_DEFAULT = 10_000

/** Records returned by one `changesSince` call; a caller pages with `throughIndex`. */
export const CHANGES_LIMIT_DEFAULT = 1_000

/**
 * Validated peer ids remembered so that the same origin's deltas do not re-parse its key each time
 * (about 10 µs each). Cleared when full: a bound, not an LRU, because misses are only slower.
 */
export const PEER_ID_CACHE_ENTRIES_MAX = 65_536
/** The same for canonical multiaddrs (a parse and print is about 5 µs, and every record carries some). */
export const MULTIADDR_CACHE_ENTRIES_MAX = 65_536

/** 1 GiB: a snapshot of RECORDS_MAX records at typical size fits; anything larger is corrupt. */
export const SNAPSHOT_BYTES_MAX = 1024 * 1024 * 1024
