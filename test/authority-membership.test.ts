import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { loadOrCreateKey } from '@nodeledger/authority'
import type { AuthorityClient } from '@nodeledger/client'
import { ProtocolError } from '@nodeledger/protocol'
import { ProcessCluster, waitUntil } from '@nodeledger/testkit'
import { leaderOf, makePeerIds, operatorClient, statuses, submitMany } from './support/cluster-client.ts'

/**
 * Membership changes through the API (PROTOCOL.md "Membership"), on replica processes: replacing a
 * replica the way `member replace` does it (a new id, key, address and data dir added as a learner,
 * promoted once caught up, the old one removed), and every refusal with its code.
 */
describe('membership of record, changed one server at a time', () => {
  let cluster: ProcessCluster
  let client: AuthorityClient

  beforeAll(async () => {
    cluster = ProcessCluster.create({ replicas: 3, snapshotEveryEntries: 500 })
    cluster.startAll()
    client = await operatorClient(cluster, 5000)
    await leaderOf(client)
  })

  afterAll(async () => {
    await client?.stop()
    console.log('DIR', cluster?.dir)
    await cluster?.stopAll({ keepDir: true })
  })

  async function newMember(
    id: number,
  ): Promise<{ multiaddr: string; keyFile: string; dataDir: string; peerId: string }> {
    const keyFile = join(cluster.dir, `replica-${id}`, 'peer.key')
    const peerId = peerIdFromPrivateKey(await loadOrCreateKey(keyFile)).toString()
    const port = cluster.multiaddrs[0]!.split('/tcp/')[1]!.split('/')[0]
    return {
      multiaddr: `/ip4/127.0.0.${10 + id}/tcp/${port}/p2p/${peerId}`,
      keyFile,
      dataDir: join(cluster.dir, `replica-${id}`, 'data'),
      peerId,
    }
  }

  async function refusal(action: () => Promise<unknown>): Promise<string> {
    try {
      await action()
    } catch (error) {
      if (error instanceof ProtocolError) return error.code
      throw error
    }
    throw new Error('expected a refusal')
  }

  it('replaces a follower with a new member 4 while writing: learner, snapshot, promote, remove', async () => {
    const victim = (await leaderOf(client)).id === 2 ? 3 : 2
    const peerIds = await makePeerIds(64)
    // Enough entries that the new member starts from a snapshot.
    await submitMany(client, peerIds, new Map(), 2_000, 32)
    const four = await newMember(4)
    const added = await client.member({ action: 'add', memberId: 4, peerId: four.peerId, multiaddr: four.multiaddr })
    expect(added.members.find((member) => member.id === 4)).toMatchObject({ voter: false, started: false })
    cluster.start(4, { self: four })
    // Not caught up yet (or caught up already on a fast machine): promotion waits until it is.
    const promoted = await waitUntil(
      'member 4 to be promotable',
      async () => {
        try {
          return await client.member({ action: 'promote', memberId: 4 })
        } catch (error) {
          if (error instanceof ProtocolError && error.code === 'NOT_READY') return undefined
          throw error
        }
      },
      60_000,
    )
    expect(promoted.members.find((member) => member.id === 4)).toMatchObject({ voter: true, started: true })
    expect(cluster.logText(4)).toContain('snapshot installed')
    const removed = await client.member({ action: 'remove', memberId: victim })
    const remaining = [1, 2, 3, 4].filter((id) => id !== victim)
    expect(removed.members.map((member) => member.id).sort()).toEqual(remaining)
    await cluster.kill(victim)
    // The new membership serves writes; every member of record agrees.
    await submitMany(client, peerIds, new Map(peerIds.map((id) => [id, 1_000])), 200, 16)
    const leader = await leaderOf(client)
    expect(leader.members.map((member) => member.id).sort()).toEqual(remaining)
  })

  it('refuses what must not be done, each with its code', async () => {
    const leader = await leaderOf(client)
    const five = await newMember(5)
    const aFollower = leader.members.find((member) => member.id !== leader.id)!
    // An id, peer id or address already in use; an id that was a member once.
    expect(
      await refusal(() =>
        client.member({ action: 'add', memberId: aFollower.id, peerId: five.peerId, multiaddr: five.multiaddr }),
      ),
    ).toBe('CONFLICT')
    expect(
      await refusal(() =>
        client.member({ action: 'add', memberId: 5, peerId: aFollower.peerId, multiaddr: aFollower.multiaddr }),
      ),
    ).toBe('CONFLICT')
    const followerAddressForFive = aFollower.multiaddr.replace(/\/p2p\/.*$/, `/p2p/${five.peerId}`)
    expect(
      await refusal(() =>
        client.member({ action: 'add', memberId: 5, peerId: five.peerId, multiaddr: followerAddressForFive }),
      ),
    ).toBe('CONFLICT')
    const retired = [2, 3].find((id) => !leader.members.some((member) => member.id === id))!
    expect(
      await refusal(() =>
        client.member({ action: 'add', memberId: retired, peerId: five.peerId, multiaddr: five.multiaddr }),
      ),
    ).toBe('CONFLICT')
    // A learner that never started cannot be promoted.
    await client.member({ action: 'add', memberId: 5, peerId: five.peerId, multiaddr: five.multiaddr })
    // Not even while the commit is within the lag bound of nothing: it never answered.
    expect(await refusal(() => client.member({ action: 'promote', memberId: 5 }))).toBe('NOT_READY')
    await submitMany(client, await makePeerIds(8), new Map(), 1_100, 16)
    expect(await refusal(() => client.member({ action: 'promote', memberId: 5 }))).toBe('NOT_READY')
    await client.member({ action: 'remove', memberId: 5 })
    // The leader cannot remove itself without handing over first; after a transfer it can be removed.
    expect(await refusal(() => client.member({ action: 'remove', memberId: leader.id }))).toBe('REFUSED')
    const transferred = await client.transferLeader(aFollower.id)
    expect(transferred.leader).toBe(aFollower.id)
    const after = await leaderOf(client)
    expect(after.id).toBe(aFollower.id)
    // The old leader is a follower now, and may be removed.
    const removed = await client.member({ action: 'remove', memberId: leader.id })
    expect(removed.members.map((member) => member.id)).not.toContain(leader.id)
    expect((await statuses(client)).filter((status) => status?.role === 'leader')).toHaveLength(1)
  })
})

/**
 * A member that joins while the leader is a replica that joined later than the snapshot it sends:
 * the snapshot's membership does not name the leader, and neither does the cluster file (the
 * founders only). The joiner keeps the membership its peer reported until its log has one.
 */
describe('a new member joining from a leader newer than its snapshot', () => {
  let cluster: ProcessCluster
  let client: AuthorityClient

  beforeAll(async () => {
    // 300 entries between snapshots: 4 installs one taken before it joined and takes none of its own.
    cluster = ProcessCluster.create({ replicas: 3, snapshotEveryEntries: 300 })
    cluster.startAll()
    client = await operatorClient(cluster, 5000)
    await leaderOf(client)
  })

  afterAll(async () => {
    await client?.stop()
    await cluster?.stopAll()
  })

  let fiveAddress = ''
  async function addAndPromote(id: number): Promise<void> {
    const keyFile = join(cluster.dir, `replica-${id}`, 'peer.key')
    const peerId = peerIdFromPrivateKey(await loadOrCreateKey(keyFile)).toString()
    const port = cluster.multiaddrs[0]!.split('/tcp/')[1]!.split('/')[0]
    const self = {
      multiaddr: `/ip4/127.0.0.${10 + id}/tcp/${port}/p2p/${peerId}`,
      keyFile,
      dataDir: join(cluster.dir, `replica-${id}`, 'data'),
    }
    if (id === 5) fiveAddress = self.multiaddr
    await client.member({ action: 'add', memberId: id, peerId, multiaddr: self.multiaddr })
    cluster.start(id, { self })
    await waitUntil(
      `member ${id} to be promotable`,
      async () => {
        try {
          return await client.member({ action: 'promote', memberId: id })
        } catch (error) {
          if (error instanceof ProtocolError && error.code === 'NOT_READY') return undefined
          throw error
        }
      },
      60_000,
    )
  }

  it('5 catches up from leader 4, whose stored snapshot predates 4', async () => {
    const peerIds = await makePeerIds(32)
    const seqs = new Map<string, number>()
    await submitMany(client, peerIds, seqs, 400, 16)
    await addAndPromote(4)
    expect(cluster.logText(4)).toContain('snapshot installed')
    const transferred = await client.transferLeader(4)
    expect(transferred.leader).toBe(4)
    await addAndPromote(5)
    expect(cluster.logText(5)).toContain('snapshot installed')
    await submitMany(client, peerIds, seqs, 50, 8)
    // 5 answers as a caught-up voter of record, the membership its log holds naming leader 4.
    const five = await waitUntil(
      'member 5 to apply the writes',
      async () => {
        const status = await client.status(fiveAddress)
        return status.applied >= status.commit && status.commit > 0 ? status : undefined
      },
      30_000,
    )
    expect(five.members.find((member) => member.id === 5)).toMatchObject({ voter: true, started: true })
    expect(five.members.find((member) => member.id === 4)).toMatchObject({ voter: true })
    expect(five.leader?.id).toBe(4)
  })
})
