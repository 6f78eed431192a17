import { fastify } from 'fastify'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { listenOrRefuse } from '@nodeledger/metrics'
import { formatHostPort } from '@nodeledger/metrics/address'
import type { HostPort } from '@nodeledger/metrics/address'
import { clusterPageRoutes } from './cluster-page.ts'
import { EVENTS_CLIENTS_MAX, EVENTS_HEARTBEAT_INTERVAL_MS } from '@nodeledger/gateway'

/**
 * `nodeledger ui`: the cluster page on this machine, for a cluster whose replicas serve it on their
 * HTTP listeners (the cluster file's `http`). The page is the same document; its three routes are
 * forwarded to a replica's listener: the one that answered last, else the next in the file's
 * order. A replica that is down is skipped at once (connection refused) or after
 * UPSTREAM_TIMEOUT_MS (paused, cut off), so the page follows a failover even when the replica it
 * was reading from is the one that died. The event stream is relayed as it comes; when its replica
 * ends it (or goes silent past two heartbeats) the relay ends too, and the browser's EventSource
 * reconnects with Last-Event-ID, which goes on to the next replica: no change is lost.
 *
 * Nothing but GETs of those routes and the page; one listener's limits as the ops listener's.
 */
export interface ClusterUiOptions {
  /** The replicas' HTTP listeners (cluster file `http`), in the order to try them. */
  readonly upstreams: readonly HostPort[]
  readonly address: HostPort
  readonly logger?: { info(fields: object, message: string): void }
}

export interface ClusterUi {
  readonly address: HostPort
  readonly url: string
  close(): Promise<void>
}

/** One forwarded request's deadline at one replica, before the next is tried. */
export const UPSTREAM_TIMEOUT_MS = 2_000
/** A relayed event stream with nothing (not even a heartbeat) for this long is ended: its replica is stuck. */
const EVENT_SILENCE_MS_MAX = 2 * EVENTS_HEARTBEAT_INTERVAL_MS + 2_000
const UI_CONNECTIONS_MAX = 64

class NoUpstream extends Error {}

export async function startClusterUi(options: ClusterUiOptions): Promise<ClusterUi> {
  if (options.upstreams.length === 0) throw new TypeError('startClusterUi needs at least one upstream')
  const upstreams = options.upstreams.map((address) => `http://${formatHostPort(address)}`)
  let preferred = 0
  let streamsOpen = 0

  /** Try each replica from the preferred one; `attempt` answers, or rejects to move on. */
  async function firstAnswer<T>(attempt: (base: string) => Promise<T>): Promise<T> {
    const reasons: string[] = []
    for (let step = 0; step < upstreams.length; step++) {
      const position = (preferred + step) % upstreams.length
      try {
        const answer = await attempt(upstreams[position]!)
        preferred = position
        return answer
      } catch (error) {
        reasons.push(`${upstreams[position]}: ${(error as Error).message}`)
      }
    }
    throw new NoUpstream(`no replica answered (${reasons.join('; ')})`)
  }

  const unavailable = (reply: FastifyReply, message: string): FastifyReply =>
    reply.code(503).header('cache-control', 'no-store').send({ code: 'UNAVAILABLE', message })

  const forward = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    try {
      const { status, type, body } = await firstAnswer(async (base) => {
        const response = await fetch(`${base}${request.url}`, { signal: AbortSignal.timeout(UPSTREAM_TIMEOUT_MS) })
        // A replica that is starting (503) or broken (5xx) is not an answer; bad input (4xx) is.
        if (response.status >= 500) throw new Error(`HTTP ${response.status}`)
        return {
          status: response.status,
          type: response.headers.get('content-type') ?? 'application/json',
          body: await response.text(),
        }
      })
      return reply.code(status).header('content-type', type).header('cache-control', 'no-store').send(body)
    } catch (error) {
      if (error instanceof NoUpstream) return unavailable(reply, error.message)
      throw error
    }
  }

  const relayEvents = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    if (streamsOpen >= EVENTS_CLIENTS_MAX)
      return unavailable(reply, `${EVENTS_CLIENTS_MAX} event streams are open here; retry later`)
    // The response's close, not the request's: a request's 'close' comes once it has been read.
    const gone = new AbortController()
    reply.raw.on('close', () => gone.abort())
    const lastEventId = request.headers['last-event-id']
    let upstream: { response: Response; abort: AbortController }
    try {
      upstream = await firstAnswer(async (base) => {
        const abort = new AbortController()
        const opening = setTimeout(() => abort.abort(new Error('no answer in time')), UPSTREAM_TIMEOUT_MS)
        gone.signal.addEventListener('abort', () => abort.abort(), { once: true })
        try {
          const response = await fetch(`${base}${request.url}`, {
            headers: {
              accept: 'text/event-stream',
              ...(typeof lastEventId === 'string' ? { 'last-event-id': lastEventId } : {}),
            },
            signal: abort.signal,
          })
          if (response.status >= 500) {
            await response.body?.cancel()
            throw new Error(`HTTP ${response.status}`)
          }
          return { response, abort }
        } finally {
          clearTimeout(opening)
        }
      })
    } catch (error) {
      if (error instanceof NoUpstream) return unavailable(reply, error.message)
      throw error
    }
    const { response, abort } = upstream
    if (response.status !== 200 || response.body === null)
      return reply
        .code(response.status)
        .header('content-type', response.headers.get('content-type') ?? 'application/json')
        .send(await response.text())
    streamsOpen++
    reply.hijack()
    const raw = reply.raw
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    })
    let silence: NodeJS.Timeout | undefined
    const heard = (): void => {
      clearTimeout(silence)
      silence = setTimeout(() => abort.abort(new Error('the replica went silent')), EVENT_SILENCE_MS_MAX)
    }
    try {
      heard()
      for await (const chunk of response.body) {
        heard()
        // Relayed as it comes; a slow browser holds the relay (and so the replica's stream) back.
        if (!raw.write(chunk)) await new Promise((resolve) => raw.once('drain', resolve))
      }
    } catch {
      // The replica went away, went silent, or the browser left: end the relay, the browser reconnects.
    } finally {
      clearTimeout(silence)
      abort.abort()
      streamsOpen--
      raw.end()
    }
    return undefined
  }

  const app: FastifyInstance = fastify({
    logger: false,
    bodyLimit: 1024,
    requestTimeout: 10_000,
    connectionTimeout: 10_000 + EVENT_SILENCE_MS_MAX,
    keepAliveTimeout: 5_000,
    forceCloseConnections: true,
  })
  clusterPageRoutes(app)
  app.get('/v1/cluster', forward)
  app.get('/v1/nodes', forward)
  app.get('/v1/events', relayEvents)
  const address = await listenOrRefuse(app, options.address, UI_CONNECTIONS_MAX)
  const url = `http://${formatHostPort(address)}/`
  options.logger?.info({ url, upstreams }, 'cluster page listening')
  return { address, url, close: () => app.close() }
}
