/**
 * The on-disk format of the worker cache (format version 1). One LevelDB keyspace:
 *
 *   `meta`                    { format }                (written once, when the dir is created)
 *   `state`                   [appliedIndex, ownSeq]
 *   `confirmed/` + peerId     the registry's encodeRecord bytes: the record as the log has it
 *   `provisional/` + peerId   the registry's encodeRecord bytes: a newer record learned from gossip
 *
 * Every value is `crc32(payload)` as 4 big-endian bytes followed by the payload, the framing of the
 * authority's Raft log (packages/authority/src/storage/codec.ts). Decoders check the checksum, then
 * the shape, and throw WorkerCacheError CORRUPT naming the key.
 */
import { pack, unpack } from 'msgpackr'
import { crc32 } from 'node:zlib'
import { decodeRecord, encodeRecord } from '@nodeledger/registry'
import type { NodeData } from '@nodeledger/registry'
import { WorkerCacheError } from '../errors.ts'

/** Bump when a key or value layout changes; open refuses versions it does not know. */
export const FORMAT_VERSION = 1

export const KEY_META = 'meta'
export const KEY_STATE = 'state'
export const CONFIRMED_PREFIX = 'confirmed/'
export const PROVISIONAL_PREFIX = 'provisional/'
const CHECKSUM_BYTES = 4

export type RecordState = 'confirmed' | 'provisional'

export function recordKey(state: RecordState, peerId: string): string {
  return (state === 'confirmed' ? CONFIRMED_PREFIX : PROVISIONAL_PREFIX) + peerId
}

/** Which record a key names, or undefined for any key that is not a record's. */
export function parseRecordKey(key: string): { state: RecordState; peerId: string } | undefined {
  if (key.startsWith(CONFIRMED_PREFIX)) return { state: 'confirmed', peerId: key.slice(CONFIRMED_PREFIX.length) }
  if (key.startsWith(PROVISIONAL_PREFIX)) return { state: 'provisional', peerId: key.slice(PROVISIONAL_PREFIX.length) }
  return undefined
}

function seal(payload: Uint8Array): Uint8Array {
  const value = new Uint8Array(CHECKSUM_BYTES + payload.byteLength)
  new DataView(value.buffer).setUint32(0, crc32(payload), false)
  value.set(payload, CHECKSUM_BYTES)
  return value
}

function unseal(key: string, value: Uint8Array): Uint8Array {
  if (value.byteLength < CHECKSUM_BYTES + 1) {
    throw new WorkerCacheError(
      'CORRUPT',
      `record ${key} is ${value.byteLength} bytes, too short for a checksum and a payload`,
    )
  }
  const payload = value.subarray(CHECKSUM_BYTES)
  const stored = new DataView(value.buffer, value.byteOffset, value.byteLength).getUint32(0, false)
  const computed = crc32(payload)
  if (stored !== computed) {
    throw new WorkerCacheError(
      'CORRUPT',
      `record ${key} fails its checksum: stored crc32 ${hex32(stored)}, computed ${hex32(computed)}`,
    )
  }
  return payload
}

function unpackPayload(key: string, value: Uint8Array): unknown {
  const payload = unseal(key, value)
  try {
    return unpack(payload)
  } catch (error) {
    throw new WorkerCacheError('CORRUPT', `record ${key} passes its checksum but does not decode as msgpack`, {
      cause: error,
    })
  }
}

const hex32 = (value: number): string => `0x${value.toString(16).padStart(8, '0')}`

export function encodeMeta(format: number): Uint8Array {
  return seal(pack({ format }))
}

export function decodeMeta(value: Uint8Array): number {
  const decoded = unpackPayload(KEY_META, value) as { format?: unknown } | null
  if (typeof decoded !== 'object' || decoded === null || !Number.isSafeInteger(decoded.format)) {
    throw new WorkerCacheError(
      'CORRUPT',
      `record ${KEY_META} holds ${preview(decoded)}, expected { format: <integer> }`,
    )
  }
  return decoded.format as number
}

export interface CacheState {
  readonly appliedIndex: number
  readonly ownSeq: number
}

export function encodeState(state: CacheState): Uint8Array {
  return seal(pack([state.appliedIndex, state.ownSeq]))
}

export function decodeState(value: Uint8Array): CacheState {
  const decoded = unpackPayload(KEY_STATE, value)
  if (!Array.isArray(decoded) || decoded.length !== 2) {
    throw new WorkerCacheError(
      'CORRUPT',
      `record ${KEY_STATE} holds ${preview(decoded)}, expected [appliedIndex, ownSeq]`,
    )
  }
  return { appliedIndex: count(KEY_STATE, 'appliedIndex', decoded[0]), ownSeq: count(KEY_STATE, 'ownSeq', decoded[1]) }
}

export function encodeCachedRecord(record: NodeData): Uint8Array {
  return seal(encodeRecord(record))
}

/** The record stored under `key`, checked against the peer id the key names. */
export function decodeCachedRecord(key: string, peerId: string, value: Uint8Array): NodeData {
  const payload = unseal(key, value)
  let record: NodeData
  try {
    record = decodeRecord(payload)
  } catch (error) {
    throw new WorkerCacheError(
      'CORRUPT',
      `record ${key} passes its checksum but is not a valid NodeData: ${(error as Error).message}`,
      { cause: error },
    )
  }
  if (record.peerId !== peerId)
    throw new WorkerCacheError('CORRUPT', `record ${key} holds the record of ${record.peerId}`)
  return record
}

function count(key: string, field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new WorkerCacheError(
      'CORRUPT',
      `record ${key} has ${field} ${preview(value)}, expected a non-negative integer`,
    )
  }
  return value
}

function preview(value: unknown): string {
  try {
    const text = JSON.stringify(value) ?? String(value)
    return text.length > 60 ? `${text.slice(0, 60)}…` : text
  } catch {
    return typeof value
  }
}
