import type { RouteSpec } from './routes.ts'
import type { JsonSchema } from './schemas.ts'

/** The OpenAPI version written: 3.1 takes JSON Schema as it is, so the route schemas go in unchanged. */
export const OPENAPI_VERSION = '3.1.0'

const DESCRIPTIONS: Readonly<Record<number, string>> = {
  200: 'OK',
  400: 'Bad input (INVALID, TOO_LARGE)',
  403: 'The authority refused the write (UNAUTHORIZED)',
  404: 'No such record (NOT_FOUND)',
  409: 'A newer update was applied first (STALE), or the authority refused the change (CONFLICT)',
  429: 'Too many event streams (TOO_MANY)',
  503: 'Starting, stopping or no leader (UNAVAILABLE): retry',
  504: 'The authority did not answer in time (TIMEOUT): the write may still be applied',
}

/**
 * The OpenAPI document of the routes a gateway mounts, built from the same schema objects Fastify
 * validates and serializes with: a route, parameter or field cannot be served without being
 * described, nor described without being served.
 */
export function openApiDocument(routes: readonly RouteSpec[], role: 'worker' | 'replica'): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const route of routes) {
    const path = route.url.replace(/:([A-Za-z]+)/g, '{$1}')
    const parameters = [
      ...parametersOf(route.params, 'path'),
      ...parametersOf(route.querystring, 'query'),
      ...(route.stream === undefined
        ? []
        : [
            {
              name: 'Last-Event-ID',
              in: 'header',
              required: false,
              description: 'The id of the last event received: the stream resumes after it (wins over `from`)',
              schema: { type: 'string', pattern: '^[0-9]+$' },
            },
          ]),
    ]
    const responses: Record<string, unknown> = {}
    for (const [status, schema] of Object.entries(route.responses)) {
      responses[status] = { description: DESCRIPTIONS[Number(status)] ?? 'see the body', content: json(schema) }
    }
    if (route.stream !== undefined) {
      responses['200'] = {
        description: route.stream.description,
        content: { 'text/event-stream': { schema: { type: 'string' } } },
      }
    }
    const operation: Record<string, unknown> = { operationId: route.operationId, summary: route.summary, responses }
    if (parameters.length > 0) operation.parameters = parameters
    if (route.body !== undefined) operation.requestBody = { required: true, content: json(route.body) }
    paths[path] = { ...paths[path], [route.method.toLowerCase()]: operation }
  }
  paths['/v1/openapi.json'] = {
    get: {
      operationId: 'openapi',
      summary: 'This document',
      responses: { 200: { description: 'OK', content: json({ type: 'object' }) } },
    },
  }
  return {
    openapi: OPENAPI_VERSION,
    info: {
      title: `nodeledger HTTP gateway (${role})`,
      version: '1',
      description:
        role === 'worker'
          ? "A worker's gateway: the registry as the worker's tracker holds it, and PUT /v1/self for its own record"
          : "A replica's gateway: the registry as this replica applied it, read-only",
    },
    paths,
  }
}

function json(schema: JsonSchema): Record<string, unknown> {
  return { 'application/json': { schema } }
}

function parametersOf(schema: JsonSchema | undefined, where: 'path' | 'query'): Record<string, unknown>[] {
  if (schema === undefined) return []
  const properties = (schema.properties ?? {}) as Record<string, JsonSchema>
  const required = new Set((schema.required ?? []) as string[])
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...rest } = property as { description?: string }
    return {
      name,
      in: where,
      required: where === 'path' || required.has(name),
      ...(description === undefined ? {} : { description }),
      schema: rest,
    }
  })
}
