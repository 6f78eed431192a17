import type { TcpNetConnectOpts } from 'node:net'
import { identify } from '@libp2p/identify'
import type { Identify } from '@libp2p/identify'
import type { Libp2p, PrivateKey } from '@libp2p/interface'
import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import type { TCPOptions, TCPSocketOptions } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { CODE_IP4, CODE_IP6, CODE_P2P, CODE_TCP, multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import type { Logger } from 'pino'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import {
  HOST_AGENT_NAME,
  HOST_CONNECTIONS_MAX,
  HOST_DIAL_TIMEOUT_MS,
  HOST_INBOUND_CONNECTIONS_PER_HOST_PER_SECOND_MAX,
  HOST_INCOMING_PENDING_CONNECTIONS_MAX,
  HOST_PING_INTERVAL_MS,
  HOST_STREAM_NEGOTIATION_TIMEOUT_MS,
} from './constants.ts'
import { TransportError } from './errors.ts'

export interface ReplicaHostOptions {
  /** The replica's persisted identity (loadOrCreateKey). */
  readonly privateKey: PrivateKey
  /**
   * TCP multiaddrs to listen on, e.g. `/ip4/127.0.0.2/tcp/7001` (port 0 picks a free port). A
   * trailing `/p2p/<peerId>` is accepted if it names this key's peer id, and stripped.
   */
  readonly listen: readonly string[]
  readonly logger: Logger
}

/** The host's services: identify only (gossipsub and the API are registered on top by others). */
export type ReplicaHost = Libp2p<{ identify: Identify }>

/**
 * A started libp2p host for a replica: TCP only, Noise, Yamux, identify; no peer discovery, no
 * relay, no other transport. Its `getMultiaddrs()` end in `/p2p/<peerId>`. Connection limits are
 * the HOST_* constants (see constants.ts for each reason).
 *
 * A listen address that cannot be bound fails the call (libp2p's default fault tolerance): a
 * replica that is not reachable at its configured address must not run.
 */
export async function createReplicaHost(options: ReplicaHostOptions): Promise<ReplicaHost> {
  const peerId = peerIdFromPrivateKey(options.privateKey).toString()
  const listen = options.listen.map((address) => listenAddress(address, peerId).toString())
  if (listen.length === 0)
    throw new TransportError('INVALID_CONFIG', 'createReplicaHost: at least one listen multiaddr is required')
  const logger = options.logger.child({ component: 'transport', peerId })
  const node = await createLibp2p({
    privateKey: options.privateKey,
    nodeInfo: { name: HOST_AGENT_NAME },
    addresses: { listen },
    transports: [tcp(dialSource(listen))],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery: [],
    services: { identify: identify() },
    connectionManager: {
      maxConnections: HOST_CONNECTIONS_MAX,
      maxIncomingPendingConnections: HOST_INCOMING_PENDING_CONNECTIONS_MAX,
      inboundConnectionThreshold: HOST_INBOUND_CONNECTIONS_PER_HOST_PER_SECOND_MAX,
      dialTimeout: HOST_DIAL_TIMEOUT_MS,
      inboundStreamProtocolNegotiationTimeout: HOST_STREAM_NEGOTIATION_TIMEOUT_MS,
      outboundStreamProtocolNegotiationTimeout: HOST_STREAM_NEGOTIATION_TIMEOUT_MS,
    },
    connectionMonitor: { pingInterval: HOST_PING_INTERVAL_MS },
  })
  const addresses = node.getMultiaddrs().map((address) => address.toString())
  if (!addresses.every((address) => address.endsWith(`/p2p/${peerId}`))) {
    await node.stop()
    throw new Error(
      `createReplicaHost: libp2p announced ${addresses.join(', ')}, expected each to end in /p2p/${peerId}`,
    )
  }
  logger.info({ addresses }, 'libp2p host listening')
  return node
}

const IP_CODES = new Set([CODE_IP4, CODE_IP6])

/**
 * Dials leave from the replica's own listen IP when it has exactly one concrete IPv4 address. On
 * loopback Linux would otherwise pick 127.0.0.1 as every connection's source, and the fault tests'
 * iptables rules, which cut traffic between replica addresses, would never match.
 */
function dialSource(listen: readonly string[]): TCPOptions {
  const first = multiaddr(listen[0]!).getComponents()[0]!
  const sameHost = listen.every((address) => {
    const component = multiaddr(address).getComponents()[0]!
    return component.code === CODE_IP4 && component.value === first.value
  })
  if (!sameHost || first.value === undefined || first.value === '0.0.0.0') return {}
  // @libp2p/tcp spreads dialOpts into net.connect, so Node's localAddress works though its type omits it.
  const dialOpts: TCPSocketOptions & Pick<TcpNetConnectOpts, 'localAddress'> = { localAddress: first.value }
  return { dialOpts }
}

function listenAddress(address: string, peerId: string): Multiaddr {
  let parsed: Multiaddr
  try {
    parsed = multiaddr(address)
  } catch (error) {
    throw new TransportError(
      'INVALID_CONFIG',
      `listen address ${JSON.stringify(address)} is not a multiaddr (${(error as Error).message})`,
      { cause: error },
    )
  }
  const components = parsed.getComponents()
  const last = components.at(-1)
  if (last?.code === CODE_P2P) {
    if (last.value !== peerId)
      throw new TransportError(
        'INVALID_CONFIG',
        `listen address ${address} names peer ${last.value ?? '?'}, but this key is ${peerId}`,
      )
    components.pop()
  }
  if (components.length !== 2 || !IP_CODES.has(components[0]!.code) || components[1]!.code !== CODE_TCP) {
    throw new TransportError(
      'INVALID_CONFIG',
      `listen address ${address} is not /ip4|ip6/<host>/tcp/<port>: replicas listen on TCP only`,
    )
  }
  return multiaddr(components)
}
