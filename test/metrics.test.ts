import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, openSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AuthorityClient } from '@nodeledger/client'
import type { PromText } from '@nodeledger/metrics'
import type { StatusResult } from '@nodeledger/protocol'
import { ProcessCluster, waitUntil } from '@nodeledger/testkit'
import type { NodeEventTracker } from '@nodeledger/worker'
import { converged, leaderOf, makePeerIds, operatorClient, submitMany } from './support/cluster-client.ts'
import { freePort, probe, scrape } from './support/metrics.ts'
import { removeDir, startWorker, workerSlots } from './support/workers.ts'

/**
 * Metrics and health on real processes: 3 replica processes with the cluster file's `http`, a
 * worker process started as `nodeledger worker --http`, and a second worker in this process.
 * Every figure is read from GET /metrics and parsed as Prometheus text; every wait polls.
 */
const CLI = join(dirname(fileURLToPath(import.meta.url)), '../packages/cli/src/main.ts')
const WRITES = 300
/** More than READY_APPLIED_LAG_ENTRIES_MAX: a follower paused through them is behind by more than the bound. */
const WRITES_WHILE_PAUSED = 1_500

let cluster: ProcessCluster
let client: AuthorityClient
let peerIds: string[]
const seqs = new Map<string, number>()
let root: string
let slotsRoot: string | undefined
let workerProcess: ChildProcess | undefined
let workerUrl: string
let inProcess: NodeEventTracker | undefined

const delta = (after: PromText, before: PromText, name: string, labels: Record<string, string> = {}): number =>
  (after.value(name, labels) ?? 0) - (before.value(name, labels) ?? 0)

async function roles(): Promise<{ leader: StatusResult; followers: number[] }> {
  const leader = await leaderOf(client)
  return { leader, followers: cluster.ids.filter((id) => id !== leader.id) }
}

beforeAll(async () => {
  cluster = ProcessCluster.create({ replicas: 3, http: true })
  cluster.startAll()
  client = await operatorClient(cluster)
  peerIds = await makePeerIds(64)
  root = mkdtempSync(join(tmpdir(), 'nodeledger-metrics-'))
  await leaderOf(client)
}, 60_000)

afterAll(async () => {
  if (workerProcess !== undefined && workerProcess.exitCode === null) {
    const exited = new Promise((resolve) => workerProcess!.once('exit', resolve))
    workerProcess.kill('SIGKILL')
    await exited
  }
  await inProcess?.stop({ leave: false }).catch(() => {})
  await client?.stop()
  await cluster?.stopAll()
  if (root !== undefined) removeDir(root)
  if (slotsRoot !== undefined) removeDir(slotsRoot)
}, 60_000)

describe('replica and worker metrics and health, over HTTP (issue 12)', () => {
  it('every replica answers /health (200, who it is) and /ready (200 once a leader is known and it caught up)', async () => {
    for (const id of cluster.ids) {
      const health = await probe(cluster.httpUrl(id), '/health')
      expect(health.status).toBe(200)
      expect(health.body).toMatchObject({ status: 'ok', replica: id })
      await waitUntil(`replica ${id} ready`, async () => (await probe(cluster.httpUrl(id), '/ready')).status === 200)
    }
    const ready = await probe(cluster.httpUrl(cluster.ids[0]!), '/ready')
    expect(ready.body).toMatchObject({ ready: true })
    expect(ready.body.leader).toBeGreaterThan(0)
  })

  it("writes move the leader's and a follower's metrics: proposals, applied index, requests, fsync, apply, link bytes", async () => {
    const { leader, followers } = await roles()
    const follower = followers[0]!
    const leaderUrl = cluster.httpUrl(leader.id)
    const followerUrl = cluster.httpUrl(follower)
    const [leaderBefore, followerBefore] = [await scrape(leaderUrl), await scrape(followerUrl)]
    expect(leaderBefore.value('nodeledger_raft_role', { role: 'leader' })).toBe(1)
    expect(followerBefore.value('nodeledger_raft_role', { role: 'follower' })).toBe(1)

    const acknowledged = await submitMany(client, peerIds, seqs, WRITES, 8)
    expect(acknowledged).toHaveLength(WRITES)
    await converged(client)
    const [leaderAfter, followerAfter] = [await scrape(leaderUrl), await scrape(followerUrl)]

    expect(leaderAfter.value('nodeledger_raft_term')).toBe(followerAfter.value('nodeledger_raft_term'))
    expect(followerAfter.value('nodeledger_raft_leader_id')).toBe(leader.id)
    expect(delta(leaderAfter, leaderBefore, 'nodeledger_raft_proposals_accepted_total')).toBeGreaterThanOrEqual(WRITES)
    expect(delta(leaderAfter, leaderBefore, 'nodeledger_raft_applied_index')).toBeGreaterThanOrEqual(WRITES)
    expect(delta(followerAfter, followerBefore, 'nodeledger_raft_applied_index')).toBeGreaterThanOrEqual(WRITES)
    expect(followerAfter.value('nodeledger_raft_commit_index')).toBeGreaterThanOrEqual(
      leaderAfter.value('nodeledger_raft_applied_index')! - 1,
    )
    expect(
      delta(leaderAfter, leaderBefore, 'nodeledger_api_requests_total', { op: 'submit', code: 'OK' }),
    ).toBeGreaterThanOrEqual(WRITES)
    expect(
      delta(leaderAfter, leaderBefore, 'nodeledger_api_request_duration_seconds_count', { op: 'submit' }),
    ).toBeGreaterThanOrEqual(WRITES)
    expect(delta(leaderAfter, leaderBefore, 'nodeledger_fsync_duration_seconds_count')).toBeGreaterThan(0)
    expect(delta(followerAfter, followerBefore, 'nodeledger_fsync_duration_seconds_count')).toBeGreaterThan(0)
    expect(delta(followerAfter, followerBefore, 'nodeledger_apply_duration_seconds_count')).toBeGreaterThanOrEqual(
      WRITES,
    )
    expect(followerAfter.value('nodeledger_registry_records')).toBeGreaterThan(0)
    const toFollower = { protocol: 'raft', peer: String(follower) }
    expect(delta(leaderAfter, leaderBefore, 'nodeledger_peer_link_sent_bytes_total', toFollower)).toBeGreaterThan(
      WRITES * 100,
    )
    const fromLeader = { protocol: 'raft', peer: String(leader.id) }
    expect(
      delta(followerAfter, followerBefore, 'nodeledger_peer_link_received_bytes_total', fromLeader),
    ).toBeGreaterThan(WRITES * 100)
    expect(leaderAfter.value('nodeledger_peer_link_up', { ...toFollower, direction: 'outbound' })).toBe(1)
    expect(followerAfter.value('nodeledger_raft_applied_lag_entries')).toBeLessThan(WRITES)
    // Node's own process metrics ride along.
    expect(leaderAfter.value('process_cpu_user_seconds_total')).toBeGreaterThan(0)
  })

  it('a worker process (nodeledger worker --http) is ready once joined; its records gauge counts a worker that joins; the leader counts their leases and watches', async () => {
    const port = await freePort()
    workerUrl = `http://127.0.0.1:${port}`
    const log = openSync(join(root, 'worker-process.log'), 'a')
    workerProcess = spawn(
      process.execPath,
      [
        CLI,
        'worker',
        '--cluster',
        cluster.clusterPath,
        '--data',
        join(root, 'worker-process', 'data'),
        '--http',
        `127.0.0.1:${port}`,
        '--heartbeat-ms',
        '500',
      ],
      { stdio: ['ignore', log, log] },
    )
    const tail = (): string => readFileSync(join(root, 'worker-process.log'), 'utf8').slice(-2_000)
    await waitUntil(
      'the worker process to answer /ready 200',
      async () => (await probe(workerUrl, '/ready')).status === 200,
      30_000,
      200,
    ).catch((error: Error) => {
      throw new Error(`${error.message}\n${tail()}`)
    })
    const joined = await scrape(workerUrl)
    const records = joined.value('nodeledger_worker_records', { worker: '1' })!
    expect(records).toBeGreaterThanOrEqual(1)
    expect(joined.value('nodeledger_worker_ready', { worker: '1' })).toBe(1)
    expect(joined.value('nodeledger_worker_gossip_published_total', { worker: '1' })).toBeGreaterThanOrEqual(1)
    expect(joined.value('nodeledger_worker_heartbeats_total', { worker: '1', result: 'ok' })).toBeGreaterThanOrEqual(1)
    expect(joined.value('nodeledger_worker_applied_index', { worker: '1' })).toBeGreaterThan(0)
    expect(joined.samples('nodeledger_worker_info')).toHaveLength(1)

    // A second worker joins: the first one's cache (and gauge) holds one record more.
    const { root: slotsDir, slots } = await workerSlots(1)
    slotsRoot = slotsDir
    inProcess = await startWorker(slots[0]!, cluster.multiaddrs)
    await waitUntil(
      "the first worker's records gauge to count the second worker",
      async () => (await scrape(workerUrl)).value('nodeledger_worker_records', { worker: '1' })! >= records + 1,
    )
    const { leader } = await roles()
    const leaderText = await waitUntil('the leader to hold both leases', async () => {
      const text = await scrape(cluster.httpUrl(leader.id))
      return text.value('nodeledger_leases_held')! >= 2 ? text : undefined
    })
    // Each worker watches the replica its peer id hashes to (issue 13): the watches add up over all three.
    let watchers = 0
    for (const id of cluster.ids) watchers += (await scrape(cluster.httpUrl(id))).value('nodeledger_api_watchers') ?? 0
    expect(watchers).toBeGreaterThanOrEqual(2)
    expect(leaderText.value('nodeledger_lease_transitions_total', { to: 'active' })).toBeGreaterThanOrEqual(2)
    expect(leaderText.value('nodeledger_lease_heartbeats_total')).toBeGreaterThan(0)
  })

  it("a follower paused through 1,500 writes whose leader then dies: /ready 503, no leader known (and the worker's too); both ready again once a leader is back", async () => {
    const { leader, followers } = await roles()
    const [paused, other] = followers as [number, number]
    cluster.signal(paused, 'SIGSTOP')
    try {
      const acknowledged = await submitMany(client, peerIds, seqs, WRITES_WHILE_PAUSED, 32)
      expect(acknowledged).toHaveLength(WRITES_WHILE_PAUSED)
      await cluster.kill(leader.id, 'SIGKILL')
      await cluster.kill(other, 'SIGKILL')
    } finally {
      cluster.signal(paused, 'SIGCONT')
    }
    const url = cluster.httpUrl(paused)
    const notReady = await waitUntil(`replica ${paused} to answer /ready 503`, async () => {
      const answer = await probe(url, '/ready')
      return answer.status === 503 ? answer : undefined
    })
    expect(notReady.body).toMatchObject({ ready: false, reason: expect.stringMatching(/^no leader known/) })
    expect((await probe(url, '/health')).status).toBe(200)
    expect((await scrape(url)).value('nodeledger_raft_leader_id')).toBe(0)
    const workerDown = await waitUntil('the worker process to answer /ready 503', async () => {
      const answer = await probe(workerUrl, '/ready')
      return answer.status === 503 ? answer : undefined
    })
    expect(workerDown.body.reason).toMatch(/no leader acknowledged a heartbeat/)

    cluster.start(leader.id)
    cluster.start(other)
    await waitUntil(`replica ${paused} ready again`, async () => (await probe(url, '/ready')).status === 200, 30_000)
    const caughtUp = await scrape(url)
    expect(caughtUp.value('nodeledger_raft_applied_lag_entries')).toBeLessThanOrEqual(1_000)
    expect(caughtUp.value('nodeledger_raft_leader_id')).toBeGreaterThan(0)
    await waitUntil('the worker ready again', async () => (await probe(workerUrl, '/ready')).status === 200, 30_000)
  })
})
