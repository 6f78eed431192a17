import fc from 'fast-check'
import { Packr, Unpackr } from 'msgpackr'
import { createHash } from 'node:crypto'
import { crc32 } from 'node:zlib'

import { describe, expect, it } from 'vitest'
import {
  CODEC_VERSION,
  COMMAND_BYTES_MAX,
  MULTIADDR_LENGTH_MAX,
  MULTIADDRS_MAX,
  PEER_ID_LENGTH_MAX,
  RECORD_BYTES_MAX,
  LAST_LEFT_REASONS,
  RECORD_FIELDS,
  RECORD_FIELDS_V1,
  REPLICAS_MAX,
  RegistryError,
  SELF_REPORTED_FIELDS,
  VERSION_LENGTH_MAX,
  decodeCommand,
  decodeRecord,
  decodeSnapshot,
  emptyRecord,
  encodeCommand,
  encodeRecord,
  encodeRecordForDigest,
  encodeSnapshot,
  packWire,
  recordHash,
  recordsDigest,
} from '../src/index.ts'
import { SNAPSHOT_COUNTERS, recordToArray } from '../src/codec.ts'
import type { CommandEnvelope, NodeData, RegistryErrorCode } from '../src/index.ts'
import { REPLICA_A, deltaCommand, fullFields, observation, packAny, peerId } from './helpers.ts'

/** A delta's wire fields from a plain object, for hand-made (possibly invalid) commands. */
function wire(fields: Record<string, unknown>): unknown[] {
  return Object.entries(fields).flatMap(([name, value]) => [SELF_REPORTED_FIELDS.indexOf(name as never), value])
}

const T0 = 1_700_000_000_000

function codeOf(run: () => unknown): RegistryErrorCode | 'none' {
  try {
    run()
    return 'none'
  } catch (error) {
    if (error instanceof RegistryError) return error.code
    throw error
  }
}

describe('command codec', () => {
  const commands: CommandEnvelope[] = [
    { timestampMs: T0, command: deltaCommand(peerId(1), 1, fullFields(1)) },
    { timestampMs: T0, command: deltaCommand(peerId(1), 2, {}) },
    { timestampMs: T0, command: deltaCommand(peerId(1), 3, { version: '2.0.0' }, REPLICA_A) },
    { timestampMs: T0, command: observation(REPLICA_A, peerId(2), 'joined') },
    { timestampMs: T0, command: observation(REPLICA_A, peerId(2), 'left') },
    { timestampMs: T0, command: { kind: 'replica-reset', replicaPeerId: REPLICA_A } },
    { timestampMs: T0, command: { kind: 'expire', ttlMs: 60_000 } },
    { timestampMs: T0, command: { kind: 'replicas', replicaPeerIds: [peerId(5), peerId(4)].sort() } },
  ]

  it('round-trips every command kind', () => {
    for (const envelope of commands) expect(decodeCommand(encodeCommand(envelope))).toEqual(envelope)
  })

  it('writes a delta carrying a full record in about 300 bytes', () => {
    const bytes = encodeCommand(commands[0]!)
    expect(bytes.length).toBeGreaterThan(250)
    expect(bytes.length).toBeLessThan(400)
  })

  it('writes equal deltas as equal bytes, whatever the field order of the object', () => {
    const a = encodeCommand({ timestampMs: T0, command: deltaCommand(peerId(1), 1, { version: '1', isStaked: true }) })
    const b = encodeCommand({ timestampMs: T0, command: deltaCommand(peerId(1), 1, { isStaked: true, version: '1' }) })
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true)
  })

  it('keeps earlier results intact when it encodes again (msgpackr reuses its buffer)', () => {
    const first = encodeCommand(commands[0]!)
    const copy = Uint8Array.from(first)
    for (const envelope of commands) encodeCommand(envelope)
    expect(Uint8Array.from(first)).toEqual(copy)
  })

  it('refuses to encode what it could not decode', () => {
    const bad = { timestampMs: T0, command: deltaCommand('not-a-peer', 1, {}) }
    expect(codeOf(() => encodeCommand(bad))).toBe('INVALID')
  })

  it('rejects an unknown version with UNSUPPORTED_VERSION', () => {
    expect(codeOf(() => decodeCommand(packAny([CODEC_VERSION + 1, T0, 4, 1000])))).toBe('UNSUPPORTED_VERSION')
    expect(codeOf(() => decodeCommand(packAny([0, T0, 4, 1000])))).toBe('UNSUPPORTED_VERSION')
    expect(codeOf(() => decodeCommand(packAny([CODEC_VERSION, T0, 4, 1000])))).toBe('none')
  })

  it('reads version 1 commands, as Raft logs written before version 2 hold them, and says so', () => {
    const command = { kind: 'liveness', replicaPeerId: REPLICA_A, peerId: peerId(1), active: false, reason: 'ttl' }
    expect(decodeCommand(packWire([1, T0, 6, REPLICA_A, peerId(1), false, 3]))).toEqual({
      timestampMs: T0,
      command,
      version: 1,
    })
    // What this build writes is the current version, and decodes without a version key.
    const bytes = encodeCommand({ timestampMs: T0, command: command as CommandEnvelope['command'] })
    expect(new Unpackr({ useRecords: false, int64AsType: 'number' }).unpack(bytes)[0]).toBe(CODEC_VERSION)
    expect(decodeCommand(bytes)).not.toHaveProperty('version')
  })

  it('rejects malformed envelopes with INVALID', () => {
    const cases: unknown[] = [
      { v: 1 },
      [],
      ['1', T0, 4, 1000],
      [CODEC_VERSION, 0, 4, 1000], // stamp at the epoch
      [CODEC_VERSION, -5, 4, 1000],
      [CODEC_VERSION, 1.5, 4, 1000],
      [CODEC_VERSION, T0, 9, 1000], // unknown kind
      [CODEC_VERSION, T0, 4, 1000, 'extra'],
      [CODEC_VERSION, T0, 4, 0], // ttl 0
      [CODEC_VERSION, T0, 2, REPLICA_A, peerId(1), 3], // event 3
      [CODEC_VERSION, T0, 1, peerId(1), peerId(1), 0, wire({})], // seq 0
      [CODEC_VERSION, T0, 1, peerId(1), peerId(1), 1, wire({ isActive: true })], // observed field in a delta
      [CODEC_VERSION, T0, 1, peerId(1), peerId(1), 1, wire({ originSeq: 9 })],
      [CODEC_VERSION, T0, 1, peerId(1), peerId(1), 1, wire({ isStaked: 'yes' })],
      [CODEC_VERSION, T0, 1, peerId(1), peerId(1), 1, wire({ timeouts: -1 })],
      [CODEC_VERSION, T0, 1, peerId(1), peerId(1), 1, wire({ ethAddress: '0x12' })],
      [CODEC_VERSION, T0, 1, peerId(1), peerId(1), 1, wire({ version: 'bad\u0000version' })],
      [CODEC_VERSION, T0, 1, peerId(1), peerId(1), 1, wire({ multiaddrs: ['/ip4/1.2.3.4/tcp/99999'] })],
      [
        CODEC_VERSION,
        T0,
        1,
        peerId(1),
        peerId(1),
        1,
        wire({ multiaddrs: ['/ip4/1.2.3.4/tcp/1', '/ip4/1.2.3.4/tcp/1'] }),
      ],
      [CODEC_VERSION, T0, 1, peerId(1), peerId(1), 1, {}],
      [CODEC_VERSION, T0, 1, peerId(1), peerId(1), 1, [3, true, 1, true]], // ids not ascending
      [CODEC_VERSION, T0, 1, peerId(1), peerId(1), 1, [99, true]],
      [CODEC_VERSION, T0, 1, peerId(1), peerId(1), 1, [1]],
      [CODEC_VERSION, T0, 5, [peerId(2), peerId(1)].sort().reverse()], // unsorted replica set
    ]
    for (const value of cases)
      expect(
        codeOf(() => decodeCommand(packAny(value))),
        JSON.stringify(value),
      ).toBe('INVALID')
  })

  it('accepts only canonical peer ids and multiaddrs', () => {
    const cid = 'bafzaajaiaejcbzcnbisdhwpv7kwhdkggx3p4urlfmrbd7d7eqbb6zxyidi7kvkux' // a CIDv1 form
    expect(codeOf(() => decodeCommand(packAny([CODEC_VERSION, T0, 3, cid])))).toBe('INVALID')
    expect(
      codeOf(() => decodeCommand(packAny([CODEC_VERSION, T0, 3, 'QmNotARealPeerIdButBase58XXXXXXXXXXXXXXXXXXX']))),
    ).toBe('INVALID')
    const sloppy = [CODEC_VERSION, T0, 1, peerId(1), peerId(1), 1, wire({ multiaddrs: ['/ip4/1.2.3.4/tcp/0001'] })]
    expect(codeOf(() => decodeCommand(packAny(sloppy)))).toBe('INVALID')
  })

  it('enforces the limits with TOO_LARGE', () => {
    const many = Array.from({ length: MULTIADDRS_MAX + 1 }, (_, i) => `/ip4/10.0.0.${i}/tcp/4001`)
    const tooMany = [CODEC_VERSION, T0, 1, peerId(1), peerId(1), 1, wire({ multiaddrs: many })]
    expect(codeOf(() => decodeCommand(packAny(tooMany)))).toBe('TOO_LARGE')
    const longAddress = `/dns4/${'a'.repeat(MULTIADDR_LENGTH_MAX)}.com/tcp/1`
    expect(
      codeOf(() =>
        decodeCommand(packAny([CODEC_VERSION, T0, 1, peerId(1), peerId(1), 1, wire({ multiaddrs: [longAddress] })])),
      ),
    ).toBe('TOO_LARGE')
    expect(
      codeOf(() =>
        decodeCommand(
          packAny([
            CODEC_VERSION,
            T0,
            1,
            peerId(1),
            peerId(1),
            1,
            wire({ version: 'v'.repeat(VERSION_LENGTH_MAX + 1) }),
          ]),
        ),
      ),
    ).toBe('TOO_LARGE')
    expect(codeOf(() => decodeCommand(packAny([CODEC_VERSION, T0, 3, 'A'.repeat(PEER_ID_LENGTH_MAX + 1)])))).toBe(
      'TOO_LARGE',
    )
    const replicas = Array.from({ length: REPLICAS_MAX + 1 }, (_, i) => peerId(100 + i)).sort()
    expect(codeOf(() => decodeCommand(packAny([CODEC_VERSION, T0, 5, replicas])))).toBe('TOO_LARGE')
    expect(codeOf(() => decodeCommand(new Uint8Array(COMMAND_BYTES_MAX + 1)))).toBe('TOO_LARGE')
  })

  it('rejects empty input and non-bytes', () => {
    expect(codeOf(() => decodeCommand(new Uint8Array()))).toBe('INVALID')
    expect(codeOf(() => decodeCommand('hello' as unknown as Uint8Array))).toBe('INVALID')
  })

  it('never throws anything but RegistryError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 512 }), (bytes) => {
        const code = codeOf(() => decodeCommand(bytes))
        expect(code === 'none' || code === 'INVALID' || code === 'UNSUPPORTED_VERSION' || code === 'TOO_LARGE').toBe(
          true,
        )
      }),
      { numRuns: 3000 },
    )
  })

  it('never throws anything but RegistryError on corrupted valid commands', () => {
    const valid = commands.map((envelope) => encodeCommand(envelope))
    fc.assert(
      fc.property(
        fc.constantFrom(...valid),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.nat(),
        (bytes, flips, cut) => {
          const mutated = Uint8Array.from(bytes)
          for (const [at, value] of flips) mutated[at % mutated.length] = value
          for (const candidate of [mutated, mutated.subarray(0, cut % (mutated.length + 1))]) {
            const code = codeOf(() => decodeCommand(candidate))
            expect(['none', 'INVALID', 'UNSUPPORTED_VERSION', 'TOO_LARGE']).toContain(code)
          }
        },
      ),
      { numRuns: 2000 },
    )
  })

  it('rejects hostile msgpack: deep nesting, huge declared lengths, record definitions, extensions', () => {
    const deep = new Uint8Array(10_000).fill(0x91) // array of array of array …
    expect(codeOf(() => decodeCommand(deep))).toBe('INVALID')
    const hugeArray = Uint8Array.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0x01])
    expect(codeOf(() => decodeCommand(hugeArray))).toBe('INVALID')
    const hugeString = Uint8Array.from([0xdb, 0x7f, 0xff, 0xff, 0xff, 0x41])
    expect(codeOf(() => decodeCommand(hugeString))).toBe('INVALID')
    // msgpackr record definition (ext 0x72) followed by a use of it: decodes to an object, not an array.
    const record = Uint8Array.from([0xd4, 0x72, 0x40, 0x91, 0xa1, 0x61, 0x01])
    expect(codeOf(() => decodeCommand(record))).toBe('INVALID')
    const timestamp = Uint8Array.from([0xd6, 0xff, 0x00, 0x00, 0x00, 0x01])
    expect(codeOf(() => decodeCommand(timestamp))).toBe('INVALID')
    const uint64 = packWire([CODEC_VERSION, T0, 4, 1000]) // T0 as a uint 64
    expect(
      codeOf(() =>
        decodeCommand(Uint8Array.from([0x94, 0x01, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x04, 0x01])),
      ),
    ).toBe('INVALID')
    expect(codeOf(() => decodeCommand(uint64))).toBe('none')
  })
})

describe('record codec', () => {
  function maximalRecord(): NodeData {
    return {
      ...emptyRecord(peerId(1)),
      ...fullFields(1),
      multiaddrs: Array.from(
        { length: MULTIADDRS_MAX },
        (_, i) => `/dns4/${String(i).padStart(2, '0')}${'a'.repeat(290)}.com/tcp/4001`,
      ),
      version: 'v'.repeat(VERSION_LENGTH_MAX),
      observers: Array.from({ length: REPLICAS_MAX }, (_, i) => peerId(500 + i)).sort(),
      isActive: true,
      firstJoinedMs: T0,
      lastJoinedMs: T0 + 10,
      lastUpdatedMs: T0 + 20,
      originSeq: Number.MAX_SAFE_INTEGER,
      changedIndex: Number.MAX_SAFE_INTEGER,
      returnedItems: Number.MAX_SAFE_INTEGER,
    }
  }

  it('writes record fields in RECORD_FIELDS order', () => {
    const record = maximalRecord()
    expect(recordToArray(record)).toEqual(RECORD_FIELDS.map((field) => record[field]))
  })

  it('writes integers from 2^32 on (epoch milliseconds, indexes) as uint 64, never as float 64', () => {
    // A reader that tells the formats apart: msgpackr's default returns a uint 64 as a bigint, a float 64 as a number.
    const formats = new Unpackr({ useRecords: false })
    const record = maximalRecord()
    const fields = (formats.unpack(encodeRecord(record)) as [number, unknown[]])[1]
    for (const field of ['firstJoinedMs', 'lastJoinedMs', 'lastUpdatedMs', 'originSeq', 'changedIndex'] as const) {
      expect(fields[RECORD_FIELDS.indexOf(field)], field).toBe(BigInt(record[field]))
    }
    const command = formats.unpack(encodeCommand({ timestampMs: T0, command: { kind: 'expire', ttlMs: 1000 } }))
    expect((command as unknown[])[1], 'command.timestampMs').toBe(BigInt(T0))
  })

  it('refuses a record whose integers are float 64, as msgpackr writes integers from 2^32 on', () => {
    const record = maximalRecord()
    const asMsgpackrWritesIt = new Packr({ useRecords: false }).pack([CODEC_VERSION, recordToArray(record)])
    expect(codeOf(() => decodeRecord(asMsgpackrWritesIt))).toBe('INVALID')
    expect(decodeRecord(encodeRecord(record))).toEqual(record)
  })

  it('round-trips a record', () => {
    const record = { ...emptyRecord(peerId(3)), ...fullFields(3) }
    expect(decodeRecord(encodeRecord(record))).toEqual(record)
  })

  /** A node that joined and left: the record a lastLeftReason belongs to. */
  function leftRecord(id: number, lastLeftReason: NodeData['lastLeftReason']): NodeData {
    return {
      ...emptyRecord(peerId(id)),
      ...fullFields(id),
      firstJoinedMs: T0,
      lastJoinedMs: T0,
      lastLeftMs: T0 + 10,
      lastLeftReason,
      lastUpdatedMs: T0 + 10,
      uptimeAccumulatedMs: 10,
    }
  }

  it('writes version 2: 26 fields, lastLeftReason last, and round-trips every reason', () => {
    for (const reason of LAST_LEFT_REASONS) {
      const record = leftRecord(3, reason)
      const bytes = encodeRecord(record)
      const [version, fields] = new Unpackr({ useRecords: false, int64AsType: 'number' }).unpack(bytes) as [
        number,
        unknown[],
      ]
      expect(version).toBe(2)
      expect(fields).toHaveLength(26)
      expect(fields[25]).toBe(reason)
      expect(decodeRecord(bytes)).toEqual(record)
    }
  })

  it('reads version 1 records (25 fields, as caches and snapshots of version 1 hold them) with lastLeftReason empty', () => {
    const record = leftRecord(3, '')
    const version1 = packWire([1, recordToArray(record).slice(0, RECORD_FIELDS_V1)])
    expect(decodeRecord(version1)).toEqual(record)
    expect(decodeRecord(version1, { verify: false })).toEqual(record)
    // Each version has exactly its own field count.
    expect(codeOf(() => decodeRecord(packWire([1, recordToArray(record)])))).toBe('INVALID')
    expect(codeOf(() => decodeRecord(packWire([2, recordToArray(record).slice(0, RECORD_FIELDS_V1)])))).toBe('INVALID')
    expect(codeOf(() => decodeRecord(packWire([3, recordToArray(record)])))).toBe('UNSUPPORTED_VERSION')
  })

  it('refuses a lastLeftReason that is not one, or one for a node that never left', () => {
    const fields = recordToArray(leftRecord(3, 'ttl'))
    for (const bad of ['heartbeat', 'TTL', 3, null]) {
      expect(
        codeOf(() => decodeRecord(packWire([2, [...fields.slice(0, 25), bad]]))),
        String(bad),
      ).toBe('INVALID')
    }
    const neverLeft = { ...emptyRecord(peerId(3)), lastLeftReason: 'left' as const }
    expect(codeOf(() => decodeRecord(encodeRecord(neverLeft)))).toBe('INVALID')
    // A node that left, reason unknown (a version 1 leave): valid.
    expect(decodeRecord(encodeRecord(leftRecord(3, '')))).toEqual(leftRecord(3, ''))
  })

  it('hashes a record for the digest as the oldest version that holds it', () => {
    const sha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex')
    const unknown = leftRecord(3, '')
    const version1 = packWire([1, recordToArray(unknown).slice(0, RECORD_FIELDS_V1)])
    // No reason: the version 1 bytes, so a version 1 build's digest (and a backup's) is unchanged.
    expect(encodeRecordForDigest(unknown)).toEqual(version1)
    expect(recordHash(unknown).toString('hex')).toBe(sha(version1))
    // A reason: the version 2 bytes, so the digest covers it.
    const ttl = leftRecord(3, 'ttl')
    expect(encodeRecordForDigest(ttl)).toEqual(encodeRecord(ttl))
    expect(recordsDigest([ttl])).not.toBe(recordsDigest([unknown]))
    expect(recordsDigest([ttl])).not.toBe(recordsDigest([leftRecord(3, 'left')]))
  })

  it('fits the largest record the field limits allow within RECORD_BYTES_MAX', () => {
    const bytes = encodeRecord(maximalRecord())
    expect(bytes.length).toBeLessThanOrEqual(RECORD_BYTES_MAX)
    expect(decodeRecord(bytes)).toEqual(maximalRecord())
  })

  it('rejects records that break an invariant', () => {
    const activeWithoutObserver = {
      ...emptyRecord(peerId(3)),
      isActive: true,
      firstJoinedMs: T0,
      lastJoinedMs: T0,
      lastUpdatedMs: T0,
    }
    expect(codeOf(() => decodeRecord(encodeRecord(activeWithoutObserver)))).toBe('INVALID')
    const tooMuchUptime = {
      ...emptyRecord(peerId(3)),
      firstJoinedMs: T0,
      lastJoinedMs: T0,
      lastLeftMs: T0 + 10,
      lastUpdatedMs: T0 + 10,
      uptimeAccumulatedMs: 11,
    }
    expect(codeOf(() => decodeRecord(encodeRecord(tooMuchUptime)))).toBe('INVALID')
  })
})

describe('snapshot codec', () => {
  const state = {
    appliedIndex: 10,
    clockMs: T0 + 100,
    replicaPeerIds: [REPLICA_A],
    counters: {
      entriesApplied: 5,
      entriesStale: 3,
      entriesRejected: 2,
      deltasReplayed: 1,
      deltasStale: 2,
      observationsIgnored: 0,
    },
    records: [peerId(1), peerId(2), peerId(3)]
      .sort()
      .map((id, i) => ({ ...emptyRecord(id), ...fullFields(i), lastUpdatedMs: T0, originSeq: 1, changedIndex: i + 1 })),
  }

  it('round-trips', () => {
    expect(decodeSnapshot(encodeSnapshot(state))).toEqual(state)
    expect(decodeSnapshot(encodeSnapshot(state), { verify: false })).toEqual(state)
  })

  it('reads a version 1 snapshot (25-field records), as data dirs of version 1 hold them', () => {
    const left = {
      ...state.records[0]!,
      firstJoinedMs: T0 - 50,
      lastJoinedMs: T0 - 50,
      lastLeftMs: T0 - 40,
      uptimeAccumulatedMs: 10,
    }
    const records = [left, ...state.records.slice(1)]
    const body = packWire([
      state.appliedIndex,
      state.clockMs,
      state.replicaPeerIds,
      SNAPSHOT_COUNTERS.map((name) => state.counters[name]),
      records.map((record) => recordToArray(record).slice(0, RECORD_FIELDS_V1)),
    ])
    const header = new Uint8Array(9)
    header.set([0x4e, 0x4c, 0x52, 0x53, 1])
    new DataView(header.buffer).setUint32(5, crc32(body), false)
    const version1 = Uint8Array.from([...header, ...body])
    expect(decodeSnapshot(version1)).toEqual({ ...state, records })
    expect(decodeSnapshot(version1).records[0]!.lastLeftReason).toBe('')
    // Written again, it is version 2.
    expect(encodeSnapshot(decodeSnapshot(version1))[4]).toBe(2)
  })

  it('detects a flipped bit with CORRUPT', () => {
    const bytes = encodeSnapshot(state)
    bytes[bytes.length - 3]! ^= 0x10
    expect(codeOf(() => decodeSnapshot(bytes))).toBe('CORRUPT')
  })

  it('rejects another version, a bad header and unsorted records', () => {
    const bytes = encodeSnapshot(state)
    bytes[4] = CODEC_VERSION + 1
    expect(codeOf(() => decodeSnapshot(bytes))).toBe('UNSUPPORTED_VERSION')
    bytes[4] = 0
    expect(codeOf(() => decodeSnapshot(bytes))).toBe('UNSUPPORTED_VERSION')
    expect(codeOf(() => decodeSnapshot(Uint8Array.from([1, 2, 3])))).toBe('INVALID')
    const unsorted = encodeSnapshot({ ...state, records: [...state.records].reverse() })
    expect(codeOf(() => decodeSnapshot(unsorted))).toBe('INVALID')
    const future = encodeSnapshot({ ...state, appliedIndex: 1 })
    expect(codeOf(() => decodeSnapshot(future))).toBe('INVALID')
  })

  it('never throws anything but RegistryError on random bytes behind a valid header', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), fc.boolean(), (body, header) => {
        const bytes = header ? Uint8Array.from([0x4e, 0x4c, 0x52, 0x53, 1, 0, 0, 0, 0, ...body]) : body
        expect(['INVALID', 'CORRUPT', 'UNSUPPORTED_VERSION', 'TOO_LARGE']).toContain(
          codeOf(() => decodeSnapshot(bytes)),
        )
      }),
      { numRuns: 1000 },
    )
  })
})
