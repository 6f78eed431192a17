import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AuthorityClient } from '@nodeledger/client'
import { ProcessCluster } from '@nodeledger/testkit'
import { IndependentClient, IndependentClientError } from '../packages/testkit/src/chaos/independent-client.ts'
import { leaderOf, makePeerIds, operatorClient } from './support/cluster-client.ts'

/**
 * The client written from docs/PROTOCOL.md alone (another MessagePack library, none of our codecs)
 * against real replica processes: what the document says is what the replicas speak, integers from
 * 2^32 on included, and a graceful leader handover (SIGTERM) fails no submit with a final error.
 */
describe('IndependentClient against a 3-replica cluster', () => {
  let cluster: ProcessCluster
  let host: AuthorityClient
  let client: IndependentClient
  let origins: string[]

  beforeAll(async () => {
    cluster = ProcessCluster.create({ replicas: 3 })
    cluster.startAll()
    host = await operatorClient(cluster) // its libp2p node carries the operator key (may write any origin)
    client = new IndependentClient({ libp2p: host.libp2p, bootstrap: cluster.multiaddrs, attemptsMax: 40 })
    origins = await makePeerIds(8)
  })

  afterAll(async () => {
    await client?.stop()
    await host?.stop()
    await cluster?.stopAll()
  })

  it('submits seqs from 2^32 on and reads them back at every consistency', async () => {
    await leaderOf(host)
    const seq = 2 ** 32 + 1
    for (const origin of origins) {
      const answer = await client.submit({
        originPeerId: origin,
        seq,
        fields: { version: 'big', returnedItems: 2 ** 40 },
      })
      expect(answer.duplicate).toBe(false)
      expect(
        await client.submit({ originPeerId: origin, seq, fields: { version: 'big', returnedItems: 2 ** 40 } }),
      ).toEqual({ index: answer.index, duplicate: true })
    }
    for (const consistency of ['linearizable', 'lease'] as const) {
      const { record, index } = await client.get(origins[0]!, { consistency })
      expect(record).toMatchObject({ peerId: origins[0], version: 'big', originSeq: seq })
      expect(record!.changedIndex).toBeLessThanOrEqual(index)
    }
    // Our own client reads the same record, with its epoch-millisecond stamps, from the same bytes.
    const ours = await host.get(origins[0]!)
    expect(ours.record).toMatchObject({ originSeq: seq, returnedItems: 2 ** 40 })
    expect(ours.record!.lastUpdatedMs).toBeGreaterThan(2 ** 32)
  })

  it('rides out a SIGTERM of the leader (a graceful handover) with no final error on any submit', async () => {
    const leader = await leaderOf(host)
    const finalErrors: string[] = []
    let seq = 2 ** 32 + 10
    let running = true
    const lanes = origins.map(async (origin) => {
      while (running) {
        seq++
        try {
          await client.submit({ originPeerId: origin, seq, fields: { version: `s${seq}` } })
        } catch (error) {
          // STALE is an answer (an earlier attempt overtook this one); anything else final is the bug.
          const code = error instanceof IndependentClientError ? error.code : String(error)
          if (code !== 'STALE' && code !== 'TIMEOUT' && code !== 'UNAVAILABLE' && code !== 'NOT_LEADER')
            finalErrors.push(code)
        }
      }
    })
    await new Promise((resolve) => setTimeout(resolve, 300))
    await cluster.kill(leader.id, 'SIGTERM')
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    running = false
    await Promise.all(lanes)
    expect(finalErrors).toEqual([])
    const next = await leaderOf(host)
    expect(next.id).not.toBe(leader.id)
  })
})
