import { Ajv } from 'ajv'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { checkDelta, checkPeerId } from '@nodeledger/registry'
import type { Category, ListFilter, SelfReported } from '@nodeledger/registry'
import { EVENTS_CLIENTS_MAX, NODES_LIMIT_DEFAULT, SELF_BODY_BYTES_MAX } from './constants.ts'
import { GatewayError, toHttpError } from './errors.ts'
import { eventsStartIndex, serveEventStream } from './events.ts'
import type { EventStreamEnd, EventStreamOptions } from './events.ts'
import { nodeJson } from './node-json.ts'
import { openApiDocument } from './openapi.ts'
import {
  CATEGORY_PARAMS_SCHEMA,
  ELIGIBLE_RESPONSE_SCHEMA,
  ERROR_SCHEMA,
  EVENTS_QUERY_SCHEMA,
  NODES_QUERY_SCHEMA,
  NODES_RESPONSE_SCHEMA,
  NODE_RESPONSE_SCHEMA,
  PEER_ID_PARAMS_SCHEMA,
  SELF_BODY_SCHEMA,
  SELF_RESPONSE_SCHEMA,
  STATUS_RESPONSE_SCHEMA,
} from './schemas.ts'
import type { JsonSchema } from './schemas.ts'
import type { GatewaySource } from './source.ts'

/** The few log calls the gateway makes (pino's Logger fits). */
export interface GatewayLogger {
  warn(fields: object, message: string): void
  debug(fields: object, message: string): void
}

export interface GatewayOptions {
  readonly source: GatewaySource
  readonly logger?: GatewayLogger
  /** Concurrent event streams; default EVENTS_CLIENTS_MAX. */
  readonly eventsClientsMax?: number
  /** Heartbeat, buffering and paging of event streams (defaults in constants.ts). */
  readonly events?: EventStreamOptions
  /** Called when a stream ends, with why (a slow reader closed, the source failed): for metrics and tests. */
  readonly onEventStreamEnd?: (end: EventStreamEnd) => void
}

/** One route: what Fastify mounts and what the OpenAPI document describes, from one object. */
export interface RouteSpec {
  readonly method: 'GET' | 'PUT'
  /** Fastify's form (`/v1/nodes/:peerId`). */
  readonly url: string
  readonly operationId: string
  readonly summary: string
  readonly params?: JsonSchema
  readonly querystring?: JsonSchema
  readonly body?: JsonSchema
  readonly bodyLimit?: number
  /** Status → schema of a JSON answer; `text/event-stream` routes describe their stream in `stream`. */
  readonly responses: Readonly<Record<number, JsonSchema>>
  readonly stream?: { readonly description: string; readonly data: JsonSchema }
  readonly handler: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>
}

interface NodesQuery {
  readonly active?: boolean
  readonly staked?: boolean
  readonly capability?: Category
  readonly limit?: number
  readonly after?: string
}

/**
 * The HTTP gateway as a plugin of the ops listener (`startOpsServer({ plugins: [gateway(…)] })`):
 *
 *   GET /v1/nodes?active=&staked=&capability=&limit=&after=   a page of records, peer id order
 *   GET /v1/nodes/{peerId}                                     one record
 *   GET /v1/eligible/{category}                                the ranking (sources that rank)
 *   GET /v1/status                                             role, applied index, leader, lag
 *   PUT /v1/self                                               this node's own fields (sources that write)
 *   GET /v1/events?from=                                       Server-Sent Events of the changes
 *   GET /v1/openapi.json                                       the document of the routes mounted
 *
 * Its routes live in their own Fastify scope (prefix /v1): their validator (strict for bodies: no coercion, no
 * unknown field silently dropped), their error handler (every error as `{ code, message }`, never
 * a stack) and their limits do not touch the ops routes or another plugin's.
 */
export function gateway(options: GatewayOptions): (app: FastifyInstance) => Promise<void> {
  return async (app) => {
    await app.register(
      async (scope) => {
        mountGateway(scope, options)
      },
      { prefix: GATEWAY_PREFIX },
    )
  }
}

/** Every gateway route is under it; an unknown path under it is 404 NOT_FOUND as `{ code, message }`. */
export const GATEWAY_PREFIX = '/v1'

function mountGateway(scope: FastifyInstance, options: GatewayOptions): void {
  const { source } = options
  // Fastify's default Ajv coerces body types ("true" becomes true) and removes unknown properties:
  // a client's typo would then be dropped without a word. Bodies are validated as sent; the query
  // string and path are text, so they are coerced ("?limit=5").
  const bodyAjv = new Ajv({ coerceTypes: false, removeAdditional: false, useDefaults: false, strict: false })
  const textAjv = new Ajv({ coerceTypes: true, removeAdditional: false, useDefaults: true, strict: false })
  scope.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodyAjv : textAjv).compile(schema))
  scope.setErrorHandler((error, request, reply) => {
    const answer = toHttpError(error)
    if (answer.status >= 500 && answer.body.code === 'INTERNAL')
      options.logger?.warn({ err: error, url: request.url }, 'gateway request failed')
    return reply.code(answer.status).send(answer.body)
  })

  scope.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ code: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}` }),
  )

  const streams = new Set<AbortController>()
  scope.addHook('onClose', async () => {
    for (const stream of streams) stream.abort()
  })
  const routes = gatewayRoutes(options, streams)
  for (const route of routes) {
    const schema: Record<string, unknown> = { response: route.responses }
    if (route.params !== undefined) schema.params = route.params
    if (route.querystring !== undefined) schema.querystring = route.querystring
    if (route.body !== undefined) schema.body = route.body
    scope.route({
      method: route.method,
      url: route.url.slice(GATEWAY_PREFIX.length),
      schema,
      ...(route.bodyLimit === undefined ? {} : { bodyLimit: route.bodyLimit }),
      // A HEAD of a stream would hold a stream slot open with nothing to send.
      ...(route.stream === undefined ? {} : { exposeHeadRoute: false }),
      handler: route.handler,
    })
  }
  const document = openApiDocument(routes, source.role)
  scope.get('/openapi.json', async () => document)
}

const errors = (...statuses: number[]): Record<number, JsonSchema> =>
  Object.fromEntries(statuses.map((status) => [status, ERROR_SCHEMA]))

/** The routes this source supports (a replica: no PUT /v1/self; a source without a ranking: no eligible). */
export function gatewayRoutes(options: GatewayOptions, streams: Set<AbortController> = new Set()): RouteSpec[] {
  const { source } = options
  const routes: RouteSpec[] = [
    {
      method: 'GET',
      url: '/v1/nodes',
      operationId: 'listNodes',
      summary: 'A page of node records in peer id order',
      querystring: NODES_QUERY_SCHEMA,
      responses: { 200: NODES_RESPONSE_SCHEMA, ...errors(400, 503) },
      handler: async (request) => {
        const query = request.query as NodesQuery
        const limit = query.limit ?? NODES_LIMIT_DEFAULT
        const filter: ListFilter = {
          limit: limit + 1,
          ...(query.active === undefined ? {} : { active: query.active }),
          ...(query.staked === undefined ? {} : { staked: query.staked }),
          ...(query.capability === undefined ? {} : { capability: query.capability }),
          ...(query.after === undefined ? {} : { afterPeerId: query.after }),
        }
        const index = source.appliedIndex()
        // One record more than the page says whether another page follows: `next` is null on the last.
        const records = source.list(filter)
        const page = records.slice(0, limit)
        const next = records.length > limit ? page[page.length - 1]!.peerId : null
        return { nodes: page.map(nodeJson), next, index }
      },
    },
    {
      method: 'GET',
      url: '/v1/nodes/:peerId',
      operationId: 'getNode',
      summary: 'One node record',
      params: PEER_ID_PARAMS_SCHEMA,
      responses: { 200: NODE_RESPONSE_SCHEMA, ...errors(400, 404, 503) },
      handler: async (request) => {
        const peerId = canonicalPeerId((request.params as { peerId: string }).peerId)
        const index = source.appliedIndex()
        const record = source.get(peerId)
        if (record === undefined) throw new GatewayError('NOT_FOUND', `no record for ${peerId}`)
        return { node: nodeJson(record), index }
      },
    },
  ]
  const eligible = source.eligible
  if (eligible !== undefined) {
    routes.push({
      method: 'GET',
      url: '/v1/eligible/:category',
      operationId: 'eligible',
      summary: 'Nodes that can take this category of work now, most reliable first',
      params: CATEGORY_PARAMS_SCHEMA,
      responses: { 200: ELIGIBLE_RESPONSE_SCHEMA, ...errors(400, 503) },
      handler: async (request) => {
        const category = (request.params as { category: Category }).category
        const index = source.appliedIndex()
        return { category, nodes: eligible(category).map(nodeJson), index }
      },
    })
  }
  routes.push({
    method: 'GET',
    url: '/v1/status',
    operationId: 'status',
    summary: 'This node: its role, the index it applied, the leader it knows, how far behind it is',
    responses: { 200: STATUS_RESPONSE_SCHEMA, ...errors(503) },
    handler: async () => source.status(),
  })
  const updateSelf = source.updateSelf
  if (updateSelf !== undefined) {
    routes.push({
      method: 'PUT',
      url: '/v1/self',
      operationId: 'updateSelf',
      summary: "Change this node's own fields: gossiped, submitted, answered once the log has it",
      body: SELF_BODY_SCHEMA,
      bodyLimit: SELF_BODY_BYTES_MAX,
      responses: { 200: SELF_RESPONSE_SCHEMA, ...errors(400, 403, 409, 503, 504) },
      handler: async (request) => {
        const { peerId } = source.status()
        // The registry's own rules (canonical multiaddrs, no duplicates, the limits), the ones the
        // authority applies: a delta it would refuse is refused here, before anything is gossiped.
        const { fields } = checkDelta({ originPeerId: peerId, seq: 1, fields: request.body }, 'body')
        return await updateSelf(fields as Partial<SelfReported>)
      },
    })
  }
  routes.push({
    method: 'GET',
    url: '/v1/events',
    operationId: 'events',
    summary: 'Server-Sent Events: one `change` event per record change, resumable with Last-Event-ID',
    querystring: EVENTS_QUERY_SCHEMA,
    responses: errors(400, 429, 503),
    stream: {
      description:
        'text/event-stream: `id: <log index>`, `event: change`, `data: {"index", "node"}`; a comment line as a heartbeat while idle',
      data: {},
    },
    handler: async (request, reply) => {
      const clientsMax = options.eventsClientsMax ?? EVENTS_CLIENTS_MAX
      if (streams.size >= clientsMax)
        throw new GatewayError('TOO_MANY', `${clientsMax} event streams are open on this node, the most it serves`)
      const from = eventsStartIndex(
        request.headers['last-event-id'],
        (request.query as { from?: number }).from,
        source.appliedIndex(),
      )
      const stream = new AbortController()
      streams.add(stream)
      reply.hijack()
      const response = reply.raw
      response.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache',
        'x-accel-buffering': 'no',
      })
      // The listener closes idle sockets (OPS_REQUEST_TIMEOUT_MS); a stream is idle by design and
      // its heartbeat (and the drain timeout) decide when it is dead.
      request.raw.socket.setTimeout(0)
      void serveEventStream(source, response, from, stream.signal, options.events).then((end) => {
        streams.delete(stream)
        if (end !== 'closed') options.logger?.debug({ end, from }, 'event stream ended')
        options.onEventStreamEnd?.(end)
      })
      return reply
    },
  })
  return routes
}

/** A peer id as the registry keys it, or INVALID: the path pattern admits base58 text, this parses it. */
function canonicalPeerId(text: string): string {
  try {
    return checkPeerId(text, 'peerId')
  } catch (error) {
    throw new GatewayError('INVALID', (error as Error).message, { cause: error })
  }
}
