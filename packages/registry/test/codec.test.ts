import fc from 'fast-check'
import { Packr, Unpackr } from 'msgpackr'

import { describe, expect, it } from 'vitest'
import {
  CODEC_VERSION,
  COMMAND_BYTES_MAX,
  MULTIADDR_LENGTH_MAX,
  MULTIADDRS_MAX,
  PEER_ID_LENGTH_MAX,
  RECORD_BYTES_MAX,
  RECORD_FIELDS,
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
  encodeSnapshot,
  packWire,
} from '../src/index.ts'
import { recordToArray } from '../src/codec.ts'
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
    expect(codeOf(() => decodeCommand(packAny([2, T0, 4, 1000])))).toBe('UNSUPPORTED_VERSION')
    expect(codeOf(() => decodeCommand(packAny([CODEC_VERSION, T0, 4, 1000])))).toBe('none')
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

  it('detects a flipped bit with CORRUPT', () => {
    const bytes = encodeSnapshot(state)
    bytes[bytes.length - 3]! ^= 0x10
    expect(codeOf(() => decodeSnapshot(bytes))).toBe('CORRUPT')
  })

  it('rejects another version, a bad header and unsorted records', () => {
    const bytes = encodeSnapshot(state)
    bytes[4] = 2
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
