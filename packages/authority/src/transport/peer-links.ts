import type { Connection, Libp2p, PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { CODE_P2P, multiaddr } from '@multiformats/multiaddr'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'
import {
  FRAME_BYTES_MAX_DEFAULT,
  INBOUND_STREAMS_PER_CONNECTION_MAX,
  LINK_DIAL_TIMEOUT_MS,
  OUTBOUND_STREAMS_PER_CONNECTION_MAX,
  QUEUE_BYTES_MAX_DEFAULT,
  QUEUE_FRAMES_MAX_DEFAULT,
  RECONNECT_BACKOFF_BASE_MS_DEFAULT,
  RECONNECT_BACKOFF_MAX_MS_DEFAULT,
  REFUSED_PEERS_LOGGED_MAX,
  REPLICA_PEER_TAG,
  REPLICA_PEER_TAG_VALUE,
} from './constants.ts'
import { TransportError } from './errors.ts'
import { badFrameCode, frameStream } from './framing.ts'
import { OutboundLink } from './link.ts'
import { LinkCells } from '../metrics/cells.ts'
import type { PeerLinkState } from '../metrics/cells.ts'

/** Where a configured peer is: its peer id and a dialable multiaddr ending in `/p2p/<peerId>`. */
export interface PeerAddress {
  readonly peerId: string
  readonly multiaddr: string
}

export interface PeerLinksOptions {
  readonly libp2p: Libp2p
  /** One protocol id per PeerLinks, e.g. '/nodeledger/raft/1'. */
  readonly protocol: string
  /** The other replicas by node id (never `self`). Only their peer ids may open `protocol`. */
  readonly peers: ReadonlyMap<number, PeerAddress>
  readonly self: number
  /** One frame from an allowed peer, in the order that peer sent it. Must not throw (a throw is logged and counted). */
  readonly onFrame: (from: number, frame: Uint8Array) => void
  /** The last connection to that peer closed (a dead process is seen within milliseconds). */
  readonly onPeerDown: (id: number) => void
  readonly logger: Logger
  /** Frames queued per peer before send() drops; QUEUE_FRAMES_MAX_DEFAULT. */
  readonly queueFramesMax?: number
  /** Bytes queued per peer before send() drops; QUEUE_BYTES_MAX_DEFAULT, at least frameBytesMax. */
  readonly queueBytesMax?: number
  /** Largest frame sent or accepted; FRAME_BYTES_MAX_DEFAULT. Larger inbound frames close their stream. */
  readonly frameBytesMax?: number
  readonly reconnectBackoffBaseMs?: number
  readonly reconnectBackoffMaxMs?: number
  /** One attempt to open a link's stream; LINK_DIAL_TIMEOUT_MS. */
  readonly dialTimeoutMs?: number
  /** Jitter source for the backoff (a seeded one in tests); Math.random by default. */
  readonly random?: () => number
  /** Where the links count what they send, receive and drop (the replica's metrics); default: cells of its own. */
  readonly metrics?: LinkCells
}

export interface PeerLinksStats {
  /** Frames handed to a stream (written, possibly still in socket buffers). */
  framesSent: number
  bytesSent: number
  /** Frames read from allowed peers and passed to onFrame. */
  framesReceived: number
  bytesReceived: number
  /** All frames send() refused or lost: the sum of the four below. */
  framesDropped: number
  framesDroppedQueueFull: number
  framesDroppedUnknownPeer: number
  framesDroppedTooLarge: number
  /** Taken from the queue, but the stream died before it accepted them. */
  framesDroppedInFlight: number
  /** Inbound frames over frameBytesMax or with a malformed length: each closed its stream. */
  framesInvalid: number
  /** onFrame threw; the frame was dropped, the stream kept. */
  frameHandlerErrors: number
  inboundAccepted: number
  /** Inbound streams from peer ids that are not configured peers, aborted at once. */
  inboundRefused: number
  streamsOpened: number
  /** Outbound streams opened again after a link's first one. */
  reconnects: number
  dialFailures: number
  /** onPeerDown calls. */
  peerDowns: number
  /** Current totals over all peers' queues. */
  queuedFrames: number
  queuedBytes: number
}

/**
 * The long-lived message links between replicas for one protocol: to each configured peer one
 * outbound stream (OutboundLink: lazy, kept open, bounded queue, reconnect with backoff), and from
 * each one inbound stream read frame by frame into onFrame. Peer ids are authenticated by Noise;
 * an inbound stream from any peer id not in `peers` is aborted and counted.
 *
 * Peer death is taken from libp2p's `peer:disconnect` (the last connection to a configured peer
 * closed), which a dead process triggers as soon as its kernel closes the sockets.
 *
 * @example
 * ```ts
 * const links = new PeerLinks({ libp2p, protocol: RAFT_PROTOCOL, peers, self: 1, logger,
 *   onFrame: (from, frame) => node.step(decode(frame)), onPeerDown: (id) => node.reportUnreachable(id) })
 * await links.start()
 * links.send(2, frame) // false: dropped and counted; Raft retransmits
 * await links.stop()
 * ```
 */
export class PeerLinks {
  private readonly libp2p: Libp2p
  private readonly protocol: string
  private readonly self: number
  private readonly onFrame: (from: number, frame: Uint8Array) => void
  private readonly onPeerDown: (id: number) => void
  private readonly logger: Logger
  private readonly queueFramesMax: number
  private readonly queueBytesMax: number
  private readonly frameBytesMax: number
  private readonly reconnectBackoffBaseMs: number
  private readonly reconnectBackoffMaxMs: number
  private readonly dialTimeoutMs: number
  private readonly random: () => number

  private peers = new Map<number, { readonly peerId: PeerId; readonly multiaddr: Multiaddr }>()
  private idByPeerId = new Map<string, number>()
  private readonly links = new Map<number, OutboundLink>()
  private readonly inbound = new Map<number, Stream>()
  private readonly retiring = new Set<Promise<void>>()
  private readonly refusedLogged = new Set<string>()
  private state: 'new' | 'started' | 'stopped' = 'new'

  /** Per peer (each link adds to its own by reference) and for all peers: the metrics' cells. */
  private readonly counters: LinkCells

  constructor(options: PeerLinksOptions) {
    this.libp2p = options.libp2p
    this.protocol = options.protocol
    this.self = options.self
    this.onFrame = options.onFrame
    this.onPeerDown = options.onPeerDown
    this.queueFramesMax = positiveInteger('queueFramesMax', options.queueFramesMax ?? QUEUE_FRAMES_MAX_DEFAULT)
    this.frameBytesMax = positiveInteger('frameBytesMax', options.frameBytesMax ?? FRAME_BYTES_MAX_DEFAULT)
    this.queueBytesMax = positiveInteger(
      'queueBytesMax',
      options.queueBytesMax ?? Math.max(QUEUE_BYTES_MAX_DEFAULT, this.frameBytesMax),
    )
    this.reconnectBackoffBaseMs = positiveInteger(
      'reconnectBackoffBaseMs',
      options.reconnectBackoffBaseMs ?? RECONNECT_BACKOFF_BASE_MS_DEFAULT,
    )
    this.reconnectBackoffMaxMs = positiveInteger(
      'reconnectBackoffMaxMs',
      options.reconnectBackoffMaxMs ?? RECONNECT_BACKOFF_MAX_MS_DEFAULT,
    )
    this.dialTimeoutMs = positiveInteger('dialTimeoutMs', options.dialTimeoutMs ?? LINK_DIAL_TIMEOUT_MS)
    this.random = options.random ?? Math.random
    this.counters = options.metrics ?? new LinkCells()
    this.counters.source = this
    if (this.queueBytesMax < this.frameBytesMax) {
      throw new TransportError(
        'INVALID_CONFIG',
        `queueBytesMax (${this.queueBytesMax}) must be at least frameBytesMax (${this.frameBytesMax}), or a largest frame could never be queued`,
      )
    }
    if (this.reconnectBackoffMaxMs < this.reconnectBackoffBaseMs) {
      throw new TransportError(
        'INVALID_CONFIG',
        `reconnectBackoffMaxMs (${this.reconnectBackoffMaxMs}) must be at least reconnectBackoffBaseMs (${this.reconnectBackoffBaseMs})`,
      )
    }
    if (typeof this.protocol !== 'string' || !this.protocol.startsWith('/'))
      throw new TransportError(
        'INVALID_CONFIG',
        `protocol ${String(this.protocol)} must be a protocol id starting with /`,
      )
    this.logger = options.logger.child({ component: 'peer-links', protocol: this.protocol })
    this.applyPeers(options.peers)
    for (const [id, peer] of this.peers) this.createLink(id, peer.multiaddr)
  }

  /** Registers the protocol handler and the connection listeners. Links open on their first send. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`PeerLinks ${this.protocol}: start() in state ${this.state}`)
    await this.libp2p.handle(this.protocol, this.onInboundStream, {
      maxInboundStreams: INBOUND_STREAMS_PER_CONNECTION_MAX,
      maxOutboundStreams: OUTBOUND_STREAMS_PER_CONNECTION_MAX,
      // Replicas talk directly; never over a relayed, limited connection.
      runOnLimitedConnection: false,
    })
    this.libp2p.addEventListener('peer:disconnect', this.onPeerDisconnect)
    this.libp2p.addEventListener('peer:connect', this.onPeerConnect)
    this.state = 'started'
    for (const link of this.links.values()) link.start()
    await Promise.all([...this.peers.values()].map(async (peer) => this.tagPeer(peer.peerId)))
    this.logger.info({ self: this.self, peers: [...this.peers.keys()] }, 'peer links started')
  }

  /** Unregisters the protocol, closes every link and inbound stream. onPeerDown is not called. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return
    const wasStarted = this.state === 'started'
    this.state = 'stopped'
    this.libp2p.removeEventListener('peer:disconnect', this.onPeerDisconnect)
    this.libp2p.removeEventListener('peer:connect', this.onPeerConnect)
    if (wasStarted)
      await this.libp2p
        .unhandle(this.protocol)
        .catch((error: unknown) => this.logger.debug({ err: error }, 'unhandle failed'))
    await Promise.all([...this.links.values()].map(async (link) => link.stop()))
    this.links.clear()
    for (const [id, stream] of this.inbound) this.closeInbound(id, stream, 'links stopped')
    await Promise.all([...this.retiring])
    this.logger.info(this.stats(), 'peer links stopped')
  }

  /**
   * Queues `frame` for peer `to` and returns at once. False (and a counted drop) when the peer is
   * unknown, the frame is over frameBytesMax, or that peer's queue is full.
   */
  send(to: number, frame: Uint8Array): boolean {
    if (!(frame instanceof Uint8Array)) throw new TypeError('PeerLinks.send: frame must be a Uint8Array')
    const link = this.links.get(to)
    if (link === undefined) {
      this.counters.framesDroppedUnknownPeer += 1
      return false
    }
    if (frame.byteLength > this.frameBytesMax) {
      this.counters.framesDroppedTooLarge += 1
      return false
    }
    if (!link.enqueue(frame)) {
      this.counters.framesDroppedQueueFull += 1
      return false
    }
    return true
  }

  /**
   * Membership changed. Links to removed peers (or peers whose address changed) close and drop their
   * queues; inbound streams from removed peer ids are aborted; new peers get links.
   */
  setPeers(peers: ReadonlyMap<number, PeerAddress>): void {
    if (this.state === 'stopped') throw new Error(`PeerLinks ${this.protocol}: setPeers() after stop()`)
    const before = this.peers
    this.applyPeers(peers)
    for (const [id, old] of before) {
      const now = this.peers.get(id)
      if (now?.peerId.equals(old.peerId) && now.multiaddr.equals(old.multiaddr)) continue
      const link = this.links.get(id)
      if (link !== undefined) this.links.delete(id)
      if (link !== undefined) this.retire(link.stop())
      const stream = this.inbound.get(id)
      if (stream !== undefined && !(now?.peerId.equals(old.peerId) ?? false))
        this.closeInbound(id, stream, 'peer removed from the configuration')
    }
    for (const [id, peer] of this.peers) {
      if (this.links.has(id)) continue
      this.createLink(id, peer.multiaddr)
      if (this.state === 'started') this.retire(this.tagPeer(peer.peerId))
    }
    this.logger.info({ peers: [...this.peers.keys()] }, 'peers changed')
  }

  /** Totals over every peer this PeerLinks has linked to. */
  stats(): PeerLinksStats {
    let queuedFrames = 0
    let queuedBytes = 0
    for (const link of this.links.values()) {
      queuedFrames += link.queuedFrames
      queuedBytes += link.queuedBytes
    }
    const c = this.counters
    const perPeer = {
      framesSent: 0,
      bytesSent: 0,
      framesReceived: 0,
      bytesReceived: 0,
      framesDroppedInFlight: 0,
      streamsOpened: 0,
      reconnects: 0,
      dialFailures: 0,
    }
    for (const [, peer] of c.peers()) {
      for (const key of Object.keys(perPeer) as Array<keyof typeof perPeer>) perPeer[key] += peer[key]
    }
    const framesDropped =
      c.framesDroppedQueueFull + c.framesDroppedUnknownPeer + c.framesDroppedTooLarge + perPeer.framesDroppedInFlight
    return {
      ...perPeer,
      framesDroppedQueueFull: c.framesDroppedQueueFull,
      framesDroppedUnknownPeer: c.framesDroppedUnknownPeer,
      framesDroppedTooLarge: c.framesDroppedTooLarge,
      framesInvalid: c.framesInvalid,
      frameHandlerErrors: c.frameHandlerErrors,
      inboundAccepted: c.inboundAccepted,
      inboundRefused: c.inboundRefused,
      peerDowns: c.peerDowns,
      framesDropped,
      queuedFrames,
      queuedBytes,
    }
  }

  /** Each configured peer's link now (metrics, at scrape time). */
  *linkStates(): Iterable<PeerLinkState> {
    for (const [peer, link] of this.links) {
      yield {
        peer,
        outboundUp: link.open,
        inboundUp: this.inbound.get(peer)?.status === 'open',
        queuedFrames: link.queuedFrames,
        queuedBytes: link.queuedBytes,
      }
    }
  }

  // ---------------------------------------------------------------------------------------------

  /** Validates `peers` and installs the new maps; the caller reconciles the links. */
  private applyPeers(peers: ReadonlyMap<number, PeerAddress>): void {
    const parsed = new Map<number, { peerId: PeerId; multiaddr: Multiaddr }>()
    const idByPeerId = new Map<string, number>()
    const self = this.libp2p.peerId.toString()
    for (const [id, peer] of peers) {
      if (!Number.isSafeInteger(id) || id < 0)
        throw new TransportError('INVALID_CONFIG', `peer id ${id} is not a non-negative integer`)
      if (id === this.self)
        throw new TransportError('INVALID_CONFIG', `peers include self (${id}); links are to the other replicas`)
      const entry = parsePeer(id, peer)
      const key = entry.peerId.toString()
      if (key === self) throw new TransportError('INVALID_CONFIG', `peer ${id} has this host's own peer id ${key}`)
      const other = idByPeerId.get(key)
      if (other !== undefined)
        throw new TransportError('INVALID_CONFIG', `peers ${other} and ${id} have the same peer id ${key}`)
      idByPeerId.set(key, id)
      parsed.set(id, entry)
    }
    this.peers = parsed
    this.idByPeerId = idByPeerId
  }

  private createLink(id: number, address: Multiaddr): void {
    const link = new OutboundLink({
      id,
      multiaddr: address,
      libp2p: this.libp2p,
      protocol: this.protocol,
      queueFramesMax: this.queueFramesMax,
      queueBytesMax: this.queueBytesMax,
      frameBytesMax: this.frameBytesMax,
      reconnectBackoffBaseMs: this.reconnectBackoffBaseMs,
      reconnectBackoffMaxMs: this.reconnectBackoffMaxMs,
      dialTimeoutMs: this.dialTimeoutMs,
      random: this.random,
      counters: this.counters.peer(id),
      logger: this.logger.child({ peer: id }),
    })
    this.links.set(id, link)
    if (this.state === 'started') link.start()
  }

  private readonly onInboundStream = (stream: Stream, connection: Connection): void => {
    const remote = connection.remotePeer.toString()
    const id = this.state === 'started' ? this.idByPeerId.get(remote) : undefined
    if (id === undefined) {
      this.refuse(stream, remote, connection)
      return
    }
    this.counters.inboundAccepted += 1
    // A peer holds one outbound link per protocol: a new stream means it gave up on the old one.
    const previous = this.inbound.get(id)
    this.inbound.set(id, stream)
    if (previous !== undefined) this.closeInbound(id, previous, 'superseded by a newer stream from the same peer')
    this.retire(this.readInbound(id, stream))
  }

  private refuse(stream: Stream, remote: string, connection: Connection): void {
    this.counters.inboundRefused += 1
    stream.abort(new TransportError('UNAUTHORIZED', `peer ${remote} is not a configured replica for ${this.protocol}`))
    if (this.refusedLogged.has(remote) || this.refusedLogged.size > REFUSED_PEERS_LOGGED_MAX) return
    this.refusedLogged.add(remote)
    const last = this.refusedLogged.size > REFUSED_PEERS_LOGGED_MAX
    this.logger.warn(
      {
        peer: remote,
        remoteAddr: connection.remoteAddr.toString(),
        ...(last ? { furtherRefusalsOnlyCounted: true } : {}),
      },
      'inbound stream refused: not a configured replica',
    )
  }

  private async readInbound(id: number, stream: Stream): Promise<void> {
    const reader = frameStream(stream, this.frameBytesMax)
    const logger = this.logger.child({ peer: id })
    const received = this.counters.peer(id)
    logger.debug('inbound stream accepted')
    try {
      for (;;) {
        const frame = (await reader.read()).subarray()
        received.framesReceived += 1
        received.bytesReceived += frame.byteLength
        try {
          this.onFrame(id, frame)
        } catch (error) {
          this.counters.frameHandlerErrors += 1
          logger.error({ err: error }, 'onFrame threw; frame dropped')
        }
      }
    } catch (error) {
      if (this.inbound.get(id) === stream) this.inbound.delete(id)
      const code = badFrameCode(error)
      if (code !== undefined) {
        this.counters.framesInvalid += 1
        const message = error instanceof Error ? error.message : String(error)
        logger.warn({ code, err: message }, 'inbound frame refused; stream closed')
        stream.abort(new TransportError(code, message))
        return
      }
      // The peer closed its link (EOF), reset it, or the connection went: close our half too.
      logger.debug({ err: error instanceof Error ? error.name : String(error) }, 'inbound stream ended')
      if (stream.status === 'open')
        await stream
          .close({ signal: AbortSignal.timeout(1_000) })
          .catch((closeError: unknown) => stream.abort(closeError as Error))
    }
  }

  private closeInbound(id: number, stream: Stream, why: string): void {
    if (this.inbound.get(id) === stream) this.inbound.delete(id)
    stream.abort(new TransportError('CLOSED', why))
  }

  private readonly onPeerDisconnect = (event: CustomEvent<PeerId>): void => {
    const id = this.idByPeerId.get(event.detail.toString())
    if (id === undefined) return
    this.counters.peerDowns += 1
    this.logger.info({ peer: id }, 'peer down: last connection closed')
    try {
      this.onPeerDown(id)
    } catch (error) {
      this.logger.error({ peer: id, err: error }, 'onPeerDown threw')
    }
  }

  private readonly onPeerConnect = (event: CustomEvent<PeerId>): void => {
    const id = this.idByPeerId.get(event.detail.toString())
    if (id === undefined) return
    this.logger.debug({ peer: id }, 'peer connected')
    this.links.get(id)?.nudge()
  }

  /** Tags a replica in the peer store so the connection pruner leaves its connection alone. */
  private async tagPeer(peerId: PeerId): Promise<void> {
    try {
      await this.libp2p.peerStore.merge(peerId, { tags: { [REPLICA_PEER_TAG]: { value: REPLICA_PEER_TAG_VALUE } } })
    } catch (error) {
      this.logger.warn({ peerId: peerId.toString(), err: error }, 'could not tag replica peer')
    }
  }

  /** Tracks background work (stopping a link, a reader) so that stop() can wait for it. */
  private retire(work: Promise<void>): void {
    const tracked = work
      .catch((error: unknown) => this.logger.error({ err: error }, 'background transport task failed'))
      .finally(() => this.retiring.delete(tracked))
    this.retiring.add(tracked)
  }
}

function parsePeer(id: number, peer: PeerAddress): { peerId: PeerId; multiaddr: Multiaddr } {
  let peerId: PeerId
  try {
    peerId = peerIdFromString(peer.peerId)
  } catch (error) {
    throw new TransportError('INVALID_CONFIG', `peer ${id}: ${JSON.stringify(peer.peerId)} is not a peer id`, {
      cause: error,
    })
  }
  let address: Multiaddr
  try {
    address = multiaddr(peer.multiaddr)
  } catch (error) {
    throw new TransportError('INVALID_CONFIG', `peer ${id}: ${JSON.stringify(peer.multiaddr)} is not a multiaddr`, {
      cause: error,
    })
  }
  const last = address.getComponents().at(-1)
  if (last === undefined || last.code !== CODE_P2P) {
    address = address.encapsulate(`/p2p/${peerId.toString()}`)
  } else if (last.value !== peerId.toString()) {
    throw new TransportError(
      'INVALID_CONFIG',
      `peer ${id}: multiaddr ${peer.multiaddr} names peer ${last.value ?? '?'}, not ${peerId.toString()}`,
    )
  }
  return { peerId, multiaddr: address }
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new TransportError('INVALID_CONFIG', `${name} must be a positive integer, got ${value}`)
  return value
}
