import { describe, expect, it } from 'vitest'
import { EntryType, MessageType } from '../src/index.ts'
import { Cluster, HEARTBEAT_TICKS, storageWithTerms, text } from './harness.ts'

describe('commitment', () => {
  // Reference: Raft §8 — "each leader commit a blank no-op entry into the log at the start of its
  // term", which lets it commit (and learn) everything before it.
  it('a new leader appends a no-op of its term, and it commits everywhere', () => {
    const cluster = new Cluster({ voters: [1, 2, 3] })
    cluster.elect(1)
    const { term, lastIndex, commit } = cluster.status(1)
    const [noop] = cluster.logEntries(1).filter((entry) => entry.index === lastIndex)
    expect(noop).toMatchObject({ type: EntryType.NoOp, term, index: 2 })
    expect(commit).toBe(lastIndex)
    for (const id of [1, 2, 3]) expect(cluster.replica(id).applied.map((entry) => entry.type)).toEqual([EntryType.NoOp])
  })

  describe('Raft Figure 8: an entry from an older term is never committed by counting replicas', () => {
    // Indexes are one higher than in the figure: index 1 is the bootstrap entry and index 2 the
    // first leader's no-op, committed everywhere. "Index 3" below is the figure's index 2.
    const setUpToC = (): Cluster => {
      const cluster = new Cluster({ voters: [1, 2, 3, 4, 5], config: { entriesPerMessageMax: 1 } })
      cluster.elect(1)
      expect(cluster.status(5).commit).toBe(2)

      // (a) S1 leads (term 2) and replicates index 3 to S2 only.
      cluster.partition([1, 2], [3, 4, 5])
      const a = cluster.propose(1, 'a')
      cluster.deliverAll()
      expect(a).toMatchObject({ index: 3, term: 2 })
      expect(cluster.logTerms(2)).toEqual([2, 2])

      // (b) S1 crashes; S5 is elected for term 3 by S3, S4, S5 and writes a different entry at
      // index 3 (its no-op), which reaches nobody.
      cluster.crash(1)
      cluster.partition([3, 4, 5])
      cluster.dropIf((m) => m.from === 5 && m.type === MessageType.Append)
      cluster.elect(5)
      expect(cluster.status(5).term).toBe(3)
      expect(cluster.logTerms(5)).toEqual([2, 3])

      // (c) S5 crashes; S1 restarts, is elected for term 4 and replicates index 3 (term 2) to S3:
      // now S1, S2 and S3 — a majority — store it. Its own no-op (index 4) reaches S2 only.
      cluster.crash(5)
      cluster.dropIf(undefined)
      cluster.restart(1)
      cluster.partition([1, 2, 3, 4])
      // S4 votes but receives no entries; S3 receives index 3 and nothing after it.
      const s3HoldsIndex3 = (): boolean => cluster.storage(3).lastIndex() >= 3
      cluster.dropIf(
        (m) =>
          m.type === MessageType.Append &&
          (m.to === 4 || (m.to === 3 && s3HoldsIndex3() && (m.entries ?? []).some((entry) => entry.index >= 4))),
      )
      cluster.elect(1)
      expect(cluster.status(1).term).toBe(4)
      cluster.tick(HEARTBEAT_TICKS)
      return cluster
    }

    it('(c) the leader of term 4 does not commit index 3 although a majority stores it', () => {
      const cluster = setUpToC()
      expect(cluster.logTerms(1)).toEqual([2, 2, 4])
      expect(cluster.logTerms(2)).toEqual([2, 2, 4])
      expect(cluster.logTerms(3)).toEqual([2, 2])
      const progress = cluster.status(1).progress!
      expect(progress[2]!.match).toBe(4)
      expect(progress[3]!.match).toBe(3)
      expect(cluster.status(1).commit).toBe(2)
    })

    it('(d) so S5 may still be elected and overwrite index 3, and nobody ever applied it', () => {
      const cluster = setUpToC()
      cluster.crash(1)
      cluster.dropIf(undefined)
      cluster.restart(5)
      cluster.partition([2, 3, 4, 5])
      cluster.elect(5)
      cluster.heal()
      cluster.restart(1)
      cluster.tick(2 * HEARTBEAT_TICKS)
      for (const id of [1, 2, 3, 4, 5]) {
        expect(cluster.storage(id).term(3)).toBe(3)
        expect(cluster.replica(id).applied.filter((entry) => entry.index === 3 && entry.term !== 3)).toEqual([])
        expect(cluster.replica(id).applied.filter((entry) => text(entry.data) === 'a')).toEqual([])
      }
    })

    it('(e) once an entry of term 4 is on a majority, index 3 commits with it and can no longer be lost', () => {
      const cluster = setUpToC()
      cluster.dropIf((m) => m.type === MessageType.Append && m.from === 1 && m.to === 4)
      cluster.tick(HEARTBEAT_TICKS)
      expect(cluster.status(1).commit).toBe(4)
      // S5 can no longer win: S2 and S3 both hold an entry of term 4.
      cluster.crash(1)
      cluster.dropIf(undefined)
      cluster.restart(5)
      cluster.partition([2, 3, 4, 5])
      expect(() => cluster.elect(5)).toThrow()
      cluster.heal()
      cluster.restart(1)
      const leader = cluster.tickUntilLeader()
      expect(leader).not.toBe(5)
      cluster.tick(2 * HEARTBEAT_TICKS)
      for (const id of [1, 2, 3, 4, 5])
        expect(cluster.replica(id).applied.some((entry) => entry.index === 3 && text(entry.data) === 'a')).toBe(true)
    })
  })

  describe('Raft Figure 7: a new leader at term 8 brings every possible follower log in line', () => {
    // The leader's log and the followers' (a)-(f), by term, index 1 first.
    const leaderLog = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6]
    const followers = {
      a: [1, 1, 1, 4, 4, 5, 5, 6, 6],
      b: [1, 1, 1, 4],
      c: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
      d: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
      e: [1, 1, 1, 4, 4, 4, 4],
      f: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    }
    const conf = { voters: [1, 2, 3], learners: [] }

    it.each(Object.entries(followers))('follower (%s)', (_name, followerLog) => {
      // Replica 1 leads; replica 2 holds the leader's log (so 1 can win even against (c) or (d));
      // replica 3 holds the follower's log.
      const cluster = new Cluster({
        voters: [1, 2, 3],
        storages: {
          1: storageWithTerms(conf, leaderLog, 7),
          2: storageWithTerms(conf, leaderLog, 7),
          3: storageWithTerms(conf, followerLog, followerLog[followerLog.length - 1]!),
        },
      })
      cluster.elect(1)
      expect(cluster.status(1).term).toBe(8)
      cluster.tick(2 * HEARTBEAT_TICKS)

      // The leader's log plus its no-op of term 8, everywhere, and all of it committed.
      const expected = [...leaderLog.slice(1), 8]
      expect(cluster.logTerms(1)).toEqual(expected)
      expect(cluster.logTerms(3)).toEqual(expected)
      expect(cluster.logEntries(3)).toEqual(cluster.logEntries(1))
      expect(cluster.status(3).commit).toBe(11)
      expect(cluster.replica(3).applied.map((entry) => entry.term)).toEqual(expected)
    })
  })
})
