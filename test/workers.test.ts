import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AuthorityClient } from '@nodeledger/client'
import type { StatusResult } from '@nodeledger/protocol'
import type { ProcessCluster } from '@nodeledger/testkit'
import { waitUntil } from '@nodeledger/testkit'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { DELTAS_TOPIC, encodeGossipDelta } from '@nodeledger/protocol'
import { createWorkerHost } from '@nodeledger/worker'
import type { NodeEventTracker } from '@nodeledger/worker'
import { converged, leaderOf, operatorClient, statuses } from './support/cluster-client.ts'
import { clusterWithLeases, removeDir, startWorker, workerSlots } from './support/workers.ts'
import type { WorkerSlot } from './support/workers.ts'

/**
 * Issue 5's done-when, on real replica processes: 3 replicas and 20 workers (NodeEventTrackers in
 * this process: "several per process is fine"). Each test leaves every worker running and caught up.
 */
const WORKERS = 20
/** Short leases so the test sees expiry, but long enough for a loaded 2-core machine. */
const LIVENESS = { ttlMs: 4_000, disconnectGraceMs: 1_000 }

let cluster: ProcessCluster
let client: AuthorityClient
let root: string
let slots: WorkerSlot[] = []

const running = (): NodeEventTracker[] => slots.flatMap((slot) => (slot.tracker === undefined ? [] : [slot.tracker]))

async function leaderStatus(): Promise<StatusResult> {
  return await leaderOf(client)
}

/** Every running worker holds exactly what the replicas hold: same digest, nothing provisional. */
async function cachesConverge(timeoutMs = 30_000): Promise<string> {
  return await waitUntil(
    "every worker cache to equal the replicas' registry",
    async () => {
      const all = await converged(client)
      const digests = new Set(all.map((status) => status.registryDigest))
      if (digests.size !== 1) return undefined
      const [digest] = digests
      return running().every((tracker) => tracker.digest() === digest) ? digest : undefined
    },
    timeoutMs,
    200,
  )
}

beforeAll(async () => {
  cluster = clusterWithLeases(3, LIVENESS)
  cluster.startAll()
  client = await operatorClient(cluster)
  await leaderStatus()
  ;({ root, slots } = await workerSlots(WORKERS))
  // Start in small batches: 20 joins at once on 2 cores would only measure the scheduler.
  for (let i = 0; i < slots.length; i += 5) {
    await Promise.all(
      slots.slice(i, i + 5).map((slot, j) =>
        startWorker(slot, cluster.multiaddrs, {
          self: { isStaked: true, isWebScraper: (i + j) % 2 === 0, version: '1.0.0' },
        }),
      ),
    )
  }
}, 300_000)

afterAll(async () => {
  await Promise.allSettled(running().map((tracker) => tracker.stop({ leave: false })))
  await client?.stop()
  await cluster?.stopAll()
  if (root !== undefined) removeDir(root)
}, 60_000)

describe('workers: gossip, durable caches, leader-following sync (issue 5)', () => {
  it('every worker joined, is active, and holds every other worker', async () => {
    const digest = await cachesConverge()
    expect(digest).toMatch(/^[0-9a-f]{64}$/)
    for (const tracker of running()) {
      const active = tracker.all({ active: true }).map((record) => record.peerId)
      expect(active).toHaveLength(WORKERS)
      expect(tracker.eligible('web')).toHaveLength(WORKERS / 2)
    }
  }, 60_000)

  it('a delta published by one worker reaches every cache (gossip first, then the log) and the log', async () => {
    const author = slots[3]!.tracker!
    const ack = await author.update({ isDiscordScraper: true, version: '1.1.0' })
    expect(ack.duplicate).toBe(false)
    const logged = await client.get(author.peerId)
    expect(logged.record).toMatchObject({ isDiscordScraper: true, version: '1.1.0', originSeq: author.ownSeq })
    await waitUntil(
      'the delta in every cache',
      () => running().every((tracker) => tracker.get(author.peerId)?.version === '1.1.0'),
      20_000,
    )
    await cachesConverge()
    const gossiped = running().reduce((sum, tracker) => sum + tracker.metrics.gossipAccepted, 0)
    expect(gossiped).toBeGreaterThan(0)
  }, 60_000)

  it('a forged gossip delta (origin is not the signer) is rejected by the receiver, reaches no cache, and costs the sender its score', async () => {
    const victim = slots[1]!.tracker!
    const target = slots[2]!.tracker!
    const rogue = await createWorkerHost({
      privateKey: await generateKeyPair('Ed25519'),
      listen: ['/ip4/127.0.0.1/tcp/0'],
    })
    try {
      rogue.services.gossip.subscribe(DELTAS_TOPIC)
      await rogue.dial(target.host.getMultiaddrs()[0]!)
      await waitUntil(
        'the rogue to see the target on the topic',
        () => rogue.services.gossip.getSubscribers(DELTAS_TOPIC).some((peer) => peer.toString() === target.peerId),
        10_000,
      )
      const rejectedBefore = target.metrics.gossipRejected
      const forged = encodeGossipDelta({
        originPeerId: victim.peerId,
        seq: victim.ownSeq + 100,
        fields: { version: 'forged' },
      })
      for (let i = 0; i < 3; i++) await rogue.services.gossip.publish(DELTAS_TOPIC, forged)
      await waitUntil('the target to reject the forgery', () => target.metrics.gossipRejected > rejectedBefore, 10_000)
      // Scores are refreshed on gossipsub's heartbeat (1 s), not at each message.
      const scoreOf = (): number =>
        (target.host.services.gossip as unknown as { getScore(peerId: string): number }).getScore(
          rogue.peerId.toString(),
        )
      const score = await waitUntil(
        "the rogue's score to fall below 0",
        () => (scoreOf() < 0 ? scoreOf() : undefined),
        10_000,
      )
      expect(score).toBeLessThan(0)
      expect(running().every((tracker) => tracker.get(victim.peerId)?.version !== 'forged')).toBe(true)
    } finally {
      await rogue.stop()
    }
  }, 60_000)

  it('a worker restarted with its data dir comes back with its cache and misses nothing written while it was down', async () => {
    const slot = slots[5]!
    const before = slot.tracker!
    const beforeIndex = before.appliedIndex
    const beforeSize = before.size
    await before.stop({ leave: false })
    slot.tracker = undefined
    // Written while it is down: another worker's change, and an operator's write.
    await slots[6]!.tracker!.update({ version: 'written-while-down' })
    const restarted = await startWorker(slot, cluster.multiaddrs)
    expect(restarted.size).toBeGreaterThanOrEqual(beforeSize)
    expect(restarted.appliedIndex).toBeGreaterThan(beforeIndex)
    expect(restarted.get(slots[6]!.tracker!.peerId)?.version).toBe('written-while-down')
    await cachesConverge()
  }, 60_000)

  it('a worker with a wiped data dir rebuilds its cache and continues its sequence', async () => {
    const slot = slots[7]!
    await slot.tracker!.update({ returnedItems: 42 })
    const seqBefore = slot.tracker!.ownSeq
    await slot.tracker!.stop({ leave: false })
    slot.tracker = undefined
    removeDir(slot.dataDir)
    const rebuilt = await startWorker(slot, cluster.multiaddrs)
    // Its join is the next seq after the last one the authority had: nothing reused, nothing STALE.
    expect(rebuilt.ownSeq).toBe(seqBefore + 1)
    expect((await client.get(rebuilt.peerId)).record?.originSeq).toBe(seqBefore + 1)
    expect(rebuilt.size).toBe(WORKERS)
    await cachesConverge()
  }, 60_000)

  it("SIGKILL of the leader: every worker follows the new one, nobody expires, caches converge to the replicas' registry", async () => {
    const old = await leaderStatus()
    await cluster.kill(old.id, 'SIGKILL')
    const next = await waitUntil(
      'a new leader',
      async () => (await statuses(client)).find((status) => status?.role === 'leader' && status.id !== old.id),
      20_000,
    )
    // A write through the new leader must reach every cache by the watch (or anti-entropy).
    const author = slots[9]!.tracker!
    await author.update({ version: 'after-failover' })
    await waitUntil(
      'the post-failover write in every cache',
      () => running().every((tracker) => tracker.get(author.peerId)?.version === 'after-failover'),
      30_000,
    )
    const newLeaderAddress = cluster.multiaddrOf(next.id)
    await waitUntil(
      'every worker to follow the new leader',
      () => running().every((tracker) => tracker.client.leader === newLeaderAddress),
      30_000,
    )
    // Steady heartbeats across the failover: the new leader granted fresh leases, nobody expired.
    const records = (await client.list({ limit: 1000 })).records
    expect(records.filter((record) => !record.isActive).map((record) => record.peerId)).toEqual([])
    cluster.start(old.id)
    await cachesConverge(45_000)
  }, 120_000)

  it('leases: silence past the TTL expires a node (one entry), a vanished connection too, a leave at once; idle heartbeats cost no entries', async () => {
    // A node that stays connected but stops heartbeating: only the TTL can end its lease.
    const [quiet] = await workerSlots(1).then((made) => made.slots)
    const quietClient = new AuthorityClient({ bootstrap: cluster.multiaddrs, privateKey: quiet!.privateKey })
    await quietClient.start()
    const quietId = quietClient.libp2p.peerId.toString()
    try {
      await quietClient.submit({ originPeerId: quietId, seq: 1, fields: { version: 'quiet' } })
      // The lease runs from the heartbeat's arrival, which comes before its answer: measure from
      // the sending (a slow commit of the activation on a loaded machine must not count against it).
      const heartbeatSentAt = Date.now()
      expect((await quietClient.heartbeat(quietId)).active).toBe(true)
      const expired = await waitUntil(
        'the quiet node to expire',
        async () => {
          const record = (await quietClient.get(quietId)).record
          return record !== null && !record.isActive ? record : undefined
        },
        LIVENESS.ttlMs * 4,
      )
      expect(Date.now() - heartbeatSentAt).toBeGreaterThanOrEqual(LIVENESS.ttlMs)
      expect(expired.uptimeAccumulatedMs).toBeGreaterThanOrEqual(LIVENESS.ttlMs)
      expect(expired.lastLeftMs - expired.lastJoinedMs).toBe(expired.uptimeAccumulatedMs)
      // Its next heartbeat makes it active again.
      expect((await quietClient.heartbeat(quietId)).active).toBe(true)
      expect((await quietClient.get(quietId)).record?.isActive).toBe(true)
    } finally {
      await quietClient.stop()
    }

    const vanished = slots[11]!
    const vanishedId = vanished.tracker!.peerId
    await vanished.tracker!.stop({ leave: false })
    vanished.tracker = undefined
    await waitUntil(
      'the vanished worker to be inactive',
      async () => (await client.get(vanishedId)).record?.isActive === false,
      LIVENESS.ttlMs * 4,
    )

    const leaving = slots[12]!
    const leavingId = leaving.tracker!.peerId
    await leaving.tracker!.stop({ leave: true })
    leaving.tracker = undefined
    expect((await client.get(leavingId)).record?.isActive).toBe(false)

    // The quiet client is gone too now; once its lease ends, nothing changes and the log stands still.
    await waitUntil(
      'the quiet node to be inactive again',
      async () => (await client.get(quietId)).record?.isActive === false,
      LIVENESS.ttlMs * 4,
    )
    const before = (await leaderStatus()).lastIndex
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    expect((await leaderStatus()).lastIndex).toBe(before)
    await cachesConverge()
  }, 90_000)

  it('a leave with heartbeats every 20 ms still ends inactive: no heartbeat in flight overtakes it', async () => {
    // CI caught a heartbeat sent just before the leave and handled just after it: the node was
    // active again. 20 ms heartbeats keep one in flight nearly always.
    const made = await workerSlots(4)
    try {
      const trackers = await Promise.all(
        made.slots.map((slot) => startWorker(slot, cluster.multiaddrs, { heartbeatIntervalMs: 20 })),
      )
      await new Promise((resolve) => setTimeout(resolve, 500))
      await Promise.all(trackers.map((tracker) => tracker.stop({ leave: true })))
      for (const tracker of trackers) expect((await client.get(tracker.peerId)).record?.isActive).toBe(false)
      // And it stays so: nothing arrives after the leave.
      await new Promise((resolve) => setTimeout(resolve, 500))
      for (const tracker of trackers) expect((await client.get(tracker.peerId)).record?.isActive).toBe(false)
    } finally {
      await Promise.allSettled(made.slots.map((slot) => slot.tracker?.stop({ leave: false })))
      removeDir(made.root)
    }
  }, 60_000)
})
