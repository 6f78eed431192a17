import { RaftError } from './errors.ts'
import { CONF_CHANGE_CONTEXT_LENGTH_MAX } from './constants.ts'
import { ConfChangeType } from './types.ts'
import type { ConfChange, ConfState, NodeId } from './types.ts'

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder()
const CONF_CHANGE_TYPES = new Set<string>(Object.values(ConfChangeType))

/** ConfChange entries carry a tiny JSON document: readable in a log dump, and the core needs no codec. */
export function encodeConfChange(change: ConfChange): Uint8Array {
  if (
    change.context !== undefined &&
    (typeof change.context !== 'string' || change.context.length > CONF_CHANGE_CONTEXT_LENGTH_MAX)
  ) {
    throw new RaftError(
      'INVALID',
      `conf change context must be a string of at most ${CONF_CHANGE_CONTEXT_LENGTH_MAX} characters`,
    )
  }
  const wire =
    change.context === undefined
      ? { type: change.type, nodeId: change.nodeId }
      : { type: change.type, nodeId: change.nodeId, context: change.context }
  return textEncoder.encode(JSON.stringify(wire))
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  let parsed: unknown
  try {
    parsed = JSON.parse(textDecoder.decode(data))
  } catch {
    throw new RaftError('INVALID', 'conf change entry is not valid JSON')
  }
  const candidate = parsed as { type?: unknown; nodeId?: unknown; context?: unknown }
  if (
    typeof candidate !== 'object' ||
    candidate === null ||
    typeof candidate.type !== 'string' ||
    !CONF_CHANGE_TYPES.has(candidate.type) ||
    !isNodeId(candidate.nodeId)
  ) {
    throw new RaftError('INVALID', 'conf change entry has no valid type and nodeId')
  }
  if (candidate.context === undefined) return { type: candidate.type as ConfChangeType, nodeId: candidate.nodeId }
  if (typeof candidate.context !== 'string' || candidate.context.length > CONF_CHANGE_CONTEXT_LENGTH_MAX) {
    throw new RaftError('INVALID', 'conf change entry has a context that is not a bounded string')
  }
  return { type: candidate.type as ConfChangeType, nodeId: candidate.nodeId, context: candidate.context }
}

export function isNodeId(value: unknown): value is NodeId {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0
}

/** The membership after `change`; throws INVALID for a change that makes no sense against `conf`. */
export function applyConfChange(conf: ConfState, change: ConfChange): ConfState {
  const voters = new Set(conf.voters)
  const learners = new Set(conf.learners)
  const id = change.nodeId
  switch (change.type) {
    case ConfChangeType.AddVoter:
      if (voters.has(id)) throw new RaftError('INVALID', `node ${id} is already a voter`)
      learners.delete(id)
      voters.add(id)
      break
    case ConfChangeType.AddLearner:
      if (voters.has(id))
        throw new RaftError('INVALID', `node ${id} is a voter; remove it before adding it as a learner`)
      if (learners.has(id)) throw new RaftError('INVALID', `node ${id} is already a learner`)
      learners.add(id)
      break
    case ConfChangeType.UpdateNode:
      if (!voters.has(id) && !learners.has(id)) throw new RaftError('INVALID', `node ${id} is not a member`)
      return conf
    case ConfChangeType.RemoveNode:
      if (!voters.has(id) && !learners.has(id)) throw new RaftError('INVALID', `node ${id} is not a member`)
      if (voters.has(id) && voters.size === 1)
        throw new RaftError('INVALID', `removing node ${id} would leave no voters`)
      voters.delete(id)
      learners.delete(id)
      break
  }
  return { voters: [...voters].sort((a, b) => a - b), learners: [...learners].sort((a, b) => a - b) }
}

export function confStatesEqual(a: ConfState, b: ConfState): boolean {
  return (
    a.voters.length === b.voters.length &&
    a.learners.length === b.learners.length &&
    a.voters.every((id, i) => b.voters[i] === id) &&
    a.learners.every((id, i) => b.learners[i] === id)
  )
}
