import { createHash, randomBytes } from 'node:crypto'
import { open, readFile, rename, stat, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import {
  ProtocolError,
  SHA256_BYTES,
  SNAPSHOT_DATA_BYTES_MAX,
  SOFTWARE_VERSION_LENGTH_MAX,
  decodeSnapshotFrame,
  encodeSnapshotHeader,
} from '@nodeledger/protocol'
import type { MemberStatus, SnapshotHeader } from '@nodeledger/protocol'
import { RegistryError, decodeSnapshot, packWire, recordsDigest, unpackWire } from '@nodeledger/registry'
import type { SnapshotState } from '@nodeledger/registry'
import { ReplicaError } from '../replica-errors.ts'
import type { Members } from '../replica/members.ts'
import { decodeStateSnapshot } from '../replica/state-machine.ts'
import { BackupError, ioError } from './errors.ts'

/**
 * The snapshot file (`nodeledger snapshot save`, docs/PROTOCOL.md "Snapshot file"): what the
 * leader sent for the `snapshot` op, kept with its header, whole-file checksummed.
 *
 *   offset  bytes        field
 *   0       4            magic "NLSF" (0x4e 0x4c 0x53 0x46)
 *   4       1            format version, 1
 *   5       4            headerBytes: uint32 big-endian, 1 … 65 536
 *   9       headerBytes  header: one wire-MessagePack map (SnapshotFileHeader)
 *   …       dataBytes    data: the state machine snapshot exactly as the leader sent it
 *   …       32           SHA-256 of every byte before it (magic through data)
 *
 * A file is exactly 9 + headerBytes + dataBytes + 32 bytes: a truncated or extended file is refused
 * whatever the cut, and a flipped bit anywhere fails the checksum. The checksum is checked before
 * anything inside is trusted; the version only then (a damaged version byte is corruption, not a
 * newer format).
 */

const MAGIC = [0x4e, 0x4c, 0x53, 0x46] // "NLSF": nodeledger snapshot file
export const SNAPSHOT_FILE_VERSION = 1
const PREAMBLE_BYTES = 9
/** 64 KiB of header: 16 members with 320-character addresses take about 8 KiB. */
export const SNAPSHOT_FILE_HEADER_BYTES_MAX = 64 * 1024
/** The largest file a reader opens: anything longer is not one of ours (and is not read into memory). */
export const SNAPSHOT_FILE_BYTES_MAX =
  PREAMBLE_BYTES + SNAPSHOT_FILE_HEADER_BYTES_MAX + SNAPSHOT_DATA_BYTES_MAX + SHA256_BYTES

/** The file's header: the leader's snapshot header, and when and by what it was saved. */
export interface SnapshotFileHeader extends Omit<SnapshotHeader, 'totalBytes'> {
  /** Bytes of data (the snapshot header's totalBytes). */
  readonly dataBytes: number
  /** SHA-256 of the data, as the leader's end frame gave it. */
  readonly dataSha256: Uint8Array
  /** The saving tool's wall clock, ms since the epoch. */
  readonly savedMs: number
  /** The saving tool's software version. */
  readonly writer: string
}

/** A snapshot file, its structure checked (length, checksum, header): what `status` and `restore` start from. */
export interface SnapshotFile {
  readonly header: SnapshotFileHeader
  readonly data: Uint8Array
  readonly fileBytes: number
  /** SHA-256 of the file before its checksum: the file's trailer. */
  readonly fileSha256: Uint8Array
}

/** What the data holds, decoded and checked against the header (inspectSnapshotFile). */
export interface SnapshotContents {
  readonly directory: Members
  readonly registry: SnapshotState
  /**
   * The state machine snapshot's format version (its byte 4) and the registry snapshot's (the
   * registry codec version it was written in, its byte 4: 1 for a file saved before version 2).
   */
  readonly stateVersion: number
  readonly registryVersion: number
}

const HEADER_KEYS = [
  'clusterId',
  'leader',
  'index',
  'term',
  'members',
  'records',
  'registryDigest',
  'dataBytes',
  'dataSha256',
  'savedMs',
  'writer',
] as const

// -------------------------------------------------------------------------------------------------
// Bytes

/**
 * The file's bytes for `header` and `data`, refused (BackupError INVALID) if the header does not
 * describe the data or breaks a rule a reader applies; read back before being returned, so what
 * is written is what `decodeSnapshotFile` accepts.
 */
export function encodeSnapshotFile(header: SnapshotFileHeader, data: Uint8Array): Uint8Array {
  try {
    checkHeader(headerToWire(header), data)
  } catch (error) {
    throw new BackupError('INVALID', `snapshot file header: ${(error as Error).message}`, { cause: error })
  }
  const headerBytes = packWire(headerToWire(header))
  if (headerBytes.byteLength > SNAPSHOT_FILE_HEADER_BYTES_MAX) {
    throw new BackupError(
      'INVALID',
      `snapshot file header: ${headerBytes.byteLength} bytes, at most ${SNAPSHOT_FILE_HEADER_BYTES_MAX}`,
    )
  }
  const bodyBytes = PREAMBLE_BYTES + headerBytes.byteLength + data.byteLength
  const bytes = new Uint8Array(bodyBytes + SHA256_BYTES)
  bytes.set(MAGIC, 0)
  bytes[4] = SNAPSHOT_FILE_VERSION
  new DataView(bytes.buffer).setUint32(5, headerBytes.byteLength, false)
  bytes.set(headerBytes, PREAMBLE_BYTES)
  bytes.set(data, PREAMBLE_BYTES + headerBytes.byteLength)
  bytes.set(sha256(bytes.subarray(0, bodyBytes)), bodyBytes)
  // Validated right before it is handed to be written.
  decodeSnapshotFile(bytes)
  return bytes
}

/**
 * A snapshot file's structure, checked: the length against what the header describes, the
 * checksum, the magic, the version, every header field (the members' peer ids and canonical
 * addresses as the wire checks them), the data's own SHA-256. Throws BackupError CORRUPT (or
 * UNSUPPORTED_VERSION for an intact file of another format version) and nothing else.
 */
export function decodeSnapshotFile(bytes: Uint8Array): SnapshotFile {
  const length = bytes.byteLength
  if (length < PREAMBLE_BYTES + 1 + SHA256_BYTES) {
    throw corrupt(`${length} bytes, too short for a snapshot file (truncated?)`)
  }
  if (length > SNAPSHOT_FILE_BYTES_MAX) throw corrupt(`${length} bytes, more than any snapshot file holds`)
  if (MAGIC.some((byte, i) => bytes[i] !== byte)) throw corrupt('it does not start with NLSF: not a snapshot file')
  const bodyBytes = length - SHA256_BYTES
  const computed = sha256(bytes.subarray(0, bodyBytes))
  const stored = bytes.subarray(bodyBytes)
  if (!Buffer.from(computed).equals(Buffer.from(stored))) {
    throw corrupt(`${describeLengthMismatch(bytes) ?? 'its SHA-256 checksum does not match: the file is damaged'}`)
  }
  if (bytes[4] !== SNAPSHOT_FILE_VERSION) {
    throw new BackupError(
      'UNSUPPORTED_VERSION',
      `snapshot file format version ${bytes[4]}; this build reads version ${SNAPSHOT_FILE_VERSION}`,
    )
  }
  const headerBytes = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(5, false)
  if (headerBytes < 1 || headerBytes > SNAPSHOT_FILE_HEADER_BYTES_MAX || PREAMBLE_BYTES + headerBytes > bodyBytes) {
    throw corrupt(`header length ${headerBytes} does not fit the file`)
  }
  let raw: unknown
  try {
    raw = unpackWire(bytes.subarray(PREAMBLE_BYTES, PREAMBLE_BYTES + headerBytes))
  } catch (error) {
    throw corrupt(`its header is not one MessagePack value (${(error as Error).message})`, error)
  }
  const data = bytes.subarray(PREAMBLE_BYTES + headerBytes, bodyBytes)
  let header: SnapshotFileHeader
  try {
    header = checkHeader(raw, data)
  } catch (error) {
    throw corrupt(`header: ${(error as Error).message}`, error)
  }
  return { header, data, fileBytes: length, fileSha256: computed }
}

/**
 * What the data holds: the state machine snapshot decoded (its own checksum, the member
 * directory), the registry decoded with every peer id and multiaddr parsed, and checked against
 * the header: the record count, the registry digest (recomputed over the records), every member
 * the header names in the directory with the same peer id and address, the registry's applied
 * index at or below the snapshot's. Throws BackupError CORRUPT.
 */
export function inspectSnapshotFile(file: SnapshotFile): SnapshotContents {
  const { header, data } = file
  let decoded: { members: Members; registry: Uint8Array }
  try {
    decoded = decodeStateSnapshot(data, [])
  } catch (error) {
    if (error instanceof ReplicaError) throw corrupt(`its state machine snapshot: ${error.message}`, error)
    throw error
  }
  if (decoded.registry === data) throw corrupt('its data is a bare registry snapshot, without the member directory')
  let registry: SnapshotState
  try {
    registry = decodeSnapshot(decoded.registry, { verify: true })
  } catch (error) {
    if (error instanceof RegistryError) throw corrupt(`its registry snapshot: ${error.message}`, error)
    throw error
  }
  if (registry.records.length !== header.records) {
    throw corrupt(`the header says ${header.records} records, the registry holds ${registry.records.length}`)
  }
  const digest = recordsDigest(registry.records)
  if (digest !== header.registryDigest) {
    throw corrupt(`the header's registry digest ${header.registryDigest} is not the records' ${digest}`)
  }
  if (registry.appliedIndex > header.index) {
    throw corrupt(`the registry applied index ${registry.appliedIndex} is beyond the snapshot's index ${header.index}`)
  }
  for (const member of header.members) {
    const known = decoded.members.get(member.id)
    if (known === undefined || known.peerId !== member.peerId || known.started !== member.started) {
      throw corrupt(`member ${member.id} of the header is not the directory's`)
    }
  }
  return {
    directory: decoded.members,
    registry,
    stateVersion: data[4]!,
    registryVersion: decoded.registry[4]!,
  }
}

// -------------------------------------------------------------------------------------------------
// Files

/**
 * Write `bytes` (a whole snapshot file) at `path` atomically: into a temporary file beside it
 * (`<path>.<pid>.<random>.tmp`, mode 0600), fsynced, read back and checked (the same bytes, a file
 * decodeSnapshotFile accepts), renamed over `path`, the directory fsynced. `path` never holds a
 * partial file: before the rename it holds what it held (an older backup stays whole), after it
 * the new file. On any failure the temporary file is removed.
 */
export async function writeSnapshotFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  // Validated right before writing: only a whole snapshot file is ever written.
  decodeSnapshotFile(bytes)
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`)
  let written = false
  try {
    const handle = await open(temporary, 'wx', 0o600)
    written = true
    try {
      await handle.writeFile(bytes)
      await handle.sync()
    } finally {
      await handle.close()
    }
    // Validated right after reading it back: what the disk returns is what was meant.
    const back = await readFile(temporary)
    if (!back.equals(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))) {
      throw new BackupError('IO', `${temporary} does not read back as written`)
    }
    decodeSnapshotFile(back)
    await rename(temporary, path)
    written = false
    await syncDirectory(dirname(path))
  } catch (error) {
    if (written) await unlink(temporary).catch(() => undefined)
    throw ioError(`writing ${path}`, error)
  }
}

/** Read and check a snapshot file's structure (decodeSnapshotFile); a file too large is refused unread. */
export async function readSnapshotFile(path: string): Promise<SnapshotFile> {
  let bytes: Buffer
  try {
    const size = (await stat(path)).size
    if (size > SNAPSHOT_FILE_BYTES_MAX) {
      throw corrupt(`${path} is ${size} bytes, more than any snapshot file holds`)
    }
    bytes = await readFile(path)
  } catch (error) {
    throw ioError(`reading ${path}`, error)
  }
  try {
    return decodeSnapshotFile(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength))
  } catch (error) {
    if (error instanceof BackupError) throw new BackupError(error.code, `${path}: ${error.message}`, { cause: error })
    throw error
  }
}

export async function syncDirectory(path: string): Promise<void> {
  const directory = await open(path, 'r')
  try {
    await directory.sync()
  } finally {
    await directory.close()
  }
}

// -------------------------------------------------------------------------------------------------
// Header

function headerToWire(header: SnapshotFileHeader): Record<string, unknown> {
  return {
    clusterId: header.clusterId,
    leader: header.leader,
    index: header.index,
    term: header.term,
    members: header.members.map((member) => ({
      id: member.id,
      peerId: member.peerId,
      multiaddr: member.multiaddr,
      voter: member.voter,
      started: member.started,
    })),
    records: header.records,
    registryDigest: header.registryDigest,
    dataBytes: header.dataBytes,
    dataSha256: header.dataSha256,
    savedMs: header.savedMs,
    writer: header.writer,
  }
}

/**
 * The header's fields, checked: the leader's part exactly as a client checks the wire's header
 * (through the protocol's own codec, so the two never disagree), then the file's own fields, and
 * that it describes `data`. Throws Error (the caller names the code).
 */
function checkHeader(value: unknown, data: Uint8Array): SnapshotFileHeader {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw new Error('not a map')
  }
  const raw = value as Record<string, unknown>
  for (const key of Object.keys(raw)) {
    if (!(HEADER_KEYS as readonly string[]).includes(key)) throw new Error(`unknown key ${key.slice(0, 64)}`)
  }
  for (const key of HEADER_KEYS) if (raw[key] === undefined) throw new Error(`${key} is missing`)
  let wire: SnapshotHeader
  try {
    const frame = decodeSnapshotFrame(
      encodeSnapshotHeader({
        clusterId: raw.clusterId as string,
        leader: raw.leader as number,
        index: raw.index as number,
        term: raw.term as number,
        members: raw.members as MemberStatus[],
        records: raw.records as number,
        registryDigest: raw.registryDigest as string,
        totalBytes: raw.dataBytes as number,
      }),
    )
    if (!frame.ok || frame.kind !== 'header') throw new Error('not a header')
    wire = frame.header
  } catch (error) {
    if (error instanceof ProtocolError || error instanceof TypeError) throw new Error(error.message)
    throw error
  }
  if (!Number.isSafeInteger(raw.savedMs) || (raw.savedMs as number) < 0) throw new Error('savedMs is not a uint')
  if (
    typeof raw.writer !== 'string' ||
    raw.writer.length > SOFTWARE_VERSION_LENGTH_MAX ||
    !/^[\x20-\x7e]*$/.test(raw.writer)
  )
    throw new Error(`writer is not a version string of at most ${SOFTWARE_VERSION_LENGTH_MAX} printable characters`)
  if (!(raw.dataSha256 instanceof Uint8Array) || raw.dataSha256.byteLength !== SHA256_BYTES) {
    throw new Error(`dataSha256 is not ${SHA256_BYTES} bytes`)
  }
  if (wire.totalBytes !== data.byteLength) {
    throw new Error(`dataBytes ${wire.totalBytes}, but the file holds ${data.byteLength} bytes of data`)
  }
  if (!Buffer.from(sha256(data)).equals(Buffer.from(raw.dataSha256))) {
    throw new Error('the data does not match dataSha256')
  }
  const { totalBytes, ...rest } = wire
  return {
    ...rest,
    dataBytes: totalBytes,
    dataSha256: new Uint8Array(raw.dataSha256),
    savedMs: raw.savedMs as number,
    writer: raw.writer,
  }
}

/** When the checksum fails: whether the length, as the header describes it, says truncated or extended. */
function describeLengthMismatch(bytes: Uint8Array): string | undefined {
  try {
    const headerBytes = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(5, false)
    if (headerBytes < 1 || headerBytes > SNAPSHOT_FILE_HEADER_BYTES_MAX || PREAMBLE_BYTES + headerBytes > bytes.length)
      return undefined
    const raw = unpackWire(bytes.subarray(PREAMBLE_BYTES, PREAMBLE_BYTES + headerBytes)) as { dataBytes?: unknown }
    if (!Number.isSafeInteger(raw?.dataBytes)) return undefined
    const expected = PREAMBLE_BYTES + headerBytes + (raw.dataBytes as number) + SHA256_BYTES
    if (expected === bytes.length) return undefined
    return expected > bytes.length
      ? `it is ${bytes.length} bytes, but its header describes ${expected}: the file is truncated`
      : `it is ${bytes.length} bytes, but its header describes ${expected}: bytes were appended`
  } catch {
    return undefined
  }
}

function sha256(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(bytes).digest())
}

function corrupt(detail: string, cause?: unknown): BackupError {
  return new BackupError('CORRUPT', `snapshot file refused: ${detail}`, cause === undefined ? undefined : { cause })
}
