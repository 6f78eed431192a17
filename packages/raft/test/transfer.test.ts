import { describe, expect, it } from 'vitest'
import { MessageType, Role } from '../src/index.ts'
import { Cluster, ELECTION_TIMEOUT_TICKS, bytes, expectRaftError } from './harness.ts'

/** Replica 3 is behind by five entries when the transfer starts. */
function clusterWithLaggingTarget(): Cluster {
  const cluster = new Cluster({ voters: [1, 2, 3] })
  cluster.elect(1)
  cluster.isolate(3)
  for (let i = 0; i < 5; i++) cluster.propose(1, `entry ${i}`)
  cluster.deliverAll()
  expect(cluster.status(3).lastIndex).toBeLessThan(cluster.status(1).lastIndex)
  return cluster
}

describe('leadership transfer', () => {
  // Reference: thesis §3.10 — the leader brings the target's log up to date, then sends it
  // TimeoutNow; the target campaigns at once (skipping PreVote and leases) in the next term.
  it('catches the target up, then sends TimeoutNow; the target leads the next term', () => {
    const cluster = clusterWithLaggingTarget()
    cluster.heal()
    const term = cluster.status(1).term
    const leaderLastIndex = cluster.status(1).lastIndex
    const mark = cluster.mark()
    cluster.node(1).transferLeader(3)
    cluster.deliverAll()
    for (let ticks = 0; cluster.leader() !== 3 && ticks < ELECTION_TIMEOUT_TICKS; ticks++) cluster.tick()

    expect(cluster.leader()).toBe(3)
    expect(cluster.status(3).term).toBe(term + 1)
    expect(cluster.status(1).role).toBe(Role.Follower)
    expect(cluster.status(1).leader).toBe(3)

    const history = cluster.sentSince(mark)
    const timeoutNow = history.findIndex((m) => m.type === MessageType.TimeoutNow)
    expect(timeoutNow).toBeGreaterThanOrEqual(0)
    expect(history[timeoutNow]).toMatchObject({ from: 1, to: 3, term })
    // Before TimeoutNow went out, replica 3 had acknowledged the leader's whole log.
    const caughtUp = history.findIndex(
      (m) => m.type === MessageType.AppendResponse && m.from === 3 && m.reject !== true && m.index === leaderLastIndex,
    )
    expect(caughtUp).toBeGreaterThanOrEqual(0)
    expect(caughtUp).toBeLessThan(timeoutNow)
    expect(
      history
        .slice(0, caughtUp)
        .some((m) => m.type === MessageType.Append && m.to === 3 && (m.entries?.length ?? 0) > 0),
    ).toBe(true)
    // Nothing was lost on the way.
    expect(cluster.logTerms(3).slice(0, leaderLastIndex - 1)).toEqual(cluster.logTerms(1).slice(0, leaderLastIndex - 1))
  })

  it('a target already up to date receives TimeoutNow at once', () => {
    const cluster = new Cluster({ voters: [1, 2, 3] })
    cluster.elect(1)
    const mark = cluster.mark()
    cluster.node(1).transferLeader(2)
    cluster.processReadies()
    expect(cluster.sentSince(mark).map((m) => [m.type, m.to])).toEqual([[MessageType.TimeoutNow, 2]])
    cluster.deliverAll()
    expect(cluster.leader()).toBe(2)
  })

  it('only a leader transfers, and only to a voter', () => {
    const cluster = new Cluster({ voters: [1, 2, 3], learners: [4] })
    cluster.elect(1)
    expect(expectRaftError(() => cluster.node(2).transferLeader(3), 'NOT_LEADER').leader).toBe(1)
    expectRaftError(() => cluster.node(1).transferLeader(4), 'INVALID')
    expectRaftError(() => cluster.node(1).transferLeader(9), 'INVALID')
    expect(cluster.status(1).leadTransferee).toBe(0)
  })

  // Reference: thesis §3.10 — "the prior leader stops accepting new client requests" during a transfer.
  it('proposals during a transfer are refused with DROPPED', () => {
    const cluster = clusterWithLaggingTarget()
    cluster.node(1).transferLeader(3)
    expect(cluster.status(1).leadTransferee).toBe(3)
    expectRaftError(() => cluster.node(1).propose(bytes('during transfer')), 'DROPPED')
  })

  // Reference: thesis §3.10 — "if the transfer does not complete after about an election timeout,
  // the prior leader aborts the transfer and resumes accepting client requests".
  it('a transfer to an unreachable target is abandoned after an election timeout', () => {
    const cluster = clusterWithLaggingTarget()
    const term = cluster.status(1).term
    cluster.node(1).transferLeader(3)
    for (let i = 0; i < ELECTION_TIMEOUT_TICKS - 1; i++) {
      cluster.tickNode(1)
      cluster.tickNode(2)
      cluster.deliverAll()
    }
    expect(cluster.status(1).leadTransferee).toBe(3)
    cluster.tickNode(1)
    cluster.deliverAll()
    expect(cluster.status(1).leadTransferee).toBe(0)
    expect(cluster.status(1).role).toBe(Role.Leader)
    expect(cluster.status(1).term).toBe(term)
    const ticket = cluster.propose(1, 'after the abandoned transfer')
    cluster.deliverAll()
    expect(cluster.status(2).commit).toBe(ticket.index)
  })
})
