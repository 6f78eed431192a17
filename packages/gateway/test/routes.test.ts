import { fastify } from 'fastify'
import type { FastifyInstance } from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import { RECORD_FIELDS } from '@nodeledger/registry'
import { peerIdFromSeed } from '@nodeledger/testkit/fixtures'
import { GatewayError } from '../src/errors.ts'
import { NODE_SCHEMA } from '../src/schemas.ts'
import { gateway } from '../src/routes.ts'
import type { GatewayOptions } from '../src/routes.ts'
import { SELF_BODY_BYTES_MAX } from '../src/constants.ts'
import { FakeSource } from './fake-source.ts'

/** The gateway's JSON routes over a fake source, through Fastify's inject (no socket). */

let app: FastifyInstance | undefined

async function mount(source: FakeSource, options: Partial<GatewayOptions> = {}): Promise<FastifyInstance> {
  // As startOpsServer builds its listener: a 1 KiB default body limit the PUT route overrides, 256-character path parameters.
  app = fastify({ logger: false, bodyLimit: 1024, routerOptions: { maxParamLength: 256 } })
  await gateway({ source, ...options })(app)
  await app.ready()
  return app
}

afterEach(async () => {
  await app?.close()
  app = undefined
})

// biome-ignore lint/suspicious/noExplicitAny: the tests read answers as a client does, field by field
type Json = any

async function getJson(server: FastifyInstance, url: string): Promise<{ status: number; body: Json }> {
  const response = await server.inject({ method: 'GET', url })
  return { status: response.statusCode, body: response.json() }
}

async function put(server: FastifyInstance, payload: string | object, contentType = 'application/json') {
  const response = await server.inject({
    method: 'PUT',
    url: '/v1/self',
    headers: { 'content-type': contentType },
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
  })
  return { status: response.statusCode, body: response.json() }
}

function withNodes(count: number): FakeSource {
  const source = new FakeSource()
  for (let seed = 100; seed < 100 + count; seed++)
    source.change(seed, { isActive: seed % 2 === 0, isStaked: seed % 3 === 0, isWebScraper: seed % 5 === 0 })
  return source
}

describe('GET /v1/nodes', () => {
  it('pages in peer id order: next is the last peer id of a full page, null on the last; index is the applied index', async () => {
    const source = withNodes(25)
    const server = await mount(source)
    const seen: string[] = []
    let after: string | null = null
    let pages = 0
    do {
      const { status, body } = await getJson(server, `/v1/nodes?limit=10${after === null ? '' : `&after=${after}`}`)
      expect(status).toBe(200)
      expect(body.index).toBe(25)
      expect(body.nodes.length).toBeLessThanOrEqual(10)
      seen.push(...body.nodes.map((node: { peerId: string }) => node.peerId))
      after = body.next
      pages++
    } while (after !== null)
    expect(pages).toBe(3)
    expect(seen).toEqual([...source.feed.list()].map((record) => record.peerId))
    expect(seen).toEqual([...seen].sort())
  })

  it('a page exactly full at the end says next: null (no empty page to ask for)', async () => {
    const server = await mount(withNodes(10))
    const { body } = await getJson(server, '/v1/nodes?limit=10')
    expect(body.nodes).toHaveLength(10)
    expect(body.next).toBeNull()
  })

  it('defaults to 100 records a page', async () => {
    const server = await mount(withNodes(150))
    const { body } = await getJson(server, '/v1/nodes')
    expect(body.nodes).toHaveLength(100)
    expect(body.next).toBe(body.nodes[99].peerId)
  })

  it('filters by active, staked and capability', async () => {
    const source = withNodes(30)
    const server = await mount(source)
    const all = source.feed.list()
    const cases: [string, (record: (typeof all)[number]) => boolean][] = [
      ['active=true', (record) => record.isActive],
      ['active=false', (record) => !record.isActive],
      ['staked=true', (record) => record.isStaked],
      ['capability=web', (record) => record.isWebScraper],
      ['active=true&staked=true', (record) => record.isActive && record.isStaked],
    ]
    for (const [query, keep] of cases) {
      const { status, body } = await getJson(server, `/v1/nodes?${query}&limit=1000`)
      expect(status, query).toBe(200)
      expect(
        body.nodes.map((node: { peerId: string }) => node.peerId),
        query,
      ).toEqual(all.filter(keep).map((record) => record.peerId))
    }
  })

  it('NodeJson is the record: every NodeData field, numbers as JSON numbers', async () => {
    const source = new FakeSource()
    const record = source.change(7, {
      multiaddrs: ['/ip4/10.0.0.1/tcp/4001'],
      isActive: true,
      firstJoinedMs: 1_700_000_000_000,
      uptimeAccumulatedMs: 12_345,
      version: '1.2.3',
      returnedItems: 42,
      lastLeftReason: 'ttl',
      observers: [peerIdFromSeed(9001)],
      originSeq: 3,
    })
    const server = await mount(source)
    const { body } = await getJson(server, `/v1/nodes/${record.peerId}`)
    expect(Object.keys(body.node)).toEqual([...RECORD_FIELDS])
    expect(body.node).toEqual(record)
    expect(Object.keys(NODE_SCHEMA.properties as object)).toEqual([...RECORD_FIELDS])
  })

  it.each([
    ['an unknown parameter', '/v1/nodes?colour=red'],
    ['a limit of 0', '/v1/nodes?limit=0'],
    ['a limit above 1000', '/v1/nodes?limit=1001'],
    ['a limit that is not a number', '/v1/nodes?limit=ten'],
    ['a limit that is not an integer', '/v1/nodes?limit=1.5'],
    ['active neither true nor false', '/v1/nodes?active=maybe'],
    ['an unknown capability', '/v1/nodes?capability=cooking'],
    ['an after that is not a peer id', '/v1/nodes?after=not%20base58!'],
  ])('%s is 400 INVALID with a message', async (_what, url) => {
    const server = await mount(withNodes(3))
    const { status, body } = await getJson(server, url)
    expect(status).toBe(400)
    expect(body.code).toBe('INVALID')
    expect(typeof body.message).toBe('string')
    expect(Object.keys(body).sort()).toEqual(['code', 'message'])
  })
})

describe('GET /v1/nodes/{peerId}', () => {
  it('answers the record and the index; 404 NOT_FOUND for an unknown peer', async () => {
    const source = withNodes(3)
    const server = await mount(source)
    const [first] = source.feed.list()
    const found = await getJson(server, `/v1/nodes/${first!.peerId}`)
    expect(found).toEqual({ status: 200, body: { node: first, index: 3 } })
    const missing = await getJson(server, `/v1/nodes/${peerIdFromSeed(4242)}`)
    expect(missing.status).toBe(404)
    expect(missing.body).toMatchObject({ code: 'NOT_FOUND' })
  })

  it.each([
    ['characters outside base58', 'not-a-peer-id!'],
    ['base58 that is not a peer id', 'abc'],
    ['a non-canonical form (CIDv1)', 'bafzaajaiaejcb6mpm5ubmrypzr6m4ot6wbdy3msbffrvntpcytbmjnmz2sd6dksm'],
    ['too long', '1'.repeat(129)],
  ])('a malformed peer id (%s) is 400 INVALID', async (_what, text) => {
    const server = await mount(withNodes(1))
    const { status, body } = await getJson(server, `/v1/nodes/${text}`)
    expect(status).toBe(400)
    expect(body.code).toBe('INVALID')
  })

  it('a source that is starting answers 503 UNAVAILABLE', async () => {
    const source = withNodes(1)
    source.appliedIndex = () => {
      throw new GatewayError('UNAVAILABLE', 'starting')
    }
    const server = await mount(source)
    const { status, body } = await getJson(server, `/v1/nodes/${peerIdFromSeed(100)}`)
    expect(status).toBe(503)
    expect(body).toEqual({ code: 'UNAVAILABLE', message: 'starting' })
  })
})

describe('GET /v1/eligible/{category} and /v1/status', () => {
  it("answers the source's ranking with the index", async () => {
    const source = new FakeSource()
    source.change(1, { isActive: true, isStaked: true, isWebScraper: true, returnedItems: 5 })
    source.change(2, { isActive: true, isStaked: true, isWebScraper: true, returnedItems: 50 })
    source.change(3, { isActive: false, isStaked: true, isWebScraper: true })
    source.change(4, { isActive: true, isStaked: false, isWebScraper: true })
    const server = await mount(source)
    const { status, body } = await getJson(server, '/v1/eligible/web')
    expect(status).toBe(200)
    expect(body.index).toBe(4)
    expect(body.nodes.map((node: { peerId: string }) => node.peerId)).toEqual(
      source.eligible!('web').map((record) => record.peerId),
    )
    expect(body.nodes).toHaveLength(2)
    expect((await getJson(server, '/v1/eligible/cooking')).status).toBe(400)
  })

  it('is not mounted for a source without a ranking', async () => {
    const server = await mount(new FakeSource('replica', { eligible: false }))
    expect((await server.inject({ method: 'GET', url: '/v1/eligible/web' })).statusCode).toBe(404)
  })

  it('status is the source status, extra fields kept', async () => {
    const source = withNodes(2)
    source.status = () => ({
      role: 'worker',
      peerId: source.peerId,
      appliedIndex: 2,
      leader: { peerId: peerIdFromSeed(9001), multiaddr: '/ip4/127.0.0.1/tcp/1' },
      lagEntries: 0,
      ready: true,
    })
    const server = await mount(source)
    expect(await getJson(server, '/v1/status')).toEqual({ status: 200, body: source.status() })
  })
})

describe('PUT /v1/self', () => {
  it('hands exactly the fields given to the source and answers { seq, index }', async () => {
    const source = withNodes(1)
    source.onUpdate = async () => ({ seq: 7, index: 12 })
    const server = await mount(source)
    const fields = {
      version: '2.0.0',
      isTwitterScraper: true,
      returnedItems: 10,
      multiaddrs: ['/ip4/10.0.0.2/tcp/4001'],
    }
    expect(await put(server, fields)).toEqual({ status: 200, body: { seq: 7, index: 12 } })
    expect(source.updates).toEqual([fields])
  })

  it.each([
    ['an unknown field', { version: '1', colour: 'red' }],
    ['a field no node may set about itself', { isActive: true }],
    ['a boolean as a string', { isStaked: 'true' }],
    ['a number as a string', { returnedItems: '5' }],
    ['a negative counter', { timeouts: -1 }],
    ['a fractional counter', { timeouts: 1.5 }],
    ['a malformed eth address', { ethAddress: '0x123' }],
    ['multiaddrs that is not a list', { multiaddrs: '/ip4/10.0.0.2/tcp/4001' }],
    ['a multiaddr that does not parse', { multiaddrs: ['/ip4/999.0.0.1/tcp/1'] }],
    ['a non-canonical multiaddr', { multiaddrs: ['/ip4/10.0.0.2/tcp/04001'] }],
    ['a duplicate multiaddr', { multiaddrs: ['/ip4/10.0.0.2/tcp/1', '/ip4/10.0.0.2/tcp/1'] }],
    ['no field at all', {}],
    ['a list, not an object', [{ version: '1' }]],
  ])('%s is 400 with a code, and nothing is submitted', async (_what, body) => {
    const source = withNodes(1)
    const server = await mount(source)
    const answer = await put(server, body)
    expect(answer.status).toBe(400)
    expect(['INVALID', 'TOO_LARGE']).toContain(answer.body.code)
    expect(source.updates).toEqual([])
  })

  it('an unknown field is named in the message', async () => {
    const server = await mount(withNodes(1))
    const answer = await put(server, { version: '1', colour: 'red' })
    expect(answer.body).toEqual({
      code: 'INVALID',
      message: 'body must NOT have additional properties: "colour" is not a field it takes',
    })
  })

  it('malformed JSON, a wrong content type and an oversized body are 400 with a code', async () => {
    const source = withNodes(1)
    const server = await mount(source)
    const broken = await put(server, '{"version": ')
    expect(broken.status).toBe(400)
    expect(broken.body.code).toBe('INVALID')
    const text = await put(server, 'version=1', 'text/plain')
    expect(text.status).toBeGreaterThanOrEqual(400)
    expect(text.status).toBeLessThan(500)
    expect(text.body.code).toBe('INVALID')
    // Over the route's own limit (the listener's 1 KiB default does not apply to it: 2 KiB passes).
    const fits = await put(server, { version: '1', multiaddrs: [], ethAddress: '', notFound: 1 })
    expect(fits.status).toBe(200)
    const large = await put(server, JSON.stringify({ version: 'x'.repeat(SELF_BODY_BYTES_MAX) }))
    expect(large.status).toBe(400)
    expect(large.body.code).toBe('TOO_LARGE')
    expect(source.updates).toHaveLength(1)
  })

  it("maps the source's typed errors to statuses; anything else is 500 INTERNAL without detail", async () => {
    const source = withNodes(1)
    const server = await mount(source)
    const cases: [unknown, number, string][] = [
      [Object.assign(new Error('seq 3 overtaken by 4'), { code: 'STALE' }), 409, 'STALE'],
      [Object.assign(new Error('no leader'), { code: 'UNAVAILABLE' }), 503, 'UNAVAILABLE'],
      [Object.assign(new Error('no answer'), { code: 'TIMEOUT' }), 504, 'TIMEOUT'],
      [Object.assign(new Error('bad'), { code: 'INVALID' }), 400, 'INVALID'],
      [Object.assign(new Error('not yours'), { code: 'UNAUTHORIZED' }), 403, 'UNAUTHORIZED'],
      [new TypeError('x is undefined'), 500, 'INTERNAL'],
    ]
    for (const [error, status, code] of cases) {
      source.onUpdate = async () => {
        throw error
      }
      const answer = await put(server, { version: '3' })
      expect(answer.status, code).toBe(status)
      expect(answer.body.code).toBe(code)
      if (code === 'INTERNAL') expect(answer.body).toEqual({ code: 'INTERNAL', message: 'internal error' })
      else expect(answer.body.message).toBe((error as Error).message)
    }
  })

  it('is not mounted on a read-only source (a replica)', async () => {
    const server = await mount(new FakeSource('replica'))
    const response = await server.inject({ method: 'PUT', url: '/v1/self', payload: { version: '1' } })
    expect(response.statusCode).toBe(404)
    expect(response.json()).toEqual({ code: 'NOT_FOUND', message: 'no route PUT /v1/self' })
  })
})

describe('routes outside the gateway', () => {
  it('an unknown path or method under /v1 is 404 NOT_FOUND as { code, message }; other paths are left to the listener', async () => {
    app = fastify({ logger: false })
    app.get('/elsewhere', async () => ({ other: true }))
    await gateway({ source: withNodes(1) })(app)
    const server = app
    for (const [method, url] of [
      ['GET', '/v1/nope?x=1'],
      ['POST', '/v1/nodes'],
      ['DELETE', '/v1/self'],
    ] as const) {
      const response = await server.inject({ method, url })
      expect(response.statusCode, url).toBe(404)
      expect(response.json().code, url).toBe('NOT_FOUND')
    }
    expect((await server.inject({ method: 'GET', url: '/elsewhere' })).json()).toEqual({ other: true })
    expect((await server.inject({ method: 'GET', url: '/nope' })).json().code).not.toBe('NOT_FOUND')
  })
})

describe('GET /v1/openapi.json', () => {
  it('describes every mounted route from the schemas they validate with', async () => {
    const server = await mount(withNodes(1))
    const { status, body } = await getJson(server, '/v1/openapi.json')
    expect(status).toBe(200)
    expect(body.openapi).toBe('3.1.0')
    expect(Object.keys(body.paths).sort()).toEqual(
      [
        '/v1/eligible/{category}',
        '/v1/events',
        '/v1/nodes',
        '/v1/nodes/{peerId}',
        '/v1/openapi.json',
        '/v1/self',
        '/v1/status',
      ].sort(),
    )
    expect(body.paths['/v1/self'].put.requestBody.content['application/json'].schema.additionalProperties).toBe(false)
    const list = body.paths['/v1/nodes'].get
    expect(list.parameters.map((parameter: { name: string }) => parameter.name)).toEqual([
      'active',
      'staked',
      'capability',
      'limit',
      'after',
    ])
    const node = list.responses['200'].content['application/json'].schema.properties.nodes.items
    expect(Object.keys(node.properties)).toEqual([...RECORD_FIELDS])
    const events = body.paths['/v1/events'].get.responses['200']
    expect(events.content).toEqual({ 'text/event-stream': { schema: { type: 'string' } } })
    expect(events.description).toContain('event: change')
  })

  it("a replica's document has no PUT /v1/self", async () => {
    const server = await mount(new FakeSource('replica'))
    const { body } = await getJson(server, '/v1/openapi.json')
    expect(body.paths['/v1/self']).toBeUndefined()
    expect(body.info.title).toContain('replica')
  })
})
