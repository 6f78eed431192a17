import { Packr } from 'msgpackr'
import { emptyRecord } from '@nodeledger/registry'
import type { NodeData } from '@nodeledger/registry'
import type { StatusResult } from '../src/index.ts'
// Relative on purpose: testkit depends on the packages it tests, so a dependency back would be a cycle.
import { peerIdFromSeed } from '../../testkit/src/fixtures.ts'

/** A canonical Ed25519 peer id from a seed number (see the testkit fixture). */
export const peerId = peerIdFromSeed

export const REPLICA = peerId(9001)

/** A record that satisfies the registry's invariants: active, observed by REPLICA, with fields set. */
export function sampleRecord(seed: number): NodeData {
  return {
    ...emptyRecord(peerId(seed)),
    multiaddrs: [`/ip4/10.0.0.${seed % 250}/tcp/4001`],
    firstJoinedMs: 1_000,
    lastJoinedMs: 2_000,
    lastLeftMs: 1_500,
    lastUpdatedMs: 3_000,
    uptimeAccumulatedMs: 500,
    isActive: true,
    isStaked: true,
    isTwitterScraper: seed % 2 === 0,
    version: '1.2.3',
    ethAddress: `0x${'ab'.repeat(20)}`,
    returnedItems: seed,
    originSeq: 3,
    observers: [REPLICA],
    changedIndex: 40 + seed,
  }
}

export function sampleStatus(): StatusResult {
  const leaderPeerId = peerId(9002)
  return {
    clusterId: 'c0ffee00-0000-4000-8000-000000000000',
    id: 1,
    peerId: REPLICA,
    role: 'follower',
    term: 7,
    leader: { id: 2, peerId: leaderPeerId, multiaddrs: [`/ip4/127.0.0.2/tcp/4002/p2p/${leaderPeerId}`] },
    commit: 120,
    applied: 119,
    firstIndex: 100,
    lastIndex: 121,
    snapshotIndex: 99,
    members: [
      { id: 1, peerId: REPLICA, multiaddr: `/ip4/127.0.0.1/tcp/4001/p2p/${REPLICA}`, voter: true, started: true },
      {
        id: 2,
        peerId: leaderPeerId,
        multiaddr: `/ip4/127.0.0.2/tcp/4002/p2p/${leaderPeerId}`,
        voter: true,
        started: true,
      },
    ],
    registryRecords: 42,
    registryDigest: 'ab'.repeat(32),
    version: '0.1.0',
  }
}

const anyPackr = new Packr({ useRecords: false })

/**
 * Any MessagePack, for hand-made and hostile frames the wire encoder (packValue) refuses to write:
 * negatives, floats, extension types. msgpackr as it is, except that integers from 2^32 on go out
 * as int64 (msgpackr writes them as float64, which a reader refuses for a reason the test is not about).
 */
export function packAny(value: unknown): Uint8Array {
  return anyPackr.pack(bigIntegers(value))
}

function bigIntegers(value: unknown): unknown {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 2 ** 32 ? BigInt(value) : value
  if (Array.isArray(value)) return value.map(bigIntegers)
  if (typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([key, entry]) => [key, bigIntegers(entry)]))
  }
  return value
}
