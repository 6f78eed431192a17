import { describe, expect, it } from 'vitest'
import { lpStream, streamPair } from '@libp2p/utils'
import { ProtocolError, encodeRequest, frameStream, readFrame, writeFrame } from '../src/index.ts'

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError)
    return (error as ProtocolError).code
  }
  throw new Error('expected a ProtocolError')
}

describe('frames over a stream', () => {
  it('carry bytes and plain values', async () => {
    const [outbound, inbound] = await streamPair()
    const writer = frameStream(outbound, { maxBytes: 1024 })
    const reader = frameStream(inbound, { maxBytes: 1024 })
    const request = encodeRequest({ op: 'status' })
    await writeFrame(writer, request)
    await writeFrame(writer, [1, { type: 'heartbeat' }])
    expect(Array.from(await readFrame(reader, { maxBytes: 1024 }))).toEqual(Array.from(request))
    expect((await readFrame(reader, { maxBytes: 1024 })).length).toBeGreaterThan(0)
  })

  it('a frame over the reader limit is TOO_LARGE before its payload is buffered', async () => {
    const [outbound, inbound] = await streamPair()
    await writeFrame(lpStream(outbound), new Uint8Array(2048))
    expect(await codeOf(readFrame(frameStream(inbound, { maxBytes: 1024 }), { maxBytes: 1024 }))).toBe('TOO_LARGE')
  })

  it('readFrame checks maxBytes even on an lpStream without a limit', async () => {
    const [outbound, inbound] = await streamPair()
    await writeFrame(lpStream(outbound), new Uint8Array(100))
    expect(await codeOf(readFrame(lpStream(inbound), { maxBytes: 10 }))).toBe('TOO_LARGE')
  })

  it('the writer refuses a frame over its maxBytes', async () => {
    const [outbound] = await streamPair()
    expect(await codeOf(writeFrame(lpStream(outbound), new Uint8Array(100), { maxBytes: 10 }))).toBe('TOO_LARGE')
  })

  it('a stream that ends before a frame is UNAVAILABLE', async () => {
    const [outbound, inbound] = await streamPair()
    await outbound.close()
    expect(await codeOf(readFrame(frameStream(inbound, { maxBytes: 1024 }), { maxBytes: 1024 }))).toBe('UNAVAILABLE')
  })

  it('a stream that ends mid-frame is UNAVAILABLE', async () => {
    const [outbound, inbound] = await streamPair()
    outbound.send(Uint8Array.from([10, 1, 2, 3]))
    await outbound.close()
    expect(await codeOf(readFrame(frameStream(inbound, { maxBytes: 1024 }), { maxBytes: 1024 }))).toBe('UNAVAILABLE')
  })

  it('a deadline is TIMEOUT', async () => {
    const [, inbound] = await streamPair()
    const signal = AbortSignal.timeout(20)
    expect(await codeOf(readFrame(frameStream(inbound, { maxBytes: 1024 }), { maxBytes: 1024, signal }))).toBe(
      'TIMEOUT',
    )
  })

  it('a caller abort rethrows the caller reason', async () => {
    const [, inbound] = await streamPair()
    const controller = new AbortController()
    const reason = new Error('caller gave up')
    const read = readFrame(frameStream(inbound, { maxBytes: 1024 }), { maxBytes: 1024, signal: controller.signal })
    controller.abort(reason)
    await expect(read).rejects.toBe(reason)
  })
})
