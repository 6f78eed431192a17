import { afterEach, describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Registry as PromRegistry } from 'prom-client'
import { startOpsServer } from '@nodeledger/metrics'
import type { OpsServer } from '@nodeledger/metrics'
import { Registry, encodeCommand } from '@nodeledger/registry'
import type { FastifyInstance } from 'fastify'
import { clusterPageHtml } from '../../src/http/cluster-page.ts'
import { startClusterUi } from '../../src/http/cluster-ui.ts'
import type { ClusterUi } from '../../src/http/cluster-ui.ts'
import { gateway } from '@nodeledger/gateway'
import type { GatewaySource } from '@nodeledger/gateway'

/**
 * `nodeledger ui`'s server (cluster-ui.ts) in front of two replica listeners (the ops server with
 * gateway's read routes over a registry each): forwarded answers, the next replica when one is
 * down, the event stream relayed and resumed elsewhere with Last-Event-ID, 503 when none answers.
 */
const peerIds = (
  await Promise.all(Array.from({ length: 3 }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))))
).map((peerId) => peerId.toString())

/** A replica's applied registry: the same records (the same log) on each; `append` applies one more. */
function replicaFeed(): GatewaySource & { append(peerId: string, seq: number): void } {
  const registry = new Registry()
  let waiters: Array<() => void> = []
  const append = (peerId: string, seq: number): void => {
    registry.apply({
      index: registry.appliedIndex + 1,
      data: encodeCommand({
        timestampMs: 1_700_000_000_000,
        command: { kind: 'delta', submitterPeerId: peerId, delta: { originPeerId: peerId, seq, fields: {} } },
      }),
    })
    for (const waiter of waiters.splice(0)) waiter()
  }
  for (const peerId of peerIds) append(peerId, 1)
  return {
    append,
    role: 'replica',
    appliedIndex: () => registry.appliedIndex,
    get: (peerId) => registry.get(peerId),
    list: (filter) => registry.list(filter),
    changesSince: (index, limit) => registry.changesSince(index, limit),
    waitForChange: (index, signal) =>
      registry.changesSince(index, 1).records.length > 0
        ? Promise.resolve()
        : new Promise((resolve, reject) => {
            waiters.push(resolve)
            signal.addEventListener('abort', () => {
              waiters = waiters.filter((waiter) => waiter !== resolve)
              reject(signal.reason)
            })
          }),
    status: () => ({
      role: 'replica',
      peerId: peerIds[0]!,
      appliedIndex: registry.appliedIndex,
      leader: null,
      lagEntries: 0,
    }),
  }
}

const feeds = new Map<number, ReturnType<typeof replicaFeed>>()

async function replicaListener(id: number): Promise<OpsServer> {
  const feed = replicaFeed()
  feeds.set(id, feed)
  const whoAmI = (app: FastifyInstance): void => {
    app.get('/v1/cluster', async () => ({ self: { id } }))
  }
  return startOpsServer({
    address: { host: '127.0.0.1', port: 0 },
    registry: new PromRegistry(),
    health: () => ({}),
    ready: () => ({ ready: true }),
    plugins: [whoAmI, gateway({ source: feed })],
  })
}

/** Reads the change events' ids off an SSE body as they come. */
function sseIds(response: Response): {
  until(condition: (ids: string[]) => boolean): Promise<{ ids: string[]; ended: boolean }>
  cancel(): Promise<void>
} {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
  let text = ''
  let ended = false
  const ids = (): string[] => [...text.matchAll(/^id: (\d+)$/gm)].map((match) => match[1]!)
  return {
    async until(condition) {
      while (!condition(ids()) && !ended) {
        const { value, done } = await reader.read()
        if (done) ended = true
        else text += value
      }
      return { ids: ids(), ended }
    },
    cancel: () => reader.cancel(),
  }
}

/** The first `count` ids of a stream, then it is closed. */
async function eventIds(response: Response, count: number): Promise<string[]> {
  const stream = sseIds(response)
  const { ids } = await stream.until((seen) => seen.length >= count)
  await stream.cancel()
  return ids
}

const closers: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => {})
})

async function setUp(): Promise<{ replicas: OpsServer[]; ui: ClusterUi }> {
  const replicas = [await replicaListener(1), await replicaListener(2)]
  for (const replica of replicas) closers.push(() => replica.close())
  const ui = await startClusterUi({
    upstreams: replicas.map((replica) => replica.address),
    address: { host: '127.0.0.1', port: 0 },
  })
  closers.push(() => ui.close())
  return { replicas, ui }
}

describe('nodeledger ui server', () => {
  it('serves the page and forwards /v1/cluster and /v1/nodes to the first replica that answers, the next when it is down', async () => {
    const { replicas, ui } = await setUp()
    expect(await (await fetch(ui.url)).text()).toBe(clusterPageHtml())
    expect(await (await fetch(`${ui.url}v1/cluster`)).json()).toEqual({ self: { id: 1 } })
    const nodes = (await (await fetch(`${ui.url}v1/nodes?limit=2`)).json()) as { nodes: unknown[]; next: string }
    expect(nodes.nodes).toHaveLength(2)
    // Bad input is the replica's answer, not a reason to try the next one.
    expect((await fetch(`${ui.url}v1/nodes?limit=0`)).status).toBe(400)
    await replicas[0]!.close()
    expect(await (await fetch(`${ui.url}v1/cluster`)).json()).toEqual({ self: { id: 2 } })
    await replicas[1]!.close()
    const none = await fetch(`${ui.url}v1/cluster`)
    expect(none.status).toBe(503)
    expect(await none.json()).toMatchObject({ code: 'UNAVAILABLE' })
  })

  it('relays the event stream; when its replica goes, the stream ends and resumes on the next with Last-Event-ID', async () => {
    const { replicas, ui } = await setUp()
    expect(await eventIds(await fetch(`${ui.url}v1/events?from=0`), 3)).toEqual(['1', '2', '3'])
    const following = await fetch(`${ui.url}v1/events?from=1`)
    expect(following.headers.get('content-type')).toMatch(/^text\/event-stream/)
    const stream = sseIds(following)
    expect(await stream.until((ids) => ids.length >= 2)).toEqual({ ids: ['2', '3'], ended: false })
    // The relay stays open past what its replica had: a change applied later comes on the same stream.
    for (const feed of feeds.values()) feed.append(peerIds[0]!, 2)
    expect(await stream.until((ids) => ids.length >= 3)).toEqual({ ids: ['2', '3', '4'], ended: false })
    // Its replica goes: the relay ends.
    await replicas[0]!.close()
    expect(await stream.until(() => false)).toEqual({ ids: ['2', '3', '4'], ended: true })
    // What a browser's EventSource does next: the same URL, with the last id it got.
    const resumed = await eventIds(await fetch(`${ui.url}v1/events?from=1`, { headers: { 'last-event-id': '3' } }), 1)
    expect(resumed).toEqual(['4'])
  })
})
