import { describe, expect, it } from 'vitest'
import { RaftError, Role } from '../src/index.ts'
import { Cluster, ELECTION_TIMEOUT_TICKS, bytes, expectRaftError, text } from './harness.ts'

describe('proposals', () => {
  it('propose on a follower throws NOT_LEADER carrying the leader id', () => {
    const cluster = new Cluster({ voters: [1, 2, 3] })
    cluster.elect(1)
    for (const follower of [2, 3]) {
      const error = expectRaftError(() => cluster.node(follower).propose(bytes('x')), 'NOT_LEADER')
      expect(error.leader).toBe(1)
    }
  })

  it('propose with no known leader throws NOT_LEADER with leader 0', () => {
    const cluster = new Cluster({ voters: [1, 2, 3] })
    const error = expectRaftError(() => cluster.node(1).propose(bytes('x')), 'NOT_LEADER')
    expect(error.leader).toBe(0)
  })

  // Back-pressure (STYLE §4: a limit on everything): a leader that cannot commit stops accepting
  // proposals past uncommittedBytesMax, and says so, instead of growing its log without bound.
  it('uncommittedBytesMax refuses further proposals with DROPPED until the log commits', () => {
    const cluster = new Cluster({ voters: [1, 2, 3], config: { uncommittedBytesMax: 1000 } })
    cluster.elect(1)
    cluster.partition([1], [2, 3])
    const accepted: number[] = []
    let refusal: unknown
    while (refusal === undefined && accepted.length < 20) {
      try {
        accepted.push(cluster.propose(1, new Uint8Array(100)).index)
      } catch (error) {
        refusal = error
      }
    }
    expect(refusal).toBeInstanceOf(RaftError)
    expect((refusal as RaftError).code).toBe('DROPPED')
    expect(accepted.length).toBeGreaterThan(0)
    expect(accepted.length).toBeLessThan(10)

    // Once the backlog commits, proposals are accepted again, and the accepted ones were kept.
    cluster.heal()
    cluster.deliverAll()
    cluster.tickNode(1, 2)
    cluster.deliverAll()
    expect(cluster.status(1).commit).toBe(accepted.at(-1))
    const ticket = cluster.propose(1, 'after the backlog')
    cluster.deliverAll()
    expect(cluster.status(3).commit).toBe(ticket.index)
  })

  // Reference: Raft §5.3/§8 — an uncommitted entry of a deposed leader can be overwritten. The ticket
  // (index, term) lets the client tell: the entry applied at that index has another term.
  it('a proposal overwritten by a new leader is detectable from its ticket', () => {
    const cluster = new Cluster({ voters: [1, 2, 3] })
    cluster.elect(1)
    cluster.partition([1], [2, 3])
    const lost = cluster.propose(1, 'lost write')
    cluster.deliverAll()
    cluster.elect(2)
    const kept = cluster.propose(2, 'kept write')
    cluster.deliverAll()
    cluster.heal()
    cluster.tick(2 * ELECTION_TIMEOUT_TICKS)

    expect(cluster.status(1).role).toBe(Role.Follower)
    const appliedAtTicket = cluster.replica(1).applied.find((entry) => entry.index === lost.index)
    expect(appliedAtTicket?.index).toBe(lost.index)
    expect(appliedAtTicket!.term).not.toBe(lost.term)
    for (const id of [1, 2, 3]) {
      expect(cluster.replica(id).applied.some((entry) => text(entry.data) === 'lost write')).toBe(false)
      expect(cluster.replica(id).applied.find((entry) => entry.index === kept.index)?.term).toBe(kept.term)
    }
  })
})
