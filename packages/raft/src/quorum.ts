import type { NodeId } from './types.ts'

/** Votes a majority of `voterCount` needs. */
export function majority(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1
}

/**
 * The largest value that a majority of voters have reached (for match indexes: the commit point;
 * for acknowledged heartbeat ticks: the start of the lease). Voters without a value count as -1.
 */
export function majorityValue(voters: ReadonlySet<NodeId>, valueOfVoter: (id: NodeId) => number): number {
  if (voters.size === 0) return -1
  const values: number[] = []
  for (const id of voters) values.push(valueOfVoter(id))
  values.sort((a, b) => b - a)
  return values[majority(values.length) - 1]!
}

export const VoteResult = {
  Won: 'won',
  Lost: 'lost',
  Pending: 'pending',
} as const
export type VoteResult = (typeof VoteResult)[keyof typeof VoteResult]

export function voteResult(voters: ReadonlySet<NodeId>, votes: ReadonlyMap<NodeId, boolean>): VoteResult {
  let granted = 0
  let rejected = 0
  for (const id of voters) {
    const vote = votes.get(id)
    if (vote === true) granted++
    else if (vote === false) rejected++
  }
  const needed = majority(voters.size)
  if (granted >= needed) return VoteResult.Won
  if (rejected > voters.size - needed) return VoteResult.Lost
  return VoteResult.Pending
}
