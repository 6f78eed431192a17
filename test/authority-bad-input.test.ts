import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { multiaddr } from '@multiformats/multiaddr'
import { lpStream } from '@libp2p/utils'
import { AuthorityClient } from '@nodeledger/client'
import { API_PROTOCOL, ProtocolError, RAFT_PROTOCOL, decodeResponse, encodeRequest } from '@nodeledger/protocol'
import { ProcessCluster, waitUntil } from '@nodeledger/testkit'
import { converged, leaderOf, makePeerIds, operatorClient } from './support/cluster-client.ts'

/**
 * Issue 4: strangers may not speak Raft, nodes may not write other nodes' records, and garbage gets
 * a typed error without hurting the replica.
 */
describe('authority replicas refuse bad peers and bad input', () => {
  let cluster: ProcessCluster
  let operator: AuthorityClient
  let stranger: AuthorityClient

  beforeAll(async () => {
    cluster = ProcessCluster.create({ replicas: 3 })
    cluster.startAll()
    operator = await operatorClient(cluster)
    // A node with a key of its own, unknown to the cluster file.
    stranger = new AuthorityClient({ bootstrap: cluster.multiaddrs, requestTimeoutMs: 3000 })
    await stranger.start()
    await leaderOf(operator)
    // Every replica up, not only a leader: replica 1 listens before its Raft links register their
    // protocol, and a stranger dialing it then is answered "not supported" (a CI flake), not refused.
    await converged(operator, 120_000)
  })

  afterAll(async () => {
    await stranger?.stop()
    await operator?.stop()
    await cluster?.stopAll()
  })

  it('refuses an unknown peer opening the Raft protocol, and logs it', async () => {
    const target = cluster.multiaddrOf(1)
    const stream = await stranger.libp2p.dialProtocol(multiaddr(target), RAFT_PROTOCOL)
    const lp = lpStream(stream)
    // The replica resets the stream; whatever we try next fails, and nothing is ever answered.
    const outcome = await (async () => {
      try {
        await lp.write(new Uint8Array([0x91, 0x01]))
        await lp.read({ signal: AbortSignal.timeout(2000) })
        return 'answered'
      } catch (error) {
        return (error as Error).name
      }
    })()
    expect(outcome).not.toBe('answered')
    await waitUntil('the refusal in the log', () =>
      cluster.logText(1).includes('inbound stream refused: not a configured replica'),
    )
    expect((await stranger.status(target)).id).toBe(1)
  })

  it('answers UNAUTHORIZED to a node submitting a delta for another peer id', async () => {
    const [victim] = await makePeerIds(1)
    const error = await stranger
      .submit({ originPeerId: victim!, seq: 1, fields: { isStaked: true } })
      .catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(ProtocolError)
    expect((error as ProtocolError).code).toBe('UNAUTHORIZED')
    const { record } = await operator.get(victim!, { consistency: 'linearizable' })
    expect(record).toBeNull()
  })

  it('lets a node write its own record', async () => {
    const own = stranger.libp2p.peerId.toString()
    const result = await stranger.submit({ originPeerId: own, seq: 1, fields: { version: '1.0.0' } })
    expect(result.duplicate).toBe(false)
    expect((await operator.get(own)).record?.version).toBe('1.0.0')
  })

  it('answers garbage API frames with INVALID and keeps serving', async () => {
    const leader = await leaderOf(operator)
    const target = multiaddr(leader.members.find((member) => member.id === leader.id)!.multiaddr)
    const garbage = [
      new Uint8Array([0xc1]), // a msgpack byte that never starts a value
      new Uint8Array([0x81, 0xa1, 0x76, 0x09]), // { v: 9 }: an unknown version
      new TextEncoder().encode('GET / HTTP/1.1\r\n\r\n'),
      encodeRequest({ op: 'status' }).map((byte, i) => (i === 3 ? byte ^ 0xff : byte)),
    ]
    for (const frame of garbage) {
      const stream = await stranger.libp2p.dialProtocol(target, API_PROTOCOL)
      const lp = lpStream(stream)
      await lp.write(frame)
      const answer = decodeResponse('status', (await lp.read({ signal: AbortSignal.timeout(3000) })).subarray())
      expect(answer.ok).toBe(false)
      if (!answer.ok) expect(answer.error.code).toBe('INVALID')
      await stream.close().catch(() => {})
    }
    // An oversized length prefix: refused without buffering it.
    const stream = await stranger.libp2p.dialProtocol(target, API_PROTOCOL)
    stream.send(new Uint8Array([0xff, 0xff, 0xff, 0x7f]))
    await stream.close().catch(() => {})
    const status = await operator.status(leader.members.find((member) => member.id === leader.id)!.multiaddr)
    expect(status.role).toBe('leader')
    expect(cluster.isRunning(leader.id)).toBe(true)
  })
})
