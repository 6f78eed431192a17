import { readFileSync, writeFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { AuthorityClient, FeedRoute } from '@nodeledger/client'
import type { WatchEvent } from '@nodeledger/protocol'
import type { NodeData } from '@nodeledger/registry'
import { ProcessCluster, waitUntil } from '@nodeledger/testkit'
import { converged, leaderOf, makePeerIds, operatorClient, submitMany } from './support/cluster-client.ts'
import { scrape } from './support/metrics.ts'
import { removeDir, startWorker, workerSlots } from './support/workers.ts'
import type { WorkerSlot } from './support/workers.ts'

/**
 * Issue 13, item 3, on real replica processes: `since` and `watch` are served by followers, each
 * worker from the replica its peer id hashes to, and a feed that moves between replicas (its
 * replica killed, the leader killed) never goes back and misses nothing.
 */
const LIVENESS = { ttlMs: 2_000, disconnectGraceMs: 1_000 }
let cluster: ProcessCluster
let client: AuthorityClient
let root: string | undefined
let slots: WorkerSlot[] = []

beforeAll(async () => {
  cluster = ProcessCluster.create({ replicas: 3, http: true })
  // Short leases: the nodes the test writes expire soon after the writes stop, and the registry is still.
  const file = JSON.parse(readFileSync(cluster.clusterPath, 'utf8')) as Record<string, unknown>
  writeFileSync(cluster.clusterPath, JSON.stringify({ ...file, liveness: LIVENESS }, null, 2))
  cluster.startAll()
  client = await operatorClient(cluster)
  await leaderOf(client)
}, 180_000)

afterAll(async () => {
  await Promise.allSettled(slots.map((slot) => slot.tracker?.stop({ leave: false })))
  await client?.stop()
  await cluster?.stopAll()
  if (root !== undefined) removeDir(root)
}, 60_000)

/** The replica id a feed key hashes to, as FeedRoute picks it. */
function homeOf(key: string): number {
  const route = new FeedRoute(
    cluster.ids.map((id) => ({ address: multiaddr(cluster.multiaddrOf(id)), peerId: cluster.peerIdOf(id) })),
    key,
  )
  return cluster.ids.find((id) => cluster.peerIdOf(id) === route.home.peerId)!
}

async function watchersByReplica(): Promise<Map<number, number>> {
  const counts = new Map<number, number>()
  for (const id of cluster.ids)
    counts.set(id, (await scrape(cluster.httpUrl(id))).value('nodeledger_api_watchers') ?? 0)
  return counts
}

/** What one watcher saw: every event in order, and the registry folded from them. */
interface Seen {
  readonly events: WatchEvent[]
  readonly state: Map<string, NodeData>
  readonly violations: string[]
  /** Times the watch was cut and resumed (on another replica, or the same one back). */
  interruptions: number
}

/** Fold a watch's events, checking the feed's promises (PROTOCOL.md "Watch") event by event. */
function observe(seen: Seen, from: number, event: WatchEvent): number {
  const previous = seen.events.at(-1)?.throughIndex ?? from
  if (event.throughIndex < previous || (event.throughIndex === previous && event.records.length > 0))
    seen.violations.push(`throughIndex ${event.throughIndex} after ${previous}`)
  for (const record of event.records) {
    if (record.changedIndex > event.throughIndex)
      seen.violations.push(
        `${record.peerId} changed at ${record.changedIndex}, beyond the event's ${event.throughIndex}`,
      )
    const held = seen.state.get(record.peerId)
    if (held !== undefined && record.changedIndex < held.changedIndex)
      seen.violations.push(`${record.peerId} went back from ${held.changedIndex} to ${record.changedIndex}`)
    seen.state.set(record.peerId, record)
  }
  seen.events.push(event)
  return event.throughIndex
}

describe('feeds from followers (issue 13)', () => {
  it("workers watch the replica their peer id hashes to: the watches are spread, the followers' included", async () => {
    ;({ root, slots } = await workerSlots(9))
    for (let i = 0; i < slots.length; i += 3)
      await Promise.all(slots.slice(i, i + 3).map((slot) => startWorker(slot, cluster.multiaddrs)))
    const expected = new Map<number, number>(cluster.ids.map((id) => [id, 0]))
    for (const slot of slots) {
      const home = homeOf(peerIdFromPrivateKey(slot.privateKey).toString())
      expected.set(home, expected.get(home)! + 1)
    }
    const counts = await waitUntil(
      'each replica to hold the watches of the workers that hash to it',
      async () => {
        const now = await watchersByReplica()
        return [...expected].every(([id, count]) => now.get(id) === count) ? now : undefined
      },
      30_000,
      250,
    )
    const leader = (await leaderOf(client)).id
    const onFollowers = [...counts].filter(([id]) => id !== leader).reduce((sum, [, count]) => sum + count, 0)
    expect(onFollowers).toBeGreaterThan(0)
    // And what they hold is the registry: the workers' caches equal the replicas'.
    const digest = (await converged(client))[0]!.registryDigest
    await waitUntil(
      "every worker's cache to equal the registry",
      async () => slots.every((slot) => slot.tracker!.digest() === digest),
      30_000,
    )
    // Gone with a leave: nothing of theirs changes in the registry later.
    await Promise.all(slots.map((slot) => slot.tracker!.stop({ leave: true })))
    for (const slot of slots) slot.tracker = undefined
  }, 120_000)

  it('a feed moved between replicas by kills of its own replica and of the leader never goes back and misses nothing', async () => {
    // One watcher per replica as its home, each on a client of its own (keys picked by their hash).
    const keys: string[] = []
    for (const id of cluster.ids) {
      for (;;) {
        const key = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
        if (homeOf(key) === id) {
          keys.push(key)
          break
        }
      }
    }
    const stop = new AbortController()
    const watchers = await Promise.all(
      keys.map(async (key) => {
        const watcherClient = new AuthorityClient({ bootstrap: cluster.multiaddrs, feedKey: key, attemptsMax: 40 })
        await watcherClient.start()
        const seen: Seen = { events: [], state: new Map(), violations: [], interruptions: 0 }
        const done = (async () => {
          let from = 0
          try {
            const watch = watcherClient.watch(0, {
              signal: stop.signal,
              onInterrupted: () => {
                seen.interruptions++
              },
            })
            for await (const event of watch) from = observe(seen, from, event)
          } catch (error) {
            if (!stop.signal.aborted) seen.violations.push(`watch ended: ${(error as Error).message}`)
          }
        })()
        return { key, home: homeOf(key), client: watcherClient, seen, done }
      }),
    )

    // Writes all along, while the nemesis kills the leader, then a follower (some watcher's home).
    const peerIds = await makePeerIds(40)
    const seqs = new Map<string, number>()
    let writing = true
    const errors: string[] = []
    const writer = (async () => {
      const acknowledged = []
      while (writing)
        acknowledged.push(...(await submitMany(client, peerIds, seqs, 40, 4, (e) => errors.push(String(e)))))
      return acknowledged
    })()
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    const firstLeader = (await leaderOf(client)).id
    await cluster.kill(firstLeader)
    const secondLeader = await waitUntil(
      'a new leader',
      async () => {
        const leader = (await client.statusAll()).find((entry) => entry.status?.role === 'leader')?.status
        return leader !== undefined && leader.id !== firstLeader ? leader.id : undefined
      },
      60_000,
    )
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    cluster.start(firstLeader)
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    const follower = cluster.ids.find((id) => id !== secondLeader && id !== firstLeader)!
    await cluster.kill(follower)
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    cluster.start(follower)
    await new Promise((resolve) => setTimeout(resolve, 2_000))
    writing = false
    const acknowledged = await writer

    // Everything settles: the written nodes' leases run out (nothing heartbeats for them), so the
    // registry stops changing; each watcher then reaches its final state.
    await converged(client, 60_000)
    const { records, throughIndex } = await waitUntil(
      'every written node to be inactive (the registry is still)',
      async () => {
        const state = await fullState(client)
        return state.records.every((record) => !record.isActive) ? state : undefined
      },
      60_000,
      250,
    )
    for (const watcher of watchers) {
      await waitUntil(
        `the watcher homed on replica ${watcher.home} to reach index ${throughIndex}`,
        async () => (watcher.seen.events.at(-1)?.throughIndex ?? 0) >= throughIndex,
        60_000,
      )
    }
    stop.abort()
    await Promise.all(watchers.map((watcher) => watcher.done))
    await Promise.all(watchers.map((watcher) => watcher.client.stop()))

    expect(acknowledged.length).toBeGreaterThan(100)
    // The watchers homed on the killed replicas were moved (and came back): the feed did travel.
    for (const watcher of watchers)
      if (watcher.home === firstLeader || watcher.home === follower)
        expect(watcher.seen.interruptions, `watcher homed on ${watcher.home}`).toBeGreaterThan(0)
    for (const watcher of watchers) {
      expect(watcher.seen.violations, `watcher homed on ${watcher.home}`).toEqual([])
      // Nothing missed: the folded state is the registry, record for record.
      expect(watcher.seen.state.size).toBe(records.length)
      for (const record of records) expect(watcher.seen.state.get(record.peerId)).toEqual(record)
    }
    // Every acknowledged write is in what the watchers folded.
    for (const delta of acknowledged)
      for (const watcher of watchers)
        expect(watcher.seen.state.get(delta.originPeerId)?.originSeq ?? 0).toBeGreaterThanOrEqual(delta.seq)
  }, 240_000)
})

/** The registry as `since(0)` pages give it (from the leader: the operator client has no feedKey). */
async function fullState(from: AuthorityClient): Promise<{ records: NodeData[]; throughIndex: number }> {
  const byPeer = new Map<string, NodeData>()
  let index = 0
  for (let more = true; more; ) {
    const page = await from.since(index, 10_000)
    for (const record of page.records) byPeer.set(record.peerId, record)
    index = page.throughIndex
    more = page.more
  }
  return { records: [...byPeer.values()], throughIndex: index }
}
