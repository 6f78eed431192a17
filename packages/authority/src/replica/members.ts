import { ConfChangeType, decodeConfChange } from '@nodeledger/raft'
import type { ConfChange, Entry, NodeId } from '@nodeledger/raft'
import { ReplicaError } from '../replica-errors.ts'

/**
 * One member of the cluster as the log records it. The log is the membership of record: founders
 * come from the cluster file at creation (the bootstrap snapshot), everyone else from `add-learner`
 * conf changes, and `update-node` changes carry what changes about a member later.
 */
export interface Member {
  readonly id: NodeId
  readonly peerId: string
  /** Where it listens, ending in /p2p/<peerId>. */
  readonly multiaddr: string
  /**
   * The member has run: it acknowledged an entry beyond the bootstrap (founders) or was promoted
   * after catching up (added members). A started member whose disk is lost must be replaced; one
   * that never started may still be created with `--initial-cluster-state new`.
   */
  readonly started: boolean
}

/** What a conf change carries about a member (PROTOCOL.md "Membership"): JSON in its context. */
export interface MemberContext {
  readonly peerId?: string
  readonly multiaddr?: string
  readonly started?: boolean
}

export function encodeMemberContext(context: MemberContext): string {
  return JSON.stringify(context)
}

export function decodeMemberContext(text: string | undefined): MemberContext {
  if (text === undefined) return {}
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new ReplicaError('INVALID_CLUSTER', 'a membership change carries a context that is not JSON')
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ReplicaError('INVALID_CLUSTER', 'a membership change carries a context that is not a JSON object')
  }
  const raw = parsed as Record<string, unknown>
  const context: { peerId?: string; multiaddr?: string; started?: boolean } = {}
  if (raw.peerId !== undefined) {
    if (typeof raw.peerId !== 'string')
      throw new ReplicaError('INVALID_CLUSTER', 'member context peerId is not a string')
    context.peerId = raw.peerId
  }
  if (raw.multiaddr !== undefined) {
    if (typeof raw.multiaddr !== 'string')
      throw new ReplicaError('INVALID_CLUSTER', 'member context multiaddr is not a string')
    context.multiaddr = raw.multiaddr
  }
  if (raw.started !== undefined) {
    if (typeof raw.started !== 'boolean')
      throw new ReplicaError('INVALID_CLUSTER', 'member context started is not a boolean')
    context.started = raw.started
  }
  return context
}

/**
 * The member directory: who the members are and where they listen, applied from the log in order
 * (deterministic: every replica that applied the same entries holds the same directory).
 */
export class Members {
  readonly #byId = new Map<NodeId, Member>()
  /** Ids that were members and were removed: never used again (a new member gets a new id). */
  readonly #retired = new Set<NodeId>()

  constructor(members: readonly Member[] = [], retired: Iterable<NodeId> = []) {
    for (const member of members) this.#byId.set(member.id, member)
    for (const id of retired) this.#retired.add(id)
  }

  /** Whether `id` was a member once and was removed. */
  isRetired(id: NodeId): boolean {
    return this.#retired.has(id)
  }

  retiredIds(): NodeId[] {
    return [...this.#retired].sort((a, b) => a - b)
  }

  get(id: NodeId): Member | undefined {
    return this.#byId.get(id)
  }

  byPeerId(peerId: string): Member | undefined {
    for (const member of this.#byId.values()) if (member.peerId === peerId) return member
    return undefined
  }

  /** Sorted by id. */
  all(): Member[] {
    return [...this.#byId.values()].sort((a, b) => a.id - b.id)
  }

  get size(): number {
    return this.#byId.size
  }

  /**
   * Apply a committed conf change entry. A change the core accepted is well-formed as membership;
   * a context that does not make sense (an add without an address) is a bug of the proposer, and
   * the directory keeps what it can rather than stop applying the log.
   */
  apply(entry: Entry): { change: ConfChange; member: Member | undefined } {
    const change = decodeConfChange(entry.data)
    // The proposer wrote the context; one that does not decode is kept out rather than stopping
    // every replica's apply on the same entry.
    let context: MemberContext = {}
    try {
      context = decodeMemberContext(change.context)
    } catch {
      context = {}
    }
    const existing = this.#byId.get(change.nodeId)
    switch (change.type) {
      case ConfChangeType.AddLearner:
      case ConfChangeType.AddVoter:
      case ConfChangeType.UpdateNode: {
        const member: Member = {
          id: change.nodeId,
          peerId: context.peerId ?? existing?.peerId ?? '',
          multiaddr: context.multiaddr ?? existing?.multiaddr ?? '',
          // A promoted voter has caught up, so it has run; otherwise keep what was known.
          started: context.started ?? (change.type === ConfChangeType.AddVoter ? true : (existing?.started ?? false)),
        }
        this.#byId.set(change.nodeId, member)
        return { change, member }
      }
      case ConfChangeType.RemoveNode:
        this.#byId.delete(change.nodeId)
        this.#retired.add(change.nodeId)
        return { change, member: existing }
    }
  }

  /** The member as a conf change's context would describe it (for a snapshot, or a directory dump). */
  toArray(): Array<[number, string, string, boolean]> {
    return this.all().map((member) => [member.id, member.peerId, member.multiaddr, member.started])
  }

  static fromArray(rows: unknown, retired: unknown = []): Members {
    if (!Array.isArray(retired) || !retired.every((id) => Number.isSafeInteger(id) && id > 0)) {
      throw new ReplicaError('INVALID_CLUSTER', 'retired member ids are not an array of ids')
    }
    if (!Array.isArray(rows)) throw new ReplicaError('INVALID_CLUSTER', 'members is not an array')
    const members: Member[] = []
    for (const row of rows) {
      if (
        !Array.isArray(row) ||
        row.length !== 4 ||
        !Number.isSafeInteger(row[0]) ||
        typeof row[1] !== 'string' ||
        typeof row[2] !== 'string' ||
        typeof row[3] !== 'boolean'
      ) {
        throw new ReplicaError('INVALID_CLUSTER', 'a member row is not [id, peerId, multiaddr, started]')
      }
      members.push({ id: row[0], peerId: row[1], multiaddr: row[2], started: row[3] })
    }
    return new Members(members, retired as number[])
  }
}
