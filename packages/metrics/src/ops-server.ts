import { fastify } from 'fastify'
import type { FastifyInstance } from 'fastify'
import type { Registry } from 'prom-client'
import { formatHostPort } from './address.ts'
import type { HostPort } from './address.ts'
import { MetricsError } from './errors.ts'

/** What /ready answers: ready (200), or not with the reason (503). Extra fields go into the JSON body. */
export interface Readiness {
  readonly ready: boolean
  /** Why not, for a person reading a probe's failure: "no leader known", "1,500 entries behind". */
  readonly reason?: string
  readonly [detail: string]: unknown
}

/** The few log calls the server makes (pino's Logger fits). */
export interface OpsLogger {
  info(fields: object, message: string): void
  debug(fields: object, message: string): void
}

export interface OpsServerOptions {
  readonly address: HostPort
  readonly registry: Registry
  /** The body of /health (process alive): a small object, served with `status: "ok"`. */
  readonly health: () => Record<string, unknown>
  readonly ready: () => Readiness
  readonly logger?: OpsLogger
  /**
   * More routes on the same listener (the HTTP gateway, the cluster page), each a Fastify plugin
   * registered after the ops routes. A plugin that serves request bodies sets its own `bodyLimit`
   * per route: the listener's default stays OPS_BODY_BYTES_MAX.
   */
  readonly plugins?: ReadonlyArray<(app: FastifyInstance) => Promise<void> | void>
}

/**
 * Limits of the ops listener: it is for a scraper, a probe and a person with curl, never for
 * traffic. A connection idle or a request slower than these is closed, and a connection beyond
 * OPS_CONNECTIONS_MAX is closed at once: a stuck scraper cannot pile up sockets in the replica.
 */
export const OPS_CONNECTIONS_MAX = 64
export const OPS_REQUEST_TIMEOUT_MS = 10_000
export const OPS_KEEP_ALIVE_TIMEOUT_MS = 5_000
/** Characters of one path parameter (`/v1/nodes/{peerId}`); longer is 414 from the router. */
export const OPS_PATH_PARAM_LENGTH_MAX = 256
/** GET only: no request body is read. */
export const OPS_BODY_BYTES_MAX = 1024

export interface OpsServer {
  /** Where it listens (the port the kernel chose, when asked for port 0). */
  readonly address: HostPort
  close(): Promise<void>
}

/**
 * The ops HTTP listener of a replica or a worker process, on Fastify:
 *
 *   GET /metrics  Prometheus text (the registry, rendered at each scrape)
 *   GET /health   200 {"status":"ok", ...}: the process is alive and its event loop turns
 *   GET /ready    200 {"ready":true, ...} or 503 {"ready":false,"reason":"..."}
 *
 * Anything else is 404. Refuses to start (MetricsError HTTP_LISTEN_FAILED) when the address
 * cannot be bound: an operator who configured a listener relies on it, so it is not skipped.
 */
export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const app: FastifyInstance = fastify({
    logger: false,
    bodyLimit: OPS_BODY_BYTES_MAX,
    requestTimeout: OPS_REQUEST_TIMEOUT_MS,
    connectionTimeout: OPS_REQUEST_TIMEOUT_MS,
    keepAliveTimeout: OPS_KEEP_ALIVE_TIMEOUT_MS,
    forceCloseConnections: true,
    return503OnClosing: true,
    // A path parameter longer than this is answered 414 by the router, before any route: the
    // gateway's peer ids (up to 128 characters, PEER_ID_LENGTH_MAX) must reach their route to be
    // answered 400 when malformed. Fastify's default is 100.
    routerOptions: { maxParamLength: OPS_PATH_PARAM_LENGTH_MAX },
  })
  app.get('/metrics', async (_request, reply) => {
    const text = await options.registry.metrics()
    return reply.header('content-type', options.registry.contentType).send(text)
  })
  app.get('/health', async () => ({ status: 'ok', ...options.health() }))
  app.get('/ready', async (_request, reply) => {
    const readiness = options.ready()
    return reply.code(readiness.ready ? 200 : 503).send(readiness)
  })
  for (const plugin of options.plugins ?? []) await plugin(app)
  const address = await listenOrRefuse(app, options.address, OPS_CONNECTIONS_MAX)
  options.logger?.info({ http: formatHostPort(address) }, 'HTTP listening: /metrics /health /ready')
  let closing: Promise<void> | undefined
  return {
    address,
    close: () => {
      closing ??= app.close().then(() => options.logger?.debug({}, 'HTTP listener closed'))
      return closing
    },
  }
}

/**
 * Listens on `address` or refuses with MetricsError HTTP_LISTEN_FAILED (the app closed), and
 * returns where it listens (the port the kernel chose, for port 0). At most `connectionsMax`
 * connections at once: one more is closed at once.
 */
export async function listenOrRefuse(
  app: FastifyInstance,
  address: HostPort,
  connectionsMax: number,
): Promise<HostPort> {
  try {
    await app.listen({ host: address.host, port: address.port })
  } catch (error) {
    await app.close().catch(() => {})
    throw new MetricsError(
      'HTTP_LISTEN_FAILED',
      `cannot listen for HTTP on ${formatHostPort(address)}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      { cause: error },
    )
  }
  app.server.maxConnections = connectionsMax
  const bound = app.server.address()
  return bound !== null && typeof bound === 'object' ? { host: address.host, port: bound.port } : address
}
