import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, openSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ProcessCluster, waitUntil } from '@nodeledger/testkit'
import { freePort, probe } from './support/metrics.ts'
import { SseReader } from './support/sse.ts'
import type { ChangeEvent } from './support/sse.ts'
import { removeDir } from './support/workers.ts'

/**
 * The HTTP gateway (issue 14) on real processes, spoken to with plain `fetch` only: 3 replica
 * processes with HTTP listeners and two worker processes started as `nodeledger worker --http`.
 * Every route, every kind of bad input, and an event stream that follows a leader failover
 * (SIGKILL) without a gap.
 */
const CLI = join(dirname(fileURLToPath(import.meta.url)), '../packages/cli/src/main.ts')
const RECORD_FIELDS_COUNT = 26
const REQUEST_TIMEOUT_MS = 60_000

// biome-ignore lint/suspicious/noExplicitAny: the test reads JSON answers field by field, as any HTTP client does
type Json = any

interface WorkerProcess {
  readonly url: string
  readonly child: ChildProcess
  readonly log: string
  peerId: string
}

let cluster: ProcessCluster
let root: string
const workers: WorkerProcess[] = []
const streams: SseReader[] = []

async function request(
  url: string,
  init: { method?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: Json }> {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) })
  const text = await response.text()
  return { status: response.status, body: text === '' ? undefined : JSON.parse(text) }
}

const putSelf = (worker: WorkerProcess, body: unknown, contentType = 'application/json') =>
  request(`${worker.url}/v1/self`, {
    method: 'PUT',
    body: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { 'content-type': contentType },
  })

async function startWorkerProcess(name: string, capabilities: string): Promise<WorkerProcess> {
  const port = await freePort()
  const log = join(root, `${name}.log`)
  const child = spawn(
    process.execPath,
    [
      CLI,
      'worker',
      '--cluster',
      cluster.clusterPath,
      '--data',
      join(root, name, 'data'),
      '--http',
      `127.0.0.1:${port}`,
      '--heartbeat-ms',
      '500',
      '--staked',
      '--capabilities',
      capabilities,
    ],
    { stdio: ['ignore', openSync(log, 'a'), openSync(log, 'a')] },
  )
  const worker: WorkerProcess = { url: `http://127.0.0.1:${port}`, child, log, peerId: '' }
  workers.push(worker)
  await waitUntil(
    'the worker process to answer /ready 200',
    async () => (await probe(worker.url, '/ready').catch(() => ({ status: 0 }))).status === 200,
    120_000,
    200,
  ).catch((error: Error) => {
    throw new Error(`${error.message}\n${readFileSync(log, 'utf8').slice(-2_000)}`)
  })
  worker.peerId = (await request(`${worker.url}/v1/status`)).body.peerId
  return worker
}

/** The replica that says it leads, from the replicas' own /v1/status. */
async function leaderId(timeoutMs = 60_000): Promise<number> {
  return await waitUntil(
    'a replica that leads',
    async () => {
      for (const id of cluster.ids) {
        if (!cluster.isRunning(id)) continue
        const answer = await request(`${cluster.httpUrl(id)}/v1/status`).catch(() => undefined)
        if (answer?.status === 200 && answer.body.raftRole === 'leader') return id
      }
      return undefined
    },
    timeoutMs,
    100,
  )
}

beforeAll(async () => {
  cluster = ProcessCluster.create({ replicas: 3, http: true })
  cluster.startAll()
  root = mkdtempSync(join(tmpdir(), 'nodeledger-gateway-'))
  // Generous: three replica processes starting on a loaded 2-core machine take a while to elect.
  await leaderId(120_000)
  await startWorkerProcess('worker-a', 'web,twitter')
  await startWorkerProcess('worker-b', 'web')
}, 300_000)

afterAll(async () => {
  for (const stream of streams) stream.close()
  for (const worker of workers) {
    if (worker.child.exitCode !== null) continue
    const exited = new Promise((resolve) => worker.child.once('exit', resolve))
    worker.child.kill('SIGKILL')
    await exited
  }
  await cluster?.stopAll()
  if (root !== undefined) removeDir(root)
}, 60_000)

describe('the HTTP gateway of a worker process, over plain HTTP (issue 14)', () => {
  it('GET /v1/status: role, peer id, applied index, the leader, lag', async () => {
    const [a] = workers
    const leader = await leaderId()
    const { status, body } = await request(`${a!.url}/v1/status`)
    expect(status).toBe(200)
    expect(body.role).toBe('worker')
    expect(body.peerId).toMatch(/^12D3KooW/)
    expect(body.appliedIndex).toBeGreaterThan(0)
    expect(cluster.ids.map((id) => cluster.peerIdOf(id))).toContain(body.leader.peerId)
    expect(body.leader.peerId).toBe(cluster.peerIdOf(leader))
    expect(body.lagEntries).toBeGreaterThanOrEqual(0)
  })

  it('GET /v1/nodes: every worker, paged in peer id order, filtered, with the index', async () => {
    const [a, b] = workers
    const ids = [a!.peerId, b!.peerId].sort()
    await waitUntil(
      "both workers in A's registry",
      async () => (await request(`${a!.url}/v1/nodes`)).body.nodes.length === 2,
    )
    const first = await request(`${a!.url}/v1/nodes?limit=1`)
    expect(first.status).toBe(200)
    expect(first.body.nodes.map((node: Json) => node.peerId)).toEqual([ids[0]])
    expect(first.body.next).toBe(ids[0])
    expect(first.body.index).toBeGreaterThan(0)
    const second = await request(`${a!.url}/v1/nodes?limit=1&after=${first.body.next}`)
    expect(second.body.nodes.map((node: Json) => node.peerId)).toEqual([ids[1]])
    expect(second.body.next).toBeNull()
    const web = await request(`${a!.url}/v1/nodes?active=true&staked=true&capability=web`)
    expect(web.body.nodes.map((node: Json) => node.peerId)).toEqual(ids)
    const twitter = await request(`${a!.url}/v1/nodes?capability=twitter`)
    expect(twitter.body.nodes.map((node: Json) => node.peerId)).toEqual([a!.peerId])
    expect((await request(`${a!.url}/v1/nodes?active=false`)).body.nodes).toEqual([])
    for (const node of web.body.nodes) {
      expect(Object.keys(node)).toHaveLength(RECORD_FIELDS_COUNT)
      expect(typeof node.changedIndex).toBe('number')
      expect(node.isActive).toBe(true)
    }
  })

  it('PUT /v1/self: answered once the log has it; the other worker and the replicas serve the change at that index', async () => {
    const [a, b] = workers
    const before = (await request(`${a!.url}/v1/nodes/${a!.peerId}`)).body.node
    const answer = await putSelf(a!, { version: '9.9.9', returnedItems: 5, isDiscordScraper: true })
    expect(answer.status).toBe(200)
    expect(answer.body.seq).toBeGreaterThan(before.originSeq)
    expect(answer.body.index).toBeGreaterThan(before.changedIndex)
    const own = await request(`${a!.url}/v1/nodes/${a!.peerId}`)
    expect(own.body.index).toBeGreaterThanOrEqual(answer.body.index)
    expect(own.body.node).toMatchObject({
      version: '9.9.9',
      returnedItems: 5,
      isDiscordScraper: true,
      originSeq: answer.body.seq,
    })
    const seen = await waitUntil('B to apply the change', async () => {
      const got = await request(`${b!.url}/v1/nodes/${a!.peerId}`)
      return got.body.node.changedIndex >= answer.body.index ? got.body : undefined
    })
    expect(seen.node).toMatchObject({ version: '9.9.9', changedIndex: answer.body.index })
    for (const id of cluster.ids) {
      const replica = await waitUntil(`replica ${id} to apply it`, async () => {
        const got = await request(`${cluster.httpUrl(id)}/v1/nodes/${a!.peerId}`)
        return got.status === 200 && got.body.node.changedIndex >= answer.body.index ? got.body : undefined
      })
      expect(replica.node).toEqual(seen.node)
    }
  })

  it('GET /v1/eligible/{category}: the ranking, on a worker and on a replica', async () => {
    const [a, b] = workers
    const web = await request(`${a!.url}/v1/eligible/web`)
    expect(web.status).toBe(200)
    expect(web.body.category).toBe('web')
    expect(web.body.nodes.map((node: Json) => node.peerId).sort()).toEqual([a!.peerId, b!.peerId].sort())
    const discord = await request(`${a!.url}/v1/eligible/discord`)
    expect(discord.body.nodes.map((node: Json) => node.peerId)).toEqual([a!.peerId])
    const replica = await request(`${cluster.httpUrl(cluster.ids[0]!)}/v1/eligible/web`)
    expect(replica.status).toBe(200)
    expect(replica.body.nodes.map((node: Json) => node.peerId).sort()).toEqual([a!.peerId, b!.peerId].sort())
  })

  it('bad input is 400 (404 for an unknown record) with exactly { code, message }, and changes nothing', async () => {
    const [a] = workers
    const before = (await request(`${a!.url}/v1/nodes/${a!.peerId}`)).body.node
    const cases: [string, () => Promise<{ status: number; body: Json }>, number, string][] = [
      ['an unknown field', () => putSelf(a!, { version: '1', colour: 'red' }), 400, 'INVALID'],
      ['a field a node may not set', () => putSelf(a!, { isActive: false }), 400, 'INVALID'],
      ['a bookkeeping field', () => putSelf(a!, { originSeq: 1_000 }), 400, 'INVALID'],
      ['a wrong type', () => putSelf(a!, { isStaked: 'yes' }), 400, 'INVALID'],
      ['a number as a string', () => putSelf(a!, { returnedItems: '5' }), 400, 'INVALID'],
      ['a bad multiaddr', () => putSelf(a!, { multiaddrs: ['not a multiaddr'] }), 400, 'INVALID'],
      ['an empty body object', () => putSelf(a!, {}), 400, 'INVALID'],
      ['malformed JSON', () => putSelf(a!, '{"version":'), 400, 'INVALID'],
      ['an oversized body', () => putSelf(a!, { version: 'x'.repeat(40 * 1024) }), 400, 'TOO_LARGE'],
      ['a malformed peer id', () => request(`${a!.url}/v1/nodes/not-a-peer-id!`), 400, 'INVALID'],
      ['base58 that is no peer id', () => request(`${a!.url}/v1/nodes/abc`), 400, 'INVALID'],
      [
        'an unknown peer',
        () => request(`${a!.url}/v1/nodes/12D3KooWGzh8K9zYHkpFn6vFZgyJ4Ts2KvDCXA3dkR2YM9iNhqHf`),
        404,
        'NOT_FOUND',
      ],
      ['an unknown query parameter', () => request(`${a!.url}/v1/nodes?colour=red`), 400, 'INVALID'],
      ['a limit of 0', () => request(`${a!.url}/v1/nodes?limit=0`), 400, 'INVALID'],
      ['a limit over 1000', () => request(`${a!.url}/v1/nodes?limit=1001`), 400, 'INVALID'],
      ['a boolean filter that is not one', () => request(`${a!.url}/v1/nodes?active=1x`), 400, 'INVALID'],
      ['an unknown capability', () => request(`${a!.url}/v1/nodes?capability=cooking`), 400, 'INVALID'],
      ['an unknown category', () => request(`${a!.url}/v1/eligible/cooking`), 400, 'INVALID'],
      ['a negative from', () => request(`${a!.url}/v1/events?from=-1`), 400, 'INVALID'],
      [
        'a Last-Event-ID that is no index',
        () => request(`${a!.url}/v1/events`, { headers: { 'last-event-id': 'x' } }),
        400,
        'INVALID',
      ],
    ]
    for (const [what, send, status, code] of cases) {
      const answer = await send()
      expect(answer.status, what).toBe(status)
      expect(answer.body.code, what).toBe(code)
      expect(Object.keys(answer.body).sort(), what).toEqual(['code', 'message'])
      expect(answer.body.message, what).not.toMatch(/\n\s+at /)
    }
    const after = (await request(`${a!.url}/v1/nodes/${a!.peerId}`)).body.node
    expect(after.originSeq).toBe(before.originSeq)
  })

  it("GET /v1/openapi.json describes the worker's routes; a replica's gateway is read-only", async () => {
    const [a] = workers
    const document = (await request(`${a!.url}/v1/openapi.json`)).body
    expect(document.openapi).toBe('3.1.0')
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining([
        '/v1/nodes',
        '/v1/nodes/{peerId}',
        '/v1/eligible/{category}',
        '/v1/status',
        '/v1/self',
        '/v1/events',
      ]),
    )
    const replicaUrl = cluster.httpUrl(cluster.ids[0]!)
    const replicaDocument = (await request(`${replicaUrl}/v1/openapi.json`)).body
    expect(replicaDocument.paths['/v1/self']).toBeUndefined()
    const put = await request(`${replicaUrl}/v1/self`, {
      method: 'PUT',
      body: '{"version":"1"}',
      headers: { 'content-type': 'application/json' },
    })
    expect(put.status).toBe(404)
    expect(put.body.code).toBe('NOT_FOUND')
    const status = (await request(`${replicaUrl}/v1/status`)).body
    expect(status).toMatchObject({ role: 'replica', replica: cluster.ids[0] })
    expect(status.lagEntries).toBeGreaterThanOrEqual(0)
    // The ops routes are still there, beside the gateway.
    expect((await probe(a!.url, '/health')).status).toBe(200)
  })

  it('GET /v1/events follows a leader failover (SIGKILL) without a gap: every committed change once, ids strictly increasing', async () => {
    const [a, b] = workers
    const fromIndex = (await request(`${b!.url}/v1/status`)).body.appliedIndex as number
    const stream = await SseReader.open(`${b!.url}/v1/events?from=${fromIndex}`)
    streams.push(stream)
    expect(stream.status).toBe(200)
    const acknowledged: { peerId: string; index: number }[] = []
    const latenciesMs: number[] = []
    let killed: number | undefined
    const WRITES_EACH = 24
    // Each writer waits to see its last write in the stream before the next one: the registry keeps
    // records, not history, so two changes of one record while the worker reconnects would arrive as
    // one (its latest); one at a time per record, every committed change must arrive.
    const writer = async (worker: WorkerProcess, name: string): Promise<void> => {
      for (let i = 0; i < WRITES_EACH; i++) {
        const sentMs = performance.now()
        const answer = await putSelf(worker, { version: `${name}-${i}`, returnedItems: i })
        expect(answer.status, JSON.stringify(answer.body)).toBe(200)
        acknowledged.push({ peerId: worker.peerId, index: answer.body.index })
        latenciesMs.push(performance.now() - sentMs)
        await waitUntil(
          `${name}'s write ${i} in the stream`,
          () => stream.changes().some((change) => change.id === answer.body.index && change.peerId === worker.peerId),
          60_000,
          20,
        )
        if (name === 'a' && i === 8) {
          killed = await leaderId()
          await cluster.kill(killed)
        }
      }
    }
    await Promise.all([writer(a!, 'a'), writer(b!, 'b')])
    const after = await leaderId()
    expect(after).not.toBe(killed)
    const sorted = [...latenciesMs].sort((x, y) => x - y)
    // A figure for the report, not an assertion: PUT /v1/self round trips, the slowest across the failover.
    console.log(
      `PUT /v1/self over a leader SIGKILL: ${sorted.length} writes, p50 ${sorted[sorted.length >> 1]!.toFixed(0)} ms, max ${sorted[sorted.length - 1]!.toFixed(0)} ms`,
    )

    const changes = stream.changes()
    // Strictly increasing ids, each the index in the data and the record's changedIndex.
    for (let i = 0; i < changes.length; i++) {
      const change = changes[i]!
      expect(change.index).toBe(change.id)
      expect(change.node.changedIndex).toBe(change.id)
      if (i > 0) expect(change.id).toBeGreaterThan(changes[i - 1]!.id)
    }
    // Every acknowledged write is in the stream, at its index...
    const ids = new Map(changes.map((change) => [change.id, change.peerId]))
    for (const write of acknowledged) expect(ids.get(write.index), `write at ${write.index}`).toBe(write.peerId)
    // ...and nothing the log changed in between is missing: the stream holds every change the
    // replicas' change index has after fromIndex for the records that changed (the final state of
    // each record is its last event).
    const survivor = cluster.ids.find((id) => id !== killed)!
    const nodes = (await request(`${cluster.httpUrl(survivor)}/v1/nodes`)).body.nodes as Json[]
    for (const node of nodes) {
      if (node.changedIndex <= fromIndex) continue
      const last = [...changes].reverse().find((change: ChangeEvent) => change.peerId === node.peerId)
      expect(last?.node, node.peerId).toEqual(node)
    }
    expect(acknowledged).toHaveLength(2 * WRITES_EACH)
    stream.close()

    // Resume from the middle with Last-Event-ID: the records changed after it, as they are now, in log order.
    const middle = changes[Math.floor(changes.length / 2)]!.id
    const resumed = await SseReader.open(`${b!.url}/v1/events`, { 'last-event-id': String(middle) })
    streams.push(resumed)
    const expected = nodes
      .filter((node) => node.changedIndex > middle)
      .sort((x, y) => x.changedIndex - y.changedIndex)
      .map((node) => ({ id: node.changedIndex, peerId: node.peerId }))
    await waitUntil('the resumed stream', () => resumed.changes().length >= expected.length)
    expect(resumed.changes().map((change) => ({ id: change.id, peerId: change.peerId }))).toEqual(expected)
    resumed.close()
  })

  it("a replica's GET /v1/events sends its applied state from 0", async () => {
    const [a] = workers
    const id = cluster.ids.find((candidate) => cluster.isRunning(candidate))!
    const stream = await SseReader.open(`${cluster.httpUrl(id)}/v1/events?from=0`)
    streams.push(stream)
    expect(stream.status).toBe(200)
    await waitUntil('A in the replica stream', () => stream.changes().some((change) => change.peerId === a!.peerId))
    stream.close()
  })
})
