import { describe, expect, it } from 'vitest'
import { emptyRecord } from '@nodeledger/registry'
import type { NodeData, SelfReported } from '@nodeledger/registry'
import { peerIdFromSeed } from '@nodeledger/testkit/fixtures'
import { WorkerGatewaySource } from '../../src/gateway/worker-gateway.ts'
import type { NodeEventTracker } from '../../src/tracker/node-event-tracker.ts'

/**
 * The worker's gateway source over a stand-in tracker (the parts the source reads): what it serves
 * before and after attach, which change events it mirrors, and when PUT /v1/self is answered.
 */
class StandInTracker extends EventTarget {
  readonly peerId = peerIdFromSeed(1)
  appliedIndex = 0
  leaderIndex = 0
  ownSeq = 0
  confirmed: NodeData[] = []
  readonly client = { leader: `/ip4/127.0.0.1/tcp/1/p2p/${peerIdFromSeed(9001)}` as string | undefined }
  /** Resolves update(): the test decides when the log acknowledges. */
  acknowledge: ((index: number) => void) | undefined

  confirmedRecords(): NodeData[] {
    return this.confirmed
  }
  eligible(): NodeData[] {
    return []
  }
  readiness() {
    return { ready: true }
  }
  gossipPeers(): number {
    return 0
  }
  update(_fields: Partial<SelfReported>): Promise<{ index: number; duplicate: boolean; seq: number }> {
    const seq = ++this.ownSeq
    return new Promise((resolve) => {
      this.acknowledge = (index) => resolve({ index, duplicate: false, seq })
    })
  }
  /** The log delivered `record` (as applyLog dispatches it). */
  logChange(record: NodeData): void {
    this.appliedIndex = Math.max(this.appliedIndex, record.changedIndex)
    this.dispatchEvent(new CustomEvent('change', { detail: { record, source: 'log' } }))
  }
}

const record = (seed: number, changedIndex: number, fields: Partial<NodeData> = {}): NodeData => ({
  ...emptyRecord(peerIdFromSeed(seed)),
  ...fields,
  changedIndex,
})

function attached(): { tracker: StandInTracker; source: WorkerGatewaySource } {
  const tracker = new StandInTracker()
  const source = new WorkerGatewaySource({ updateTimeoutMs: 60_000 })
  source.attach(tracker as unknown as NodeEventTracker)
  return { tracker, source }
}

describe('WorkerGatewaySource', () => {
  it('answers UNAVAILABLE until a tracker is attached', () => {
    const source = new WorkerGatewaySource()
    expect(() => source.appliedIndex()).toThrow(expect.objectContaining({ code: 'UNAVAILABLE' }))
    expect(() => source.list({})).toThrow(expect.objectContaining({ code: 'UNAVAILABLE' }))
    expect(() => source.status()).toThrow(expect.objectContaining({ code: 'UNAVAILABLE' }))
  })

  it("serves the tracker's confirmed records, then the log's changes; gossip's provisional ones are not served", () => {
    const tracker = new StandInTracker()
    tracker.confirmed = [record(2, 3), record(3, 4)]
    tracker.appliedIndex = 4
    const source = new WorkerGatewaySource()
    source.attach(tracker as unknown as NodeEventTracker)
    expect(
      source
        .list({})
        .map((r) => r.changedIndex)
        .sort(),
    ).toEqual([3, 4])
    tracker.logChange(record(4, 6))
    tracker.dispatchEvent(
      new CustomEvent('change', { detail: { record: record(5, 4, { version: 'gossip' }), source: 'gossip' } }),
    )
    expect(source.get(peerIdFromSeed(4))?.changedIndex).toBe(6)
    expect(source.get(peerIdFromSeed(5))).toBeUndefined()
    expect(source.changesSince(4, 10).records.map((r) => r.peerId)).toEqual([peerIdFromSeed(4)])
    // A cache rebuilt from the authority: the mirror takes the tracker's records again.
    tracker.confirmed = [record(7, 9)]
    tracker.dispatchEvent(new CustomEvent('resynced'))
    expect(source.list({}).map((r) => r.peerId)).toEqual([peerIdFromSeed(7)])
  })

  it('status: the leader from the client, lag from the leader index heard', () => {
    const { tracker, source } = attached()
    expect(source.status()).toMatchObject({
      role: 'worker',
      leader: { peerId: peerIdFromSeed(9001) },
      lagEntries: null,
    })
    tracker.leaderIndex = 10
    tracker.appliedIndex = 7
    expect(source.status()).toMatchObject({ appliedIndex: 7, lagEntries: 3 })
    tracker.client.leader = undefined
    expect(source.status().leader).toBeNull()
  })

  it('PUT /v1/self is answered once the log acknowledged it and this worker applied it', async () => {
    const { tracker, source } = attached()
    let answered = false
    const update = source.updateSelf({ version: '2' }).then((result) => {
      answered = true
      return result
    })
    await new Promise((resolve) => setImmediate(resolve))
    tracker.acknowledge!(12)
    await new Promise((resolve) => setImmediate(resolve))
    expect(answered).toBe(false) // acknowledged, not applied here yet
    tracker.logChange(record(1, 12, { version: '2' }))
    expect(await update).toEqual({ seq: 1, index: 12 })
  })

  it('PUT /v1/self not acknowledged in time is TIMEOUT', async () => {
    const tracker = new StandInTracker()
    const source = new WorkerGatewaySource({ updateTimeoutMs: 50 })
    source.attach(tracker as unknown as NodeEventTracker)
    await expect(source.updateSelf({ version: '2' })).rejects.toMatchObject({ code: 'TIMEOUT' })
  })
})
