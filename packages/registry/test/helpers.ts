import { Packr } from 'msgpackr'
import { encodeCommand } from '../src/index.ts'
import type { Command, Delta, ObservationEvent, Registry, RegistryLogEntry, SelfReported } from '../src/index.ts'
// Relative on purpose: testkit depends on the packages it tests, so a dependency back would be a cycle.
import { peerIdFromSeed } from '../../testkit/src/fixtures.ts'

/** A canonical Ed25519 peer id from a seed number (see the testkit fixture). */
export const peerId = peerIdFromSeed

export const REPLICAS = [peerId(9001), peerId(9002), peerId(9003)].sort()
export const [REPLICA_A, REPLICA_B, REPLICA_C] = REPLICAS as [string, string, string]

export function deltaCommand(origin: string, seq: number, fields: Partial<SelfReported>, submitter = origin): Command {
  const delta: Delta = { originPeerId: origin, seq, fields }
  return { kind: 'delta', submitterPeerId: submitter, delta }
}

export function observation(replica: string, peer: string, event: ObservationEvent): Command {
  return { kind: 'observation', replicaPeerId: replica, peerId: peer, event }
}

/** Feeds commands to a registry as a leader would: encoded, stamped, with increasing indexes. */
export class Log {
  readonly entries: RegistryLogEntry[] = []
  index = 0

  append(command: Command, timestampMs: number): RegistryLogEntry {
    this.index++
    const entry = { index: this.index, data: encodeCommand({ timestampMs, command }) }
    this.entries.push(entry)
    return entry
  }
}

export function applyAll(registry: Registry, entries: readonly RegistryLogEntry[]): void {
  for (const entry of entries) registry.apply(entry)
}

/** A realistic record's worth of self-reported fields, about 300 bytes encoded. */
export function fullFields(seed: number): SelfReported {
  return {
    multiaddrs: [
      `/ip4/10.0.${seed % 250}.${(seed >> 8) % 250}/tcp/4001`,
      `/ip4/10.0.${seed % 250}.${(seed >> 8) % 250}/udp/4001/quic-v1`,
    ],
    isStaked: true,
    isValidator: seed % 7 === 0,
    isTwitterScraper: seed % 2 === 0,
    isWebScraper: seed % 3 === 0,
    isDiscordScraper: false,
    isTelegramScraper: seed % 5 === 0,
    version: '1.4.2',
    ethAddress: `0x${seed.toString(16).padStart(8, '0').repeat(5)}`,
    returnedItems: seed * 17,
    returnedItemsLastMs: 1_700_000_000_000 + seed,
    timeouts: seed % 11,
    timeoutsLastMs: 1_700_000_000_000 + seed * 3,
    notFound: seed % 3,
    notFoundLastMs: 1_700_000_000_000 + seed * 5,
  }
}

const anyPackr = new Packr({ useRecords: false })

/**
 * Any MessagePack, for hand-made and hostile inputs the wire encoder (packWire) refuses to write:
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
