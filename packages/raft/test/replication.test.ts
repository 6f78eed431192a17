import { describe, expect, it } from 'vitest'
import { MessageType, entrySizeBytes } from '../src/index.ts'
import type { Message } from '../src/index.ts'
import { Cluster, HEARTBEAT_TICKS, bytes, storageWithTerms } from './harness.ts'

const isAppendTo =
  (to: number) =>
  (message: Message): boolean =>
    message.type === MessageType.Append && message.to === to
const carriesEntries = (message: Message): boolean => (message.entries?.length ?? 0) > 0

describe('log replication', () => {
  // Reference: Raft §5.3 (AppendEntries carries many entries) and etcd's MaxSizePerMsg: one message
  // carries at most entriesPerMessageMax entries.
  it('batches AppendEntries by entriesPerMessageMax', () => {
    const cluster = new Cluster({ voters: [1, 2, 3], config: { entriesPerMessageMax: 4 } })
    cluster.elect(1)
    const mark = cluster.mark()
    for (let i = 0; i < 10; i++) cluster.node(1).propose(bytes(`entry ${i}`))
    cluster.deliverAll()

    const appends = cluster.sentSince(mark, (m) => isAppendTo(2)(m) && carriesEntries(m))
    expect(appends.map((m) => m.entries!.length)).toEqual([4, 4, 2])
    expect(cluster.logTerms(2)).toEqual(cluster.logTerms(1))
    expect(cluster.status(3).commit).toBe(cluster.status(1).lastIndex)
  })

  it('batches AppendEntries by entriesBytesPerMessageMax (a single oversized entry still goes alone)', () => {
    const payload = new Uint8Array(100)
    const entryBytes = entrySizeBytes({ index: 1, term: 1, type: 'normal', data: payload })
    const cluster = new Cluster({ voters: [1, 2, 3], config: { entriesBytesPerMessageMax: 3 * entryBytes } })
    cluster.elect(1)
    const mark = cluster.mark()
    for (let i = 0; i < 7; i++) cluster.node(1).propose(payload)
    cluster.node(1).propose(new Uint8Array(10 * entryBytes))
    cluster.deliverAll()

    const appends = cluster.sentSince(mark, (m) => isAppendTo(2)(m) && carriesEntries(m))
    expect(appends.map((m) => m.entries!.length)).toEqual([3, 3, 1, 1])
    for (const append of appends.slice(0, 3)) {
      expect(append.entries!.reduce((sum, entry) => sum + entrySizeBytes(entry), 0)).toBeLessThanOrEqual(3 * entryBytes)
    }
    expect(cluster.logTerms(2)).toEqual(cluster.logTerms(1))
  })

  // etcd's Inflights: in replicate state the leader pipelines AppendEntries without waiting for
  // answers, but never more than inflightMessagesMax unacknowledged messages per follower.
  it('pipelines at most inflightMessagesMax unacknowledged AppendEntries in replicate state', () => {
    const cluster = new Cluster({ voters: [1, 2, 3], config: { inflightMessagesMax: 3, entriesPerMessageMax: 1 } })
    cluster.elect(1)
    expect(cluster.status(1).progress![2]!.state).toBe('replicate')
    const mark = cluster.mark()
    // Each proposal is its own Ready; nothing is delivered, so nothing is acknowledged.
    for (let i = 0; i < 8; i++) cluster.propose(1, `entry ${i}`)
    expect(cluster.sentSince(mark, (m) => isAppendTo(2)(m) && carriesEntries(m))).toHaveLength(3)

    // Acknowledgements open the window again, and everything arrives.
    cluster.deliverAll()
    expect(cluster.sentSince(mark, (m) => isAppendTo(2)(m) && carriesEntries(m))).toHaveLength(8)
    expect(cluster.logTerms(2)).toEqual(cluster.logTerms(1))
    expect(cluster.status(1).commit).toBe(cluster.status(1).lastIndex)
  })

  // etcd's probe state: while the leader does not know where a follower's log ends it sends one
  // AppendEntries and waits for the answer (or a heartbeat response) before the next.
  it('in probe state sends one AppendEntries at a time', () => {
    const cluster = new Cluster({ voters: [1, 2, 3] })
    cluster.elect(1)
    cluster.isolate(3)
    cluster.node(1).reportUnreachable(3)
    expect(cluster.status(1).progress![3]!.state).toBe('probe')
    const mark = cluster.mark()
    for (let i = 0; i < 5; i++) cluster.propose(1, `entry ${i}`)
    cluster.deliverAll()
    expect(cluster.sentSince(mark, isAppendTo(3))).toHaveLength(1)
    expect(cluster.sentSince(mark, (m) => isAppendTo(2)(m) && carriesEntries(m))).toHaveLength(5)

    // Back in touch: the heartbeat response lets the probe go, it succeeds, and replication resumes.
    cluster.heal()
    cluster.tick(HEARTBEAT_TICKS)
    expect(cluster.status(1).progress![3]!.state).toBe('replicate')
    expect(cluster.logTerms(3)).toEqual(cluster.logTerms(1))
  })

  // Raft §5.3 (end): "the follower can include the term of the conflicting entry and the first index
  // it stores for that term", so the leader skips a whole term per round trip. A follower holding
  // 100 entries of a stale term converges in a couple of round trips, not a hundred.
  it('fast backtracking: a follower with a long divergent log converges in few round trips', () => {
    const conf = { voters: [1, 2, 3], learners: [] }
    const leaderLog = [1, ...Array.from({ length: 10 }, () => 3)]
    const staleLog = [1, ...Array.from({ length: 100 }, () => 2)]
    const cluster = new Cluster({
      voters: [1, 2, 3],
      storages: {
        1: storageWithTerms(conf, leaderLog, 3),
        2: storageWithTerms(conf, leaderLog, 3),
        3: storageWithTerms(conf, staleLog, 2),
      },
    })
    const mark = cluster.mark()
    cluster.elect(1)
    cluster.tick(HEARTBEAT_TICKS)

    expect(cluster.logTerms(3)).toEqual(cluster.logTerms(1))
    expect(cluster.storage(3).lastIndex()).toBe(12)
    const rejections = cluster.sentSince(
      mark,
      (m) => m.type === MessageType.AppendResponse && m.from === 3 && m.reject === true,
    )
    expect(rejections.length).toBeGreaterThan(0)
    expect(rejections.length).toBeLessThanOrEqual(2)
    expect(cluster.sentSince(mark, isAppendTo(3)).length).toBeLessThanOrEqual(4)
  })

  // etcd's raw node batches proposals: everything proposed between two Readies leaves in one
  // AppendEntries per follower.
  it('proposals made between two Readies leave in one AppendEntries per follower', () => {
    const cluster = new Cluster({ voters: [1, 2, 3] })
    cluster.elect(1)
    const mark = cluster.mark()
    for (let i = 0; i < 5; i++) cluster.node(1).propose(bytes(`entry ${i}`))
    cluster.processReadies()
    for (const follower of [2, 3]) {
      const appends = cluster.sentSince(mark, isAppendTo(follower))
      expect(appends).toHaveLength(1)
      expect(appends[0]!.entries!.map((entry) => new TextDecoder().decode(entry.data))).toEqual([
        'entry 0',
        'entry 1',
        'entry 2',
        'entry 3',
        'entry 4',
      ])
    }
  })
})
