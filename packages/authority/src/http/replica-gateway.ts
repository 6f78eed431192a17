import { GatewayError } from '@nodeledger/gateway'
import type { GatewaySource, GatewayStatus } from '@nodeledger/gateway'
import type { Category, Changes, ListFilter, NodeData } from '@nodeledger/registry'
import type { Replica } from '../replica/replica.ts'

/**
 * A replica's data for the HTTP gateway, read-only (no PUT /v1/self: a replica is not a node of the
 * network): the registry as this replica applied it (a stale read in PROTOCOL.md's terms, no
 * ReadIndex round), its ranking (the same `Registry.eligible` the API's workers use), and its
 * changes from the registry's change index. Until the replica has started (it may be waiting for
 * its peers) every route answers 503 UNAVAILABLE.
 */
export class ReplicaGatewaySource implements GatewaySource {
  readonly role = 'replica' as const
  readonly #replica: () => Replica | undefined

  constructor(replica: () => Replica | undefined) {
    this.#replica = replica
  }

  #started(): Replica {
    const replica = this.#replica()
    if (replica === undefined)
      throw new GatewayError('UNAVAILABLE', 'the replica is starting: opening its data dir and joining the cluster')
    return replica
  }

  appliedIndex(): number {
    return this.#started().applied
  }

  get(peerId: string): NodeData | undefined {
    return this.#started().registry.get(peerId)
  }

  list(filter: ListFilter): NodeData[] {
    return this.#started().registry.list(filter)
  }

  changesSince(index: number, limit: number): Changes {
    return this.#started().registry.changesSince(index, limit)
  }

  /**
   * The next applied entry, unless a change after `index` is there already. Entries that change no
   * record (no-ops, membership) wake it too; the stream then reads nothing and waits again.
   */
  async waitForChange(index: number, signal: AbortSignal): Promise<void> {
    const replica = this.#started()
    if (replica.registry.changesSince(index, 1).records.length > 0) return
    await replica.waitApplied(replica.applied + 1, signal)
  }

  eligible = (category: Category): NodeData[] => this.#started().registry.eligible(category)

  status(): GatewayStatus {
    const replica = this.#started()
    const status = replica.status()
    return {
      role: 'replica',
      peerId: status.peerId,
      appliedIndex: status.applied,
      leader: status.leader === undefined ? null : { peerId: status.leader.peerId, id: status.leader.id },
      // Entries committed but not applied here yet: how far this replica's answers trail its log.
      lagEntries: Math.max(0, status.commit - status.applied),
      replica: status.id,
      raftRole: status.role,
      term: status.term,
      commit: status.commit,
      ready: replica.readiness().ready,
      records: status.registryRecords,
    }
  }
}
