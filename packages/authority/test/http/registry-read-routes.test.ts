import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Registry as PromRegistry } from 'prom-client'
import { startOpsServer } from '@nodeledger/metrics'
import type { OpsServer } from '@nodeledger/metrics'
import { Registry, encodeCommand } from '@nodeledger/registry'
import type { Command, SelfReported } from '@nodeledger/registry'
import { clusterPageHtml, clusterPageRoutes } from '../../src/http/cluster-page.ts'
import { clusterRoutes } from '../../src/http/cluster-routes.ts'
import { registryReadRoutes } from '../../src/http/registry-read-routes.ts'
import type { RegistryFeed } from '../../src/http/registry-read-routes.ts'

/**
 * The replica's read routes for the cluster page (the gateway's GET /v1/nodes and /v1/events,
 * interim) and the page itself, over a real listener, a real Registry and a log applied by the test.
 */
const NODES = 12
const peerIds = (
  await Promise.all(Array.from({ length: NODES }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))))
)
  .map((peerId) => peerId.toString())
  .sort()

class Log implements RegistryFeed {
  readonly #registry = new Registry()
  #index = 0
  #waiters: Array<{ index: number; resolve: () => void }> = []
  readonly #seqs = new Map<string, number>()

  registry(): Registry {
    return this.#registry
  }
  applied(): number {
    return this.#index
  }
  waitApplied(index: number, signal: AbortSignal): Promise<void> {
    if (this.#index >= index) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const waiter = { index, resolve }
      this.#waiters.push(waiter)
      signal.addEventListener('abort', () => {
        this.#waiters = this.#waiters.filter((other) => other !== waiter)
        reject(signal.reason)
      })
    })
  }
  /** An entry the registry does not know (a Raft no-op): the applied index moves, the registry's does not. */
  noop(): void {
    this.#index++
    this.#release()
  }
  delta(origin: string, fields: Partial<SelfReported>): number {
    const seq = (this.#seqs.get(origin) ?? 0) + 1
    this.#seqs.set(origin, seq)
    const command: Command = { kind: 'delta', submitterPeerId: origin, delta: { originPeerId: origin, seq, fields } }
    this.#index++
    this.#registry.apply({ index: this.#index, data: encodeCommand({ timestampMs: 1_700_000_000_000, command }) })
    this.#release()
    return this.#index
  }
  #release(): void {
    const ready = this.#waiters.filter((waiter) => waiter.index <= this.#index)
    this.#waiters = this.#waiters.filter((waiter) => waiter.index > this.#index)
    for (const waiter of ready) waiter.resolve()
  }
}

/** Reads SSE events off a fetch body until `count` change events have come. */
async function readEvents(
  response: Response,
  count: number,
): Promise<Array<{ id: string; event: string; data: { index: number; node: { peerId: string } } }>> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
  const events: Array<{ id: string; event: string; data: { index: number; node: { peerId: string } } }> = []
  let buffer = ''
  while (events.length < count) {
    const { value, done } = await reader.read()
    if (done) break
    buffer += value
    let end = buffer.indexOf('\n\n')
    while (end >= 0) {
      const block = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      const fields = Object.fromEntries(
        block
          .split('\n')
          .filter((line) => !line.startsWith(':') && line.includes(': '))
          .map((line) => [line.slice(0, line.indexOf(': ')), line.slice(line.indexOf(': ') + 2)]),
      )
      if (fields.event === 'change')
        events.push({ id: fields.id!, event: fields.event, data: JSON.parse(fields.data!) })
      end = buffer.indexOf('\n\n')
    }
  }
  await reader.cancel()
  return events
}

let log: Log
let server: OpsServer
let base: string

beforeAll(async () => {
  log = new Log()
  for (const [i, peerId] of peerIds.entries())
    log.delta(peerId, { isStaked: i % 2 === 0, isWebScraper: i % 3 === 0, version: `1.0.${i}` })
  server = await startOpsServer({
    address: { host: '127.0.0.1', port: 0 },
    registry: new PromRegistry(),
    health: () => ({}),
    ready: () => ({ ready: true }),
    plugins: [clusterPageRoutes, clusterRoutes(() => undefined), registryReadRoutes(log)],
  })
  base = `http://127.0.0.1:${server.address.port}`
})

afterAll(async () => {
  await server?.close()
})

describe('GET /v1/nodes (interim gateway route)', () => {
  it('pages every record by peer id with next and the applied index; records are NodeData as JSON', async () => {
    const first = (await (await fetch(`${base}/v1/nodes?limit=5`)).json()) as {
      nodes: Array<Record<string, unknown>>
      next: string | null
      index: number
    }
    expect(first.nodes.map((node) => node.peerId)).toEqual(peerIds.slice(0, 5))
    expect(first.next).toBe(peerIds[4])
    expect(first.index).toBe(log.applied())
    expect(first.nodes[0]).toMatchObject({ peerId: peerIds[0], isStaked: true, version: '1.0.0', changedIndex: 1 })
    expect(Object.keys(first.nodes[0]!)).toContain('lastLeftReason')
    const rest = (await (await fetch(`${base}/v1/nodes?limit=100&after=${first.next}`)).json()) as {
      nodes: Array<{ peerId: string }>
      next: string | null
    }
    expect(rest.nodes.map((node) => node.peerId)).toEqual(peerIds.slice(5))
    expect(rest.next).toBeNull()
  })

  it('filters by staked, capability and active', async () => {
    const staked = (await (await fetch(`${base}/v1/nodes?staked=true&capability=web`)).json()) as {
      nodes: Array<{ peerId: string }>
    }
    expect(staked.nodes.map((node) => node.peerId)).toEqual(peerIds.filter((_, i) => i % 2 === 0 && i % 3 === 0))
    const active = (await (await fetch(`${base}/v1/nodes?active=true`)).json()) as { nodes: unknown[] }
    expect(active.nodes).toEqual([])
  })

  it('refuses bad input with 400: a limit out of range, a capability or peer id that is none', async () => {
    for (const query of ['limit=0', 'limit=1001', 'limit=x', 'capability=fax', 'after=not-a-peer-id', 'staked=maybe'])
      expect((await fetch(`${base}/v1/nodes?${query}`)).status, query).toBe(400)
  })
})

describe('GET /v1/events (interim gateway route)', () => {
  it('streams one event per record changed after ?from, then new changes as they apply (past no-op entries)', async () => {
    const from = log.applied() - 2
    const response = await fetch(`${base}/v1/events?from=${from}`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/)
    const reading = readEvents(response, 4)
    log.noop()
    const later = [log.delta(peerIds[0]!, { version: '2.0.0' }), log.delta(peerIds[1]!, { version: '2.0.0' })]
    const events = await reading
    expect(events.map((event) => Number(event.id))).toEqual([from + 1, from + 2, ...later])
    expect(events.every((event) => event.event === 'change')).toBe(true)
    expect(events[2]!.data).toMatchObject({ index: later[0], node: { peerId: peerIds[0], version: '2.0.0' } })
  })

  it('resumes after Last-Event-ID (what a browser sends when it reconnects)', async () => {
    const last = log.applied()
    const index = log.delta(peerIds[2]!, { version: '3.0.0' })
    const response = await fetch(`${base}/v1/events?from=0`, { headers: { 'last-event-id': String(last) } })
    const [event] = await readEvents(response, 1)
    expect(event).toMatchObject({ id: String(index), data: { index, node: { peerId: peerIds[2] } } })
  })

  it('refuses a bad from with 400', async () => {
    expect((await fetch(`${base}/v1/events?from=-1`)).status).toBe(400)
  })
})

describe('the cluster page', () => {
  it('GET / and /ui serve one self-contained document that may only talk to its own origin', async () => {
    for (const path of ['/', '/ui']) {
      const response = await fetch(`${base}${path}`)
      expect(response.status).toBe(200)
      expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8')
      expect(response.headers.get('content-security-policy')).toMatch(/default-src 'none'.*connect-src 'self'/)
      const html = await response.text()
      expect(html).toBe(clusterPageHtml())
      // Style and script are inline; nothing is loaded from anywhere.
      expect(html).not.toMatch(/<(script|link|img|iframe)[^>]+(src|href)=/i)
      expect(html).not.toMatch(/https?:\/\//)
      expect(html).toContain('/v1/cluster')
      expect(html).not.toContain('/*SCRIPT*/')
    }
  })

  it('GET /v1/cluster is 503 with a code while the replica starts', async () => {
    const response = await fetch(`${base}/v1/cluster`)
    expect(response.status).toBe(503)
    expect(await response.json()).toMatchObject({ code: 'UNAVAILABLE' })
  })
})
