/**
 * Limits of the HTTP gateway. It shares the ops listener (OPS_CONNECTIONS_MAX sockets in all), so
 * every figure here keeps one client from taking the listener from the scraper and the probes.
 */

/** Records per GET /v1/nodes page unless `limit` asks for another number. */
export const NODES_LIMIT_DEFAULT = 100
/** 1,000 records: about 1 MiB of JSON at typical record sizes, a page, not the registry. */
export const NODES_LIMIT_MAX = 1_000

/**
 * 32 KiB for PUT /v1/self: the registry bounds one record's fields to about 13 KiB as MessagePack
 * (RECORD_BYTES_MAX is 16 KiB); JSON of the same fields, with its quotes and escapes, stays well
 * under twice that. Anything larger is refused before it is parsed.
 */
export const SELF_BODY_BYTES_MAX = 32 * 1024

/** Concurrent GET /v1/events streams per listener; one more is refused with 429 TOO_MANY. */
export const EVENTS_CLIENTS_MAX = 16
/**
 * A comment line this often while no change is sent: it keeps proxies from closing an idle
 * stream and lets the server notice a reader that went away (the write fails).
 */
export const EVENTS_HEARTBEAT_INTERVAL_MS = 5_000
/** Records read from the source per step of a stream: one step's bytes are all a stream buffers itself. */
export const EVENTS_PAGE_RECORDS = 64
/**
 * A stream whose socket holds more unsent bytes than this, or does not drain within
 * EVENTS_DRAIN_TIMEOUT_MS, is closed: a slow reader reconnects with Last-Event-ID rather than
 * making the node buffer the registry for it.
 */
export const EVENTS_BUFFERED_BYTES_MAX = 1024 * 1024
export const EVENTS_DRAIN_TIMEOUT_MS = 10_000
/** The `retry:` an EventSource waits before it reconnects. */
export const EVENTS_RETRY_MS = 1_000

/** A peer id in the path or a cursor: base58btc characters, as long as the registry admits (PEER_ID_LENGTH_MAX). */
export const PEER_ID_PATTERN = '^[1-9A-HJ-NP-Za-km-z]{1,128}$'
