import {
  CATEGORIES,
  checkDelta as registryCheckDelta,
  checkMultiaddrs as registryCheckMultiaddrs,
  checkPeerId as registryCheckPeerId,
  MsgpackError,
  RegistryError,
  SELF_REPORTED_FIELDS,
  decodeRecord,
  encodeRecord,
  packWire,
  unpackWire,
} from '@nodeledger/registry'
import type { Category, Delta, ListFilter, NodeData } from '@nodeledger/registry'
import {
  API_REQUEST_FRAME_BYTES_MAX,
  API_RESPONSE_FRAME_BYTES_MAX,
  CLUSTER_ID_LENGTH_MAX,
  ERROR_MESSAGE_LENGTH_MAX,
  LIST_LIMIT_DEFAULT,
  LIST_LIMIT_MAX,
  MEMBERS_MAX,
  PROTOCOL_VERSION,
  PROTOCOL_VERSIONS_SUPPORTED,
  RECORDS_PER_FRAME_MAX,
  REQUEST_ID_MAX,
  SHA256_BYTES,
  SINCE_LIMIT_MAX,
  SNAPSHOT_CHUNK_BYTES_MAX,
  SNAPSHOT_DATA_BYTES_MAX,
  SOFTWARE_VERSION_LENGTH_MAX,
} from './constants.ts'
import { PROTOCOL_ERROR_CODES, ProtocolError, errorFromWire, errorToWire } from './errors.ts'
import type { LeaderHint, ProtocolErrorCode, WireError } from './errors.ts'
import { CONSISTENCIES, CONSISTENCY_DEFAULT, MEMBER_ACTIONS, OPS, PRESENCE_EVENTS, ROLES } from './messages.ts'
import type {
  ApiRequest,
  ApiRequestInit,
  ApiResponse,
  DecodedRequest,
  Consistency,
  GetResult,
  ListResult,
  MemberAction,
  MemberRequest,
  MemberResult,
  MemberStatus,
  TransferResult,
  Op,
  ResultByOp,
  Role,
  SessionResponse,
  SnapshotChunk,
  SnapshotEnd,
  SnapshotFrame,
  SnapshotHeader,
  PresenceEvent,
  PresenceResult,
  SinceResult,
  StatusResult,
  SubmitResult,
  UnaryOp,
  WatchEvent,
  WatchFrame,
} from './messages.ts'

/**
 * The client API's codecs (PROTOCOL.md "Messages"). A frame is one MessagePack map with `v` first,
 * in the wire dialect of PROTOCOL.md "Encoding" (the registry's msgpack.ts: integers as integers of
 * any width up to 2^53 - 1, never floats, no extension types, distinct string keys);
 * records travel as MessagePack bin values holding the registry's own record encoding, so that the
 * registry's decoder (which checks every field and invariant) validates them and nothing here
 * restates its rules. Deltas travel as maps with named fields and are validated by round-tripping
 * them through the registry's command codec.
 *
 * Decoders throw ProtocolError only: INVALID for a wrong shape or value, TOO_LARGE for a broken
 * limit. Unknown keys are INVALID: a newer writer must bump `v` rather than have fields dropped.
 *
 * Sessions (PROTOCOL.md "Sessions"): every encoder takes an optional request `id`, written right
 * after `v`; decodeRequest returns it, and a client routes the frames of a session with
 * decodeSessionResponse (or peekResponseId then decodeResponse).
 */

type Fields = Record<string, unknown>

// ---------------------------------------------------------------------------------------------
// Requests

/**
 * Encodes a request frame after checking it by the rules decodeRequest applies (what we write must
 * be what a replica accepts). With `id` (an integer in [0, REQUEST_ID_MAX]) the frame belongs to a
 * session; an id out of range is INVALID like any other bad value.
 */
export function encodeRequest(request: ApiRequestInit, id?: number): Uint8Array {
  return encodeCheckedRequest(checkRequest(request), id)
}

/** A request checked as the server will check it, ready to be packed (with an id or without). */
export interface CheckedRequest {
  readonly op: ApiRequestInit['op']
  /** The wire map without an id. */
  readonly wire: Readonly<Fields>
}

/**
 * Checks `request` as the server will, on the map itself (a bad delta or peer id fails here, typed,
 * with no request sent). A client checks once and packs once per attempt: encodeCheckedRequest.
 */
export function checkRequest(request: ApiRequestInit): CheckedRequest {
  return guarded('request', () => {
    const wire = requestToWire(request)
    requestFromFrame(wire)
    return { op: request.op, wire }
  })
}

/** Packs a checked request, with `id` when it goes on a session; TOO_LARGE past the frame limit. */
export function encodeCheckedRequest(request: CheckedRequest, id?: number): Uint8Array {
  return guarded('request', () =>
    pack(withId(request.wire as Fields, checkOptionalId(id, 'request.id')), API_REQUEST_FRAME_BYTES_MAX, 'request'),
  )
}

/** `id` right after `v`, before the rest, so a reader sees the routing key first. */
function withId(wire: Fields, id: number | undefined): Fields {
  return id === undefined ? wire : { v: wire.v, id, ...wire }
}

function requestToWire(request: ApiRequestInit): Fields {
  switch (request.op) {
    case 'submit':
      return { v: PROTOCOL_VERSION, op: 'submit', delta: deltaToWire(request.delta) }
    case 'get':
      return {
        v: PROTOCOL_VERSION,
        op: 'get',
        peerId: request.peerId,
        consistency: request.consistency ?? CONSISTENCY_DEFAULT,
      }
    case 'list':
      return {
        v: PROTOCOL_VERSION,
        op: 'list',
        filter: withoutUndefined({ ...request.filter }),
        consistency: request.consistency ?? CONSISTENCY_DEFAULT,
      }
    case 'since':
      return { v: PROTOCOL_VERSION, op: 'since', index: request.index, limit: request.limit }
    case 'watch':
      return { v: PROTOCOL_VERSION, op: 'watch', fromIndex: request.fromIndex }
    case 'status':
      return { v: PROTOCOL_VERSION, op: 'status' }
    case 'presence':
      return { v: PROTOCOL_VERSION, op: 'presence', peerId: request.peerId, event: request.event }
    case 'member':
      return withoutUndefined({
        v: PROTOCOL_VERSION,
        op: 'member',
        action: request.action,
        memberId: request.memberId,
        peerId: request.peerId,
        multiaddr: request.multiaddr,
      })
    case 'transfer':
      return { v: PROTOCOL_VERSION, op: 'transfer', to: request.to }
    case 'snapshot':
      return { v: PROTOCOL_VERSION, op: 'snapshot' }
    default:
      throw invalid('request.op', OPS.join(', '))
  }
}

/** A delta as the named-field map the wire carries (PROTOCOL.md "Delta"); also gossip.ts's payload. */
export function deltaToWire(delta: Delta): Fields {
  return { originPeerId: delta.originPeerId, seq: delta.seq, fields: withoutUndefined({ ...delta.fields }) }
}

/**
 * Decodes a request frame; `id` is present when the frame carries one (a session's request). The
 * id is checked before anything else, so a frame with a bad id is INVALID whatever its op.
 */
export function decodeRequest(bytes: Uint8Array): DecodedRequest {
  return guarded('request', () => {
    const frame = unpackFrame(bytes, API_REQUEST_FRAME_BYTES_MAX, 'request')
    const id = frame.id === undefined ? undefined : checkRequestId(frame.id, 'request.id')
    const request = requestFromFrame(frame)
    return id === undefined ? request : { ...request, id }
  })
}

function requestFromFrame(frame: Fields): ApiRequest {
  const op = frame.op
  switch (op) {
    case 'submit':
      checkKeys(frame, 'request', ['v', 'id', 'op', 'delta'], ['delta'])
      return { op, delta: checkDelta(frame.delta, 'request.delta') }
    case 'get':
      checkKeys(frame, 'request', ['v', 'id', 'op', 'peerId', 'consistency'], ['peerId'])
      return {
        op,
        peerId: checkPeerId(frame.peerId, 'request.peerId'),
        consistency: checkConsistency(frame.consistency),
      }
    case 'list':
      checkKeys(frame, 'request', ['v', 'id', 'op', 'filter', 'consistency'], [])
      return { op, filter: checkFilter(frame.filter ?? {}), consistency: checkConsistency(frame.consistency) }
    case 'since':
      checkKeys(frame, 'request', ['v', 'id', 'op', 'index', 'limit'], ['index', 'limit'])
      return {
        op,
        index: checkUnsigned(frame.index, 'request.index'),
        limit: checkLimit(frame.limit, 'request.limit', SINCE_LIMIT_MAX),
      }
    case 'watch':
      checkKeys(frame, 'request', ['v', 'id', 'op', 'fromIndex'], ['fromIndex'])
      return { op, fromIndex: checkUnsigned(frame.fromIndex, 'request.fromIndex') }
    case 'status':
      checkKeys(frame, 'request', ['v', 'id', 'op'], [])
      return { op }
    case 'presence': {
      checkKeys(frame, 'request', ['v', 'id', 'op', 'peerId', 'event'], ['peerId', 'event'])
      if (typeof frame.event !== 'string' || !(PRESENCE_EVENTS as readonly string[]).includes(frame.event)) {
        throw invalid('request.event', PRESENCE_EVENTS.join(', '))
      }
      return { op, peerId: checkPeerId(frame.peerId, 'request.peerId'), event: frame.event as PresenceEvent }
    }
    case 'member':
      return checkMemberRequest(frame)
    case 'transfer':
      checkKeys(frame, 'request', ['v', 'id', 'op', 'to'], ['to'])
      return { op, to: checkPositive(frame.to, 'request.to') }
    case 'snapshot':
      checkKeys(frame, 'request', ['v', 'id', 'op'], [])
      return { op }
    default:
      throw invalid('request.op', OPS.join(', '))
  }
}

/** `add` carries the new member's peer id and address; `promote` and `remove` name a member only. */
function checkMemberRequest(frame: Fields): MemberRequest {
  const raw = checkKeys(
    frame,
    'request',
    ['v', 'id', 'op', 'action', 'memberId', 'peerId', 'multiaddr'],
    ['action', 'memberId'],
  )
  if (typeof raw.action !== 'string' || !(MEMBER_ACTIONS as readonly string[]).includes(raw.action)) {
    throw invalid('request.action', MEMBER_ACTIONS.join(', '))
  }
  const action = raw.action as MemberAction
  const memberId = checkPositive(raw.memberId, 'request.memberId')
  if (action !== 'add') {
    if (raw.peerId !== undefined || raw.multiaddr !== undefined) {
      throw invalid('request.peerId', `no peerId or multiaddr with ${action} (only add names them)`)
    }
    return { op: 'member', action, memberId }
  }
  if (raw.peerId === undefined || raw.multiaddr === undefined) {
    throw invalid('request.multiaddr', 'a peerId and a multiaddr ending in /p2p/<peerId> with add')
  }
  const addressed = checkAddressedPeer(raw.peerId, [raw.multiaddr], 'request')
  return { op: 'member', action, memberId, peerId: addressed.peerId, multiaddr: addressed.multiaddrs[0]! }
}

function checkConsistency(value: unknown): Consistency {
  if (value === undefined) return CONSISTENCY_DEFAULT
  if (typeof value !== 'string' || !(CONSISTENCIES as readonly string[]).includes(value)) {
    throw invalid('request.consistency', CONSISTENCIES.join(', '))
  }
  return value as Consistency
}

const FILTER_KEYS = ['active', 'staked', 'capability', 'updatedSinceMs', 'afterPeerId', 'limit'] as const

/** A decoded filter always has `limit` (LIST_LIMIT_DEFAULT when the client gave none). */
function checkFilter(value: unknown): ListFilter {
  const what = 'request.filter'
  const raw = checkKeys(value, what, FILTER_KEYS, [])
  const filter: { -readonly [K in keyof ListFilter]: ListFilter[K] } = {}
  if (raw.active !== undefined) filter.active = checkBoolean(raw.active, `${what}.active`)
  if (raw.staked !== undefined) filter.staked = checkBoolean(raw.staked, `${what}.staked`)
  if (raw.capability !== undefined) {
    if (typeof raw.capability !== 'string' || !(CATEGORIES as readonly string[]).includes(raw.capability)) {
      throw invalid(`${what}.capability`, CATEGORIES.join(', '))
    }
    filter.capability = raw.capability as Category
  }
  if (raw.updatedSinceMs !== undefined)
    filter.updatedSinceMs = checkUnsigned(raw.updatedSinceMs, `${what}.updatedSinceMs`)
  if (raw.afterPeerId !== undefined) filter.afterPeerId = checkPeerId(raw.afterPeerId, `${what}.afterPeerId`)
  filter.limit = raw.limit === undefined ? LIST_LIMIT_DEFAULT : checkLimit(raw.limit, `${what}.limit`, LIST_LIMIT_MAX)
  return filter
}

/**
 * A delta as a map `{ originPeerId, seq, fields: { name: value } }`. Field names outside
 * SELF_REPORTED_FIELDS are INVALID (a client cannot set isActive); the values, peer id and seq are
 * checked by the registry's command codec, the same check the leader's log applies.
 */
/**
 * A delta read from the wire, validated by the registry's command codec (the one rule set for
 * submit and gossip alike). Throws ProtocolError INVALID or TOO_LARGE.
 */
export function checkDelta(value: unknown, what: string): Delta {
  // The map must hold exactly these keys (PROTOCOL.md "Encoding"); the values are the registry's to judge.
  const raw = checkKeys(value, what, ['originPeerId', 'seq', 'fields'], ['originPeerId', 'seq', 'fields'])
  checkKeys(raw.fields, `${what}.fields`, SELF_REPORTED_FIELDS, [])
  try {
    return registryCheckDelta(raw, what)
  } catch (error) {
    throw fromRegistry(error, what)
  }
}

// ---------------------------------------------------------------------------------------------
// Responses

/**
 * A result frame for `op`, answering request `id` when given (a session). TOO_LARGE when it would
 * exceed API_RESPONSE_FRAME_BYTES_MAX: cut the page.
 */
export function encodeResponse<O extends UnaryOp>(op: O, result: ResultByOp[O], id?: number): Uint8Array {
  return guarded('response', () => {
    const wire = withId(
      { v: PROTOCOL_VERSION, ok: true, result: resultToWire(op, result) },
      checkOptionalId(id, 'response.id'),
    )
    return pack(wire, API_RESPONSE_FRAME_BYTES_MAX, 'response')
  })
}

/**
 * An error frame, answering request `id` when given. Without an id it ends the stream: a one-request
 * stream, a watch, or a whole session (PROTOCOL.md "Sessions"). Non-ProtocolErrors become UNAVAILABLE.
 */
export function encodeErrorResponse(error: unknown, id?: number): Uint8Array {
  const wire = withId(
    { v: PROTOCOL_VERSION, ok: false, error: wireErrorToWire(errorToWire(error)) },
    checkOptionalId(id, 'response.id'),
  )
  const bytes = pack(wire, API_RESPONSE_FRAME_BYTES_MAX, 'response')
  // Read it back as a client would (error frames are rare, so the cost is nothing): a frame its own
  // decoder refuses, e.g. a leader hint on a code other than NOT_LEADER, would reach the client as
  // INVALID, a final error, where the server meant something retryable. That is a server bug: throw.
  try {
    checkErrorFrame(unpackFrame(bytes, API_RESPONSE_FRAME_BYTES_MAX, 'response'))
  } catch (cause) {
    throw new Error(
      `encodeErrorResponse: would write an error frame that clients refuse (${(cause as Error).message})`,
      { cause },
    )
  }
  return bytes
}

export function encodeWatchEvent(event: WatchEvent): Uint8Array {
  return guarded('watch event', () => {
    const wire = { records: recordsToWire(event.records), throughIndex: event.throughIndex }
    return pack({ v: PROTOCOL_VERSION, ok: true, event: wire }, API_RESPONSE_FRAME_BYTES_MAX, 'watch event')
  })
}

function resultToWire(op: Op, result: ResultByOp[Op]): Fields {
  switch (op) {
    case 'submit': {
      const r = result as SubmitResult
      return { index: r.index, duplicate: r.duplicate }
    }
    case 'get': {
      const r = result as GetResult
      return { record: r.record === null ? null : encodeRecord(r.record), index: r.index }
    }
    case 'list': {
      const r = result as ListResult
      const wire: Fields = { records: recordsToWire(r.records), index: r.index }
      if (r.nextAfterPeerId !== undefined) wire.nextAfterPeerId = r.nextAfterPeerId
      return wire
    }
    case 'since': {
      const r = result as SinceResult
      return { records: recordsToWire(r.records), throughIndex: r.throughIndex, more: r.more }
    }
    case 'presence': {
      const r = result as PresenceResult
      return { active: r.active, index: r.index }
    }
    case 'member': {
      const r = result as MemberResult
      return { index: r.index, members: r.members.map(memberToWire) }
    }
    case 'transfer': {
      const r = result as TransferResult
      return { leader: r.leader }
    }
    case 'status': {
      const r = result as StatusResult
      return {
        clusterId: r.clusterId,
        id: r.id,
        peerId: r.peerId,
        role: r.role,
        term: r.term,
        leader: r.leader === null ? null : leaderToWire(r.leader),
        commit: r.commit,
        applied: r.applied,
        firstIndex: r.firstIndex,
        lastIndex: r.lastIndex,
        snapshotIndex: r.snapshotIndex,
        members: r.members.map(memberToWire),
        registryRecords: r.registryRecords,
        registryDigest: r.registryDigest,
        version: r.version,
      }
    }
    case 'watch':
      throw invalid('op', 'watch answers with encodeWatchEvent')
    case 'snapshot':
      throw invalid('op', 'snapshot answers with encodeSnapshotHeader, encodeSnapshotChunk and encodeSnapshotEnd')
  }
}

function recordsToWire(records: readonly NodeData[]): Uint8Array[] {
  const wire = new Array<Uint8Array>(records.length)
  for (let i = 0; i < records.length; i++) wire[i] = encodeRecord(records[i]!)
  return wire
}

function leaderToWire(leader: LeaderHint): Fields {
  return { id: leader.id, peerId: leader.peerId, multiaddrs: [...leader.multiaddrs] }
}

function wireErrorToWire(error: WireError): Fields {
  const wire: Fields = { code: error.code, message: error.message }
  if (error.leader !== undefined) wire.leader = leaderToWire(error.leader)
  return wire
}

/**
 * Decodes the response frame of a non-watch op. A server error comes back as `{ ok: false, error }`.
 * An `id` key is accepted (checked, not returned): route session frames with decodeSessionResponse.
 */
export function decodeResponse<O extends UnaryOp>(op: O, bytes: Uint8Array): ApiResponse<ResultByOp[O]> {
  return guarded('response', () => {
    const frame = unpackFrame(bytes, API_RESPONSE_FRAME_BYTES_MAX, 'response')
    if (frame.id !== undefined) checkRequestId(frame.id, 'response.id')
    return responseFromFrame(op, frame) as ApiResponse<ResultByOp[O]>
  })
}

/** The `id` of a response frame, or undefined when it has none; throws as decodeResponse does for a broken frame. */
export function peekResponseId(bytes: Uint8Array): number | undefined {
  return guarded('response', () => {
    const frame = unpackFrame(bytes, API_RESPONSE_FRAME_BYTES_MAX, 'response')
    return frame.id === undefined ? undefined : checkRequestId(frame.id, 'response.id')
  })
}

/**
 * Decodes one frame read from a session (PROTOCOL.md "Sessions"), unpacking it once:
 *
 *   - with an `id` that `opOf` knows: `{ id, response }`, the response decoded as that op's. A
 *     result that fails validation comes back as that request's `{ ok: false, error }` (INVALID or
 *     TOO_LARGE, as decodeResponse would throw), so one bad answer fails one request, not the session;
 *   - with an `id` that `opOf` does not know (the request was abandoned, e.g. after its deadline):
 *     `{ id, response: undefined }`, the rest left unchecked;
 *   - without an `id`: an error frame `{ id: undefined, response: { ok: false, error } }`, the
 *     server's word that it ends the session.
 *
 * Throws ProtocolError for a frame that cannot be routed: not a frame (size, MessagePack, `v`), a
 * bad `id`, or a result without an `id`.
 */
export function decodeSessionResponse(bytes: Uint8Array, opOf: (id: number) => UnaryOp | undefined): SessionResponse {
  return guarded('response', () => {
    const frame = unpackFrame(bytes, API_RESPONSE_FRAME_BYTES_MAX, 'response')
    if (frame.id === undefined) {
      if (frame.ok !== false) throw invalid('response.id', 'an id on every result in a session')
      return { id: undefined, response: { ok: false, error: checkErrorFrame(frame) } }
    }
    const id = checkRequestId(frame.id, 'response.id')
    const op = opOf(id)
    if (op === undefined) return { id, response: undefined }
    try {
      return { id, response: responseFromFrame(op, frame) }
    } catch (error) {
      return { id, response: { ok: false, error: fromRegistry(error, 'response') } }
    }
  })
}

function responseFromFrame(op: UnaryOp, frame: Fields): ApiResponse<ResultByOp[UnaryOp]> {
  if (frame.ok === false) return { ok: false, error: checkErrorFrame(frame) }
  if (frame.ok !== true) throw invalid('response.ok', 'a boolean')
  checkKeys(frame, 'response', ['v', 'id', 'ok', 'result'], ['result'])
  return { ok: true, result: checkResult(op, frame.result) as ResultByOp[UnaryOp] }
}

/** Decodes one frame of a watch: an event, or the error that ends the watch. */
export function decodeWatchFrame(bytes: Uint8Array): WatchFrame {
  return guarded('watch frame', () => {
    const frame = unpackFrame(bytes, API_RESPONSE_FRAME_BYTES_MAX, 'watch frame')
    // A watch runs alone on its stream, never in a session: its frames carry no id.
    if (frame.id !== undefined) throw invalid('watch frame.id', 'no id (a watch is never part of a session)')
    if (frame.ok === false) return { ok: false, error: checkErrorFrame(frame) }
    if (frame.ok !== true) throw invalid('watch frame.ok', 'a boolean')
    checkKeys(frame, 'watch frame', ['v', 'ok', 'event'], ['event'])
    const raw = checkKeys(frame.event, 'event', ['records', 'throughIndex'], ['records', 'throughIndex'])
    return {
      ok: true,
      event: {
        records: checkRecords(raw.records, 'event.records'),
        throughIndex: checkUnsigned(raw.throughIndex, 'event.throughIndex'),
      },
    }
  })
}

/** An error frame; `id` is allowed here and checked by the caller (watch frames never carry one). */
function checkErrorFrame(frame: Fields): ProtocolError {
  checkKeys(frame, 'response', ['v', 'id', 'ok', 'error'], ['error'])
  return errorFromWire(checkWireError(frame.error))
}

/** A wire error: known code, bounded message, and a leader hint only with NOT_LEADER. */
export function checkWireError(value: unknown): WireError {
  const raw = checkKeys(value, 'error', ['code', 'message', 'leader'], ['code', 'message'])
  if (typeof raw.code !== 'string' || !(PROTOCOL_ERROR_CODES as readonly string[]).includes(raw.code)) {
    throw invalid('error.code', PROTOCOL_ERROR_CODES.join(', '))
  }
  const code = raw.code as ProtocolErrorCode
  const message = checkString(raw.message, 'error.message', ERROR_MESSAGE_LENGTH_MAX)
  if (raw.leader === undefined) return { code, message }
  if (code !== 'NOT_LEADER') throw invalid('error.leader', 'a leader hint only with NOT_LEADER')
  return { code, message, leader: checkLeaderHint(raw.leader, 'error.leader') }
}

function checkResult(op: Op, value: unknown): ResultByOp[Op] {
  switch (op) {
    case 'submit': {
      const raw = checkKeys(value, 'result', ['index', 'duplicate'], ['index', 'duplicate'])
      return {
        index: checkPositive(raw.index, 'result.index'),
        duplicate: checkBoolean(raw.duplicate, 'result.duplicate'),
      }
    }
    case 'get': {
      const raw = checkKeys(value, 'result', ['record', 'index'], ['index'])
      const record = raw.record === undefined || raw.record === null ? null : checkRecord(raw.record, 'result.record')
      return { record, index: checkUnsigned(raw.index, 'result.index') }
    }
    case 'list': {
      const raw = checkKeys(value, 'result', ['records', 'index', 'nextAfterPeerId'], ['records', 'index'])
      const records = checkRecords(raw.records, 'result.records')
      if (records.length > LIST_LIMIT_MAX)
        throw tooLarge('result.records', `${records.length} records, at most ${LIST_LIMIT_MAX}`)
      for (let i = 1; i < records.length; i++) {
        if (!(records[i - 1]!.peerId < records[i]!.peerId))
          throw invalid('result.records', 'records sorted by distinct peer id')
      }
      const result: ListResult = { records, index: checkUnsigned(raw.index, 'result.index') }
      if (raw.nextAfterPeerId === undefined) return result
      return { ...result, nextAfterPeerId: checkPeerId(raw.nextAfterPeerId, 'result.nextAfterPeerId') }
    }
    case 'since': {
      const raw = checkKeys(value, 'result', ['records', 'throughIndex', 'more'], ['records', 'throughIndex', 'more'])
      return {
        records: checkRecords(raw.records, 'result.records'),
        throughIndex: checkUnsigned(raw.throughIndex, 'result.throughIndex'),
        more: checkBoolean(raw.more, 'result.more'),
      }
    }
    case 'status':
      return checkStatus(value)
    case 'presence': {
      const raw = checkKeys(value, 'result', ['active', 'index'], ['active', 'index'])
      return { active: checkBoolean(raw.active, 'result.active'), index: checkUnsigned(raw.index, 'result.index') }
    }
    case 'member': {
      const raw = checkKeys(value, 'result', ['index', 'members'], ['index', 'members'])
      return { index: checkPositive(raw.index, 'result.index'), members: checkMembers(raw.members) }
    }
    case 'transfer': {
      const raw = checkKeys(value, 'result', ['leader'], ['leader'])
      return { leader: checkPositive(raw.leader, 'result.leader') }
    }
    case 'watch':
      throw invalid('op', 'watch frames are read with decodeWatchFrame')
    case 'snapshot':
      throw invalid('op', 'snapshot frames are read with decodeSnapshotFrame')
  }
}

const STATUS_KEYS = [
  'clusterId',
  'id',
  'peerId',
  'role',
  'term',
  'leader',
  'commit',
  'applied',
  'firstIndex',
  'lastIndex',
  'snapshotIndex',
  'members',
  'registryRecords',
  'registryDigest',
  'version',
] as const

function checkStatus(value: unknown): StatusResult {
  const raw = checkKeys(
    value,
    'result',
    STATUS_KEYS,
    STATUS_KEYS.filter((key) => key !== 'leader'),
  )
  if (typeof raw.role !== 'string' || !(ROLES as readonly string[]).includes(raw.role))
    throw invalid('result.role', ROLES.join(', '))
  const members = checkMembers(raw.members)
  const version = checkString(raw.version, 'result.version', SOFTWARE_VERSION_LENGTH_MAX)
  if (!/^[\x20-\x7e]*$/.test(version)) throw invalid('result.version', 'printable ASCII')
  return {
    clusterId: checkString(raw.clusterId, 'result.clusterId', CLUSTER_ID_LENGTH_MAX),
    id: checkPositive(raw.id, 'result.id'),
    peerId: checkPeerId(raw.peerId, 'result.peerId'),
    role: raw.role as Role,
    term: checkUnsigned(raw.term, 'result.term'),
    leader: raw.leader === undefined || raw.leader === null ? null : checkLeaderHint(raw.leader, 'result.leader'),
    commit: checkUnsigned(raw.commit, 'result.commit'),
    applied: checkUnsigned(raw.applied, 'result.applied'),
    firstIndex: checkUnsigned(raw.firstIndex, 'result.firstIndex'),
    lastIndex: checkUnsigned(raw.lastIndex, 'result.lastIndex'),
    snapshotIndex: checkUnsigned(raw.snapshotIndex, 'result.snapshotIndex'),
    members,
    registryRecords: checkUnsigned(raw.registryRecords, 'result.registryRecords'),
    registryDigest: checkDigest(raw.registryDigest, 'result.registryDigest'),
    version,
  }
}

/** A membership (status, member results): at most MEMBERS_MAX members with canonical addresses. */
function checkMembers(value: unknown, where = 'result.members'): MemberStatus[] {
  const memberList = checkArray(value, where)
  if (memberList.length > MEMBERS_MAX) throw tooLarge(where, `${memberList.length} members, at most ${MEMBERS_MAX}`)
  return memberList.map((member, i): MemberStatus => {
    const what = `${where}[${i}]`
    const keys = ['id', 'peerId', 'multiaddr', 'voter', 'started']
    const m = checkKeys(member, what, keys, keys)
    const addressed = checkAddressedPeer(m.peerId, [m.multiaddr], what)
    return {
      id: checkPositive(m.id, `${what}.id`),
      peerId: addressed.peerId,
      multiaddr: addressed.multiaddrs[0]!,
      voter: checkBoolean(m.voter, `${what}.voter`),
      started: checkBoolean(m.started, `${what}.started`),
    }
  })
}

function memberToWire(member: MemberStatus): Fields {
  return {
    id: member.id,
    peerId: member.peerId,
    multiaddr: member.multiaddr,
    voter: member.voter,
    started: member.started,
  }
}

function checkDigest(value: unknown, what: string): string {
  if (typeof value !== 'string' || !/^[0-9a-f]{64}$/.test(value))
    throw invalid(what, '64 lowercase hex digits (SHA-256)')
  return value
}

function checkLeaderHint(value: unknown, what: string): LeaderHint {
  const raw = checkKeys(value, what, ['id', 'peerId', 'multiaddrs'], ['id', 'peerId', 'multiaddrs'])
  const id = checkPositive(raw.id, `${what}.id`)
  const addressed = checkAddressedPeer(raw.peerId, raw.multiaddrs, what)
  return { id, peerId: addressed.peerId, multiaddrs: addressed.multiaddrs }
}

// ---------------------------------------------------------------------------------------------
// Snapshot frames (PROTOCOL.md "Snapshot"): a header, chunks of data, an end with the checksum, on
// a one-request stream of their own. Each frame is checked here on its own; the order and the
// totals across frames are snapshot.ts's (SnapshotAssembler), as a client must check them.

/** The header frame, checked as a client will check it (what we write must be what clients accept). */
export function encodeSnapshotHeader(header: SnapshotHeader): Uint8Array {
  return guarded('snapshot header', () => {
    const wire: Fields = {
      clusterId: header.clusterId,
      leader: header.leader,
      index: header.index,
      term: header.term,
      members: header.members.map(memberToWire),
      records: header.records,
      registryDigest: header.registryDigest,
      totalBytes: header.totalBytes,
    }
    checkSnapshotHeader(wire)
    return pack({ v: PROTOCOL_VERSION, ok: true, header: wire }, API_RESPONSE_FRAME_BYTES_MAX, 'snapshot header')
  })
}

export function encodeSnapshotChunk(chunk: SnapshotChunk): Uint8Array {
  return guarded('snapshot chunk', () => {
    const wire: Fields = { offset: chunk.offset, data: chunk.data }
    checkSnapshotChunk(wire)
    return pack({ v: PROTOCOL_VERSION, ok: true, chunk: wire }, API_RESPONSE_FRAME_BYTES_MAX, 'snapshot chunk')
  })
}

export function encodeSnapshotEnd(end: SnapshotEnd): Uint8Array {
  return guarded('snapshot end', () => {
    const wire: Fields = { totalBytes: end.totalBytes, sha256: end.sha256 }
    checkSnapshotEnd(wire)
    return pack({ v: PROTOCOL_VERSION, ok: true, end: wire }, API_RESPONSE_FRAME_BYTES_MAX, 'snapshot end')
  })
}

/**
 * Decodes one frame of a snapshot answer: a header, a chunk, an end, or the error that ends the
 * answer. Throws ProtocolError (INVALID, TOO_LARGE) for a frame that is none of these.
 */
export function decodeSnapshotFrame(bytes: Uint8Array): SnapshotFrame {
  return guarded('snapshot frame', () => {
    const frame = unpackFrame(bytes, API_RESPONSE_FRAME_BYTES_MAX, 'snapshot frame')
    // A snapshot runs alone on its stream, never in a session: its frames carry no id.
    if (frame.id !== undefined) throw invalid('snapshot frame.id', 'no id (a snapshot is never part of a session)')
    if (frame.ok === false) return { ok: false, error: checkErrorFrame(frame) }
    if (frame.ok !== true) throw invalid('snapshot frame.ok', 'a boolean')
    checkKeys(frame, 'snapshot frame', ['v', 'ok', 'header', 'chunk', 'end'], [])
    const kinds = (['header', 'chunk', 'end'] as const).filter((kind) => frame[kind] !== undefined)
    if (kinds.length !== 1) throw invalid('snapshot frame', 'exactly one of header, chunk, end')
    switch (kinds[0]!) {
      case 'header':
        return { ok: true, kind: 'header', header: checkSnapshotHeader(frame.header) }
      case 'chunk':
        return { ok: true, kind: 'chunk', chunk: checkSnapshotChunk(frame.chunk) }
      case 'end':
        return { ok: true, kind: 'end', end: checkSnapshotEnd(frame.end) }
    }
  })
}

const SNAPSHOT_HEADER_KEYS = [
  'clusterId',
  'leader',
  'index',
  'term',
  'members',
  'records',
  'registryDigest',
  'totalBytes',
] as const

function checkSnapshotHeader(value: unknown): SnapshotHeader {
  const what = 'header'
  const raw = checkKeys(value, what, SNAPSHOT_HEADER_KEYS, SNAPSHOT_HEADER_KEYS)
  const members = checkMembers(raw.members, `${what}.members`)
  const leader = checkPositive(raw.leader, `${what}.leader`)
  const ids = new Set(members.map((member) => member.id))
  if (ids.size !== members.length) throw invalid(`${what}.members`, 'members with distinct ids')
  if (!members.some((member) => member.id === leader && member.voter))
    throw invalid(`${what}.leader`, 'the id of a voter among the members')
  return {
    clusterId: checkString(raw.clusterId, `${what}.clusterId`, CLUSTER_ID_LENGTH_MAX),
    leader,
    index: checkPositive(raw.index, `${what}.index`),
    term: checkPositive(raw.term, `${what}.term`),
    members,
    records: checkUnsigned(raw.records, `${what}.records`),
    registryDigest: checkDigest(raw.registryDigest, `${what}.registryDigest`),
    totalBytes: checkLimit(raw.totalBytes, `${what}.totalBytes`, SNAPSHOT_DATA_BYTES_MAX),
  }
}

function checkSnapshotChunk(value: unknown): SnapshotChunk {
  const raw = checkKeys(value, 'chunk', ['offset', 'data'], ['offset', 'data'])
  const offset = checkUnsigned(raw.offset, 'chunk.offset')
  if (!(raw.data instanceof Uint8Array)) throw invalid('chunk.data', 'bytes (MessagePack bin)')
  if (raw.data.byteLength === 0) throw invalid('chunk.data', 'at least one byte')
  if (raw.data.byteLength > SNAPSHOT_CHUNK_BYTES_MAX)
    throw tooLarge('chunk.data', `${raw.data.byteLength} bytes, at most ${SNAPSHOT_CHUNK_BYTES_MAX}`)
  return { offset, data: raw.data }
}

function checkSnapshotEnd(value: unknown): SnapshotEnd {
  const raw = checkKeys(value, 'end', ['totalBytes', 'sha256'], ['totalBytes', 'sha256'])
  const totalBytes = checkLimit(raw.totalBytes, 'end.totalBytes', SNAPSHOT_DATA_BYTES_MAX)
  if (!(raw.sha256 instanceof Uint8Array) || raw.sha256.byteLength !== SHA256_BYTES)
    throw invalid('end.sha256', `${SHA256_BYTES} bytes (a SHA-256 digest)`)
  return { totalBytes, sha256: raw.sha256 }
}

// ---------------------------------------------------------------------------------------------
// Checks. Peer ids, multiaddrs and records are checked by the registry (validate.ts through its
// record codec), so the protocol accepts exactly what the registry stores.

function checkRecord(value: unknown, what: string): NodeData {
  if (!(value instanceof Uint8Array)) throw invalid(what, 'a record (MessagePack bin)')
  try {
    return decodeRecord(value)
  } catch (error) {
    throw fromRegistry(error, what)
  }
}

function checkRecords(value: unknown, what: string): NodeData[] {
  const list = checkArray(value, what)
  if (list.length > RECORDS_PER_FRAME_MAX)
    throw tooLarge(what, `${list.length} records, at most ${RECORDS_PER_FRAME_MAX}`)
  const records = new Array<NodeData>(list.length)
  for (let i = 0; i < list.length; i++) records[i] = checkRecord(list[i], `${what}[${i}]`)
  return records
}

/** A canonical libp2p peer id, as the registry accepts it for a record's key. */
export function checkPeerId(value: unknown, what: string): string {
  return checkAddressedPeer(value, [], what).peerId
}

/**
 * A peer id with canonical multiaddrs that each end in `/p2p/<peerId>` (leader hints, members).
 * The registry's record decoder checks both; an otherwise empty record carries them through it.
 */
function checkAddressedPeer(
  peerId: unknown,
  multiaddrs: unknown,
  what: string,
): { peerId: string; multiaddrs: string[] } {
  if (typeof peerId !== 'string') throw invalid(`${what}.peerId`, 'a string')
  checkArray(multiaddrs, `${what}.multiaddrs`)
  // The registry's own checks, as a record's decoder runs them (canonical peer id and multiaddrs,
  // at most MULTIADDRS_MAX, distinct), each remembered once it passed: hints and members repeat.
  let checked: { peerId: string; multiaddrs: string[] }
  try {
    checked = {
      peerId: registryCheckPeerId(peerId, 'record.peerId'),
      multiaddrs: registryCheckMultiaddrs(multiaddrs, 'record.multiaddrs', true),
    }
  } catch (error) {
    throw fromRegistry(error, what)
  }
  const suffix = `/p2p/${checked.peerId}`
  for (const address of checked.multiaddrs) {
    if (!address.endsWith(suffix)) throw invalid(`${what}.multiaddrs`, `multiaddrs ending in ${suffix}`)
  }
  return checked
}

export function checkKeys(
  value: unknown,
  what: string,
  allowed: readonly string[],
  required: readonly string[],
): Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw invalid(what, 'a map')
  }
  const prototype = Object.getPrototypeOf(value)
  if (prototype !== Object.prototype && prototype !== null) throw invalid(what, 'a plain map')
  const fields = value as Fields
  for (const key of Object.keys(fields)) {
    if (!allowed.includes(key))
      throw invalid(`${what}.${key.slice(0, 64)}`, `no such key (known: ${allowed.join(', ')})`)
  }
  for (const key of required) {
    if (fields[key] === undefined) throw invalid(`${what}.${key}`, 'a value (required)')
  }
  return fields
}

function checkArray(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw invalid(what, 'an array')
  return value
}

/** A request id: an integer in [0, REQUEST_ID_MAX] (PROTOCOL.md "Sessions"). */
function checkRequestId(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > REQUEST_ID_MAX) {
    throw invalid(what, `an integer in [0, ${REQUEST_ID_MAX}]`)
  }
  return value
}

function checkOptionalId(id: number | undefined, what: string): number | undefined {
  return id === undefined ? undefined : checkRequestId(id, what)
}

function checkBoolean(value: unknown, what: string): boolean {
  if (typeof value !== 'boolean') throw invalid(what, 'a boolean')
  return value
}

/** Integers in [0, 2^53): indexes, terms, counts and millisecond times. */
function checkUnsigned(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
    throw invalid(what, 'a non-negative safe integer')
  return value
}

function checkPositive(value: unknown, what: string): number {
  const number = checkUnsigned(value, what)
  if (number === 0) throw invalid(what, 'a positive integer')
  return number
}

function checkLimit(value: unknown, what: string, max: number): number {
  const limit = checkPositive(value, what)
  if (limit > max) throw tooLarge(what, `${limit}, at most ${max}`)
  return limit
}

function checkString(value: unknown, what: string, lengthMax: number): string {
  if (typeof value !== 'string') throw invalid(what, 'a string')
  if (value.length > lengthMax) throw tooLarge(what, `${value.length} characters, at most ${lengthMax}`)
  return value
}

// ---------------------------------------------------------------------------------------------
// Frames

function pack(value: Fields, bytesMax: number, what: string): Uint8Array {
  let bytes: Uint8Array
  try {
    bytes = packWire(value)
  } catch (error) {
    if (error instanceof ProtocolError) throw error
    throw fromRegistry(error, what)
  }
  if (bytes.length > bytesMax) throw tooLarge(what, `${bytes.length} bytes, at most ${bytesMax}`)
  return bytes
}

/** The checks every frame starts with: bytes within the limit, one MessagePack map, a known `v`. */
function unpackFrame(bytes: unknown, bytesMax: number, what: string): Fields {
  if (!(bytes instanceof Uint8Array)) throw invalid(what, 'a Uint8Array')
  if (bytes.length === 0) throw invalid(what, 'at least one byte')
  if (bytes.length > bytesMax) throw tooLarge(what, `${bytes.length} bytes, at most ${bytesMax}`)
  let value: unknown
  try {
    value = unpackWire(bytes)
  } catch (error) {
    const detail = error instanceof MsgpackError ? error.message : 'not well-formed MessagePack'
    throw new ProtocolError('INVALID', `${what}: ${detail}`, { cause: error })
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    throw invalid(what, 'a map')
  }
  const v = (value as Fields).v
  if (v !== PROTOCOL_VERSION) {
    const shown = typeof v === 'number' ? String(v) : typeof v
    throw new ProtocolError(
      'INVALID',
      `${what}: unsupported protocol version ${shown}; this build speaks v ${PROTOCOL_VERSIONS_SUPPORTED.join(', ')}`,
    )
  }
  return value as Fields
}

/**
 * Exposed for frames that are not API messages (tests, tools): any value in the wire dialect
 * (PROTOCOL.md "Encoding"). Throws ProtocolError INVALID for a value it cannot carry (a float, a
 * negative, an extension type).
 */
export function packValue(value: unknown): Uint8Array {
  try {
    return packWire(value)
  } catch (error) {
    throw fromRegistry(error, 'value')
  }
}

function withoutUndefined(fields: Fields): Fields {
  for (const key of Object.keys(fields)) if (fields[key] === undefined) delete fields[key]
  return fields
}

function invalid(what: string, expected: string): ProtocolError {
  return new ProtocolError('INVALID', `${what}: expected ${expected}`)
}

function tooLarge(what: string, detail: string): ProtocolError {
  return new ProtocolError('TOO_LARGE', `${what}: ${detail}`)
}

/** The registry's codes mapped onto the API's: its size errors stay TOO_LARGE, all else is INVALID. */
function fromRegistry(error: unknown, what: string): ProtocolError {
  if (error instanceof ProtocolError) return error
  if (error instanceof RegistryError) {
    return new ProtocolError(error.code === 'TOO_LARGE' ? 'TOO_LARGE' : 'INVALID', `${what}: ${error.message}`, {
      cause: error,
    })
  }
  if (error instanceof MsgpackError) return new ProtocolError('INVALID', `${what}: ${error.message}`, { cause: error })
  return new ProtocolError('INVALID', `${what}: could not be encoded or decoded`, { cause: error })
}

/** The promise that decoders throw ProtocolError and nothing else, kept in one place. */
function guarded<T>(what: string, decode: () => T): T {
  try {
    return decode()
  } catch (error) {
    if (error instanceof ProtocolError) throw error
    throw fromRegistry(error, what)
  }
}
