import { connect } from 'node:net'
import { fastify } from 'fastify'
import type { FastifyInstance } from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import { waitUntil } from '@nodeledger/testkit'
import { peerIdFromSeed } from '@nodeledger/testkit/fixtures'
import { gateway } from '../src/routes.ts'
import type { GatewayOptions } from '../src/routes.ts'
import type { EventStreamEnd } from '../src/events.ts'
import { FakeSource } from './fake-source.ts'

/** GET /v1/events over a real socket: Server-Sent Events from a fake source. */

let app: FastifyInstance | undefined
const ends: EventStreamEnd[] = []

async function listen(source: FakeSource, options: Partial<GatewayOptions> = {}): Promise<string> {
  app = fastify({ logger: false, forceCloseConnections: true })
  await gateway({ source, onEventStreamEnd: (end) => ends.push(end), ...options })(app)
  const address = await app.listen({ host: '127.0.0.1', port: 0 })
  return address
}

afterEach(async () => {
  await app?.close()
  app = undefined
  ends.length = 0
})

interface SseEvent {
  id?: string
  event?: string
  data?: string
  comment?: string
}

/** An EventSource's parser, small: what a client in any language does with the stream. */
class SseReader {
  readonly events: SseEvent[] = []
  readonly #controller = new AbortController()
  #buffer = ''
  done: Promise<void> = Promise.resolve()
  status = 0

  async open(url: string, headers: Record<string, string> = {}): Promise<void> {
    const response = await fetch(url, { headers, signal: this.#controller.signal })
    this.status = response.status
    if (response.body === null) return
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
    this.done = (async () => {
      try {
        for (;;) {
          const { value, done } = await reader.read()
          if (done) return
          this.#feed(value)
        }
      } catch {
        // aborted
      }
    })()
  }

  changes(): { id: number; index: number; peerId: string }[] {
    return this.events
      .filter((event) => event.event === 'change')
      .map((event) => {
        const data = JSON.parse(event.data!) as { index: number; node: { peerId: string } }
        return { id: Number(event.id), index: data.index, peerId: data.node.peerId }
      })
  }

  close(): void {
    this.#controller.abort()
  }

  #feed(text: string): void {
    this.#buffer += text
    for (let end = this.#buffer.indexOf('\n\n'); end !== -1; end = this.#buffer.indexOf('\n\n')) {
      const block = this.#buffer.slice(0, end)
      this.#buffer = this.#buffer.slice(end + 2)
      const event: SseEvent = {}
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) event.comment = line.slice(1).trim()
        else {
          const colon = line.indexOf(':')
          const field = line.slice(0, colon)
          const value = line.slice(colon + 1).trimStart()
          if (field === 'id' || field === 'event' || field === 'data') event[field] = value
        }
      }
      this.events.push(event)
    }
  }
}

const readers: SseReader[] = []
afterEach(() => {
  for (const reader of readers.splice(0)) reader.close()
})
function reader(): SseReader {
  const created = new SseReader()
  readers.push(created)
  return created
}

describe('GET /v1/events', () => {
  it('from=0 sends the current state in log order, then each change as it is applied', async () => {
    const source = new FakeSource()
    source.change(1)
    source.change(2)
    source.change(1, { version: 'again' }) // 1 changed twice: sent once, at its latest change (3)
    const url = await listen(source)
    const stream = reader()
    await stream.open(`${url}/v1/events?from=0`)
    expect(stream.status).toBe(200)
    await waitUntil('the state', () => stream.changes().length === 2)
    expect(stream.changes()).toEqual([
      { id: 2, index: 2, peerId: peerIdFromSeed(2) },
      { id: 3, index: 3, peerId: peerIdFromSeed(1) },
    ])
    source.change(5)
    source.change(6)
    await waitUntil('the live changes', () => stream.changes().length === 4)
    expect(stream.changes().map((change) => change.id)).toEqual([2, 3, 4, 5])
    const node = JSON.parse(stream.events.find((event) => event.id === '3')!.data!).node
    expect(node).toEqual(source.get(peerIdFromSeed(1)))
    expect(stream.events[0]).toMatchObject({ comment: 'changes after 0' })
  })

  it('without from, starts at the applied index: only new changes', async () => {
    const source = new FakeSource()
    source.change(1)
    source.change(2)
    const url = await listen(source)
    const stream = reader()
    await stream.open(`${url}/v1/events`)
    await waitUntil('the opening comment', () => stream.events.length >= 1)
    source.change(3)
    await waitUntil('the new change', () => stream.changes().length === 1)
    expect(stream.changes()).toEqual([{ id: 3, index: 3, peerId: peerIdFromSeed(3) }])
  })

  it('resumes after Last-Event-ID, which wins over from', async () => {
    const source = new FakeSource()
    for (let seed = 1; seed <= 5; seed++) source.change(seed)
    const url = await listen(source)
    const stream = reader()
    await stream.open(`${url}/v1/events?from=0`, { 'last-event-id': '3' })
    await waitUntil('the changes after 3', () => stream.changes().length === 2)
    expect(stream.changes().map((change) => change.id)).toEqual([4, 5])
  })

  it('a Last-Event-ID or from that is not a log index is 400 INVALID', async () => {
    const url = await listen(new FakeSource())
    for (const [query, headers] of [
      ['', { 'last-event-id': 'abc' }],
      ['?from=-1', {}],
      ['?from=x', {}],
      ['?since=1', {}],
    ] as const) {
      const response = await fetch(`${url}/v1/events${query}`, { headers })
      expect(response.status, query).toBe(400)
      expect(((await response.json()) as { code: string }).code).toBe('INVALID')
    }
  })

  it('has no HEAD route (it would hold a stream slot)', async () => {
    const url = await listen(new FakeSource())
    expect((await fetch(`${url}/v1/events`, { method: 'HEAD' })).status).toBe(404)
  })

  it('sends a comment heartbeat while idle', async () => {
    const url = await listen(new FakeSource(), { events: { heartbeatIntervalMs: 50 } })
    const stream = reader()
    await stream.open(`${url}/v1/events`)
    await waitUntil('two heartbeats', () => stream.events.filter((event) => event.comment === 'heartbeat').length >= 2)
  })

  it('refuses a stream beyond the limit with 429 TOO_MANY, and takes one again once a stream closes', async () => {
    const url = await listen(new FakeSource(), { eventsClientsMax: 2 })
    const first = reader()
    const second = reader()
    await first.open(`${url}/v1/events`)
    await second.open(`${url}/v1/events`)
    const third = await fetch(`${url}/v1/events`)
    expect(third.status).toBe(429)
    expect(await third.json()).toMatchObject({ code: 'TOO_MANY' })
    first.close()
    await waitUntil('the first stream ended', () => ends.length === 1)
    const again = reader()
    await again.open(`${url}/v1/events`)
    expect(again.status).toBe(200)
  })

  it('closes a reader that does not read (bounded buffering), and the stream count goes back down', async () => {
    const source = new FakeSource()
    // About 8 MiB of events: more than the socket buffers of a loopback connection hold.
    const multiaddrs = Array.from({ length: 32 }, (_, i) => `/dns4/a-rather-long-host-name-${i}.example.com/tcp/4001`)
    for (let seed = 1; seed <= 5_000; seed++) source.change(seed, { multiaddrs })
    const url = new URL(await listen(source, { events: { drainTimeoutMs: 500, bufferedBytesMax: 256 * 1024 } }))
    const socket = connect(Number(url.port), url.hostname)
    socket.on('error', () => {}) // the server resets it: that is the point
    await new Promise((resolve) => socket.once('connect', resolve))
    socket.write(`GET /v1/events?from=0 HTTP/1.1\r\nhost: ${url.host}\r\n\r\n`)
    socket.pause() // never reads: the server's writes back up
    await waitUntil('the slow reader closed', () => ends.includes('slow-reader'), 30_000)
    socket.destroy()
  })

  it('ends the streams when the listener closes', async () => {
    const source = new FakeSource()
    const url = await listen(source)
    const stream = reader()
    await stream.open(`${url}/v1/events`)
    await waitUntil('open', () => stream.events.length >= 1)
    await app!.close()
    app = undefined
    await stream.done
    expect(ends).toEqual(['closed'])
  })
})

describe('GET /v1/events when the source fails', () => {
  it('ends the stream (source-failed) instead of spinning when waiting for a change fails', async () => {
    const source = new FakeSource()
    const url = await listen(source)
    source.waitForChange = async () => {
      throw new Error('replica is stopping')
    }
    const stream = reader()
    await stream.open(`${url}/v1/events`)
    await stream.done
    expect(ends).toEqual(['source-failed'])
    expect(stream.events.filter((event) => event.comment === 'heartbeat')).toEqual([])
  })
})
