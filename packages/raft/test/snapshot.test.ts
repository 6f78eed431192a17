import { describe, expect, it } from 'vitest'
import { MessageType, type RaftError } from '../src/index.ts'
import type { Message } from '../src/index.ts'
import { Cluster, HEARTBEAT_TICKS, bytes, text } from './harness.ts'

const CHUNK_BYTES = 256
/** The application's state as the snapshot carries it: 1000 bytes, so four chunks of 256. */
const stateMachineImage = (): Uint8Array => Uint8Array.from({ length: 1000 }, (_, i) => i % 251)
const isChunkTo =
  (to: number) =>
  (message: Message): boolean =>
    message.type === MessageType.Snapshot && message.to === to

/** Replica 3 misses 20 entries; then the leader compacts them away. */
function followerFarBehind(): { cluster: Cluster; snapshotIndex: number } {
  const cluster = new Cluster({ voters: [1, 2, 3], config: { snapshotChunkBytes: CHUNK_BYTES } })
  cluster.elect(1)
  cluster.isolate(3)
  for (let i = 0; i < 20; i++) cluster.propose(1, `entry ${i}`)
  cluster.deliverAll()
  const snapshot = cluster.snapshot(1, stateMachineImage())
  expect(cluster.status(1).firstIndex).toBe(snapshot.metadata.index + 1)
  return { cluster, snapshotIndex: snapshot.metadata.index }
}

describe('snapshots', () => {
  // Reference: Raft §7 — once the state machine holds a snapshot, the log up to it is discarded.
  it('storage.createSnapshot compacts the log; the leader keeps replicating after it', () => {
    const cluster = new Cluster({ voters: [1, 2, 3] })
    cluster.elect(1)
    for (let i = 0; i < 10; i++) cluster.propose(1, `entry ${i}`)
    cluster.deliverAll()
    const applied = cluster.replica(1).appliedIndex
    expect(applied).toBe(12)

    const snapshot = cluster.snapshot(1, bytes('state at 12'))
    expect(snapshot.metadata).toEqual({
      index: 12,
      term: cluster.status(1).term,
      confState: { voters: [1, 2, 3], learners: [] },
    })
    expect(cluster.storage(1).firstIndex()).toBe(13)
    expect(cluster.status(1).firstIndex).toBe(13)
    let error: unknown
    try {
      cluster.storage(1).entries(5, 13, Number.POSITIVE_INFINITY)
    } catch (caught) {
      error = caught
    }
    expect((error as RaftError).code).toBe('COMPACTED')

    cluster.propose(1, 'after the snapshot')
    cluster.deliverAll()
    for (const id of [2, 3]) expect(text(cluster.replica(id).applied.at(-1)!.data)).toBe('after the snapshot')
  })

  // Reference: Raft §7 — InstallSnapshot sends a snapshot "in chunks", each with its byte offset.
  it('a follower far behind receives InstallSnapshot in several chunks', () => {
    const { cluster, snapshotIndex } = followerFarBehind()
    const mark = cluster.mark()
    cluster.heal()
    cluster.tick(2 * HEARTBEAT_TICKS)

    const chunks = cluster.sentSince(mark, isChunkTo(3)).map((m) => m.snapshot!)
    expect(chunks.map((chunk) => chunk.offset)).toEqual([0, 256, 512, 768])
    expect(chunks.map((chunk) => chunk.data.byteLength)).toEqual([256, 256, 256, 232])
    for (const chunk of chunks) expect(chunk.totalBytes).toBe(1000)
    expect(cluster.replica(3).installedSnapshots.map((snapshot) => snapshot.metadata.index)).toEqual([snapshotIndex])
    expect(cluster.storage(3).snapshot().data).toEqual(stateMachineImage())
    expect(cluster.replica(3).appliedIndex).toBe(snapshotIndex)
  })

  // A lost chunk costs one chunk, not the transfer: the follower acknowledges what it holds and the
  // leader resends from that offset.
  it('a lost chunk is retransmitted and the transfer resumes from the acknowledged offset', () => {
    const { cluster, snapshotIndex } = followerFarBehind()
    let lost = 0
    cluster.dropIf((m) => {
      if (m.type === MessageType.Snapshot && m.snapshot!.offset === 512 && lost === 0) {
        lost++
        return true
      }
      return false
    })
    const mark = cluster.mark()
    cluster.heal()
    cluster.tick(2 * HEARTBEAT_TICKS)
    // The transfer stalls at 512 until the leader's retransmission timer fires.
    expect(cluster.replica(3).installedSnapshots).toEqual([])
    cluster.tick(4 * HEARTBEAT_TICKS)

    expect(lost).toBe(1)
    const offsets = cluster.sentSince(mark, isChunkTo(3)).map((m) => m.snapshot!.offset)
    expect(offsets.filter((offset) => offset === 0)).toHaveLength(1)
    expect(offsets.slice(0, 3)).toEqual([0, 256, 512])
    expect(offsets.slice(3)).toEqual([512, 768])
    expect(cluster.storage(3).snapshot().metadata.index).toBe(snapshotIndex)
    expect(cluster.storage(3).snapshot().data).toEqual(stateMachineImage())
  })

  // Raft §7: after installing the snapshot the follower continues from the entries after it.
  it('after the install the follower replicates normally', () => {
    const { cluster, snapshotIndex } = followerFarBehind()
    cluster.heal()
    cluster.tick(2 * HEARTBEAT_TICKS)
    expect(cluster.status(1).progress![3]!.state).toBe('replicate')
    expect(cluster.status(1).progress![3]!.match).toBe(snapshotIndex)

    const mark = cluster.mark()
    for (let i = 0; i < 3; i++) cluster.propose(1, `later ${i}`)
    cluster.deliverAll()
    expect(cluster.sentSince(mark, isChunkTo(3))).toEqual([])
    const appliedAfterSnapshot = cluster.replica(3).applied.filter((entry) => entry.index > snapshotIndex)
    expect(appliedAfterSnapshot.map((entry) => text(entry.data))).toEqual(['later 0', 'later 1', 'later 2'])
    expect(cluster.logEntries(3)).toEqual(cluster.logEntries(1))
    expect(cluster.status(3).commit).toBe(cluster.status(1).commit)
  })
})
