import { describe, expect, it } from 'vitest'
import { Packr } from 'msgpackr'
import {
  API_REQUEST_FRAME_BYTES_MAX,
  LIST_LIMIT_DEFAULT,
  LIST_LIMIT_MAX,
  ProtocolError,
  SINCE_LIMIT_MAX,
  decodeRequest,
  decodeResponse,
  decodeSessionResponse,
  decodeWatchFrame,
  encodeErrorResponse,
  encodeRequest,
  encodeResponse,
  encodeWatchEvent,
  errorFromWire,
  errorToWire,
  peekResponseId,
  REQUEST_ID_MAX,
} from '../src/index.ts'
import type { ApiRequest } from '../src/index.ts'
import { packAny, peerId, sampleRecord, sampleStatus } from './helpers.ts'

const worker = peerId(1)

function codeOf(run: () => unknown): string {
  try {
    run()
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError)
    return (error as ProtocolError).code
  }
  throw new Error('expected a ProtocolError')
}

describe('requests round trip', () => {
  const requests: ApiRequest[] = [
    {
      op: 'submit',
      delta: {
        originPeerId: worker,
        seq: 7,
        fields: { isTwitterScraper: true, multiaddrs: ['/ip4/10.0.0.5/tcp/4001'], version: '1.0.0' },
      },
    },
    { op: 'submit', delta: { originPeerId: worker, seq: 1, fields: {} } },
    { op: 'get', peerId: worker, consistency: 'linearizable' },
    { op: 'get', peerId: worker, consistency: 'stale' },
    {
      op: 'list',
      filter: { active: true, staked: false, capability: 'web', updatedSinceMs: 5, afterPeerId: worker, limit: 10 },
      consistency: 'lease',
    },
    { op: 'list', filter: { limit: LIST_LIMIT_DEFAULT }, consistency: 'linearizable' },
    { op: 'since', index: 0, limit: SINCE_LIMIT_MAX },
    { op: 'watch', fromIndex: 99 },
    { op: 'status' },
    { op: 'presence', peerId: worker, event: 'heartbeat' },
    { op: 'presence', peerId: worker, event: 'leave' },
  ]
  for (const request of requests) {
    it(`${request.op} ${JSON.stringify(request).slice(0, 60)}`, () => {
      expect(decodeRequest(encodeRequest(request))).toEqual(request)
    })
  }

  it('fills in the defaults: linearizable reads, a list page of LIST_LIMIT_DEFAULT', () => {
    expect(decodeRequest(encodeRequest({ op: 'get', peerId: worker }))).toEqual({
      op: 'get',
      peerId: worker,
      consistency: 'linearizable',
    })
    expect(decodeRequest(packAny({ v: 1, op: 'list' }))).toEqual({
      op: 'list',
      filter: { limit: LIST_LIMIT_DEFAULT },
      consistency: 'linearizable',
    })
  })
})

describe('responses round trip', () => {
  const records = [sampleRecord(1), sampleRecord(2), sampleRecord(3)].sort((a, b) => (a.peerId < b.peerId ? -1 : 1))

  it('presence', () => {
    for (const result of [
      { active: true, index: 40 },
      { active: false, index: 0 },
    ]) {
      expect(decodeResponse('presence', encodeResponse('presence', result))).toEqual({ ok: true, result })
    }
  })
  it('presence: an unknown event or a missing peer id is INVALID', () => {
    expect(codeOf(() => decodeRequest(packAny({ v: 1, op: 'presence', peerId: worker, event: 'ping' })))).toBe(
      'INVALID',
    )
    expect(codeOf(() => decodeRequest(packAny({ v: 1, op: 'presence', event: 'heartbeat' })))).toBe('INVALID')
    expect(
      codeOf(() => decodeResponse('presence', packAny({ v: 1, ok: true, result: { active: 'yes', index: 1 } }))),
    ).toBe('INVALID')
  })
  it('submit', () => {
    const result = { index: 12, duplicate: true }
    expect(decodeResponse('submit', encodeResponse('submit', result))).toEqual({ ok: true, result })
  })
  it('get, found and not found', () => {
    expect(decodeResponse('get', encodeResponse('get', { record: records[0]!, index: 5 }))).toEqual({
      ok: true,
      result: { record: records[0], index: 5 },
    })
    expect(decodeResponse('get', encodeResponse('get', { record: null, index: 5 }))).toEqual({
      ok: true,
      result: { record: null, index: 5 },
    })
  })
  it('list, with and without a next page', () => {
    const page = { records, index: 9, nextAfterPeerId: records[2]!.peerId }
    expect(decodeResponse('list', encodeResponse('list', page))).toEqual({ ok: true, result: page })
    expect(decodeResponse('list', encodeResponse('list', { records: [], index: 9 }))).toEqual({
      ok: true,
      result: { records: [], index: 9 },
    })
  })
  it('since', () => {
    const changes = { records, throughIndex: 50, more: false }
    expect(decodeResponse('since', encodeResponse('since', changes))).toEqual({ ok: true, result: changes })
  })
  it('status, with and without a leader', () => {
    const status = sampleStatus()
    expect(decodeResponse('status', encodeResponse('status', status))).toEqual({ ok: true, result: status })
    const leaderless = { ...status, role: 'candidate' as const, leader: null }
    expect(decodeResponse('status', encodeResponse('status', leaderless))).toEqual({ ok: true, result: leaderless })
  })
  it('watch events and the error that ends a watch', () => {
    const event = { records, throughIndex: 77 }
    expect(decodeWatchFrame(encodeWatchEvent(event))).toEqual({ ok: true, event })
    const ended = decodeWatchFrame(
      encodeErrorResponse(new ProtocolError('NOT_LEADER', 'lost leadership', { leader: sampleStatus().leader! })),
    )
    expect(ended.ok).toBe(false)
    if (!ended.ok) {
      expect(ended.error.code).toBe('NOT_LEADER')
      expect(ended.error.leader).toEqual(sampleStatus().leader)
    }
  })
  it('every error code, with the leader hint only on NOT_LEADER', () => {
    for (const code of [
      'TIMEOUT',
      'INVALID',
      'UNAUTHORIZED',
      'STALE',
      'TOO_LARGE',
      'UNAVAILABLE',
      'NOT_FOUND',
      'NOT_LEADER',
    ] as const) {
      const response = decodeResponse('get', encodeErrorResponse(new ProtocolError(code, `because ${code}`)))
      expect(response.ok).toBe(false)
      if (!response.ok) {
        expect(response.error).toBeInstanceOf(ProtocolError)
        expect(response.error.code).toBe(code)
        expect(response.error.leader).toBeUndefined()
      }
    }
  })
  it('errors that are not ProtocolErrors go out as UNAVAILABLE without their detail', () => {
    expect(errorToWire(new TypeError('secret detail'))).toEqual({ code: 'UNAVAILABLE', message: 'internal error' })
    expect(errorFromWire({ code: 'STALE', message: 'x' }).code).toBe('STALE')
  })
})

describe('validation', () => {
  it('an unknown version is INVALID and names the versions spoken', () => {
    let error: unknown
    try {
      decodeRequest(packAny({ v: 2, op: 'status' }))
    } catch (caught) {
      error = caught
    }
    expect(error).toBeInstanceOf(ProtocolError)
    expect((error as ProtocolError).code).toBe('INVALID')
    expect((error as ProtocolError).message).toContain('1')
    expect(codeOf(() => decodeResponse('status', packAny({ v: 0, ok: true, result: {} })))).toBe('INVALID')
    expect(codeOf(() => decodeWatchFrame(packAny({ ok: true })))).toBe('INVALID')
  })
  it('an oversized request frame is TOO_LARGE, on both sides', () => {
    expect(codeOf(() => decodeRequest(new Uint8Array(API_REQUEST_FRAME_BYTES_MAX + 1)))).toBe('TOO_LARGE')
    const huge = 'x'.repeat(API_REQUEST_FRAME_BYTES_MAX)
    expect(codeOf(() => encodeRequest({ op: 'get', peerId: huge }))).toBe('TOO_LARGE')
  })
  it('limits beyond their maximum are TOO_LARGE, zero is INVALID', () => {
    expect(codeOf(() => decodeRequest(packAny({ v: 1, op: 'since', index: 0, limit: SINCE_LIMIT_MAX + 1 })))).toBe(
      'TOO_LARGE',
    )
    expect(codeOf(() => decodeRequest(packAny({ v: 1, op: 'since', index: 0, limit: 0 })))).toBe('INVALID')
    expect(codeOf(() => decodeRequest(packAny({ v: 1, op: 'list', filter: { limit: LIST_LIMIT_MAX + 1 } })))).toBe(
      'TOO_LARGE',
    )
  })
  it('unknown ops, unknown keys and missing keys are INVALID', () => {
    expect(codeOf(() => decodeRequest(packAny({ v: 1, op: 'delete' })))).toBe('INVALID')
    expect(codeOf(() => decodeRequest(packAny({ v: 1, op: 'status', extra: 1 })))).toBe('INVALID')
    expect(codeOf(() => decodeRequest(packAny({ v: 1, op: 'watch' })))).toBe('INVALID')
    expect(codeOf(() => decodeRequest(packAny({ v: 1, op: 'get', peerId: worker, consistency: 'eventual' })))).toBe(
      'INVALID',
    )
  })
  it('deltas are checked by the registry: peer ids, seq, field names and values', () => {
    const delta = (d: unknown) => () => decodeRequest(packAny({ v: 1, op: 'submit', delta: d }))
    expect(codeOf(delta({ originPeerId: 'not-a-peer', seq: 1, fields: {} }))).toBe('INVALID')
    expect(codeOf(delta({ originPeerId: worker, seq: 0, fields: {} }))).toBe('INVALID')
    expect(codeOf(delta({ originPeerId: worker, seq: 1, fields: { isActive: true } }))).toBe('INVALID')
    expect(codeOf(delta({ originPeerId: worker, seq: 1, fields: { ethAddress: '0x12' } }))).toBe('INVALID')
    expect(codeOf(delta({ originPeerId: worker, seq: 1, fields: { multiaddrs: ['not a multiaddr'] } }))).toBe('INVALID')
    expect(codeOf(delta({ originPeerId: worker, seq: 1, fields: { version: 'v'.repeat(65) } }))).toBe('TOO_LARGE')
    expect(
      codeOf(
        delta({
          originPeerId: worker,
          seq: 1,
          fields: { multiaddrs: Array.from({ length: 33 }, (_, i) => `/ip4/10.0.0.${i}/tcp/1`) },
        }),
      ),
    ).toBe('TOO_LARGE')
  })
  it('records that break the registry invariants are INVALID', () => {
    const broken = { ...sampleRecord(1), observers: [] } // active without an observer
    expect(codeOf(() => decodeResponse('get', encodeResponse('get', { record: broken, index: 1 })))).toBe('INVALID')
    expect(codeOf(() => decodeResponse('get', packAny({ v: 1, ok: true, result: { record: 'text', index: 1 } })))).toBe(
      'INVALID',
    )
  })
  it('leader hints need multiaddrs ending in the leader peer id, and only come with NOT_LEADER', () => {
    const leader = peerId(5)
    const hint = { id: 2, peerId: leader, multiaddrs: [`/ip4/127.0.0.2/tcp/1/p2p/${peerId(6)}`] }
    expect(
      codeOf(() =>
        decodeResponse('get', packAny({ v: 1, ok: false, error: { code: 'NOT_LEADER', message: '', leader: hint } })),
      ),
    ).toBe('INVALID')
    const good = { ...hint, multiaddrs: [`/ip4/127.0.0.2/tcp/1/p2p/${leader}`] }
    expect(
      codeOf(() =>
        decodeResponse('get', packAny({ v: 1, ok: false, error: { code: 'STALE', message: '', leader: good } })),
      ),
    ).toBe('INVALID')
    expect(
      codeOf(() => decodeResponse('get', packAny({ v: 1, ok: false, error: { code: 'GONE', message: '' } }))),
    ).toBe('INVALID')
  })
  it('encodeErrorResponse throws rather than write an error frame its own decoder refuses', () => {
    const leader = peerId(5)
    const hint = { id: 2, peerId: leader, multiaddrs: [`/ip4/127.0.0.2/tcp/1/p2p/${leader}`] }
    const notLeader = encodeErrorResponse(new ProtocolError('NOT_LEADER', 'replica 2 leads', { leader: hint }), 3)
    const decoded = decodeResponse('submit', notLeader)
    expect(decoded.ok === false && decoded.error.leader).toEqual(hint)
    // What a replica once wrote for a proposal dropped in a leader handover: clients read it as INVALID, final.
    expect(() => encodeErrorResponse(new ProtocolError('UNAVAILABLE', 'dropped', { leader: hint }), 3)).toThrow(
      /clients refuse/,
    )
    const badHint = { ...hint, multiaddrs: [`/ip4/127.0.0.2/tcp/1/p2p/${peerId(6)}`] }
    expect(() => encodeErrorResponse(new ProtocolError('NOT_LEADER', 'x', { leader: badHint }))).toThrow(
      /clients refuse/,
    )
  })
  it('msgpackr records (structures) in input are not trusted', () => {
    const withRecords = new Packr({ useRecords: true })
    const bytes = withRecords.pack({ v: 1, op: 'status' })
    // Whatever msgpackr makes of it, the result is a status request or INVALID, never anything else.
    try {
      expect(decodeRequest(bytes)).toEqual({ op: 'status' })
    } catch (error) {
      expect((error as ProtocolError).code).toBe('INVALID')
    }
  })
  it('a list page out of peer id order is INVALID', () => {
    const records = [sampleRecord(1), sampleRecord(2)].sort((a, b) => (a.peerId < b.peerId ? 1 : -1))
    expect(codeOf(() => decodeResponse('list', encodeResponse('list', { records, index: 1 })))).toBe('INVALID')
  })
  it('a response frame over API_RESPONSE_FRAME_BYTES_MAX is refused when encoding', () => {
    const records = Array.from({ length: 10_000 }, (_, i) => ({
      ...sampleRecord(i),
      version: 'v'.repeat(64),
      multiaddrs: Array.from({ length: 32 }, (_, j) => `/ip4/10.${j}.0.${i % 250}/tcp/4001`),
    }))
    expect(codeOf(() => encodeResponse('since', { records, throughIndex: 1, more: false }))).toBe('TOO_LARGE')
  })
})

describe('session ids (PROTOCOL.md "Sessions")', () => {
  it('a request carries its id right after v, and decodes with it', () => {
    const bytes = encodeRequest({ op: 'get', peerId: worker }, 7)
    expect(Object.keys(new Packr({ useRecords: false }).unpack(bytes))).toEqual([
      'v',
      'id',
      'op',
      'peerId',
      'consistency',
    ])
    expect(decodeRequest(bytes)).toEqual({ op: 'get', peerId: worker, consistency: 'linearizable', id: 7 })
    expect(decodeRequest(encodeRequest({ op: 'status' }, 0))).toEqual({ op: 'status', id: 0 })
    expect(decodeRequest(encodeRequest({ op: 'status' }, REQUEST_ID_MAX)).id).toBe(REQUEST_ID_MAX)
    expect('id' in decodeRequest(encodeRequest({ op: 'status' }))).toBe(false)
  })

  it('an id outside [0, 2^32 - 1] or not an integer is INVALID, whatever the op', () => {
    for (const id of [-1, REQUEST_ID_MAX + 1, 1.5, '1', null, true]) {
      expect(codeOf(() => decodeRequest(packAny({ v: 1, id, op: 'status' })))).toBe('INVALID')
      expect(
        codeOf(() =>
          decodeResponse('status', packAny({ v: 1, id, ok: false, error: { code: 'TIMEOUT', message: '' } })),
        ),
      ).toBe('INVALID')
    }
    expect(codeOf(() => encodeRequest({ op: 'status' }, -1))).toBe('INVALID')
    expect(codeOf(() => encodeResponse('submit', { index: 1, duplicate: false }, 2 ** 32))).toBe('INVALID')
    expect(codeOf(() => encodeErrorResponse(new ProtocolError('TIMEOUT', 'late'), 0.5))).toBe('INVALID')
  })

  it('responses carry the id; decodeResponse accepts it, peekResponseId reads it', () => {
    const result = { index: 3, duplicate: false }
    const bytes = encodeResponse('submit', result, 42)
    expect(peekResponseId(bytes)).toBe(42)
    expect(decodeResponse('submit', bytes)).toEqual({ ok: true, result })
    expect(peekResponseId(encodeResponse('submit', result))).toBeUndefined()
    expect(peekResponseId(encodeErrorResponse(new ProtocolError('NOT_LEADER', 'no'), 9))).toBe(9)
  })

  it('decodeSessionResponse routes by id, decoding as the op of that id', () => {
    const ops = new Map([
      [1, 'submit' as const],
      [2, 'get' as const],
    ])
    const opOf = (id: number) => ops.get(id)
    expect(decodeSessionResponse(encodeResponse('get', { record: null, index: 4 }, 2), opOf)).toEqual({
      id: 2,
      response: { ok: true, result: { record: null, index: 4 } },
    })
    const failed = decodeSessionResponse(encodeErrorResponse(new ProtocolError('STALE', 'old'), 1), opOf)
    expect(failed.id).toBe(1)
    expect(failed.response?.ok === false && failed.response.error.code).toBe('STALE')
    // An id nobody waits for (abandoned after its deadline) is not decoded further.
    expect(decodeSessionResponse(packAny({ v: 1, id: 5, ok: true, result: 'anything' }), opOf)).toEqual({
      id: 5,
      response: undefined,
    })
    // A bad result fails its own request, not the session.
    const bad = decodeSessionResponse(packAny({ v: 1, id: 1, ok: true, result: { index: 0, duplicate: false } }), opOf)
    expect(bad.response?.ok === false && bad.response.error.code).toBe('INVALID')
  })

  it('an error without an id ends the session; a result without one cannot be routed', () => {
    const ended = decodeSessionResponse(encodeErrorResponse(new ProtocolError('INVALID', 'bad frame')), () => 'status')
    expect(ended.id).toBeUndefined()
    expect(ended.response?.ok === false && ended.response.error.code).toBe('INVALID')
    expect(
      codeOf(() => decodeSessionResponse(encodeResponse('submit', { index: 1, duplicate: false }), () => 'submit')),
    ).toBe('INVALID')
    expect(codeOf(() => decodeSessionResponse(packAny({ v: 1, id: -3, ok: true, result: {} }), () => 'submit'))).toBe(
      'INVALID',
    )
    expect(codeOf(() => decodeSessionResponse(new Uint8Array([0xc1]), () => 'submit'))).toBe('INVALID')
  })

  it('watch frames never carry an id', () => {
    expect(
      codeOf(() => decodeWatchFrame(packAny({ v: 1, id: 1, ok: true, event: { records: [], throughIndex: 1 } }))),
    ).toBe('INVALID')
  })
})
