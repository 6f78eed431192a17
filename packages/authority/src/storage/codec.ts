/**
 * The on-disk format of the Raft log (format version 1). Every key lives in one LevelDB keyspace:
 *
 *   `hard-state`         [term, vote, commit]
 *   `log/` + u64be index [index, term, type, data]   (big-endian, so LevelDB iterates in index order)
 *   `meta`               { format }                   (written once, when the dir is created)
 *   `snapshot-data`      [index, data]                (index ties it to the metadata written with it)
 *   `snapshot-metadata`  [index, term, voters, learners]
 *
 * Every value is `crc32(payload)` as 4 big-endian bytes followed by the msgpackr payload, so a
 * flipped bit anywhere in a record is caught when the dir is opened rather than served to Raft.
 * Decoders validate shape as well as checksum and throw StorageError CORRUPT naming the key.
 */
import { pack, unpack } from 'msgpackr'
import { crc32 } from 'node:zlib'
import { EntryType } from '@nodeledger/raft'
import type { ConfState, Entry, HardState, SnapshotMetadata } from '@nodeledger/raft'
import { StorageError } from '../errors.ts'

/** Bump when a key or value layout changes; open refuses versions it does not know. */
export const FORMAT_VERSION = 1

const ascii = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'latin1'))

export const KEY_META = ascii('meta')
export const KEY_HARD_STATE = ascii('hard-state')
export const KEY_SNAPSHOT_METADATA = ascii('snapshot-metadata')
export const KEY_SNAPSHOT_DATA = ascii('snapshot-data')
export const LOG_PREFIX = ascii('log/')
const LOG_KEY_BYTES = LOG_PREFIX.byteLength + 8
const CHECKSUM_BYTES = 4
const ENTRY_TYPES: ReadonlySet<string> = new Set(Object.values(EntryType))

export function logKey(index: number): Uint8Array {
  assertIndex(index)
  const key = new Uint8Array(LOG_KEY_BYTES)
  key.set(LOG_PREFIX, 0)
  new DataView(key.buffer).setBigUint64(LOG_PREFIX.byteLength, BigInt(index), false)
  return key
}

/** Bounds that select exactly the log keys, for iterators and range deletes. */
export const LOG_RANGE = { gte: logKeyUnchecked(0n), lte: logKeyUnchecked(0xffff_ffff_ffff_ffffn) }

function logKeyUnchecked(index: bigint): Uint8Array {
  const key = new Uint8Array(LOG_KEY_BYTES)
  key.set(LOG_PREFIX, 0)
  new DataView(key.buffer).setBigUint64(LOG_PREFIX.byteLength, index, false)
  return key
}

export function hasLogPrefix(key: Uint8Array): boolean {
  if (key.byteLength < LOG_PREFIX.byteLength) return false
  for (let i = 0; i < LOG_PREFIX.byteLength; i++) if (key[i] !== LOG_PREFIX[i]) return false
  return true
}

/** The index a log key names, or a CORRUPT error if the key is malformed or out of safe range. */
export function logKeyIndex(key: Uint8Array): number {
  if (key.byteLength !== LOG_KEY_BYTES) {
    throw new StorageError(
      'CORRUPT',
      `log key ${describeKey(key)} is ${key.byteLength} bytes, expected ${LOG_KEY_BYTES}`,
    )
  }
  const index = new DataView(key.buffer, key.byteOffset, key.byteLength).getBigUint64(LOG_PREFIX.byteLength, false)
  if (index < 1n || index > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new StorageError(
      'CORRUPT',
      `log key ${describeKey(key)} names index ${index}, outside 1..${Number.MAX_SAFE_INTEGER}`,
    )
  }
  return Number(index)
}

export function keysEqual(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0
}

/** A key as a person reads it in an error message: `log/17` or `hard-state`. */
export function describeKey(key: Uint8Array): string {
  if (hasLogPrefix(key) && key.byteLength === LOG_KEY_BYTES) {
    const index = new DataView(key.buffer, key.byteOffset, key.byteLength).getBigUint64(LOG_PREFIX.byteLength, false)
    return `log/${index}`
  }
  const text = Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1')
  return /^[\x20-\x7e]*$/.test(text)
    ? text
    : `0x${Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('hex')}`
}

// ---------------------------------------------------------------------------------------------
// Checksummed framing

function seal(payload: Uint8Array): Uint8Array {
  const value = new Uint8Array(CHECKSUM_BYTES + payload.byteLength)
  new DataView(value.buffer).setUint32(0, crc32(payload), false)
  value.set(payload, CHECKSUM_BYTES)
  return value
}

function unseal(key: Uint8Array, value: Uint8Array): unknown {
  const name = describeKey(key)
  if (value.byteLength < CHECKSUM_BYTES + 1) {
    throw new StorageError(
      'CORRUPT',
      `record ${name} is ${value.byteLength} bytes, too short for a checksum and a payload`,
    )
  }
  const payload = value.subarray(CHECKSUM_BYTES)
  const stored = new DataView(value.buffer, value.byteOffset, value.byteLength).getUint32(0, false)
  const computed = crc32(payload)
  if (stored !== computed) {
    throw new StorageError(
      'CORRUPT',
      `record ${name} fails its checksum: stored crc32 ${hex32(stored)}, computed ${hex32(computed)} over ${payload.byteLength} bytes`,
    )
  }
  try {
    return unpack(payload)
  } catch (error) {
    throw new StorageError('CORRUPT', `record ${name} passes its checksum but does not decode as msgpack`, {
      cause: error,
    })
  }
}

const hex32 = (value: number): string => `0x${value.toString(16).padStart(8, '0')}`

// ---------------------------------------------------------------------------------------------
// Records

export interface MetaRecord {
  readonly format: number
}

export function encodeMeta(meta: MetaRecord): Uint8Array {
  return seal(pack({ format: meta.format }))
}

export function decodeMeta(value: Uint8Array): MetaRecord {
  const decoded = unseal(KEY_META, value)
  if (
    typeof decoded !== 'object' ||
    decoded === null ||
    !Number.isSafeInteger((decoded as { format?: unknown }).format)
  ) {
    throw new StorageError('CORRUPT', `record meta holds ${preview(decoded)}, expected { format: <integer> }`)
  }
  return { format: (decoded as { format: number }).format }
}

export function encodeHardState(hardState: HardState): Uint8Array {
  return seal(pack([hardState.term, hardState.vote, hardState.commit]))
}

export function decodeHardState(value: Uint8Array): HardState {
  const decoded = unseal(KEY_HARD_STATE, value)
  const fields = tuple(KEY_HARD_STATE, decoded, ['term', 'vote', 'commit'])
  return {
    term: count(KEY_HARD_STATE, 'term', fields[0]),
    vote: count(KEY_HARD_STATE, 'vote', fields[1]),
    commit: count(KEY_HARD_STATE, 'commit', fields[2]),
  }
}

export function encodeSnapshotMetadata(metadata: SnapshotMetadata): Uint8Array {
  return seal(pack([metadata.index, metadata.term, [...metadata.confState.voters], [...metadata.confState.learners]]))
}

export function decodeSnapshotMetadata(value: Uint8Array): SnapshotMetadata {
  const key = KEY_SNAPSHOT_METADATA
  const fields = tuple(key, unseal(key, value), ['index', 'term', 'voters', 'learners'])
  const confState: ConfState = {
    voters: nodeIds(key, 'voters', fields[2]),
    learners: nodeIds(key, 'learners', fields[3]),
  }
  return { index: count(key, 'index', fields[0]), term: count(key, 'term', fields[1]), confState }
}

export function encodeSnapshotData(index: number, data: Uint8Array): Uint8Array {
  return seal(pack([index, data]))
}

export function decodeSnapshotData(value: Uint8Array): { index: number; data: Uint8Array } {
  const key = KEY_SNAPSHOT_DATA
  const fields = tuple(key, unseal(key, value), ['index', 'data'])
  return { index: count(key, 'index', fields[0]), data: bytes(key, 'data', fields[1]) }
}

export function encodeEntry(entry: Entry): Uint8Array {
  return seal(pack([entry.index, entry.term, entry.type, entry.data]))
}

export function decodeEntry(key: Uint8Array, value: Uint8Array): Entry {
  const fields = tuple(key, unseal(key, value), ['index', 'term', 'type', 'data'])
  const type = fields[2]
  if (typeof type !== 'string' || !ENTRY_TYPES.has(type)) {
    throw new StorageError(
      'CORRUPT',
      `record ${describeKey(key)} has entry type ${preview(type)}, expected one of ${[...ENTRY_TYPES].join(', ')}`,
    )
  }
  return {
    index: count(key, 'index', fields[0]),
    term: count(key, 'term', fields[1]),
    type: type as EntryType,
    data: bytes(key, 'data', fields[3]),
  }
}

// ---------------------------------------------------------------------------------------------
// Shape checks: every field a record decodes to is checked before it reaches Raft.

function tuple(key: Uint8Array, decoded: unknown, names: readonly string[]): unknown[] {
  if (!Array.isArray(decoded) || decoded.length !== names.length) {
    throw new StorageError(
      'CORRUPT',
      `record ${describeKey(key)} holds ${preview(decoded)}, expected [${names.join(', ')}]`,
    )
  }
  return decoded
}

function count(key: Uint8Array, field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new StorageError(
      'CORRUPT',
      `record ${describeKey(key)} has ${field} ${preview(value)}, expected a non-negative integer`,
    )
  }
  return value
}

function nodeIds(key: Uint8Array, field: string, value: unknown): number[] {
  if (!Array.isArray(value))
    throw new StorageError(
      'CORRUPT',
      `record ${describeKey(key)} has ${field} ${preview(value)}, expected a list of node ids`,
    )
  return value.map((id) => count(key, `${field} id`, id))
}

function bytes(key: Uint8Array, field: string, value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array))
    throw new StorageError('CORRUPT', `record ${describeKey(key)} has ${field} ${preview(value)}, expected bytes`)
  // A plain view (not the Buffer subclass msgpackr hands out) so entries compare equal to the ones saved.
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
}

function preview(value: unknown): string {
  if (value instanceof Uint8Array) return `${value.byteLength} bytes`
  try {
    const text = JSON.stringify(value) ?? String(value)
    return text.length > 60 ? `${text.slice(0, 60)}…` : text
  } catch {
    return typeof value
  }
}

function assertIndex(index: number): void {
  if (!Number.isSafeInteger(index) || index < 0)
    throw new TypeError(`log index must be a non-negative safe integer, got ${index}`)
}
