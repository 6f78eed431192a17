import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { AuthorityClient } from '@nodeledger/client'
import { loadOrCreateKey } from '@nodeledger/authority'
import { ProtocolError } from '@nodeledger/protocol'
import type { StatusResult } from '@nodeledger/protocol'
import type { Delta } from '@nodeledger/registry'
import { ProcessCluster, waitUntil } from '@nodeledger/testkit'

/**
 * Issue 4's done-when, on real replica processes on loopback: a 3-replica cluster commits 10,000
 * submits and every replica ends with the same registry; SIGKILL of the leader loses no
 * acknowledged write and the killed replica catches up after restart.
 */
async function makePeerIds(count: number): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < count; i++) ids.push(peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString())
  return ids
}

async function operatorClient(cluster: ProcessCluster): Promise<AuthorityClient> {
  const privateKey = await loadOrCreateKey(cluster.file.operators[0]!.keyFile)
  const client = new AuthorityClient({ bootstrap: cluster.multiaddrs, privateKey, requestTimeoutMs: 3000 })
  await client.start()
  return client
}

async function leaderOf(client: AuthorityClient): Promise<StatusResult> {
  return await waitUntil('a leader', async () => {
    const all = await client.statusAll()
    return all.map((entry) => ('status' in entry ? entry.status : undefined)).find((status) => status?.role === 'leader')
  })
}

/** Run `count` submits with `concurrency` in flight; returns the acknowledged deltas. */
async function submitMany(client: AuthorityClient, peerIds: readonly string[], seqs: Map<string, number>, count: number, concurrency: number, onError?: (error: unknown) => void): Promise<Delta[]> {
  const acknowledged: Delta[] = []
  let issued = 0
  // Each lane owns the peers lane, lane + concurrency, ... so one origin's seqs go out in order.
  const peersPerLane = Math.max(1, Math.floor(peerIds.length / concurrency))
  const worker = async (lane: number): Promise<void> => {
    for (let turn = 0; issued < count; turn++) {
      issued++
      const peerId = peerIds[(lane + concurrency * (turn % peersPerLane)) % peerIds.length]!
      const seq = (seqs.get(peerId) ?? 0) + 1
      seqs.set(peerId, seq)
      const delta: Delta = { originPeerId: peerId, seq, fields: { returnedItems: seq, version: `v${seq}` } }
      try {
        await client.submit(delta)
        acknowledged.push(delta)
      } catch (error) {
        if (onError === undefined) throw error
        onError(error)
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, (_, lane) => worker(lane)))
  return acknowledged
}

describe('authority cluster (3 replica processes)', () => {
  let cluster: ProcessCluster
  let client: AuthorityClient
  let peerIds: string[]
  const seqs = new Map<string, number>()

  beforeAll(async () => {
    cluster = ProcessCluster.create({ replicas: 3 })
    cluster.startAll()
    client = await operatorClient(cluster)
    peerIds = await makePeerIds(256)
  })

  afterAll(async () => {
    await client?.stop()
    await cluster?.stopAll()
  })

  it('elects a leader, commits 10,000 submits, and every replica holds the same registry', async () => {
    await leaderOf(client)
    const acknowledged = await submitMany(client, peerIds, seqs, 10_000, 64)
    expect(acknowledged).toHaveLength(10_000)
    const leader = await leaderOf(client)
    const statuses = await waitUntil('every replica applied the leader commit', async () => {
      const all = (await client.statusAll()).map((entry) => ('status' in entry ? entry.status : undefined))
      return all.every((status) => status !== undefined && status.applied >= leader.commit) ? (all as StatusResult[]) : undefined
    })
    const digests = new Set(statuses.map((status) => `${status.registryRecords}:${status.registryDigest}`))
    expect(digests.size).toBe(1)
    expect(statuses[0]!.registryRecords).toBe(256)
  })

  it('keeps every acknowledged write through a SIGKILL of the leader; the killed replica catches up', async () => {
    const leader = await leaderOf(client)
    const errors: string[] = []
    const writes = submitMany(client, peerIds, seqs, 2_000, 8, (error) => errors.push((error as ProtocolError).code ?? String(error)))
    await new Promise((resolve) => setTimeout(resolve, 150))
    await cluster.kill(leader.id, 'SIGKILL')
    const acknowledged = await writes
    const newLeader = await leaderOf(client)
    expect(newLeader.id).not.toBe(leader.id)
    // Every acknowledged write is there: the origin's seq is at least the acknowledged one.
    const latest = new Map<string, number>()
    for (const delta of acknowledged) latest.set(delta.originPeerId, Math.max(latest.get(delta.originPeerId) ?? 0, delta.seq))
    for (const [peerId, seq] of latest) {
      const { record } = await client.get(peerId, { consistency: 'linearizable' })
      expect(record?.originSeq ?? 0).toBeGreaterThanOrEqual(seq)
    }
    expect(acknowledged.length).toBeGreaterThan(1_000)
    cluster.start(leader.id)
    const caughtUp = await waitUntil('the killed replica to catch up', async () => {
      const all = await client.statusAll()
      const current = all.map((entry) => ('status' in entry ? entry.status : undefined))
      const restarted = current.find((status) => status?.id === leader.id)
      const head = current.find((status) => status?.role === 'leader')
      return restarted !== undefined && head !== undefined && restarted.applied >= head.commit ? restarted : undefined
    }, 30_000)
    expect(caughtUp.role).toBe('follower')
  })
})
