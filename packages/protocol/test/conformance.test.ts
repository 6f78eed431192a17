/**
 * Conformance with docs/PROTOCOL.md against a second MessagePack implementation, @msgpack/msgpack:
 *
 *   - what our codecs write (every API request and response, error, session and watch frame, the
 *     records inside bins, gossip messages, Raft frames of every message type with entries and
 *     snapshot chunks, the registry commands and snapshot they carry) is read by @msgpack/msgpack
 *     with a decoder that reports the wire format of every number, and holds only what "Encoding"
 *     allows: unsigned integers in their smallest format (uint64 exactly from 2^32 on), never a
 *     float or a signed format; maps with string keys; bin for bytes; no extension types;
 *   - frames built by hand with @msgpack/msgpack (every integer width, uint64 values from 2^32 on,
 *     key orders shuffled) are read by our codecs;
 *   - what the document forbids (a float for an integer, 1.0 for `v` included, negatives, integers
 *     above 2^53 - 1, unknown or repeated keys, extension types, trailing bytes) is refused with
 *     INVALID, or TOO_LARGE where the document says so.
 */
import fc from 'fast-check'
import { Decoder, ExtData, encode } from '@msgpack/msgpack'
import { describe, expect, it } from 'vitest'
import { RECORD_FIELDS, emptyRecord, encodeCommand, encodeSnapshot } from '@nodeledger/registry'
import type { Delta, NodeData } from '@nodeledger/registry'
import { decodeRaftFrame, encodeRaftFrame } from '../../authority/src/raft-codec.ts'
import type { Message } from '../../raft/src/types.ts'
import {
  API_REQUEST_FRAME_BYTES_MAX,
  PROTOCOL_ERROR_CODES,
  ProtocolError,
  REQUEST_ID_MAX,
  decodeGossipDelta,
  decodeRequest,
  decodeResponse,
  decodeSessionResponse,
  decodeWatchFrame,
  encodeErrorResponse,
  encodeGossipDelta,
  encodeRequest,
  encodeResponse,
  encodeWatchEvent,
} from '../src/index.ts'
import type { ApiRequestInit, ResultByOp, UnaryOp } from '../src/index.ts'
import { REPLICA, peerId, sampleStatus } from './helpers.ts'

const T0 = 1_760_000_000_000 // epoch milliseconds: above 2^32, as every real timestamp is
const BIG = 2 ** 32 + 1
const MAX = Number.MAX_SAFE_INTEGER
const worker = peerId(1)

// ---------------------------------------------------------------------------------------------
// A reader that sees the wire formats. @msgpack/msgpack returns a JS number for both the int 1 and
// the float 1.0; this decoder wraps what the float and signed readers return, and with useBigInt64
// a uint64 comes back as a bigint. So in what it returns: a number is an unsigned integer below
// 2^32 (fixint, uint8/16/32), a bigint a uint64, a Float or Signed a format we must never write.

class Float {
  readonly format: string
  readonly value: number
  constructor(format: string, value: number) {
    this.format = format
    this.value = value
  }
}
class Signed {
  readonly format: string
  readonly value: number | bigint
  constructor(format: string, value: number | bigint) {
    this.format = format
    this.value = value
  }
}

class WireFormatDecoder extends Decoder {}
{
  const base = Decoder.prototype as unknown as Record<string, (this: unknown) => number | bigint>
  const own = WireFormatDecoder.prototype as unknown as Record<string, (this: unknown) => unknown>
  const wrap = (method: string, make: (value: never) => unknown): void => {
    own[method] = function (this: unknown) {
      return make(base[method]!.call(this) as never)
    }
  }
  wrap('readF32', (value: number) => new Float('float 32', value))
  wrap('readF64', (value: number) => new Float('float 64', value))
  wrap('readI8', (value: number) => new Signed('int 8', value))
  wrap('readI16', (value: number) => new Signed('int 16', value))
  wrap('readI32', (value: number) => new Signed('int 32', value))
  wrap('readI64AsBigInt', (value: bigint) => new Signed('int 64', value))
}

const formats = new WireFormatDecoder({
  useBigInt64: true,
  mapKeyConverter: (key) => {
    if (typeof key !== 'string') throw new Error(`a map key that is not a string: ${String(key)}`)
    return key
  },
})

/** Decodes `bytes` with @msgpack/msgpack and fails on anything PROTOCOL.md "Encoding" forbids a writer. */
function wireValue(bytes: Uint8Array): unknown {
  const value = formats.decode(bytes) // throws on trailing bytes and non-string keys
  expectWireTypes(value, '$')
  return value
}

function expectWireTypes(value: unknown, path: string): void {
  if (value instanceof Float || value instanceof Signed) throw new Error(`${path}: a ${value.format}`)
  if (value instanceof ExtData || value instanceof Date) throw new Error(`${path}: an extension type`)
  if (typeof value === 'number') {
    expect(Number.isInteger(value) && value >= 0, `${path} = ${value}: an unsigned integer`).toBe(true)
    expect(value < 2 ** 32, `${path} = ${value}: from 2^32 on, a uint64`).toBe(true)
    return
  }
  if (typeof value === 'bigint') {
    expect(value >= 2n ** 32n && value <= BigInt(MAX), `${path} = ${value}: a uint64 only from 2^32 to 2^53 - 1`).toBe(
      true,
    )
    return
  }
  if (value === null || typeof value === 'boolean' || typeof value === 'string' || value instanceof Uint8Array) return
  if (Array.isArray(value)) {
    value.forEach((element, i) => {
      expectWireTypes(element, `${path}[${i}]`)
    })
    return
  }
  expect(Object.getPrototypeOf(value), `${path}: a map`).toBe(Object.prototype)
  for (const [key, entry] of Object.entries(value as object)) expectWireTypes(entry, `${path}.${key}`)
}

function bytesAsLists(value: unknown): unknown {
  if (value instanceof Uint8Array) return [...value]
  if (Array.isArray(value)) return value.map(bytesAsLists)
  if (typeof value === 'object' && value !== null)
    return Object.fromEntries(Object.entries(value).map(([key, entry]) => [key, bytesAsLists(entry)]))
  return value
}

/** A number as the wire reader returned it, back to a number. */
const num = (value: unknown): number => Number(value as number | bigint)

/** A record bin's content as @msgpack/msgpack reads it: [2, [26 fields]], each integer field checked. */
function wireRecord(bin: unknown, record: NodeData): void {
  expect(bin, 'a record travels as bin').toBeInstanceOf(Uint8Array)
  const [version, fields] = wireValue(bin as Uint8Array) as [unknown, unknown[]]
  expect(version).toBe(2)
  expect(fields).toHaveLength(26)
  expect(RECORD_FIELDS).toHaveLength(26)
  expect(fields[25], 'lastLeftReason, the last field').toBe(record.lastLeftReason)
  RECORD_FIELDS.forEach((field, i) => {
    const expected = record[field]
    if (typeof expected === 'number') expect(num(fields[i]), field).toBe(expected)
    else expect(fields[i], field).toEqual(expected)
  })
}

// ---------------------------------------------------------------------------------------------
// Samples with integers of every size, epoch milliseconds included.

function bigRecord(seed: number): NodeData {
  return {
    ...emptyRecord(peerId(seed)),
    multiaddrs: [`/ip4/10.0.0.${seed % 250}/tcp/4001`],
    firstJoinedMs: T0,
    lastJoinedMs: T0 + 1_000,
    lastLeftMs: T0 + 500,
    // Active again: the reason it was last inactive stays, as history.
    lastLeftReason: seed % 2 === 0 ? 'ttl' : 'disconnected',
    lastUpdatedMs: T0 + 2_000,
    uptimeAccumulatedMs: 400,
    isActive: true,
    isStaked: true,
    isWebScraper: true,
    version: '1.2.3',
    ethAddress: `0x${'ab'.repeat(20)}`,
    returnedItems: MAX,
    returnedItemsLastMs: T0 + 1_500,
    timeouts: 2 ** 32 - 1,
    timeoutsLastMs: T0,
    notFound: 200,
    notFoundLastMs: T0,
    originSeq: BIG,
    observers: [REPLICA],
    changedIndex: BIG + seed,
  }
}

const delta: Delta = {
  originPeerId: worker,
  seq: BIG,
  fields: {
    multiaddrs: ['/ip4/10.0.0.5/tcp/4001'],
    isStaked: true,
    isValidator: false,
    isTwitterScraper: true,
    isWebScraper: false,
    isDiscordScraper: true,
    isTelegramScraper: false,
    version: '2.0.0',
    ethAddress: '',
    returnedItems: MAX,
    returnedItemsLastMs: T0,
    timeouts: 0,
    timeoutsLastMs: T0,
    notFound: 127,
    notFoundLastMs: 2 ** 32,
  },
}

const requests: ApiRequestInit[] = [
  { op: 'submit', delta },
  { op: 'submit', delta: { originPeerId: worker, seq: 1, fields: {} } },
  { op: 'get', peerId: worker, consistency: 'linearizable' },
  { op: 'get', peerId: worker, consistency: 'lease' },
  { op: 'get', peerId: worker, consistency: 'stale' },
  {
    op: 'list',
    filter: {
      active: true,
      staked: false,
      capability: 'telegram',
      updatedSinceMs: T0,
      afterPeerId: worker,
      limit: 1000,
    },
    consistency: 'lease',
  },
  { op: 'list', filter: {} },
  { op: 'since', index: BIG, limit: 10_000 },
  { op: 'since', index: 0, limit: 1 },
  { op: 'watch', fromIndex: MAX },
  { op: 'status' },
  { op: 'presence', peerId: worker, event: 'heartbeat' },
  { op: 'presence', peerId: worker, event: 'leave' },
  { op: 'member', action: 'add', memberId: 4, peerId: worker, multiaddr: `/ip4/127.0.0.14/tcp/4001/p2p/${worker}` },
  { op: 'member', action: 'promote', memberId: BIG },
  { op: 'member', action: 'remove', memberId: 1 },
  { op: 'transfer', to: 2 },
]

const records = [bigRecord(1), bigRecord(2), bigRecord(3)].sort((a, b) => (a.peerId < b.peerId ? -1 : 1))
const results: { [O in UnaryOp]: ResultByOp[O][] } = {
  submit: [
    { index: BIG, duplicate: false },
    { index: 1, duplicate: true },
  ],
  get: [
    { record: bigRecord(1), index: BIG + 10 },
    { record: null, index: 0 },
  ],
  list: [
    { records, index: MAX, nextAfterPeerId: records[2]!.peerId },
    { records: [], index: 3 },
  ],
  since: [{ records, throughIndex: BIG + 10, more: true }],
  status: [
    { ...sampleStatus(), term: BIG, commit: BIG, applied: BIG, lastIndex: BIG, firstIndex: 2 ** 32 },
    { ...sampleStatus(), leader: null },
  ],
  presence: [
    { active: true, index: BIG },
    { active: false, index: 0 },
  ],
  member: [
    {
      index: BIG,
      members: [
        { id: 1, peerId: worker, multiaddr: `/ip4/127.0.0.11/tcp/4001/p2p/${worker}`, voter: false, started: false },
      ],
    },
  ],
  transfer: [{ leader: 2 }],
}

// ---------------------------------------------------------------------------------------------

describe('what our codecs write, read by @msgpack/msgpack', () => {
  it('every request op, with and without a session id: integers as integers, maps with string keys', () => {
    for (const request of requests) {
      for (const id of [undefined, 0, 7, REQUEST_ID_MAX]) {
        const frame = wireValue(encodeRequest(request, id)) as Record<string, unknown>
        expect(Object.keys(frame).slice(0, id === undefined ? 1 : 2), 'v first, then id').toEqual(
          id === undefined ? ['v'] : ['v', 'id'],
        )
        expect(frame.v).toBe(1)
        if (id !== undefined) expect(num(frame.id)).toBe(id)
        expect(frame.op).toBe(request.op)
      }
    }
    const submit = wireValue(encodeRequest({ op: 'submit', delta })) as { delta: Record<string, unknown> }
    expect(submit.delta.seq, 'seq 2^32 + 1 as a uint64').toBe(BigInt(BIG))
    expect((submit.delta.fields as Record<string, unknown>).returnedItems).toBe(BigInt(MAX))
    const since = wireValue(encodeRequest({ op: 'since', index: BIG, limit: 5 })) as Record<string, unknown>
    expect(since.index).toBe(BigInt(BIG))
  })

  it('every result, error frames with and without id and leader hint, watch frames; records as bin', () => {
    for (const op of Object.keys(results) as UnaryOp[]) {
      for (const result of results[op]) {
        for (const id of [undefined, 9]) {
          const frame = wireValue(encodeResponse(op, result as never, id)) as Record<string, unknown>
          expect(frame.v).toBe(1)
          expect(frame.ok).toBe(true)
          if (id !== undefined) expect(num(frame.id)).toBe(id)
          const wire = frame.result as Record<string, unknown>
          if ('record' in result && result.record !== null) wireRecord(wire.record, result.record)
          if ('records' in result)
            (wire.records as unknown[]).forEach((bin, i) => {
              wireRecord(bin, result.records[i]!)
            })
        }
      }
    }
    const leader = sampleStatus().leader!
    for (const code of PROTOCOL_ERROR_CODES) {
      for (const id of [undefined, 0, REQUEST_ID_MAX]) {
        const withHint = code === 'NOT_LEADER' ? { leader } : undefined
        const frame = wireValue(encodeErrorResponse(new ProtocolError(code, `because ${code}`, withHint), id))
        expect(frame).toEqual({
          v: 1,
          ...(id === undefined ? {} : { id: id < 2 ** 32 ? id : BigInt(id) }),
          ok: false,
          error: { code, message: `because ${code}`, ...(withHint === undefined ? {} : { leader }) },
        })
      }
    }
    const event = wireValue(encodeWatchEvent({ records, throughIndex: BIG })) as {
      event: { records: unknown[]; throughIndex: unknown }
    }
    expect(event.event.throughIndex).toBe(BigInt(BIG))
    event.event.records.forEach((bin, i) => {
      wireRecord(bin, records[i]!)
    })
    expect(wireValue(encodeWatchEvent({ records: [], throughIndex: 5 }))).toEqual({
      v: 1,
      ok: true,
      event: { records: [], throughIndex: 5 },
    })
  })

  it('gossip messages: { v: 1, delta } with the delta as in a submit', () => {
    const message = wireValue(encodeGossipDelta(delta)) as { v: unknown; delta: Record<string, unknown> }
    expect(message.v).toBe(1)
    expect(message.delta.seq).toBe(BigInt(BIG))
    expect(Object.keys(message.delta.fields as object).sort()).toEqual(Object.keys(delta.fields).sort())
  })

  it('Raft frames of every message type, entries, snapshot chunks and the registry bytes they carry', () => {
    const command = encodeCommand({ timestampMs: T0, command: { kind: 'delta', submitterPeerId: worker, delta } })
    const snapshot = encodeSnapshot({
      appliedIndex: BIG + 10,
      clockMs: T0 + 5_000,
      replicaPeerIds: [REPLICA],
      counters: {
        entriesApplied: BIG,
        entriesStale: 0,
        entriesRejected: 1,
        deltasReplayed: 2,
        deltasStale: 3,
        observationsIgnored: 4,
      },
      records,
    })
    const common = { from: 1, to: 2, term: BIG }
    const messages: Message[] = [
      {
        ...common,
        type: 'append',
        logTerm: BIG,
        index: BIG,
        commit: BIG,
        entries: [
          { index: BIG + 1, term: BIG, type: 'normal', data: command },
          { index: BIG + 2, term: BIG, type: 'noop', data: new Uint8Array() },
          { index: BIG + 3, term: BIG, type: 'confchange', data: new Uint8Array([1, 2]) },
        ],
      },
      { ...common, type: 'append-response', index: BIG, reject: true, rejectHint: BIG - 5 },
      { ...common, type: 'vote', logTerm: BIG, index: BIG, reason: 'election' },
      { ...common, type: 'vote-response', reject: false },
      { ...common, type: 'pre-vote', logTerm: 3, index: 4, reason: 'transfer' },
      { ...common, type: 'pre-vote-response', reject: true },
      { ...common, type: 'heartbeat', commit: BIG, context: '1-42', sentTick: BIG },
      { ...common, type: 'heartbeat-response', context: '1-42', sentTick: BIG },
      {
        ...common,
        type: 'snapshot',
        snapshot: {
          metadata: { index: BIG + 10, term: BIG, confState: { voters: [1, 2, 3], learners: [4] } },
          offset: 2 ** 32,
          totalBytes: snapshot.length,
          data: snapshot,
        },
      },
      { ...common, type: 'snapshot-response', bytesReceived: BIG },
      { ...common, type: 'timeout-now' },
    ]
    const frame = wireValue(encodeRaftFrame(messages)) as unknown[]
    expect(frame[0]).toBe(1)
    expect(frame).toHaveLength(messages.length + 1)
    expect((frame[1] as { term: unknown }).term).toBe(BigInt(BIG))
    const entries = (frame[1] as { entries: Array<{ data: Uint8Array }> }).entries
    // The registry command an entry carries: [version, timestampMs, kind, …], T0 a uint64.
    expect((wireValue(entries[0]!.data) as unknown[])[1]).toBe(BigInt(T0))
    // The registry snapshot a chunk carries: "NLRS", version, crc32, then one MessagePack body.
    const chunk = (frame[9] as { snapshot: { data: Uint8Array } }).snapshot.data
    const body = wireValue(chunk.subarray(9)) as unknown[]
    expect(body[0]).toBe(BigInt(BIG + 10))
    expect(body[1]).toBe(BigInt(T0 + 5_000))
    // Bytes compared as byte lists: msgpackr leaves a cached DataView property on the buffers it has read.
    expect(bytesAsLists(decodeRaftFrame(encodeRaftFrame(messages), 1, 2))).toEqual(bytesAsLists(messages))
  })

  it('random requests: integers as integers, decoded back as sent (property)', () => {
    fc.assert(
      fc.property(
        fc.maxSafeNat(),
        fc.integer({ min: 1, max: 10_000 }),
        fc.maxSafeInteger().map((n) => Math.max(1, Math.abs(n))),
        fc.record({ returnedItems: fc.maxSafeNat(), notFoundLastMs: fc.maxSafeNat(), timeouts: fc.nat() }),
        fc.option(fc.nat({ max: REQUEST_ID_MAX }), { nil: undefined }),
        (index, limit, seq, fields, id) => {
          for (const request of [
            { op: 'since', index, limit },
            { op: 'submit', delta: { originPeerId: worker, seq, fields } },
          ] as ApiRequestInit[]) {
            const bytes = encodeRequest(request, id)
            wireValue(bytes)
            expect(decodeRequest(bytes)).toEqual(id === undefined ? request : { ...request, id })
          }
        },
      ),
      { numRuns: 300 },
    )
  })
})

// ---------------------------------------------------------------------------------------------
// Frames built by hand with @msgpack/msgpack: `encode` writes a number from 2^32 on as a uint64
// (useBigInt64 off), and the helpers below put any integer in any format, and keys in any order.

type IntFormat = 'fixint' | 'uint8' | 'uint16' | 'uint32' | 'uint64' | 'int8' | 'int16' | 'int32' | 'int64'
const FORMAT_MAX: Record<IntFormat, number> = {
  fixint: 0x7f,
  uint8: 0xff,
  uint16: 0xffff,
  uint32: 2 ** 32 - 1,
  uint64: MAX,
  int8: 0x7f,
  int16: 0x7fff,
  int32: 2 ** 31 - 1,
  int64: MAX,
}
const FORMATS = Object.keys(FORMAT_MAX) as IntFormat[]

/** `value` in `format`, as raw MessagePack bytes. */
function int(format: IntFormat, value: number): Uint8Array {
  const view = new DataView(new ArrayBuffer(9))
  const marker = {
    fixint: 0,
    uint8: 0xcc,
    uint16: 0xcd,
    uint32: 0xce,
    uint64: 0xcf,
    int8: 0xd0,
    int16: 0xd1,
    int32: 0xd2,
    int64: 0xd3,
  }[format]
  if (format === 'fixint') return Uint8Array.of(value)
  view.setUint8(0, marker)
  if (format === 'uint8' || format === 'int8') view.setUint8(1, value)
  if (format === 'uint16' || format === 'int16') view.setUint16(1, value)
  if (format === 'uint32' || format === 'int32') view.setUint32(1, value)
  if (format === 'uint64' || format === 'int64') view.setBigUint64(1, BigInt(value))
  const width = { uint8: 1, uint16: 2, uint32: 4, uint64: 8, int8: 1, int16: 2, int32: 4, int64: 8 }[format]
  return new Uint8Array(view.buffer, 0, 1 + width)
}

/** An integer in a random format that can hold it. */
const anyFormatOf = (value: number): fc.Arbitrary<Uint8Array> =>
  fc.constantFrom(...FORMATS.filter((format) => value <= FORMAT_MAX[format])).map((format) => int(format, value))

/** A map from raw entries, written in the given order. */
function map(entries: ReadonlyArray<readonly [string, Uint8Array]>): Uint8Array {
  const parts: Uint8Array[] = [
    entries.length < 16 ? Uint8Array.of(0x80 | entries.length) : Uint8Array.of(0xde, 0, entries.length),
  ]
  for (const [key, value] of entries) parts.push(encode(key), value)
  return concat(parts)
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0))
  let at = 0
  for (const part of parts) {
    bytes.set(part, at)
    at += part.length
  }
  return bytes
}

const raw = (value: unknown): Uint8Array => encode(value)

/** A record bin as another writer would make it: [2, [26 fields]], integers from 2^32 on as uint64. */
const recordBin = (record: NodeData): Uint8Array => encode([2, RECORD_FIELDS.map((field) => record[field])])

/** A version 1 record bin, as a writer of before lastLeftReason made it: [1, [25 fields]]. */
const recordBinV1 = (record: NodeData): Uint8Array =>
  encode([1, RECORD_FIELDS.slice(0, 25).map((field) => record[field])])

function codeOf(run: () => unknown): string {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError)
    return (error as ProtocolError).code
  }
  return 'accepted'
}

describe('frames built by hand with @msgpack/msgpack, read by our codecs', () => {
  it('a uint64 seq and since index of 2^32 + 1, and records with uint64 epoch milliseconds', () => {
    expect(decodeRequest(encode({ v: 1, op: 'since', index: BIG, limit: 100 }))).toEqual({
      op: 'since',
      index: BIG,
      limit: 100,
    })
    expect(
      decodeRequest(encode({ v: 1, id: 3, op: 'submit', delta: { originPeerId: worker, seq: BIG, fields: {} } })),
    ).toEqual({ op: 'submit', id: 3, delta: { originPeerId: worker, seq: BIG, fields: {} } })
    const record = bigRecord(4)
    expect(
      decodeResponse('get', encode({ v: 1, ok: true, result: { record: recordBin(record), index: BIG + 4 } })),
    ).toEqual({ ok: true, result: { record, index: BIG + 4 } })
    expect(
      decodeWatchFrame(encode({ v: 1, ok: true, event: { records: [recordBin(record)], throughIndex: BIG + 4 } })),
    ).toEqual({ ok: true, event: { records: [record], throughIndex: BIG + 4 } })
    // Version 1 (25 fields) is still read, lastLeftReason empty; 25 fields under version 2 and 26
    // under version 1 are not records of either.
    const unknownReason = { ...record, lastLeftReason: '' as const }
    expect(
      decodeResponse('get', encode({ v: 1, ok: true, result: { record: recordBinV1(record), index: BIG + 4 } })),
    ).toEqual({ ok: true, result: { record: unknownReason, index: BIG + 4 } })
    const mixed = [
      encode([2, RECORD_FIELDS.slice(0, 25).map((field) => record[field])]),
      encode([1, RECORD_FIELDS.map((field) => record[field])]),
      encode([3, RECORD_FIELDS.map((field) => record[field])]),
      encode([2, RECORD_FIELDS.map((field) => (field === 'lastLeftReason' ? 'heartbeat' : record[field]))]),
    ]
    for (const bin of mixed) {
      expect(codeOf(() => decodeResponse('get', encode({ v: 1, ok: true, result: { record: bin, index: 1 } })))).toBe(
        'INVALID',
      )
    }
    expect(
      decodeGossipDelta(encode({ v: 1, delta: { originPeerId: worker, seq: BIG, fields: { notFound: MAX } } })),
    ).toEqual({ originPeerId: worker, seq: BIG, fields: { notFound: MAX } })
    const heartbeat = encode([1, { type: 'heartbeat', from: 1, to: 2, term: BIG, commit: MAX, sentTick: BIG }])
    expect(decodeRaftFrame(heartbeat, 1, 2)).toEqual([
      { type: 'heartbeat', from: 1, to: 2, term: BIG, commit: MAX, sentTick: BIG },
    ])
  })

  it('every integer format for every integer field, in any key order (property)', () => {
    fc.assert(
      fc.property(
        fc.maxSafeNat().chain((index) => fc.tuple(fc.constant(index), anyFormatOf(index))),
        fc.integer({ min: 1, max: 10_000 }).chain((limit) => fc.tuple(fc.constant(limit), anyFormatOf(limit))),
        fc.nat({ max: REQUEST_ID_MAX }).chain((id) => fc.tuple(fc.constant(id), anyFormatOf(id))),
        anyFormatOf(1),
        fc.nat(),
        ([index, indexBytes], [limit, limitBytes], [id, idBytes], vBytes, order) => {
          const entries: Array<[string, Uint8Array]> = [
            ['v', vBytes],
            ['id', idBytes],
            ['op', raw('since')],
            ['index', indexBytes],
            ['limit', limitBytes],
          ]
          expect(decodeRequest(map(shuffled(entries, order)))).toEqual({ op: 'since', index, limit, id })
        },
      ),
      { numRuns: 500 },
    )
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: MAX }).chain((seq) => fc.tuple(fc.constant(seq), anyFormatOf(seq))),
        fc.maxSafeNat().chain((items) => fc.tuple(fc.constant(items), anyFormatOf(items))),
        fc.maxSafeNat().chain((ms) => fc.tuple(fc.constant(ms), anyFormatOf(ms))),
        fc.nat(),
        fc.nat(),
        ([seq, seqBytes], [items, itemsBytes], [ms, msBytes], order, fieldOrder) => {
          const fields = map(
            shuffled(
              [
                ['returnedItems', itemsBytes],
                ['returnedItemsLastMs', msBytes],
                ['version', raw('1.0.0')],
              ],
              fieldOrder,
            ),
          )
          const deltaBytes = map(
            shuffled(
              [
                ['originPeerId', raw(worker)],
                ['seq', seqBytes],
                ['fields', fields],
              ],
              order,
            ),
          )
          const request = map(
            shuffled(
              [
                ['v', raw(1)],
                ['op', raw('submit')],
                ['delta', deltaBytes],
              ],
              order >> 3,
            ),
          )
          const expected = {
            originPeerId: worker,
            seq,
            fields: { returnedItems: items, returnedItemsLastMs: ms, version: '1.0.0' },
          }
          expect(decodeRequest(request)).toEqual({ op: 'submit', delta: expected })
          expect(
            decodeGossipDelta(
              map([
                ['delta', deltaBytes],
                ['v', vOf(order)],
              ]),
            ),
          ).toEqual(expected)
        },
      ),
      { numRuns: 300 },
    )
  })

  it('responses of every op, error frames and session frames in any key order', () => {
    const leader = sampleStatus().leader!
    const status = results.status[0]!
    const { leader: _, members, ...statusRest } = status
    const statusBytes = map([
      ...Object.entries(statusRest)
        .reverse()
        .map(([key, value]) => [key, raw(value)] as [string, Uint8Array]),
      ['members', raw(members)],
      ['leader', raw(leader)],
    ])
    expect(
      decodeResponse(
        'status',
        map([
          ['result', statusBytes],
          ['ok', raw(true)],
          ['v', int('uint64', 1)],
        ]),
      ),
    ).toEqual({ ok: true, result: status })
    const list = results.list[0]!
    expect(
      decodeResponse(
        'list',
        encode({
          v: 1,
          ok: true,
          result: { nextAfterPeerId: list.nextAfterPeerId, index: list.index, records: list.records.map(recordBin) },
        }),
      ),
    ).toEqual({ ok: true, result: list })
    const since = results.since[0]!
    expect(
      decodeResponse(
        'since',
        encode({
          ok: true,
          v: 1,
          result: { more: true, throughIndex: since.throughIndex, records: since.records.map(recordBin) },
        }),
      ),
    ).toEqual({ ok: true, result: since })
    expect(decodeResponse('submit', encode({ result: { duplicate: false, index: BIG }, ok: true, v: 1 }))).toEqual({
      ok: true,
      result: { index: BIG, duplicate: false },
    })
    expect(decodeResponse('presence', encode({ v: 1, ok: true, result: { index: BIG, active: true } }))).toEqual({
      ok: true,
      result: { active: true, index: BIG },
    })
    const notLeader = decodeResponse(
      'get',
      encode({ error: { leader, message: 'replica 2 leads', code: 'NOT_LEADER' }, ok: false, v: 1 }),
    )
    expect(notLeader.ok === false && notLeader.error.leader).toEqual(leader)
    const session = decodeSessionResponse(
      map([
        ['id', int('uint64', REQUEST_ID_MAX)],
        ['ok', raw(true)],
        ['v', int('int8', 1)],
        ['result', raw({ index: BIG, duplicate: true })],
      ]),
      () => 'submit',
    )
    expect(session).toEqual({ id: REQUEST_ID_MAX, response: { ok: true, result: { index: BIG, duplicate: true } } })
    expect(
      decodeSessionResponse(
        encode({ v: 1, ok: false, error: { code: 'INVALID', message: 'bad frame' } }),
        () => undefined,
      ),
    ).toMatchObject({
      id: undefined,
      response: { ok: false },
    })
  })
})

function shuffled<T>(items: readonly T[], seed: number): T[] {
  const copy = [...items]
  let state = seed >>> 0
  for (let i = copy.length - 1; i > 0; i--) {
    state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0
    const j = state % (i + 1)
    ;[copy[i], copy[j]] = [copy[j]!, copy[i]!]
  }
  return copy
}

const vOf = (seed: number): Uint8Array => int(FORMATS[seed % FORMATS.length]!, 1)

// ---------------------------------------------------------------------------------------------

describe('what the document forbids, refused', () => {
  const asFloat = (value: unknown): Uint8Array => encode(value, { forceIntegerToFloat: true })
  const asFloat32 = (value: unknown): Uint8Array => encode(value, { forceIntegerToFloat: true, forceFloat32: true })

  it('floats where integers belong, 1.0 for v included', () => {
    // forceIntegerToFloat writes every number as a float 64 (forceFloat32: float 32).
    expect(codeOf(() => decodeRequest(asFloat({ v: 1, op: 'status' })))).toBe('INVALID')
    expect(codeOf(() => decodeRequest(asFloat32({ v: 1, op: 'status' })))).toBe('INVALID')
    const cases: Record<string, Uint8Array> = {
      'v 1.0': map([
        ['v', asFloat(1)],
        ['op', raw('status')],
      ]),
      'id 7.0': map([
        ['v', raw(1)],
        ['id', asFloat(7)],
        ['op', raw('status')],
      ]),
      'since.index 5.0': map([
        ['v', raw(1)],
        ['op', raw('since')],
        ['index', asFloat(5)],
        ['limit', raw(1)],
      ]),
      'since.limit 1.5': map([
        ['v', raw(1)],
        ['op', raw('since')],
        ['index', raw(0)],
        ['limit', raw(1.5)],
      ]),
      'watch.fromIndex as float 32': map([
        ['v', raw(1)],
        ['op', raw('watch')],
        ['fromIndex', asFloat32(2)],
      ]),
      'delta.seq 2^32 + 1 as float 64': raw({
        v: 1,
        op: 'submit',
        delta: { originPeerId: worker, seq: BIG + 0.5, fields: {} },
      }),
      'filter.updatedSinceMs as float 64': map([
        ['v', raw(1)],
        ['op', raw('list')],
        ['filter', map([['updatedSinceMs', asFloat(T0)]])],
      ]),
    }
    const floatSeq = map([
      ['originPeerId', raw(worker)],
      ['seq', asFloat(BIG)],
      ['fields', raw({})],
    ])
    cases['delta.seq as float 64'] = map([
      ['v', raw(1)],
      ['op', raw('submit')],
      ['delta', floatSeq],
    ])
    const floatField = map([
      ['originPeerId', raw(worker)],
      ['seq', raw(1)],
      ['fields', map([['returnedItems', asFloat(3)]])],
    ])
    cases['delta.fields.returnedItems as float 64'] = map([
      ['v', raw(1)],
      ['op', raw('submit')],
      ['delta', floatField],
    ])
    for (const [name, bytes] of Object.entries(cases))
      expect(
        codeOf(() => decodeRequest(bytes)),
        name,
      ).toBe('INVALID')
    // Responses, records, gossip, Raft: the same rule.
    expect(
      codeOf(() =>
        decodeResponse('submit', encode({ v: 1, ok: true, result: { index: 2.0 + 0.5, duplicate: false } })),
      ),
    ).toBe('INVALID')
    expect(
      codeOf(() =>
        decodeResponse(
          'submit',
          map([
            ['v', raw(1)],
            ['ok', raw(true)],
            [
              'result',
              map([
                ['index', asFloat(2)],
                ['duplicate', raw(false)],
              ]),
            ],
          ]),
        ),
      ),
    ).toBe('INVALID')
    const floatRecord = encode([
      2,
      RECORD_FIELDS.map((field) => (field === 'lastUpdatedMs' ? 0.5 : bigRecord(1)[field])),
    ])
    expect(
      codeOf(() => decodeResponse('get', encode({ v: 1, ok: true, result: { record: floatRecord, index: 1 } }))),
    ).toBe('INVALID')
    const msgpackrStyleRecord = asFloat([2, RECORD_FIELDS.map((field) => bigRecord(1)[field])])
    expect(
      codeOf(() =>
        decodeResponse('get', encode({ v: 1, ok: true, result: { record: msgpackrStyleRecord, index: 1 } })),
      ),
    ).toBe('INVALID')
    expect(
      codeOf(() =>
        decodeGossipDelta(
          map([
            ['v', asFloat(1)],
            ['delta', raw({ originPeerId: worker, seq: 1, fields: {} })],
          ]),
        ),
      ),
    ).toBe('INVALID')
    expect(() => decodeRaftFrame(asFloat([1, { type: 'heartbeat', from: 1, to: 2, term: 3 }]), 1, 2)).toThrow(/float/)
  })

  it('negatives in every signed format, and integers above 2^53 - 1', () => {
    for (const negative of [-1, -32, -33, -128, -129, -32_768, -32_769, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 40)]) {
      const bytes = raw({ v: 1, op: 'since', index: negative, limit: 1 })
      expect(
        codeOf(() => decodeRequest(bytes)),
        String(negative),
      ).toBe('INVALID')
    }
    for (const tooBig of [2n ** 53n, 2n ** 63n, 2n ** 64n - 1n]) {
      const bytes = encode({ v: 1, op: 'watch', fromIndex: tooBig }, { useBigInt64: true })
      expect(
        codeOf(() => decodeRequest(bytes)),
        String(tooBig),
      ).toBe('INVALID')
    }
    const int64Over = map([
      ['v', raw(1)],
      ['op', raw('watch')],
      ['fromIndex', Uint8Array.of(0xd3, 0, 0x20, 0, 0, 0, 0, 0, 0)],
    ])
    expect(codeOf(() => decodeRequest(int64Over))).toBe('INVALID')
    expect(codeOf(() => decodeRequest(raw({ v: 1, id: -1, op: 'status' })))).toBe('INVALID')
    expect(codeOf(() => decodeRequest(raw({ v: 1, id: REQUEST_ID_MAX + 1, op: 'status' })))).toBe('INVALID')
    expect(codeOf(() => decodeRequest(raw({ v: -1, op: 'status' })))).toBe('INVALID')
  })

  it('unknown and repeated keys, non-string keys, extension types, trailing bytes, empty payloads', () => {
    const cases: Record<string, Uint8Array> = {
      'unknown key': raw({ v: 1, op: 'status', extra: 1 }),
      'unknown delta key': raw({ v: 1, op: 'submit', delta: { originPeerId: worker, seq: 1, fields: {}, note: 'x' } }),
      'unknown filter key': raw({ v: 1, op: 'list', filter: { color: 'red' } }),
      'repeated key': map([
        ['v', raw(1)],
        ['op', raw('status')],
        ['op', raw('status')],
      ]),
      'repeated key, other values': map([
        ['v', raw(1)],
        ['op', raw('since')],
        ['index', raw(1)],
        ['limit', raw(1)],
        ['index', raw(2)],
      ]),
      'a number as key': raw(
        new Map<unknown, unknown>([
          ['v', 1],
          ['op', 'status'],
          [1, 'x'],
        ]),
      ),
      'a timestamp extension': raw({ v: 1, op: 'since', index: new Date(T0), limit: 1 }),
      'an extension as bytes': raw({ v: 1, op: 'get', peerId: new ExtData(5, Uint8Array.of(1, 2)) }),
      'an extension as the whole frame': raw(new ExtData(1, Uint8Array.of(0x80))),
      'trailing bytes': concat([raw({ v: 1, op: 'status' }), Uint8Array.of(0xc0)]),
      'two frames in one': concat([raw({ v: 1, op: 'status' }), raw({ v: 1, op: 'status' })]),
      'empty payload': new Uint8Array(),
      nil: raw(null),
      'an array': raw([1, 'status']),
      'v 2': raw({ v: 2, op: 'status' }),
      'v missing': raw({ op: 'status' }),
      'nil for a value that is not "or nil"': raw({ v: 1, op: 'get', peerId: worker, consistency: null }),
      'a string for an integer': raw({ v: 1, op: 'since', index: '1', limit: 1 }),
      'bin for a string': raw({ v: 1, op: 'get', peerId: new TextEncoder().encode(worker) }),
    }
    for (const [name, bytes] of Object.entries(cases))
      expect(
        codeOf(() => decodeRequest(bytes)),
        name,
      ).toBe('INVALID')
    expect(codeOf(() => decodeResponse('get', raw({ v: 1, ok: true, result: { record: 'not bin', index: 1 } })))).toBe(
      'INVALID',
    )
    expect(
      codeOf(() => decodeResponse('get', concat([encodeResponse('get', results.get[0]!), Uint8Array.of(0)]))),
    ).toBe('INVALID')
    const recordWithTrailing = concat([recordBin(bigRecord(1)), Uint8Array.of(0)])
    expect(
      codeOf(() => decodeResponse('get', raw({ v: 1, ok: true, result: { record: recordWithTrailing, index: 1 } }))),
    ).toBe('INVALID')
    expect(
      codeOf(() => decodeGossipDelta(raw({ v: 1, delta: { originPeerId: worker, seq: 1, fields: {} }, x: 1 }))),
    ).toBe('INVALID')
    expect(() => decodeRaftFrame(raw([1, { type: 'heartbeat', from: 1, to: 2, term: 3, extra: 1 }]), 1, 2)).toThrow(
      /unknown key/,
    )
    expect(() => decodeRaftFrame(raw([1, { type: 'heartbeat', from: 1, to: 2, term: new Date(0) }]), 1, 2)).toThrow(
      /extension/,
    )
  })

  it('TOO_LARGE where the document says so', () => {
    expect(codeOf(() => decodeRequest(raw({ v: 1, op: 'since', index: 0, limit: 10_001 })))).toBe('TOO_LARGE')
    expect(codeOf(() => decodeRequest(raw({ v: 1, op: 'list', filter: { limit: 1001 } })))).toBe('TOO_LARGE')
    expect(codeOf(() => decodeRequest(raw({ v: 1, op: 'since', index: 0, limit: 0 })))).toBe('INVALID')
    expect(codeOf(() => decodeRequest(raw({ v: 1, op: 'get', peerId: 'Q'.repeat(129) })))).toBe('TOO_LARGE')
    const manyAddresses = Array.from({ length: 33 }, (_, i) => `/ip4/10.0.0.${i}/tcp/4001`)
    expect(
      codeOf(() =>
        decodeRequest(
          raw({ v: 1, op: 'submit', delta: { originPeerId: worker, seq: 1, fields: { multiaddrs: manyAddresses } } }),
        ),
      ),
    ).toBe('TOO_LARGE')
    expect(
      codeOf(() =>
        decodeRequest(
          raw({ v: 1, op: 'submit', delta: { originPeerId: worker, seq: 1, fields: { version: 'v'.repeat(65) } } }),
        ),
      ),
    ).toBe('TOO_LARGE')
    expect(codeOf(() => decodeRequest(new Uint8Array(API_REQUEST_FRAME_BYTES_MAX + 1)))).toBe('TOO_LARGE')
    const longMessage = raw({ v: 1, ok: false, error: { code: 'TIMEOUT', message: 'm'.repeat(1025) } })
    expect(codeOf(() => decodeResponse('get', longMessage))).toBe('TOO_LARGE')
  })
})
