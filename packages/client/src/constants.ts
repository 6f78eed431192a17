/** Defaults of AuthorityClient, each with its reason. */

/**
 * 2 s per attempt: a healthy cluster commits in a few milliseconds and elects a new leader in well
 * under a second, so an attempt that takes longer is talking to a replica that will not answer.
 */
export const REQUEST_TIMEOUT_MS_DEFAULT = 2_000

/**
 * 8 attempts: enough to ride out a failover (find a new leader, follow one or two hints) with the
 * backoff below summing to about 2 s, while a cluster that is really down fails in bounded time.
 */
export const ATTEMPTS_MAX_DEFAULT = 8

/** 20 ms first backoff: about one election's worth of heartbeats; doubles per attempt. */
export const BACKOFF_BASE_MS_DEFAULT = 20

/** 500 ms backoff cap: about one election timeout plus margin; longer only delays recovery. */
export const BACKOFF_MAX_MS_DEFAULT = 500

/** Attempts after which a watch that keeps failing without delivering an event gives up. */
export const WATCH_ATTEMPTS_MAX_DEFAULT = ATTEMPTS_MAX_DEFAULT

/**
 * 30 s for each frame of a snapshot answer to arrive: the first one follows the leader's ReadIndex
 * round and its encode of the whole state machine (seconds for 100,000 records on a loaded
 * machine), and each later one is a 1 MiB chunk. Longer than a request deadline, shorter than an
 * operator's patience; a stalled transfer fails TIMEOUT and is retried from the start.
 */
export const SNAPSHOT_FRAME_TIMEOUT_MS_DEFAULT = 30_000
