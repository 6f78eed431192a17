import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import {
  CODEC_VERSION,
  ETH_ADDRESS_PATTERN,
  MULTIADDR_LENGTH_MAX,
  MULTIADDRS_MAX,
  MULTIADDR_CACHE_ENTRIES_MAX,
  PEER_ID_CACHE_ENTRIES_MAX,
  PEER_ID_LENGTH_MAX,
  REPLICAS_MAX,
  VERSION_LENGTH_MAX,
} from './constants.ts'
import { RegistryError } from './errors.ts'
import { LAST_LEFT_REASONS, RECORD_FIELDS, RECORD_FIELDS_V1, SELF_REPORTED_FIELDS } from './model.ts'
import type { LastLeftReason, NodeData, SelfReported, SelfReportedField } from './model.ts'

/**
 * Checks on values that came from outside (decoded bytes or a caller's delta). Each returns the
 * value typed, or throws RegistryError: INVALID for a wrong shape, TOO_LARGE for a broken bound.
 * `what` names the value in the message, e.g. "delta.fields.version".
 */

export function invalid(what: string, expected: string): RegistryError {
  return new RegistryError('INVALID', `${what}: expected ${expected}`)
}

export function checkArray(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw invalid(what, 'an array')
  return value
}

export function checkBoolean(value: unknown, what: string): boolean {
  if (typeof value !== 'boolean') throw invalid(what, 'a boolean')
  return value
}

/** Integers in [0, 2^53): counters, sequence numbers, log indexes and millisecond times. */
export function checkUnsigned(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalid(what, 'a non-negative safe integer')
  }
  return value
}

export function checkString(value: unknown, what: string, lengthMax: number): string {
  if (typeof value !== 'string') throw invalid(what, 'a string')
  if (value.length > lengthMax) {
    throw new RegistryError('TOO_LARGE', `${what}: ${value.length} characters, at most ${lengthMax}`)
  }
  return value
}

/** Printable ASCII only: versions are shown in logs and tables, where control bytes do harm. */
const VERSION_PATTERN = /^[\x20-\x7e]*$/

export function checkVersion(value: unknown, what: string): string {
  const version = checkString(value, what, VERSION_LENGTH_MAX)
  if (!VERSION_PATTERN.test(version)) throw invalid(what, 'printable ASCII')
  return version
}

export function checkEthAddress(value: unknown, what: string): string {
  const address = checkString(value, what, 42)
  if (!ETH_ADDRESS_PATTERN.test(address)) throw invalid(what, '0x and 40 hex digits, or empty')
  return address
}

/** base58btc alphabet: rejects most garbage before the (10 µs) key parse. */
const BASE58_PATTERN = /^[1-9A-HJ-NP-Za-km-z]+$/
const peerIdsValid = new Set<string>()
const multiaddrsValid = new Set<string>()

/**
 * A canonical libp2p peer id: parses (multihash of a key, or of its digest) and prints back as the
 * same string. Requiring the canonical form keeps one key per peer in the registry: the CIDv1 form
 * of the same id would otherwise be a second record.
 */
export function checkPeerId(value: unknown, what: string): string {
  const text = checkString(value, what, PEER_ID_LENGTH_MAX)
  if (peerIdsValid.has(text)) return text
  if (!BASE58_PATTERN.test(text)) throw invalid(what, 'a base58btc libp2p peer id')
  let canonical: string
  try {
    canonical = peerIdFromString(text).toString()
  } catch (error) {
    throw new RegistryError('INVALID', `${what}: not a libp2p peer id`, { cause: error })
  }
  if (canonical !== text) throw invalid(what, `the canonical peer id ${canonical}`)
  if (peerIdsValid.size >= PEER_ID_CACHE_ENTRIES_MAX) peerIdsValid.clear()
  peerIdsValid.add(text)
  return text
}

/** A sorted list of distinct peer ids, at most `countMax` long (replica sets, observers). */
export function checkPeerIdSet(value: unknown, what: string, countMax: number, verify: boolean): string[] {
  const list = checkArray(value, what)
  if (list.length > countMax) {
    throw new RegistryError('TOO_LARGE', `${what}: ${list.length} peer ids, at most ${countMax}`)
  }
  const peerIds: string[] = []
  for (let i = 0; i < list.length; i++) {
    const peerId = verify ? checkPeerId(list[i], what) : checkString(list[i], what, PEER_ID_LENGTH_MAX)
    const previous = peerIds[i - 1]
    if (previous !== undefined && !(previous < peerId)) throw invalid(what, 'sorted distinct peer ids')
    peerIds.push(peerId)
  }
  return peerIds
}

/**
 * A multiaddr in the canonical form `@multiformats/multiaddr` prints. Canonical strings make equal
 * addresses equal bytes, so snapshots stay identical across replicas.
 */
export function checkMultiaddr(value: unknown, what: string): string {
  const text = checkString(value, what, MULTIADDR_LENGTH_MAX)
  if (multiaddrsValid.has(text)) return text
  let canonical: string
  try {
    canonical = multiaddr(text).toString()
  } catch (error) {
    throw new RegistryError('INVALID', `${what}: not a multiaddr`, { cause: error })
  }
  if (canonical !== text) throw invalid(what, `the canonical multiaddr ${canonical}`)
  if (multiaddrsValid.size >= MULTIADDR_CACHE_ENTRIES_MAX) multiaddrsValid.clear()
  multiaddrsValid.add(text)
  return text
}

/** At most MULTIADDRS_MAX distinct multiaddrs; order is the node's preference and is kept. */
export function checkMultiaddrs(value: unknown, what: string, verify: boolean): string[] {
  const list = checkArray(value, what)
  if (list.length > MULTIADDRS_MAX) {
    throw new RegistryError('TOO_LARGE', `${what}: ${list.length} multiaddrs, at most ${MULTIADDRS_MAX}`)
  }
  const multiaddrs: string[] = []
  const seen = new Set<string>()
  for (let i = 0; i < list.length; i++) {
    const address = verify ? checkMultiaddr(list[i], what) : checkString(list[i], what, MULTIADDR_LENGTH_MAX)
    if (seen.has(address)) throw invalid(what, 'no duplicate multiaddrs')
    seen.add(address)
    multiaddrs.push(address)
  }
  return multiaddrs
}

/** Checks one self-reported field by name; `verify` also parses multiaddrs. */
export function checkSelfReportedField(
  field: SelfReportedField,
  value: unknown,
  what: string,
  verify: boolean,
): unknown {
  switch (field) {
    case 'multiaddrs':
      return checkMultiaddrs(value, what, verify)
    case 'isStaked':
    case 'isValidator':
    case 'isTwitterScraper':
    case 'isWebScraper':
    case 'isDiscordScraper':
    case 'isTelegramScraper':
      return checkBoolean(value, what)
    case 'version':
      return checkVersion(value, what)
    case 'ethAddress':
      return checkEthAddress(value, what)
    case 'returnedItems':
    case 'returnedItemsLastMs':
    case 'timeouts':
    case 'timeoutsLastMs':
    case 'notFound':
    case 'notFoundLastMs':
      return checkUnsigned(value, what)
  }
}

/**
 * A delta's fields as written on the wire: `[fieldId, value, ...]` with ids (indexes into
 * SELF_REPORTED_FIELDS) strictly ascending. Unknown ids are INVALID rather than ignored: a newer
 * writer must bump CODEC_VERSION instead of having its fields silently dropped by older replicas.
 */
export function checkDeltaFields(value: unknown, what: string): Partial<SelfReported> {
  const list = checkArray(value, what)
  if (list.length % 2 !== 0) throw invalid(what, 'field id and value pairs')
  const fields: Record<string, unknown> = {}
  let previousId = -1
  for (let i = 0; i < list.length; i += 2) {
    const id = list[i]
    if (typeof id !== 'number' || !Number.isInteger(id) || id <= previousId || id >= SELF_REPORTED_FIELDS.length) {
      throw invalid(`${what}[${i}]`, 'ascending self-reported field ids')
    }
    previousId = id
    const field = SELF_REPORTED_FIELDS[id]!
    fields[field] = checkSelfReportedField(field, list[i + 1], `${what}.${field}`, true)
  }
  return fields as Partial<SelfReported>
}

const LAST_LEFT_REASON_SET: ReadonlySet<unknown> = new Set(LAST_LEFT_REASONS)

export function checkLastLeftReason(value: unknown, what: string): LastLeftReason {
  if (!LAST_LEFT_REASON_SET.has(value)) throw invalid(what, '"", "ttl", "left" or "disconnected"')
  return value as LastLeftReason
}

/**
 * A whole record in RECORD_FIELDS order, with its invariants: what the state machine maintains
 * must also hold for anything read back from a snapshot or the wire. `version` is the codec version
 * it was written in: 2 has every field, 1 the first RECORD_FIELDS_V1 (lastLeftReason reads as '').
 */
export function checkRecord(value: unknown, verify: boolean, version: number = CODEC_VERSION): NodeData {
  // Labels are constants: building `records[i].field` strings eagerly would cost more than the checks.
  const what = 'record'
  const list = checkArray(value, what)
  const fieldCount = version === 1 ? RECORD_FIELDS_V1 : RECORD_FIELDS.length
  if (list.length !== fieldCount) throw invalid(what, `${fieldCount} fields in a version ${version} record`)
  const record: NodeData = {
    peerId: verify ? checkPeerId(list[0], 'record.peerId') : checkString(list[0], 'record.peerId', PEER_ID_LENGTH_MAX),
    multiaddrs: checkMultiaddrs(list[1], 'record.multiaddrs', verify),
    firstJoinedMs: checkUnsigned(list[2], 'record.firstJoinedMs'),
    lastJoinedMs: checkUnsigned(list[3], 'record.lastJoinedMs'),
    lastLeftMs: checkUnsigned(list[4], 'record.lastLeftMs'),
    lastLeftReason: version === 1 ? '' : checkLastLeftReason(list[25], 'record.lastLeftReason'),
    lastUpdatedMs: checkUnsigned(list[5], 'record.lastUpdatedMs'),
    uptimeAccumulatedMs: checkUnsigned(list[6], 'record.uptimeAccumulatedMs'),
    isActive: checkBoolean(list[7], 'record.isActive'),
    isStaked: checkBoolean(list[8], 'record.isStaked'),
    isValidator: checkBoolean(list[9], 'record.isValidator'),
    isTwitterScraper: checkBoolean(list[10], 'record.isTwitterScraper'),
    isWebScraper: checkBoolean(list[11], 'record.isWebScraper'),
    isDiscordScraper: checkBoolean(list[12], 'record.isDiscordScraper'),
    isTelegramScraper: checkBoolean(list[13], 'record.isTelegramScraper'),
    version: checkVersion(list[14], 'record.version'),
    ethAddress: checkEthAddress(list[15], 'record.ethAddress'),
    returnedItems: checkUnsigned(list[16], 'record.returnedItems'),
    returnedItemsLastMs: checkUnsigned(list[17], 'record.returnedItemsLastMs'),
    timeouts: checkUnsigned(list[18], 'record.timeouts'),
    timeoutsLastMs: checkUnsigned(list[19], 'record.timeoutsLastMs'),
    notFound: checkUnsigned(list[20], 'record.notFound'),
    notFoundLastMs: checkUnsigned(list[21], 'record.notFoundLastMs'),
    originSeq: checkUnsigned(list[22], 'record.originSeq'),
    observers: checkPeerIdSet(list[23], 'record.observers', REPLICAS_MAX, verify),
    changedIndex: checkUnsigned(list[24], 'record.changedIndex'),
  }
  const broken = recordInvariantBroken(record)
  if (broken !== undefined) throw invalid(what, broken)
  return record
}

/**
 * The invariants every record satisfies, or a description of the first one broken. The state
 * machine asserts them after each change; decoders reject records that break them.
 */
export function recordInvariantBroken(record: NodeData): string | undefined {
  if (record.isActive !== record.observers.length > 0) return 'isActive exactly when some replica observes the node'
  if (record.firstJoinedMs > record.lastJoinedMs) return 'firstJoinedMs <= lastJoinedMs'
  if (record.lastJoinedMs > record.lastUpdatedMs) return 'lastJoinedMs <= lastUpdatedMs'
  if (record.lastLeftMs > record.lastUpdatedMs) return 'lastLeftMs <= lastUpdatedMs'
  if (record.firstJoinedMs === 0 && record.lastJoinedMs !== 0) return 'lastJoinedMs is 0 until a first join'
  if (record.firstJoinedMs === 0 && record.lastLeftMs !== 0) return 'lastLeftMs is 0 until a first join'
  if (record.lastLeftMs !== 0 && record.lastLeftMs < record.firstJoinedMs) return 'firstJoinedMs <= lastLeftMs'
  if (!LAST_LEFT_REASON_SET.has(record.lastLeftReason)) return 'lastLeftReason is "", ttl, left or disconnected'
  // The reason is the why of lastLeftMs: none while the node never left ('' also when not known).
  if (record.lastLeftMs === 0 && record.lastLeftReason !== '') return 'lastLeftReason is empty until a first leave'
  if (record.isActive && record.firstJoinedMs === 0) return 'an active node has joined'
  // Uptime is a sum of disjoint intervals inside [firstJoined, end], end being now when active
  // (bounded by lastJoined for the closed part) and lastLeft otherwise.
  const spanEndMs = record.isActive ? record.lastJoinedMs : record.lastLeftMs
  if (record.uptimeAccumulatedMs > spanEndMs - record.firstJoinedMs)
    return 'uptimeAccumulatedMs within the span since first join'
  return undefined
}

/**
 * A delta as the API and gossip carry it: `{ originPeerId, seq, fields: { name: value } }`. The one
 * place the delta rules live (PROTOCOL.md "Delta"): the origin is a canonical peer id, seq at least
 * 1, every field a self-reported one with a valid value. Returns a fresh Delta holding exactly the
 * fields given (none undefined); throws RegistryError INVALID or TOO_LARGE.
 */
export function checkDelta(
  value: unknown,
  what: string,
): { originPeerId: string; seq: number; fields: Partial<SelfReported> } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(what, 'a map')
  const raw = value as Record<string, unknown>
  const originPeerId = checkPeerId(raw.originPeerId, `${what}.originPeerId`)
  const seq = checkUnsigned(raw.seq, `${what}.seq`)
  if (seq === 0) throw invalid(`${what}.seq`, 'a sequence number of at least 1')
  const given = raw.fields
  if (typeof given !== 'object' || given === null || Array.isArray(given)) throw invalid(`${what}.fields`, 'a map')
  const fields: Record<string, unknown> = {}
  for (const [name, fieldValue] of Object.entries(given as Record<string, unknown>)) {
    if (fieldValue === undefined) continue
    if (!(SELF_REPORTED_FIELDS as readonly string[]).includes(name)) {
      throw invalid(`${what}.fields.${name.slice(0, 64)}`, `a self-reported field (${SELF_REPORTED_FIELDS.join(', ')})`)
    }
    fields[name] = checkSelfReportedField(name as SelfReportedField, fieldValue, `${what}.fields.${name}`, true)
  }
  return { originPeerId, seq, fields: fields as Partial<SelfReported> }
}
