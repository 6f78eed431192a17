import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { TransportError, createReplicaHost } from '../../src/transport/index.ts'
import type { ReplicaHost } from '../../src/transport/index.ts'
import { logger } from './helpers.ts'

const hosts: ReplicaHost[] = []
afterEach(async () => {
  await Promise.allSettled(hosts.map(async (host) => host.stop()))
  hosts.length = 0
})

describe('createReplicaHost', () => {
  it('listens on TCP only, with multiaddrs ending in /p2p/<peerId>, and a stated protocol set', async () => {
    const privateKey = await generateKeyPair('Ed25519')
    const peerId = peerIdFromPrivateKey(privateKey).toString()
    // A trailing /p2p/<own id> is accepted (cluster files carry it) and stripped for listening.
    const host = await createReplicaHost({ privateKey, listen: [`/ip4/127.0.0.1/tcp/0/p2p/${peerId}`], logger })
    hosts.push(host)
    expect(host.peerId.toString()).toBe(peerId)
    const addresses = host.getMultiaddrs().map((address) => address.toString())
    expect(addresses).toHaveLength(1)
    expect(addresses[0]).toMatch(new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/[1-9][0-9]*/p2p/${peerId}$`))
    // identify is all a fresh host speaks (PeerLinks and the API server register theirs on top).
    expect(host.getProtocols().every((protocol) => protocol.startsWith('/ipfs/id/'))).toBe(true)
    expect(host.getProtocols()).toContain('/ipfs/id/1.0.0')
  })

  it('two hosts connect with Noise and Yamux', async () => {
    const [a, b] = await Promise.all(
      [0, 1].map(async () =>
        createReplicaHost({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], logger }),
      ),
    )
    hosts.push(a!, b!)
    const connection = await a!.dial(b!.getMultiaddrs()[0]!)
    expect(connection.remotePeer.toString()).toBe(b!.peerId.toString())
    expect(connection.encryption).toBe('/noise')
    expect(connection.multiplexer).toBe('/yamux/1.0.0')
  })

  it('dials from its own listen IP, so iptables rules between replica addresses match (issue 6)', async () => {
    // Loopback would otherwise source every dial from 127.0.0.1.
    const [a, b] = await Promise.all(
      ['127.0.0.21', '127.0.0.22'].map(async (ip) =>
        createReplicaHost({ privateKey: await generateKeyPair('Ed25519'), listen: [`/ip4/${ip}/tcp/0`], logger }),
      ),
    )
    hosts.push(a!, b!)
    await a!.dial(b!.getMultiaddrs()[0]!)
    // The listener registers an inbound connection a moment after the dialer has its side.
    const inbound = await vi.waitFor(() => {
      const connections = b!.getConnections(a!.peerId)
      expect(connections).toHaveLength(1)
      return connections
    })
    expect(inbound[0]!.remoteAddr.toString()).toMatch(/^\/ip4\/127\.0\.0\.21\/tcp\//)
  })

  it('refuses listen addresses that are not plain TCP, or name another peer, with INVALID_CONFIG', async () => {
    const privateKey = await generateKeyPair('Ed25519')
    const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    for (const listen of [
      [],
      ['nonsense'],
      ['/ip4/127.0.0.1/udp/0/quic-v1'],
      ['/ip4/127.0.0.1/tcp/0/ws'],
      [`/ip4/127.0.0.1/tcp/0/p2p/${other}`],
    ]) {
      const error = await createReplicaHost({ privateKey, listen, logger }).then(
        (host) => {
          hosts.push(host)
          return undefined
        },
        (thrown: unknown) => thrown,
      )
      expect(error, JSON.stringify(listen)).toBeInstanceOf(TransportError)
      expect((error as TransportError).code).toBe('INVALID_CONFIG')
    }
  })
})
