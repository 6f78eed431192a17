/**
 * INTERIM: the two read routes of the HTTP gateway (issue 14) that the cluster page needs, served
 * by a replica from its applied state machine, read-only. The gateway module (another branch) will
 * replace this file with the whole gateway (its own schemas, errors and SSE resumption); the routes,
 * their query strings and their answers here are exactly the gateway's, so the page does not change:
 *
 *   GET /v1/nodes?active=&staked=&capability=&limit=&after=  → { nodes: NodeJson[], next: string|null, index }
 *   GET /v1/events?from=INDEX  (Server-Sent Events: `id: <index>`, `event: change`,
 *                               `data: {"index":N,"node":NodeJson}`, one per changed record)
 *
 * NodeJson is the NodeData record (packages/registry/src/model.ts) as JSON. Reads are the
 * replica's applied state (a follower's may trail the leader by its lag): a view, not a
 * linearizable read.
 */
import { deadline } from '@nodeledger/protocol'
import { CATEGORIES, RECORD_FIELDS, emptyRecord } from '@nodeledger/registry'
import type { NodeData, Registry } from '@nodeledger/registry'
import type { FastifyInstance, FastifyReply } from 'fastify'

/** What the routes read: the applied registry (undefined while the replica starts) and a way to wait for the next entry. */
export interface RegistryFeed {
  registry(): Registry | undefined
  applied(): number
  /** Resolves once `index` is applied; rejects when `signal` aborts. */
  waitApplied(index: number, signal: AbortSignal): Promise<void>
}

/** Records in one page of /v1/nodes: 1000 records are ~600 KB of JSON. */
export const NODES_PAGE_LIMIT_MAX = 1000
export const NODES_PAGE_LIMIT_DEFAULT = 100
/**
 * Event streams open at once on one listener (which allows 64 connections, OPS_CONNECTIONS_MAX):
 * each is a socket held open, so a few pages and scripts fit and the scraper still gets in.
 */
export const EVENT_STREAMS_MAX = 16
/** A comment line on an idle stream this often: proxies and the listener's 10 s idle timeout keep it open. */
export const EVENT_HEARTBEAT_MS = 5_000
/** Records read from the registry per step of a stream (one step is written before the next is read). */
const EVENTS_PER_STEP_MAX = 256
/** What a browser's EventSource waits before it reconnects (the SSE `retry` field). */
const EVENT_RETRY_MS = 1_000

/** A refusal's body, as the gateway's: a code from the closed set and a message for a person. */
export const ERROR_JSON_SCHEMA = {
  type: 'object',
  required: ['code', 'message'],
  properties: { code: { type: 'string' }, message: { type: 'string' } },
} as const

const PEER_ID_PATTERN = '^[1-9A-HJ-NP-Za-km-z]{32,128}$'

/** JSON Schema of one NodeJson, derived from the record's fields and their types. */
export const NODE_JSON_SCHEMA = (() => {
  const sample = emptyRecord('')
  const properties: Record<string, object> = {}
  for (const field of RECORD_FIELDS) {
    const value = sample[field]
    properties[field] = Array.isArray(value)
      ? { type: 'array', items: { type: 'string' } }
      : typeof value === 'number'
        ? { type: 'integer' }
        : { type: typeof value }
  }
  return { type: 'object', required: [...RECORD_FIELDS], properties }
})()

interface NodesQuery {
  active?: boolean
  staked?: boolean
  capability?: (typeof CATEGORIES)[number]
  limit: number
  after?: string
}

function unavailable(reply: FastifyReply): FastifyReply {
  return reply
    .code(503)
    .send({ code: 'UNAVAILABLE', message: 'the replica is starting: opening its data dir and joining the cluster' })
}

/** A Fastify plugin (OpsServerOptions.plugins) with the two routes over `feed`. */
export function registryReadRoutes(feed: RegistryFeed): (app: FastifyInstance) => void {
  return (app) => {
    app.get<{ Querystring: NodesQuery }>(
      '/v1/nodes',
      {
        schema: {
          querystring: {
            type: 'object',
            additionalProperties: false,
            properties: {
              active: { type: 'boolean' },
              staked: { type: 'boolean' },
              capability: { type: 'string', enum: [...CATEGORIES] },
              limit: { type: 'integer', minimum: 1, maximum: NODES_PAGE_LIMIT_MAX, default: NODES_PAGE_LIMIT_DEFAULT },
              after: { type: 'string', pattern: PEER_ID_PATTERN },
            },
          },
          response: {
            200: {
              type: 'object',
              required: ['nodes', 'next', 'index'],
              properties: {
                nodes: { type: 'array', items: NODE_JSON_SCHEMA },
                next: { type: ['string', 'null'] },
                index: { type: 'integer' },
              },
            },
            503: ERROR_JSON_SCHEMA,
          },
        },
      },
      async (request, reply) => {
        const registry = feed.registry()
        if (registry === undefined) return unavailable(reply)
        const { active, staked, capability, limit, after } = request.query
        // The index in the same synchronous step as the read, and one record more than asked
        // tells whether another page follows.
        const index = feed.applied()
        const records = registry.list({
          ...(active === undefined ? {} : { active }),
          ...(staked === undefined ? {} : { staked }),
          ...(capability === undefined ? {} : { capability }),
          ...(after === undefined ? {} : { afterPeerId: after }),
          limit: limit + 1,
        })
        const nodes = records.slice(0, limit)
        return { nodes, next: records.length > limit ? nodes[nodes.length - 1]!.peerId : null, index }
      },
    )

    let streamsOpen = 0
    app.get<{ Querystring: { from: number } }>(
      '/v1/events',
      {
        schema: {
          querystring: {
            type: 'object',
            additionalProperties: false,
            properties: { from: { type: 'integer', minimum: 0, default: 0 } },
          },
        },
      },
      async (request, reply) => {
        if (feed.registry() === undefined) return unavailable(reply)
        if (streamsOpen >= EVENT_STREAMS_MAX)
          return reply
            .code(503)
            .send({ code: 'UNAVAILABLE', message: `${EVENT_STREAMS_MAX} event streams are open here; retry later` })
        // A browser's EventSource resumes with the id of the last event it got.
        const lastEventId = Number(request.headers['last-event-id'])
        const from = Number.isSafeInteger(lastEventId) && lastEventId >= 0 ? lastEventId : request.query.from
        streamsOpen++
        reply.hijack()
        try {
          await streamChanges(feed, reply, from)
        } finally {
          streamsOpen--
        }
      },
    )
  }
}

/** One SSE event per record changed after `from`, in log order, until the client leaves or the listener closes. */
async function streamChanges(feed: RegistryFeed, reply: FastifyReply, from: number): Promise<void> {
  const raw = reply.raw
  const closed = new AbortController()
  raw.on('close', () => closed.abort())
  raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store',
    connection: 'keep-alive',
  })
  // Written and drained before the next read, so a slow reader holds one step of memory, not a backlog.
  const write = async (text: string): Promise<void> => {
    if (raw.write(text)) return
    await new Promise<void>((resolve) => {
      const done = (): void => {
        raw.off('drain', done)
        closed.signal.removeEventListener('abort', done)
        resolve()
      }
      raw.on('drain', done)
      closed.signal.addEventListener('abort', done, { once: true })
    })
  }
  try {
    await write(`retry: ${EVENT_RETRY_MS}\n: changes after index ${from}\n\n`)
    let throughIndex = from
    while (!closed.signal.aborted) {
      const registry = feed.registry()
      if (registry === undefined) break
      // Read with the replica's applied index in one synchronous step: the registry's own index
      // skips entries that are not its (no-ops, membership), so waiting on it would not wait.
      const changes = registry.changesSince(throughIndex, EVENTS_PER_STEP_MAX)
      const appliedAtRead = feed.applied()
      if (changes.records.length > 0) await write(changes.records.map(changeEvent).join(''))
      throughIndex = changes.throughIndex
      if (changes.more) continue
      const idle = deadline(EVENT_HEARTBEAT_MS, closed.signal)
      const applied = await feed.waitApplied(appliedAtRead + 1, idle.signal).then(
        () => true,
        () => false,
      )
      idle.dispose()
      if (!applied && !closed.signal.aborted) await write(': heartbeat\n\n')
    }
  } finally {
    raw.end()
  }
}

function changeEvent(record: NodeData): string {
  return `id: ${record.changedIndex}\nevent: change\ndata: ${JSON.stringify({ index: record.changedIndex, node: record })}\n\n`
}
