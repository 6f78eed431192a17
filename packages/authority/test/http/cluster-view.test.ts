import { describe, expect, it } from 'vitest'
import type { MemberStatus } from '@nodeledger/protocol'
import { ClusterView } from '../../src/http/cluster-view.ts'
import type { ClusterViewSource, MemberAnswer, SelfAnswer } from '../../src/http/cluster-view.ts'
import { LeaderHistory } from '../../src/replica/leader-history.ts'

const CLUSTER = 'cluster-view-test'
const members: MemberStatus[] = [1, 2, 3].map((id) => ({
  id,
  peerId: `peer-${id}`,
  multiaddr: `/ip4/127.0.0.1${id}/tcp/7001/p2p/peer-${id}`,
  voter: id !== 3,
  started: true,
}))
const answer = (id: number, fields: Partial<MemberAnswer> = {}): MemberAnswer => ({
  clusterId: CLUSTER,
  id,
  peerId: `peer-${id}`,
  role: 'follower',
  term: 4,
  commit: 100,
  applied: 100,
  lastIndex: 100,
  ...fields,
})

/** Replica 1 answers for itself; the others through `peers` (undefined: never answers, until aborted). */
function source(
  self: Partial<SelfAnswer>,
  peers: Record<number, MemberAnswer | Error | undefined>,
  asked: number[] = [],
): ClusterViewSource {
  return {
    clusterId: CLUSTER,
    self: () => ({ ...answer(1), leader: { id: 2, peerId: 'peer-2' }, members, ...self }),
    leaderHistory: () => [{ term: 4, id: 2, peerId: 'peer-2', sinceMs: 1_000 }],
    peerStatus: (member, signal) => {
      asked.push(member.id)
      const peer = peers[member.id]
      if (peer instanceof Error) return Promise.reject(peer)
      if (peer !== undefined) return Promise.resolve(peer)
      return new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason)))
    },
  }
}

describe('ClusterView (GET /v1/cluster)', () => {
  it('shows every member of record with its own figures, the leader of the answers and lag behind its commit', async () => {
    const view = new ClusterView({
      source: source(
        { applied: 90, commit: 95 },
        { 2: answer(2, { role: 'leader', commit: 110, applied: 110, lastIndex: 111 }), 3: answer(3, { applied: 70 }) },
      ),
    })
    const json = await view.get()
    expect(json.clusterId).toBe(CLUSTER)
    expect(json.self).toEqual({ id: 1, peerId: 'peer-1' })
    expect(json.leader).toEqual({ id: 2, peerId: 'peer-2', term: 4 })
    expect(json.members.map((m) => [m.id, m.role, m.voter, m.lagEntries, m.reachable])).toEqual([
      [1, 'follower', true, 20, true],
      [2, 'leader', true, 0, true],
      [3, 'follower', false, 40, true],
    ])
    expect(json.members[1]).toMatchObject({ commitIndex: 110, appliedIndex: 110, lastIndex: 111, term: 4 })
    expect(json.leaderHistory).toEqual([{ term: 4, id: 2, peerId: 'peer-2', sinceMs: 1_000 }])
  })

  it('a member that is refused, answers as someone else, or is silent past the timeout is unreachable; the rest still show', async () => {
    const view = new ClusterView({
      peerTimeoutMs: 50,
      source: source({}, { 2: undefined, 3: answer(4) }),
    })
    const json = await view.get()
    expect(json.members.map((m) => [m.id, m.reachable, m.role, m.appliedIndex])).toEqual([
      [1, true, 'follower', 100],
      [2, false, 'unknown', null],
      [3, false, 'unknown', null],
    ])
    // No leader answered: the one this replica follows, at its term.
    expect(json.leader).toEqual({ id: 2, peerId: 'peer-2', term: 4 })
    const refused = await new ClusterView({
      source: source({ leader: null }, { 2: new Error('ECONNREFUSED'), 3: answer(3, { clusterId: 'other' }) }),
    }).get()
    expect(refused.leader).toBeNull()
    expect(refused.members.filter((m) => m.reachable).map((m) => m.id)).toEqual([1])
  })

  it('of two replicas that say they lead, the one of the higher term leads', async () => {
    const json = await new ClusterView({
      source: source(
        { role: 'leader', term: 3 },
        { 2: answer(2, { role: 'leader', term: 5 }), 3: answer(3, { term: 5 }) },
      ),
    }).get()
    expect(json.leader).toEqual({ id: 2, peerId: 'peer-2', term: 5 })
  })

  it('serves a view for cacheMs, and requests during a gather share it: a refreshing page costs one gather', async () => {
    let nowMs = 0
    const asked: number[] = []
    const view = new ClusterView({
      cacheMs: 250,
      nowMs: () => nowMs,
      source: source({}, { 2: answer(2, { role: 'leader' }), 3: answer(3) }, asked),
    })
    const together = await Promise.all([view.get(), view.get(), view.get()])
    expect(together[1]).toBe(together[0])
    expect(asked).toEqual([2, 3])
    nowMs = 249
    expect(await view.get()).toBe(together[0])
    expect(asked).toHaveLength(2)
    nowMs = 250
    expect(await view.get()).not.toBe(together[0])
    expect(asked).toEqual([2, 3, 2, 3])
  })
})

describe('LeaderHistory', () => {
  it('keeps one entry per term, the first sighting, newer terms only, at most termsMax', () => {
    const history = new LeaderHistory(3)
    history.observe(2, 1, 'peer-1', 10)
    history.observe(2, 1, 'peer-1', 20)
    history.observe(2, 0, '', 30)
    history.observe(1, 3, 'peer-3', 40)
    expect(history.terms()).toEqual([{ term: 2, id: 1, peerId: 'peer-1', sinceMs: 10 }])
    history.observe(3, 2, 'peer-2', 50)
    history.observe(5, 3, 'peer-3', 60)
    history.observe(6, 1, 'peer-1', 70)
    expect(history.terms().map((entry) => entry.term)).toEqual([3, 5, 6])
    expect(() => new LeaderHistory(0)).toThrow(TypeError)
  })
})
