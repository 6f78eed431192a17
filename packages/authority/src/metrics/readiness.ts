import type { Readiness } from '@nodeledger/metrics'
import type { Role } from '@nodeledger/raft'

/**
 * A replica is ready (GET /ready answers 200) while a leader is known and its applied index is
 * within this many entries of the leader's commit index: it then serves stale reads that are at
 * most this far behind and can take over without a long catch-up. 1,000 entries is well under a
 * second of the fastest write load measured here (about 1,600 writes/s), and the same bound a
 * learner must meet to be promoted (PROMOTE_LAG_ENTRIES_MAX).
 */
export const READY_APPLIED_LAG_ENTRIES_MAX = 1_000

/** What readiness is judged on: the replica's state, read once. */
export interface ReadinessView {
  readonly stopped: boolean
  readonly role: Role
  /** The leader's id; 0 when none is known. */
  readonly leader: number
  readonly commit: number
  readonly applied: number
  /** The highest commit index a leader has sent this replica (a follower's own commit trails it while it catches up). */
  readonly leaderCommitSeen: number
}

export function replicaReadiness(view: ReadinessView): Readiness {
  const leaderCommit = view.role === 'leader' ? view.commit : Math.max(view.leaderCommitSeen, view.commit)
  const behind = Math.max(0, leaderCommit - view.applied)
  const details = { role: view.role, leader: view.leader, applied: view.applied, leaderCommit, behind }
  if (view.stopped) return { ready: false, reason: 'the replica is stopping', ...details }
  if (view.leader === 0) {
    return {
      ready: false,
      reason: `no leader known (applied ${view.applied}; the last leader commit heard was ${leaderCommit})`,
      ...details,
    }
  }
  if (behind > READY_APPLIED_LAG_ENTRIES_MAX) {
    return {
      ready: false,
      reason: `applied ${view.applied} is ${behind} entries behind the leader's commit ${leaderCommit} (ready within ${READY_APPLIED_LAG_ENTRIES_MAX})`,
      ...details,
    }
  }
  return { ready: true, ...details }
}
