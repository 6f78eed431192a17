import { describe, expect, it } from 'vitest'
import { MessageType } from '../src/index.ts'
import type { Message } from '../src/index.ts'
import { Cluster } from './harness.ts'

const appendsWithEntries = (message: Message): boolean =>
  message.type === MessageType.Append && (message.entries?.length ?? 0) > 0
const readHeartbeats = (message: Message): boolean =>
  message.type === MessageType.Heartbeat && message.context !== undefined

describe('parallel append (thesis §10.2.1)', () => {
  it("the leader's AppendEntries leave before its own write completes, and a quorum of followers commits", () => {
    const cluster = new Cluster({ voters: [1, 2, 3] })
    cluster.elect(1)
    cluster.holdWrites(1)
    const mark = cluster.mark()
    const ticket = cluster.propose(1, 'x')
    expect(cluster.sentSince(mark, appendsWithEntries).map((message) => message.to)).toEqual([2, 3])
    expect(cluster.storage(1).lastIndex()).toBeLessThan(ticket.index)
    cluster.deliverAll()
    // Replicas 2 and 3 persisted it: a majority, without the leader's own disk.
    expect(cluster.status(1).commit).toBeGreaterThanOrEqual(ticket.index)
    expect(cluster.storage(1).lastIndex()).toBeLessThan(ticket.index)
    // Nothing is applied on the leader until its own Ready (and write) is done.
    expect(cluster.replica(1).appliedIndex).toBeLessThan(ticket.index)
    cluster.releaseWrites(1)
    expect(cluster.replica(1).appliedIndex).toBeGreaterThanOrEqual(ticket.index)
  })

  it('the leader counts itself toward commit only once its own write is durable', () => {
    const cluster = new Cluster({ voters: [1, 2, 3] })
    cluster.elect(1)
    cluster.partition([1, 2], [3])
    cluster.holdWrites(1)
    const ticket = cluster.propose(1, 'needs the leader too')
    cluster.deliverAll()
    // Only replica 2 has it on disk: 1 of 3.
    expect(cluster.status(1).commit).toBeLessThan(ticket.index)
    cluster.releaseWrites(1)
    // Now the leader's own copy makes 2 of 3.
    expect(cluster.status(1).commit).toBeGreaterThanOrEqual(ticket.index)
    cluster.deliverAll()
    expect(cluster.status(2).commit).toBeGreaterThanOrEqual(ticket.index)
  })
})

describe('read batching (etcd)', () => {
  it('reads that arrive together share one heartbeat round', () => {
    const cluster = new Cluster({ voters: [1, 2, 3] })
    cluster.elect(1)
    const mark = cluster.mark()
    for (let i = 0; i < 10; i++) cluster.node(1).readIndex(`read-${i}`)
    cluster.processReadies()
    expect(cluster.sentSince(mark, readHeartbeats).map((message) => message.to)).toEqual([2, 3])
    cluster.deliverAll()
    expect(cluster.replica(1).readStates.map((read) => read.context)).toEqual(
      Array.from({ length: 10 }, (_, i) => `read-${i}`),
    )
  })

  it('a read that arrives while a round is in flight joins the next round', () => {
    const cluster = new Cluster({ voters: [1, 2, 3] })
    cluster.elect(1)
    const mark = cluster.mark()
    cluster.readIndex(1, 'first')
    cluster.readIndex(1, 'second')
    cluster.readIndex(1, 'third')
    // One round for the first; the others wait for it to finish, then share the next.
    expect(cluster.sentSince(mark, readHeartbeats)).toHaveLength(2)
    cluster.deliverAll()
    expect(cluster.sentSince(mark, readHeartbeats)).toHaveLength(4)
    expect(cluster.replica(1).readStates.map((read) => read.context)).toEqual(['first', 'second', 'third'])
  })
})
