import { crc32 } from 'node:zlib'
import type { Command, CommandEnvelope, LivenessReason, ObservationEvent } from './commands.ts'
import {
  CODEC_VERSION,
  CODEC_VERSION_OLDEST,
  COMMAND_BYTES_MAX,
  EXPIRE_TTL_MS_MAX,
  RECORD_BYTES_MAX,
  RECORDS_MAX,
  REPLICAS_MAX,
  SNAPSHOT_BYTES_MAX,
} from './constants.ts'
import { RegistryError } from './errors.ts'
import { RECORD_FIELDS_V1, SELF_REPORTED_FIELDS } from './model.ts'
import { MsgpackError, packWire, unpackWire } from './msgpack.ts'
import type { NodeData } from './model.ts'
import {
  checkArray,
  checkDeltaFields,
  checkPeerId,
  checkPeerIdSet,
  checkRecord,
  checkUnsigned,
  invalid,
} from './validate.ts'

/**
 * The registry's bytes: commands (what the Raft log carries), records (what reads return over the
 * wire) and snapshots. Everything is wire MessagePack (msgpack.ts: integers as integers of any
 * width up to 2^53 - 1, never floats, no extension types) with positional arrays: no field names on
 * the wire for records, so a 300-byte record stays 300 bytes and decoding is a walk over an array.
 * The first element of every envelope is the codec version: writers write CODEC_VERSION, decoders
 * read CODEC_VERSION_OLDEST through CODEC_VERSION (replicas' data dirs, worker caches and backup
 * files outlive a build) and refuse any other.
 *
 * msgpackr's own record extension (shared structures) is never used: its structure table is state
 * shared between encoder and decoder, and hostile input could define structures. Positional arrays
 * give the same speed with no state.
 *
 *   command   [version, timestampMs, kind, ...payload]
 *     delta        kind 1: submitterPeerId, originPeerId, seq, [fieldId, value, fieldId, value, ...]
 *                  changed fields only; fieldId is the index in SELF_REPORTED_FIELDS, ascending
 *     observation  kind 2: replicaPeerId, peerId, event (1 joined, 2 left)
 *     replica-reset  kind 3: replicaPeerId
 *     expire       kind 4: ttlMs
 *     replicas     kind 5: [replicaPeerId, ...] sorted
 *     liveness     kind 6: replicaPeerId, peerId, active (boolean), reason (1 heartbeat, 2 connected,
 *                  3 ttl, 4 left, 5 disconnected)
 *                  the same in version 1 and 2; only what apply records differs (registry.ts)
 *   record    [version, [field, ...] in RECORD_FIELDS order]: 26 fields; version 1, 25 (no
 *             lastLeftReason, read as '')
 *   snapshot  "NLRS" | version (1 byte) | crc32 of body (4 bytes, big endian) | body
 *     body = msgpack [appliedIndex, clockMs, replicaPeerIds, counters, [record, ...] sorted by peerId]
 *     each record being a record's field array of the snapshot's version
 *
 * Every decoder throws only RegistryError: INVALID, TOO_LARGE, UNSUPPORTED_VERSION or CORRUPT.
 */

const KIND_CODE = { delta: 1, observation: 2, 'replica-reset': 3, expire: 4, replicas: 5, liveness: 6 } as const
const REASON_CODE = { heartbeat: 1, connected: 2, ttl: 3, left: 4, disconnected: 5 } as const satisfies Record<
  LivenessReason,
  number
>
const REASON_BY_CODE = new Map<unknown, LivenessReason>(
  Object.entries(REASON_CODE).map(([reason, code]) => [code, reason as LivenessReason]),
)
const EVENT_CODE = { joined: 1, left: 2 } as const satisfies Record<ObservationEvent, number>

const SNAPSHOT_MAGIC = [0x4e, 0x4c, 0x52, 0x53] // "NLRS": nodeledger registry snapshot
const SNAPSHOT_HEADER_BYTES = 9

/** Counters in the snapshot, in this order. Append only. */
export const SNAPSHOT_COUNTERS = [
  'entriesApplied',
  'entriesStale',
  'entriesRejected',
  'deltasReplayed',
  'deltasStale',
  'observationsIgnored',
] as const

export type SnapshotCounters = Record<(typeof SNAPSHOT_COUNTERS)[number], number>

export interface SnapshotState {
  readonly appliedIndex: number
  readonly clockMs: number
  readonly replicaPeerIds: readonly string[]
  readonly counters: SnapshotCounters
  /** Sorted by peerId. */
  readonly records: readonly NodeData[]
}

export interface DecodeOptions {
  /**
   * Parse every peer id and multiaddr (true, the default). False checks types, lengths and
   * invariants only: for a snapshot this process wrote itself, where the full parse would add
   * about 10 µs per record and change nothing.
   */
  readonly verify?: boolean
}

// ---------------------------------------------------------------------------------------------
// Commands

/**
 * Encodes a command envelope, then decodes the result: what we write must be what any replica can
 * read (TIGER_STYLE: validate right before writing). Throws RegistryError for an invalid command.
 */
export function encodeCommand(envelope: CommandEnvelope): Uint8Array {
  const bytes = pack(() => commandToArray(envelope), 'command')
  decodeCommand(bytes)
  return bytes
}

/**
 * Encodes a command built only from values already validated (a delta from `checkDelta`, peer ids
 * that passed `checkPeerId`): packed once, without the read-back of encodeCommand, which on the
 * leader's submit path would validate the same delta a second time. The size limit still holds.
 */
export function encodeValidatedCommand(envelope: CommandEnvelope): Uint8Array {
  const bytes = pack(() => commandToArray(envelope), 'command')
  if (bytes.length > COMMAND_BYTES_MAX) {
    throw new RegistryError('TOO_LARGE', `command: ${bytes.length} bytes, at most ${COMMAND_BYTES_MAX}`)
  }
  return bytes
}

function commandToArray(envelope: CommandEnvelope): unknown[] {
  const { timestampMs, command } = envelope
  switch (command.kind) {
    case 'delta': {
      // Field ids in ascending order, so that equal deltas are equal bytes.
      const fields: unknown[] = []
      SELF_REPORTED_FIELDS.forEach((field, id) => {
        const value = command.delta.fields[field]
        if (value !== undefined) fields.push(id, value)
      })
      return [
        CODEC_VERSION,
        timestampMs,
        KIND_CODE.delta,
        command.submitterPeerId,
        command.delta.originPeerId,
        command.delta.seq,
        fields,
      ]
    }
    case 'observation':
      return [
        CODEC_VERSION,
        timestampMs,
        KIND_CODE.observation,
        command.replicaPeerId,
        command.peerId,
        EVENT_CODE[command.event],
      ]
    case 'replica-reset':
      return [CODEC_VERSION, timestampMs, KIND_CODE['replica-reset'], command.replicaPeerId]
    case 'expire':
      return [CODEC_VERSION, timestampMs, KIND_CODE.expire, command.ttlMs]
    case 'replicas':
      return [CODEC_VERSION, timestampMs, KIND_CODE.replicas, [...command.replicaPeerIds].sort()]
    case 'liveness':
      return [
        CODEC_VERSION,
        timestampMs,
        KIND_CODE.liveness,
        command.replicaPeerId,
        command.peerId,
        command.active,
        REASON_CODE[command.reason],
      ]
    default:
      throw invalid('command.kind', 'delta, observation, replica-reset, expire, replicas or liveness')
  }
}

export function decodeCommand(bytes: Uint8Array): CommandEnvelope {
  return guarded('command', () => {
    checkBytes(bytes, 'command', COMMAND_BYTES_MAX)
    const list = envelope(unpack(bytes, 'command'), 'command')
    const version = list[0] as number
    const timestampMs = checkUnsigned(list[1], 'command.timestampMs')
    // 0 means "never" in a record; a real leader's clock is never at the epoch.
    if (timestampMs === 0) throw invalid('command.timestampMs', 'a time after the epoch')
    const kind = list[2]
    const arity = (count: number): void => {
      if (list.length !== count) throw invalid('command', `${count} elements for kind ${String(kind)}`)
    }
    let command: Command
    switch (kind) {
      case KIND_CODE.delta: {
        arity(7)
        const seq = checkUnsigned(list[5], 'delta.seq')
        if (seq === 0) throw invalid('delta.seq', 'a sequence number of at least 1')
        command = {
          kind: 'delta',
          submitterPeerId: checkPeerId(list[3], 'delta.submitterPeerId'),
          delta: {
            originPeerId: checkPeerId(list[4], 'delta.originPeerId'),
            seq,
            fields: checkDeltaFields(list[6], 'delta.fields'),
          },
        }
        break
      }
      case KIND_CODE.observation: {
        arity(6)
        const event = list[5] === EVENT_CODE.joined ? 'joined' : list[5] === EVENT_CODE.left ? 'left' : undefined
        if (event === undefined) throw invalid('observation.event', '1 (joined) or 2 (left)')
        command = {
          kind: 'observation',
          replicaPeerId: checkPeerId(list[3], 'observation.replicaPeerId'),
          peerId: checkPeerId(list[4], 'observation.peerId'),
          event,
        }
        break
      }
      case KIND_CODE['replica-reset']:
        arity(4)
        command = { kind: 'replica-reset', replicaPeerId: checkPeerId(list[3], 'replica-reset.replicaPeerId') }
        break
      case KIND_CODE.expire: {
        arity(4)
        const ttlMs = checkUnsigned(list[3], 'expire.ttlMs')
        if (ttlMs === 0 || ttlMs > EXPIRE_TTL_MS_MAX) throw invalid('expire.ttlMs', `1 to ${EXPIRE_TTL_MS_MAX} ms`)
        command = { kind: 'expire', ttlMs }
        break
      }
      case KIND_CODE.replicas:
        arity(4)
        command = {
          kind: 'replicas',
          replicaPeerIds: checkPeerIdSet(list[3], 'replicas.replicaPeerIds', REPLICAS_MAX, true),
        }
        break
      case KIND_CODE.liveness: {
        arity(7)
        if (typeof list[5] !== 'boolean') throw invalid('liveness.active', 'a boolean')
        const reason = REASON_BY_CODE.get(list[6])
        if (reason === undefined)
          throw invalid('liveness.reason', '1 to 5 (heartbeat, connected, ttl, left, disconnected)')
        command = {
          kind: 'liveness',
          replicaPeerId: checkPeerId(list[3], 'liveness.replicaPeerId'),
          peerId: checkPeerId(list[4], 'liveness.peerId'),
          active: list[5],
          reason,
        }
        break
      }
      default:
        throw invalid('command.kind', 'a known command kind (1 to 6)')
    }
    return version === CODEC_VERSION ? { timestampMs, command } : { timestampMs, command, version }
  })
}

// ---------------------------------------------------------------------------------------------
// Records

/** A record as the positional array the codec writes: RECORD_FIELDS order (a test checks it). */
export function recordToArray(r: NodeData): unknown[] {
  // Spelled out rather than looped over RECORD_FIELDS: a literal is several times faster to build,
  // which matters for a snapshot of a million records.
  return [
    r.peerId,
    r.multiaddrs,
    r.firstJoinedMs,
    r.lastJoinedMs,
    r.lastLeftMs,
    r.lastUpdatedMs,
    r.uptimeAccumulatedMs,
    r.isActive,
    r.isStaked,
    r.isValidator,
    r.isTwitterScraper,
    r.isWebScraper,
    r.isDiscordScraper,
    r.isTelegramScraper,
    r.version,
    r.ethAddress,
    r.returnedItems,
    r.returnedItemsLastMs,
    r.timeouts,
    r.timeoutsLastMs,
    r.notFound,
    r.notFoundLastMs,
    r.originSeq,
    r.observers,
    r.changedIndex,
    r.lastLeftReason,
  ]
}

/** The record as CODEC_VERSION writes it: what reads return, caches and snapshots hold. */
export function encodeRecord(record: NodeData): Uint8Array {
  return packRecord(CODEC_VERSION, recordToArray(record), record.peerId)
}

/**
 * The bytes a record's digest hash covers (digest.ts): its encoding in the oldest version that
 * holds it. A record without a lastLeftReason is the version 1 record it was before version 2
 * existed, so it hashes as version 1 bytes; one with a reason hashes as version 2 bytes. Hence the
 * digest of a registry that has no reasons, every registry of a version 1 build, is unchanged: a
 * backup saved by version 1 still verifies and restores to the digest it names, and equal digests
 * still mean equal records (version 1 and 2 bytes differ in their first element).
 */
export function encodeRecordForDigest(record: NodeData): Uint8Array {
  if (record.lastLeftReason !== '') return encodeRecord(record)
  return packRecord(CODEC_VERSION_OLDEST, recordToArray(record).slice(0, RECORD_FIELDS_V1), record.peerId)
}

function packRecord(version: number, fields: unknown[], peerId: string): Uint8Array {
  const bytes = pack(() => [version, fields], `record ${String(peerId).slice(0, 128)}`)
  if (bytes.length > RECORD_BYTES_MAX) {
    throw new RegistryError('TOO_LARGE', `record ${peerId}: ${bytes.length} bytes, at most ${RECORD_BYTES_MAX}`)
  }
  return bytes
}

/** A record of any version this build reads; a version 1 record has lastLeftReason ''. */
export function decodeRecord(bytes: Uint8Array, options: DecodeOptions = {}): NodeData {
  return guarded('record', () => {
    checkBytes(bytes, 'record', RECORD_BYTES_MAX)
    const list = envelope(unpack(bytes, 'record'), 'record')
    if (list.length !== 2) throw invalid('record', 'a version and a field array')
    return checkRecord(list[1], options.verify ?? true, list[0] as number)
  })
}

// ---------------------------------------------------------------------------------------------
// Snapshots

export function encodeSnapshot(state: SnapshotState): Uint8Array {
  const records = new Array<unknown[]>(state.records.length)
  for (let i = 0; i < state.records.length; i++) records[i] = recordToArray(state.records[i]!)
  const counters = SNAPSHOT_COUNTERS.map((name) => state.counters[name])
  const body = pack(() => [state.appliedIndex, state.clockMs, [...state.replicaPeerIds], counters, records], 'snapshot')
  const bytes = new Uint8Array(SNAPSHOT_HEADER_BYTES + body.length)
  bytes.set(SNAPSHOT_MAGIC, 0)
  bytes[4] = CODEC_VERSION
  new DataView(bytes.buffer).setUint32(5, crc32(body), false)
  bytes.set(body, SNAPSHOT_HEADER_BYTES)
  return bytes
}

export function decodeSnapshot(bytes: Uint8Array, options: DecodeOptions = {}): SnapshotState {
  const verify = options.verify ?? true
  return guarded('snapshot', () => {
    checkBytes(bytes, 'snapshot', SNAPSHOT_BYTES_MAX)
    if (bytes.length < SNAPSHOT_HEADER_BYTES || SNAPSHOT_MAGIC.some((byte, i) => bytes[i] !== byte)) {
      throw invalid('snapshot', 'the NLRS header')
    }
    const version = bytes[4]!
    if (version < CODEC_VERSION_OLDEST || version > CODEC_VERSION) {
      throw new RegistryError('UNSUPPORTED_VERSION', `snapshot: version ${version}, this build reads ${VERSIONS_READ}`)
    }
    const body = bytes.subarray(SNAPSHOT_HEADER_BYTES)
    const checksum = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(5, false)
    if (crc32(body) !== checksum) throw new RegistryError('CORRUPT', 'snapshot: checksum does not match the body')
    const list = checkArray(unpack(body, 'snapshot'), 'snapshot')
    if (list.length !== 5) throw invalid('snapshot', '5 elements')
    const counterList = checkArray(list[3], 'snapshot.counters')
    if (counterList.length !== SNAPSHOT_COUNTERS.length)
      throw invalid('snapshot.counters', `${SNAPSHOT_COUNTERS.length} counters`)
    const counters = {} as SnapshotCounters
    SNAPSHOT_COUNTERS.forEach((name, i) => {
      counters[name] = checkUnsigned(counterList[i], `snapshot.counters.${name}`)
    })
    const recordList = checkArray(list[4], 'snapshot.records')
    if (recordList.length > RECORDS_MAX) {
      throw new RegistryError('TOO_LARGE', `snapshot: ${recordList.length} records, at most ${RECORDS_MAX}`)
    }
    const appliedIndex = checkUnsigned(list[0], 'snapshot.appliedIndex')
    const clockMs = checkUnsigned(list[1], 'snapshot.clockMs')
    const records = new Array<NodeData>(recordList.length)
    for (let i = 0; i < recordList.length; i++) {
      const record = withContext(
        () => `snapshot.records[${i}]`,
        () => checkRecord(recordList[i], verify, version),
      )
      const previous = records[i - 1]
      if (previous !== undefined && !(previous.peerId < record.peerId)) {
        throw invalid('snapshot.records', 'records sorted by distinct peer id')
      }
      if (record.changedIndex > appliedIndex)
        throw invalid(`snapshot.records[${i}].changedIndex`, 'at most appliedIndex')
      if (record.lastUpdatedMs > clockMs) throw invalid(`snapshot.records[${i}].lastUpdatedMs`, 'at most clockMs')
      records[i] = record
    }
    return {
      appliedIndex,
      clockMs,
      replicaPeerIds: checkPeerIdSet(list[2], 'snapshot.replicaPeerIds', REPLICAS_MAX, verify),
      counters,
      records,
    }
  })
}

// ---------------------------------------------------------------------------------------------

function checkBytes(bytes: unknown, what: string, bytesMax: number): asserts bytes is Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw invalid(what, 'a Uint8Array')
  if (bytes.length === 0) throw invalid(what, 'at least one byte')
  if (bytes.length > bytesMax)
    throw new RegistryError('TOO_LARGE', `${what}: ${bytes.length} bytes, at most ${bytesMax}`)
}

function unpack(bytes: Uint8Array, what: string): unknown {
  try {
    return unpackWire(bytes)
  } catch (error) {
    const detail = error instanceof MsgpackError ? error.message : 'not well-formed MessagePack'
    throw new RegistryError('INVALID', `${what}: ${detail}`, { cause: error })
  }
}

/** Wire MessagePack of what `build` returns; a value the wire cannot carry (a float, a negative) is INVALID. */
function pack(build: () => unknown, what: string): Uint8Array {
  try {
    return packWire(build())
  } catch (error) {
    if (error instanceof RegistryError) throw error
    const detail = error instanceof MsgpackError ? error.message : 'could not be encoded'
    throw new RegistryError('INVALID', `${what}: ${detail}`, { cause: error })
  }
}

/** The version check every envelope starts with. */
function envelope(value: unknown, what: string): unknown[] {
  const list = checkArray(value, what)
  const version = list[0]
  if (typeof version !== 'number') throw invalid(`${what}.version`, 'a number')
  if (!Number.isInteger(version) || version < CODEC_VERSION_OLDEST || version > CODEC_VERSION) {
    throw new RegistryError('UNSUPPORTED_VERSION', `${what}: version ${version}, this build reads ${VERSIONS_READ}`)
  }
  return list
}

const VERSIONS_READ = `${CODEC_VERSION_OLDEST} to ${CODEC_VERSION}`

/** Names the failing element of a collection in the message, built only when something failed. */
function withContext<T>(where: () => string, check: () => T): T {
  try {
    return check()
  } catch (error) {
    if (!(error instanceof RegistryError)) throw error
    throw new RegistryError(error.code, `${where()}: ${error.message}`, { cause: error })
  }
}

/** The promise that decoders throw RegistryError and nothing else, kept in one place. */
function guarded<T>(what: string, decode: () => T): T {
  try {
    return decode()
  } catch (error) {
    if (error instanceof RegistryError) throw error
    throw new RegistryError('INVALID', `${what}: could not be decoded`, { cause: error })
  }
}
