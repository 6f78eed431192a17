import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AuthorityClient } from '@nodeledger/client'
import type { ProtocolError, StatusResult } from '@nodeledger/protocol'
import { ProcessCluster, waitUntil } from '@nodeledger/testkit'
import { expectAllPresent, leaderOf, makePeerIds, operatorClient, submitMany } from './support/cluster-client.ts'

/**
 * Issue 4's done-when, on real replica processes on loopback: a 3-replica cluster commits 10,000
 * submits and every replica ends with the same registry; SIGKILL of the leader loses no
 * acknowledged write and the killed replica catches up after restart.
 */
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
      return all.every((status) => status !== undefined && status.applied >= leader.commit)
        ? (all as StatusResult[])
        : undefined
    })
    const digests = new Set(statuses.map((status) => `${status.registryRecords}:${status.registryDigest}`))
    expect(digests.size).toBe(1)
    expect(statuses[0]!.registryRecords).toBe(256)
  })

  it('keeps every acknowledged write through a SIGKILL of the leader; the killed replica catches up', async () => {
    const leader = await leaderOf(client)
    const errors: string[] = []
    const writes = submitMany(client, peerIds, seqs, 2_000, 8, (error) =>
      errors.push((error as ProtocolError).code ?? String(error)),
    )
    await new Promise((resolve) => setTimeout(resolve, 150))
    await cluster.kill(leader.id, 'SIGKILL')
    const acknowledged = await writes
    const newLeader = await leaderOf(client)
    expect(newLeader.id).not.toBe(leader.id)
    // Every acknowledged write is there: the origin's seq is at least the acknowledged one.
    expect((await expectAllPresent(client, acknowledged)).missing).toEqual([])
    expect(acknowledged.length).toBeGreaterThan(1_000)
    cluster.start(leader.id)
    const caughtUp = await waitUntil(
      'the killed replica to catch up',
      async () => {
        const all = await client.statusAll()
        const current = all.map((entry) => ('status' in entry ? entry.status : undefined))
        const restarted = current.find((status) => status?.id === leader.id)
        const head = current.find((status) => status?.role === 'leader')
        return restarted !== undefined && head !== undefined && restarted.applied >= head.commit ? restarted : undefined
      },
      30_000,
    )
    expect(caughtUp.role).toBe('follower')
  })
})
