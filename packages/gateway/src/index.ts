/**
 * @nodeledger/gateway: the HTTP gateway of every node, a plugin of its ops listener. A worker
 * mounts it read-write (PUT /v1/self changes its own record, with its own key), a replica
 * read-only; both serve the records from memory, their changes as Server-Sent Events, and an
 * OpenAPI document built from the JSON Schemas the routes validate with. docs/HTTP.md is the
 * reference.
 *
 * @example
 * ```ts
 * import { startOpsServer } from '@nodeledger/metrics'
 * import { gateway } from '@nodeledger/gateway'
 * import type { GatewaySource } from '@nodeledger/gateway'
 *
 * const source: GatewaySource = {
 *   role: 'replica',
 *   appliedIndex: () => replica.applied,
 *   get: (peerId) => replica.registry.get(peerId),
 *   list: (filter) => replica.registry.list(filter),
 *   changesSince: (index, limit) => replica.registry.changesSince(index, limit),
 *   waitForChange: (index, signal) => replica.waitApplied(index + 1, signal),
 *   status: () => ({ role: 'replica', peerId, appliedIndex: replica.applied, leader: null, lagEntries: null }),
 * }
 * await startOpsServer({ address, registry, health, ready, plugins: [gateway({ source })] })
 * // curl http://127.0.0.1:9101/v1/nodes?active=true&limit=10
 * ```
 */
export { GATEWAY_PREFIX, gateway, gatewayRoutes } from './routes.ts'
export type { GatewayLogger, GatewayOptions, RouteSpec } from './routes.ts'
export type { GatewaySource, GatewayStatus, SelfUpdateResult } from './source.ts'
export { RecordFeed } from './record-feed.ts'
export { GatewayError, GATEWAY_ERROR_CODES, HTTP_STATUS_OF, toHttpError } from './errors.ts'
export type { GatewayErrorCode, HttpError } from './errors.ts'
export { changeEvent, eventsStartIndex, serveEventStream } from './events.ts'
export type { EventStreamEnd, EventStreamOptions } from './events.ts'
export { nodeJson } from './node-json.ts'
export { openApiDocument, OPENAPI_VERSION } from './openapi.ts'
export * from './constants.ts'
export * from './schemas.ts'
