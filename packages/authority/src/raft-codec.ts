import { CampaignReason, EntryType, MessageType } from '@nodeledger/raft'
import type { ConfState, Entry, Message, SnapshotChunk } from '@nodeledger/raft'
import { MsgpackError, packWire, unpackWire } from '@nodeledger/registry'
import { ReplicaError } from './replica-errors.ts'

/**
 * Raft messages on /nodeledger/raft/1 and /nodeledger/snapshot/1 (docs/PROTOCOL.md "Raft
 * messages"): one frame is a MessagePack array of messages (all to the same peer),
 * `[version, ...messages]`. Field names are kept (plain maps) so an independent implementation can
 * read them. The bytes are the wire dialect of PROTOCOL.md "Encoding" (the registry's msgpack.ts):
 * terms and indexes are integers of any width up to 2^53 - 1, never floats; no extension types, so
 * a frame cannot define structures for later frames. Decoding checks every field and refuses
 * unknown ones: a peer is trusted to be a replica (its peer id is checked) but not to be bug-free.
 */
const RAFT_FRAME_VERSION = 1

/** Throws ReplicaError INVALID_FRAME for a message the wire cannot carry (a float or negative term, say). */
export function encodeRaftFrame(messages: readonly Message[]): Uint8Array {
  try {
    return packWire([RAFT_FRAME_VERSION, ...messages])
  } catch (error) {
    throw invalid(`cannot be encoded: ${(error as Error).message}`)
  }
}

const MESSAGE_TYPES = new Set<string>(Object.values(MessageType))
const ENTRY_TYPES = new Set<string>(Object.values(EntryType))
const REASONS = new Set<string>(Object.values(CampaignReason))
const MESSAGES_PER_FRAME_MAX = 4096

// The keys each map may hold (PROTOCOL.md "Raft messages"): an unknown key is refused, as in every
// nodeledger map, so a newer writer bumps the frame version instead of having fields dropped.
const MESSAGE_KEYS = new Set([
  'type',
  'from',
  'to',
  'term',
  'logTerm',
  'index',
  'entries',
  'commit',
  'reject',
  'rejectHint',
  'reason',
  'context',
  'sentTick',
  'snapshot',
  'bytesReceived',
])
const ENTRY_KEYS = new Set(['index', 'term', 'type', 'data'])
const CHUNK_KEYS = new Set(['metadata', 'offset', 'totalBytes', 'data'])
const METADATA_KEYS = new Set(['index', 'term', 'confState'])
const CONF_STATE_KEYS = new Set(['voters', 'learners'])

export function decodeRaftFrame(frame: Uint8Array, expectedFrom: number, self: number): Message[] {
  let decoded: unknown
  try {
    decoded = unpackWire(frame)
  } catch (error) {
    throw invalid(`not wire MessagePack: ${error instanceof MsgpackError ? error.message : String(error)}`)
  }
  if (!Array.isArray(decoded) || decoded.length < 1) throw invalid('a frame is an array [version, ...messages]')
  if (decoded[0] !== RAFT_FRAME_VERSION)
    throw invalid(
      `unsupported raft frame version ${JSON.stringify(decoded[0])} (this replica speaks ${RAFT_FRAME_VERSION})`,
    )
  if (decoded.length - 1 > MESSAGES_PER_FRAME_MAX)
    throw invalid(`more than ${MESSAGES_PER_FRAME_MAX} messages in one frame`)
  return decoded.slice(1).map((raw, position) => checkMessage(raw, `message ${position}`, expectedFrom, self))
}

function checkMessage(raw: unknown, where: string, expectedFrom: number, self: number): Message {
  const m = map(raw, where, MESSAGE_KEYS)
  if (typeof m.type !== 'string' || !MESSAGE_TYPES.has(m.type) || m.type === MessageType.Hup)
    throw invalid(`${where} has unknown type ${JSON.stringify(m.type)}`)
  // The transport authenticated the peer; a message claiming another sender is refused.
  if (m.from !== expectedFrom)
    throw invalid(`${where} claims to come from ${String(m.from)} on the link of replica ${expectedFrom}`)
  if (m.to !== self) throw invalid(`${where} is addressed to ${String(m.to)}, not ${self}`)
  const message: Record<string, unknown> = {
    type: m.type,
    from: m.from,
    to: m.to,
    term: natural(m.term, `${where}.term`),
  }
  for (const field of ['logTerm', 'index', 'commit', 'rejectHint', 'sentTick', 'bytesReceived'] as const) {
    if (m[field] !== undefined) message[field] = natural(m[field], `${where}.${field}`)
  }
  if (m.reject !== undefined) {
    if (typeof m.reject !== 'boolean') throw invalid(`${where}.reject is not a boolean`)
    message.reject = m.reject
  }
  if (m.reason !== undefined) {
    if (typeof m.reason !== 'string' || !REASONS.has(m.reason)) throw invalid(`${where}.reason is unknown`)
    message.reason = m.reason
  }
  if (m.context !== undefined) {
    if (typeof m.context !== 'string' || m.context.length > 256)
      throw invalid(`${where}.context must be a string of at most 256 characters`)
    message.context = m.context
  }
  if (m.entries !== undefined) {
    if (!Array.isArray(m.entries)) throw invalid(`${where}.entries is not an array`)
    message.entries = m.entries.map((entry, position) => checkEntry(entry, `${where}.entries[${position}]`))
  }
  if (m.snapshot !== undefined) message.snapshot = checkChunk(m.snapshot, `${where}.snapshot`)
  return message as unknown as Message
}

function checkEntry(raw: unknown, where: string): Entry {
  const e = map(raw, where, ENTRY_KEYS)
  if (typeof e.type !== 'string' || !ENTRY_TYPES.has(e.type)) throw invalid(`${where}.type is unknown`)
  return {
    index: natural(e.index, `${where}.index`),
    term: natural(e.term, `${where}.term`),
    type: e.type as Entry['type'],
    data: bytes(e.data, `${where}.data`),
  }
}

function checkChunk(raw: unknown, where: string): SnapshotChunk {
  const c = map(raw, where, CHUNK_KEYS)
  const metadata = map(c.metadata, `${where}.metadata`, METADATA_KEYS)
  const conf = map(metadata.confState, `${where}.metadata.confState`, CONF_STATE_KEYS)
  if (!Array.isArray(conf.voters) || !Array.isArray(conf.learners))
    throw invalid(`${where}.metadata.confState is malformed`)
  const confState: ConfState = {
    voters: conf.voters.map((id, i) => natural(id, `${where}.metadata.confState.voters[${i}]`)),
    learners: conf.learners.map((id, i) => natural(id, `${where}.metadata.confState.learners[${i}]`)),
  }
  return {
    metadata: {
      index: natural(metadata.index, `${where}.metadata.index`),
      term: natural(metadata.term, `${where}.metadata.term`),
      confState,
    },
    offset: natural(c.offset, `${where}.offset`),
    totalBytes: natural(c.totalBytes, `${where}.totalBytes`),
    data: bytes(c.data, `${where}.data`),
  }
}

function map(raw: unknown, where: string, keys: ReadonlySet<string>): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || raw instanceof Uint8Array)
    throw invalid(`${where} is not a map`)
  for (const key of Object.keys(raw))
    if (!keys.has(key)) throw invalid(`${where} has an unknown key ${key.slice(0, 64)}`)
  return raw as Record<string, unknown>
}

function natural(value: unknown, where: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    throw invalid(`${where} must be a non-negative integer`)
  return value
}

function bytes(value: unknown, where: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw invalid(`${where} must be bytes`)
  return value
}

function invalid(message: string): ReplicaError {
  return new ReplicaError('INVALID_FRAME', `invalid raft frame: ${message}`)
}
