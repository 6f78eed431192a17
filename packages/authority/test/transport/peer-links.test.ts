import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, describe, expect, it } from 'vitest'
import { PeerLinks, TransportError } from '../../src/transport/index.ts'
import {
  Fixture,
  PROTOCOL,
  addressOf,
  capturingLogger,
  freePort,
  logger,
  numberedFrame,
  readNumbered,
  waitFor,
  without,
} from './helpers.ts'

const fixture = new Fixture()
afterEach(async () => fixture.cleanup())

describe('PeerLinks', () => {
  it('carries frames both ways between three hosts, in order per sender', async () => {
    const nodes = await fixture.cluster(3)
    const perPair = 300
    for (let sequence = 0; sequence < perPair; sequence++) {
      for (const node of nodes) {
        for (const other of nodes) {
          if (other.id !== node.id) expect(node.links.send(other.id, numberedFrame(node.id, sequence, 64))).toBe(true)
        }
      }
    }
    await waitFor('every frame delivered', () => nodes.every((node) => node.received.length === 2 * perPair))
    for (const node of nodes) {
      for (const other of nodes.filter((candidate) => candidate.id !== node.id)) {
        const fromOther = node.received
          .filter((received) => received.from === other.id)
          .map((received) => readNumbered(received.frame))
        expect(fromOther.every((frame) => frame.sender === other.id)).toBe(true)
        expect(fromOther.map((frame) => frame.sequence)).toEqual(Array.from({ length: perPair }, (_, index) => index))
      }
      const stats = node.links.stats()
      expect(stats.framesSent).toBe(2 * perPair)
      expect(stats.framesReceived).toBe(2 * perPair)
      expect(stats.framesDropped).toBe(0)
      expect(stats.streamsOpened).toBe(2) // one long-lived outbound stream per peer
      expect(stats.inboundAccepted).toBe(2)
    }
  })

  it('carries a frame of exactly frameBytesMax, split across many Yamux frames', async () => {
    const frameBytesMax = 3 * 1024 * 1024
    const [a, b] = await fixture.cluster(2, { frameBytesMax })
    const big = new Uint8Array(frameBytesMax)
    for (let index = 0; index < big.byteLength; index++) big[index] = index % 251
    expect(a!.links.send(2, big)).toBe(true)
    expect(a!.links.send(2, numberedFrame(1, 1))).toBe(true)
    await waitFor('both frames delivered', () => b!.received.length === 2)
    expect(Buffer.compare(b!.received[0]!.frame, big)).toBe(0) // toEqual walks 3 MiB slowly
    expect(readNumbered(b!.received[1]!.frame).sequence).toBe(1)
  })

  it('refuses and counts a host that is not in the peer list, and logs it once', async () => {
    const capture = capturingLogger()
    const [a, b] = await fixture.cluster(2)
    // A second PeerLinks on host a, on its own protocol, to observe refusals with a capturing logger.
    const a2 = fixture.node(1, a!.host, new Map([[2, addressOf(b!.host)]]), {
      logger: capture.logger,
      protocol: `${PROTOCOL}-guarded`,
    })
    await a2.links.start()
    const stranger = await fixture.host()
    const strangerLinks = fixture.node(9, stranger, new Map([[1, addressOf(a!.host)]]), {
      reconnectBackoffBaseMs: 5,
      reconnectBackoffMaxMs: 20,
    })
    await strangerLinks.links.start()
    // The stranger's link keeps trying while it has frames (each stream is refused; it redials after a backoff).
    let sequence = 0
    await waitFor('refusals counted', () => {
      strangerLinks.links.send(1, numberedFrame(9, sequence++))
      return a!.links.stats().inboundRefused >= 3
    })
    // Refused streams either fail negotiation or die at once; either way the link backs off and retries.
    await waitFor(
      'stranger retried',
      () => strangerLinks.links.stats().reconnects + strangerLinks.links.stats().dialFailures >= 2,
    )
    expect(a!.received).toEqual([])
    // Raw streams on the guarded protocol: each is aborted, counted, and the peer logged only once.
    for (let attempt = 0; attempt < 3; attempt++) {
      const stream = await stranger.dialProtocol(a!.host.peerId, `${PROTOCOL}-guarded`)
      await waitFor('stream aborted by the remote', () => stream.status !== 'open')
    }
    await waitFor('three refusals on the guarded protocol', () => a2.links.stats().inboundRefused === 3)
    const refusalLines = capture.lines.filter((line) => line.msg === 'inbound stream refused: not a configured replica')
    expect(refusalLines).toHaveLength(1)
    expect(refusalLines[0]!.peer).toBe(stranger.peerId.toString())
    // The configured peer is still served.
    expect(b!.links.send(1, numberedFrame(2, 0))).toBe(true)
    await waitFor('frame from the configured peer', () => a!.received.length === 1)
  })

  it('drops and counts frames when a peer queue is full instead of growing it', async () => {
    const host = await fixture.host()
    const absent = {
      peerId: peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString(),
      multiaddr: `/ip4/127.0.0.1/tcp/${await freePort()}`,
    }
    const node = fixture.node(1, host, new Map([[2, absent]]), {
      queueFramesMax: 8,
      queueBytesMax: 1024,
      frameBytesMax: 512,
      reconnectBackoffBaseMs: 5,
      reconnectBackoffMaxMs: 20,
    })
    await node.links.start()
    for (let sequence = 0; sequence < 8; sequence++) expect(node.links.send(2, numberedFrame(1, sequence))).toBe(true)
    for (let sequence = 8; sequence < 1000; sequence++)
      expect(node.links.send(2, numberedFrame(1, sequence))).toBe(false)
    let stats = node.links.stats()
    expect(stats.queuedFrames).toBe(8)
    expect(stats.framesDroppedQueueFull).toBe(992)
    expect(stats.framesDropped).toBe(992)
    await waitFor('dials to the absent peer keep failing', () => node.links.stats().dialFailures >= 3)
    expect(node.links.stats().queuedFrames).toBe(8)
    // The byte bound holds too: 8 frames × 16 bytes queued; a 512-byte frame does not fit in 1024 bytes... twice.
    const byteBound = fixture.node(3, host, new Map([[2, absent]]), {
      protocol: `${PROTOCOL}-bytes`,
      queueFramesMax: 100,
      queueBytesMax: 1024,
      frameBytesMax: 512,
    })
    await byteBound.links.start()
    expect(byteBound.links.send(2, new Uint8Array(512))).toBe(true)
    expect(byteBound.links.send(2, new Uint8Array(512))).toBe(true)
    expect(byteBound.links.send(2, new Uint8Array(1))).toBe(false)
    expect(byteBound.links.send(2, new Uint8Array(513))).toBe(false) // over frameBytesMax
    expect(byteBound.links.send(7, new Uint8Array(1))).toBe(false) // unknown peer
    stats = byteBound.links.stats()
    expect([
      stats.framesDroppedQueueFull,
      stats.framesDroppedTooLarge,
      stats.framesDroppedUnknownPeer,
      stats.framesDropped,
    ]).toEqual([1, 1, 1, 3])
    expect(stats.queuedBytes).toBe(1024)
  })

  it('closes a stream that carries an oversized or malformed frame, counts it, and keeps serving', async () => {
    const hostA = await fixture.host()
    const hostB = await fixture.host()
    const a = fixture.node(1, hostA, new Map([[2, addressOf(hostB)]]), { frameBytesMax: 1024 })
    const b = fixture.node(2, hostB, new Map([[1, addressOf(hostA)]]), {
      frameBytesMax: 64 * 1024,
      reconnectBackoffBaseMs: 5,
      reconnectBackoffMaxMs: 20,
    })
    await Promise.all([a.links.start(), b.links.start()])
    expect(b.links.send(1, numberedFrame(2, 0))).toBe(true)
    expect(b.links.send(1, numberedFrame(2, 1, 4096))).toBe(true) // over a's limit
    await waitFor('oversized frame refused', () => a.links.stats().framesInvalid === 1)
    expect(a.received.map((received) => readNumbered(received.frame).sequence)).toEqual([0])
    // b's link notices the reset, reconnects, and later frames flow again.
    await waitFor('b relinks and a frame gets through', () => {
      b.links.send(1, numberedFrame(2, 2))
      return a.received.length > 1
    })
    expect(b.links.stats().reconnects).toBeGreaterThanOrEqual(1)

    // b's own link must not race the raw streams below: a stream from peer 2 supersedes the one
    // before it, so b reconnecting could close a garbage stream before it is written (a CI flake).
    await b.links.stop()
    // A length prefix that never ends (continuation bytes forever), and one of 1025 > 1024 bytes.
    for (const garbage of [new Uint8Array(64).fill(0xff), Uint8Array.of(0x81, 0x08)]) {
      const before = a.links.stats().framesInvalid
      const stream = await hostB.dialProtocol(hostA.peerId, PROTOCOL)
      stream.send(garbage)
      await waitFor('malformed stream closed by a', () => stream.status !== 'open')
      await waitFor('malformed frame counted', () => a.links.stats().framesInvalid === before + 1)
    }
    expect(hostA.status).toBe('started')
  })

  it('setPeers: a removed peer is refused and unknown to send; an added one is served', async () => {
    const [a, b, c] = await fixture.cluster(3)
    a!.links.setPeers(
      without(
        new Map([
          [2, addressOf(b!.host)],
          [3, addressOf(c!.host)],
        ]),
        3,
      ),
    )
    expect(a!.links.send(3, numberedFrame(1, 0))).toBe(false)
    expect(a!.links.stats().framesDroppedUnknownPeer).toBe(1)
    expect(c!.links.send(1, numberedFrame(3, 0))).toBe(true)
    await waitFor('c refused by a', () => a!.links.stats().inboundRefused >= 1)
    expect(a!.received).toEqual([])
    a!.links.setPeers(
      new Map([
        [2, addressOf(b!.host)],
        [3, addressOf(c!.host)],
      ]),
    )
    await waitFor('c served again', () => {
      c!.links.send(1, numberedFrame(3, 1))
      return a!.received.some((received) => received.from === 3)
    })
  })

  it('validates its configuration with typed errors', async () => {
    const host = await fixture.host()
    const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const make = (peers: Map<number, { peerId: string; multiaddr: string }>, extra: object = {}): PeerLinks =>
      new PeerLinks({
        libp2p: host,
        protocol: PROTOCOL,
        peers,
        self: 1,
        logger,
        onFrame: () => {},
        onPeerDown: () => {},
        ...extra,
      })
    const cases: Array<() => PeerLinks> = [
      () => make(new Map([[1, { peerId: other, multiaddr: '/ip4/127.0.0.1/tcp/1' }]])), // self in peers
      () => make(new Map([[2, { peerId: 'not-a-peer-id', multiaddr: '/ip4/127.0.0.1/tcp/1' }]])),
      () => make(new Map([[2, { peerId: other, multiaddr: 'nonsense' }]])),
      () => make(new Map([[2, { peerId: other, multiaddr: `/ip4/127.0.0.1/tcp/1/p2p/${host.peerId.toString()}` }]])), // wrong /p2p
      () => make(new Map([[2, { peerId: host.peerId.toString(), multiaddr: '/ip4/127.0.0.1/tcp/1' }]])), // own peer id
      () =>
        make(
          new Map([
            [2, { peerId: other, multiaddr: '/ip4/127.0.0.1/tcp/1' }],
            [3, { peerId: other, multiaddr: '/ip4/127.0.0.1/tcp/2' }],
          ]),
        ),
      () => make(new Map(), { queueFramesMax: 0 }),
      () => make(new Map(), { frameBytesMax: 1024, queueBytesMax: 512 }),
      () => make(new Map(), { reconnectBackoffBaseMs: 100, reconnectBackoffMaxMs: 10 }),
    ]
    for (const attempt of cases) {
      expect(attempt).toThrow(TransportError)
      try {
        attempt()
      } catch (error) {
        expect((error as TransportError).code).toBe('INVALID_CONFIG')
      }
    }
  })
})
