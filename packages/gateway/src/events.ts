import type { ServerResponse } from 'node:http'
import type { NodeData } from '@nodeledger/registry'
import {
  EVENTS_BUFFERED_BYTES_MAX,
  EVENTS_DRAIN_TIMEOUT_MS,
  EVENTS_HEARTBEAT_INTERVAL_MS,
  EVENTS_PAGE_RECORDS,
  EVENTS_RETRY_MS,
} from './constants.ts'
import { GatewayError } from './errors.ts'
import { nodeJson } from './node-json.ts'
import type { GatewaySource } from './source.ts'

export interface EventStreamOptions {
  readonly heartbeatIntervalMs?: number
  readonly bufferedBytesMax?: number
  readonly drainTimeoutMs?: number
  readonly pageRecords?: number
}

/** Why a stream ended, for the caller's count and log. */
export type EventStreamEnd = 'closed' | 'slow-reader' | 'source-failed'

/**
 * Where a stream starts: `Last-Event-ID` (an EventSource reconnecting) wins over `?from=`, and
 * without either the stream starts at the node's applied index (only changes from now on).
 * A Last-Event-ID that is not a log index is INVALID, as a bad `from` is.
 */
export function eventsStartIndex(
  lastEventId: string | string[] | undefined,
  from: number | undefined,
  applied: number,
): number {
  if (lastEventId !== undefined) {
    const text = Array.isArray(lastEventId) ? lastEventId[0] : lastEventId
    if (text === undefined || !/^\d{1,15}$/.test(text))
      throw new GatewayError('INVALID', 'Last-Event-ID must be a log index (the id of the last event received)')
    return Number(text)
  }
  return from ?? applied
}

/** One record's `change` event: `id` the log index that changed it, `data` {index, node}. */
export function changeEvent(record: NodeData): string {
  return `id: ${record.changedIndex}\nevent: change\ndata: ${JSON.stringify({ index: record.changedIndex, node: nodeJson(record) })}\n\n`
}

/**
 * Serves one GET /v1/events stream on a hijacked response until the reader goes away, `signal`
 * aborts (the listener closes) or the reader is too slow. The stream is pulled from the source
 * page by page as the socket drains (the authority's watch does the same), so a stream holds at
 * most one page and what the socket has not sent: a reader that lets more than
 * EVENTS_BUFFERED_BYTES_MAX pile up, or does not drain within EVENTS_DRAIN_TIMEOUT_MS, is closed
 * and resumes with Last-Event-ID.
 *
 * Semantics (docs/HTTP.md "Events"): the records changed after `fromIndex` as they are now, in
 * log order, then every change as the node applies it. The node keeps records, not history, so a
 * record changed several times after `fromIndex` is sent once, at its latest change; no `from` is
 * too old (a from of 0 sends the whole registry first). The records one entry changed are written
 * in one piece and share its id.
 */
export async function serveEventStream(
  source: GatewaySource,
  response: ServerResponse,
  fromIndex: number,
  signal: AbortSignal,
  options: EventStreamOptions = {},
): Promise<EventStreamEnd> {
  const heartbeatIntervalMs = options.heartbeatIntervalMs ?? EVENTS_HEARTBEAT_INTERVAL_MS
  const bufferedBytesMax = options.bufferedBytesMax ?? EVENTS_BUFFERED_BYTES_MAX
  const drainTimeoutMs = options.drainTimeoutMs ?? EVENTS_DRAIN_TIMEOUT_MS
  const pageRecords = options.pageRecords ?? EVENTS_PAGE_RECORDS
  const closed = new AbortController()
  const onClose = (): void => closed.abort()
  response.once('close', onClose)
  const stream = AbortSignal.any([signal, closed.signal])
  let end: EventStreamEnd = 'closed'
  try {
    response.write(`retry: ${EVENTS_RETRY_MS}\n: changes after ${fromIndex}\n\n`)
    let cursor = fromIndex
    while (!stream.aborted) {
      const page = source.changesSince(cursor, pageRecords)
      if (page.records.length > 0) {
        let text = ''
        for (const record of page.records) text += changeEvent(record)
        const flushed = response.write(text)
        if (response.writableLength > bufferedBytesMax) {
          end = 'slow-reader'
          break
        }
        if (!flushed && !(await drained(response, drainTimeoutMs, stream))) {
          if (!stream.aborted) end = 'slow-reader'
          break
        }
      }
      cursor = Math.max(cursor, page.throughIndex)
      if (page.more) continue
      if (!(await changedWithin(source, cursor, heartbeatIntervalMs, stream))) {
        if (stream.aborted) break
        // Nothing changed for a whole interval: a comment keeps the stream and its proxies alive.
        response.write(': heartbeat\n\n')
      }
    }
  } catch {
    // The source failed (the node is stopping): the reader reconnects with Last-Event-ID.
    end = 'source-failed'
  } finally {
    response.off('close', onClose)
    if (end === 'slow-reader') response.destroy()
    else response.end()
  }
  return end
}

/**
 * Whether a change after `index` came within `timeoutMs` (false on the timeout or when `signal`
 * aborts). One timer and one listener per wait, both removed after it: a stream that waits
 * thousands of times leaves nothing behind on its long-lived signal.
 */
async function changedWithin(
  source: GatewaySource,
  index: number,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<boolean> {
  const idle = new AbortController()
  const timer = setTimeout(() => idle.abort(), timeoutMs)
  const onAbort = (): void => idle.abort()
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    if (signal.aborted) return false
    await source.waitForChange(index, idle.signal)
    return true
  } catch (error) {
    // The timeout or the stream's end; anything else is the source failing (a node stopping),
    // which ends the stream rather than spinning on heartbeats.
    if (idle.signal.aborted) return false
    throw error
  } finally {
    clearTimeout(timer)
    signal.removeEventListener('abort', onAbort)
  }
}

/** Whether the socket drained within `timeoutMs` (false on a timeout or when `signal` aborts). */
function drained(response: ServerResponse, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve(false)
      return
    }
    const timer = setTimeout(() => finish(false), timeoutMs)
    const onDrain = (): void => finish(true)
    const onAbort = (): void => finish(false)
    function finish(result: boolean): void {
      clearTimeout(timer)
      response.off('drain', onDrain)
      signal.removeEventListener('abort', onAbort)
      resolve(result)
    }
    response.once('drain', onDrain)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}
