import { describe, expect, it } from 'vitest'
import { MemoryStorage, RawNode, createSeededRng, defaults, resolveConfig } from '../src/index.ts'
import type { Config } from '../src/index.ts'
import { expectRaftError } from './harness.ts'

const base = (): Config => ({
  id: 1,
  storage: MemoryStorage.bootstrap({ voters: [1, 2, 3], learners: [] }),
  rng: createSeededRng(1),
})

describe('config validation', () => {
  it('fills every default from constants.ts', () => {
    const resolved = resolveConfig(base())
    expect(resolved).toMatchObject({
      electionTimeoutTicks: defaults.ELECTION_TIMEOUT_TICKS_DEFAULT,
      heartbeatTicks: defaults.HEARTBEAT_TICKS_DEFAULT,
      preVote: true,
      checkQuorum: true,
      entriesPerMessageMax: defaults.ENTRIES_PER_MESSAGE_MAX_DEFAULT,
      entriesBytesPerMessageMax: defaults.ENTRIES_BYTES_PER_MESSAGE_MAX_DEFAULT,
      inflightMessagesMax: defaults.INFLIGHT_MESSAGES_MAX_DEFAULT,
      uncommittedBytesMax: defaults.UNCOMMITTED_BYTES_MAX_DEFAULT,
      snapshotChunkBytes: defaults.SNAPSHOT_CHUNK_BYTES_DEFAULT,
      pendingReadsMax: defaults.PENDING_READS_MAX_DEFAULT,
      leaseMarginTicks: defaults.LEASE_MARGIN_TICKS_DEFAULT,
    })
    expect(new RawNode(base()).status().role).toBe('follower')
  })

  // STYLE §4 (etcd's Config.validate): nonsense is refused with code INVALID and a message that
  // says which field is wrong. The message is checked only for the field's name.
  it.each<[string, Partial<Config>]>([
    ['id', { id: 0 }],
    ['id', { id: 1.5 }],
    ['electionTimeoutTicks', { electionTimeoutTicks: 0 }],
    ['heartbeatTicks', { heartbeatTicks: -1 }],
    ['electionTimeoutTicks', { electionTimeoutTicks: 5, heartbeatTicks: 5 }],
    ['entriesPerMessageMax', { entriesPerMessageMax: 0 }],
    ['entriesBytesPerMessageMax', { entriesBytesPerMessageMax: Number.NaN }],
    ['inflightMessagesMax', { inflightMessagesMax: 2.5 }],
    ['inflightBytesMax', { inflightBytesMax: 0 }],
    ['uncommittedBytesMax', { uncommittedBytesMax: -10 }],
    ['committedBytesPerReadyMax', { committedBytesPerReadyMax: 0 }],
    ['snapshotChunkBytes', { snapshotChunkBytes: 0 }],
    ['pendingReadsMax', { pendingReadsMax: 0 }],
    ['leaseMarginTicks', { leaseMarginTicks: -1 }],
    ['leaseMarginTicks', { electionTimeoutTicks: 10, leaseMarginTicks: 10 }],
    ['leaderLostStaggerTicks', { leaderLostStaggerTicks: 0 }],
    ['applied', { applied: -1 }],
  ])('refuses a bad %s with INVALID', (field, override) => {
    const error = expectRaftError(() => resolveConfig({ ...base(), ...override }), 'INVALID')
    expect(error.message).toContain(field)
    expectRaftError(() => new RawNode({ ...base(), ...override }), 'INVALID')
  })

  it('reports every problem at once', () => {
    const error = expectRaftError(
      () => resolveConfig({ ...base(), heartbeatTicks: 0, snapshotChunkBytes: 0 }),
      'INVALID',
    )
    expect(error.message).toContain('heartbeatTicks')
    expect(error.message).toContain('snapshotChunkBytes')
  })
})
