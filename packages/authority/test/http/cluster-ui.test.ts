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
import { registryReadRoutes } from '../../src/http/registry-read-routes.ts'
import type { RegistryFeed } from '../../src/http/registry-read-routes.ts'

/**
 * `nodeledger ui`'s server (cluster-ui.ts) in front of two replica listeners (the ops server with
 * the page's read routes over a registry each): forwarded answers, the next replica when one is
 * down, the event stream relayed and resumed elsewhere with Last-Event-ID, 503 when none answers.
 */
const peerIds = (
  await Promise.all(Array.from({ length: 3 }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))))
).map((peerId) => peerId.toString())

/** A replica's applied registry with the same records (the same log) and a replica id of its own. */
function replicaFeed(): RegistryFeed {
  const registry = new Registry()
  for (const [i, peerId] of peerIds.entries())
    registry.apply({
      index: i + 1,
      data: encodeCommand({
        timestampMs: 1_700_000_000_000,
        command: { kind: 'delta', submitterPeerId: peerId, delta: { originPeerId: peerId, seq: 1, fields: {} } },
      }),
    })
  return {
    registry: () => registry,
    applied: () => registry.appliedIndex,
    waitApplied: (_index, signal) =>
      new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
  }
}

async function replicaListener(id: number): Promise<OpsServer> {
  const whoAmI = (app: FastifyInstance): void => {
    app.get('/v1/cluster', async () => ({ self: { id } }))
  }
  return startOpsServer({
    address: { host: '127.0.0.1', port: 0 },
    registry: new PromRegistry(),
    health: () => ({}),
    ready: () => ({ ready: true }),
    plugins: [whoAmI, registryReadRoutes(replicaFeed())],
  })
}

/** The ids of the change events of an SSE body, until `count` have come or it ends. */
async function eventIds(response: Response, count: number): Promise<{ ids: string[]; ended: boolean }> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
  let text = ''
  for (;;) {
    const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((match) => match[1]!)
    if (ids.length >= count) {
      await reader.cancel()
      return { ids, ended: false }
    }
    const { value, done } = await reader.read()
    if (done) return { ids, ended: true }
    text += value
  }
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
    const first = await eventIds(await fetch(`${ui.url}v1/events?from=0`), 3)
    expect(first.ids).toEqual(['1', '2', '3'])
    const following = await fetch(`${ui.url}v1/events?from=1`)
    expect(following.headers.get('content-type')).toMatch(/^text\/event-stream/)
    const reading = eventIds(following, 99)
    await replicas[0]!.close()
    expect(await reading).toEqual({ ids: ['2', '3'], ended: true })
    // What a browser's EventSource does next: the same URL, with the last id it got.
    const resumed = await eventIds(await fetch(`${ui.url}v1/events?from=0`, { headers: { 'last-event-id': '2' } }), 1)
    expect(resumed.ids).toEqual(['3'])
  })
})
