import { CATEGORIES, canDoWork, compareReliability, emptyRecord } from '@nodeledger/registry'
import type { Category, NodeData, SelfReported } from '@nodeledger/registry'
import { peerIdFromSeed } from '@nodeledger/testkit/fixtures'
import { RecordFeed } from '../src/record-feed.ts'
import type { GatewaySource, GatewayStatus, SelfUpdateResult } from '../src/source.ts'

/** A node's state for the gateway's tests: records in a RecordFeed, an applied index the test moves. */
export class FakeSource implements GatewaySource {
  readonly role: 'worker' | 'replica'
  readonly feed = new RecordFeed()
  readonly peerId = peerIdFromSeed(1)
  applied = 0
  /** What PUT /v1/self was asked, in order; `onUpdate` decides the answer. */
  readonly updates: Partial<SelfReported>[] = []
  onUpdate: (fields: Partial<SelfReported>) => Promise<SelfUpdateResult> = async () => ({
    seq: this.updates.length,
    index: this.applied,
  })
  readonly eligible?: (category: Category) => NodeData[]
  readonly updateSelf?: (fields: Partial<SelfReported>) => Promise<SelfUpdateResult>

  constructor(role: 'worker' | 'replica' = 'worker', options: { eligible?: boolean } = {}) {
    this.role = role
    if (options.eligible !== false)
      this.eligible = (category) =>
        this.feed
          .list()
          .filter((record) => record.isActive && canDoWork(record, category))
          .sort(compareReliability)
    if (role === 'worker')
      this.updateSelf = (fields) => {
        this.updates.push(fields)
        return this.onUpdate(fields)
      }
  }

  /** A record changed by the next log entry. */
  change(seed: number, fields: Partial<NodeData> = {}): NodeData {
    this.applied++
    const record: NodeData = { ...emptyRecord(peerIdFromSeed(seed)), ...fields, changedIndex: this.applied }
    this.feed.apply([record])
    return record
  }

  appliedIndex(): number {
    return this.applied
  }
  get(peerId: string): NodeData | undefined {
    return this.feed.get(peerId)
  }
  list(filter: Parameters<RecordFeed['list']>[0]): NodeData[] {
    return this.feed.list(filter)
  }
  changesSince(index: number, limit: number) {
    return this.feed.changesSince(index, limit)
  }
  waitForChange(index: number, signal: AbortSignal): Promise<void> {
    return this.feed.waitForChange(index, signal)
  }
  status(): GatewayStatus {
    return { role: this.role, peerId: this.peerId, appliedIndex: this.applied, leader: null, lagEntries: null }
  }
}

export { CATEGORIES }
