/**
 * The replica transport: a persisted identity, a libp2p host, and the long-lived message links
 * between replicas (one PeerLinks per protocol).
 *
 * @example
 * ```ts
 * const privateKey = await loadOrCreateKey('replica-1/peer.key')
 * const libp2p = await createReplicaHost({ privateKey, listen: ['/ip4/127.0.0.11/tcp/7001'], logger })
 * const raft = new PeerLinks({ libp2p, protocol: RAFT_PROTOCOL, peers, self: 1, logger,
 *   onFrame: (from, frame) => {}, onPeerDown: (id) => {} })
 * await raft.start()
 * raft.send(2, frame)
 * await raft.stop()
 * await libp2p.stop()
 * ```
 */
export { loadOrCreateKey } from './key.ts'
export { createReplicaHost } from './host.ts'
export type { ReplicaHost, ReplicaHostOptions } from './host.ts'
export { PeerLinks } from './peer-links.ts'
export type { PeerAddress, PeerLinksOptions, PeerLinksStats } from './peer-links.ts'
export { TransportError } from './errors.ts'
export type { TransportErrorCode } from './errors.ts'
export { backoffDelayMs } from './backoff.ts'
export * as transportConstants from './constants.ts'
