import type { Message, NodeId } from '@nodeledger/raft'
import { MessageType } from '@nodeledger/raft'
import { RAFT_FRAME_BYTES_MAX } from '../constants.ts'
import { encodeRaftFrame } from '../raft-codec.ts'
import type { PeerLinks } from '../transport/index.ts'
import type { DriverTransport } from './driver.ts'

/**
 * The driver's transport on libp2p: the messages of one call grouped by peer, one frame per peer
 * (a frame over the limit is split in halves until each fits: a burst of AppendEntries to a lagging
 * follower would otherwise be refused whole, and retried whole, forever), snapshot chunks on their
 * own links so a transfer never queues ahead of heartbeats.
 */
export class RaftTransport implements DriverTransport {
  readonly #raftLinks: PeerLinks
  readonly #snapshotLinks: PeerLinks
  readonly #frameBytesMax: number
  readonly counters = { framesSplit: 0 }

  constructor(raftLinks: PeerLinks, snapshotLinks: PeerLinks, frameBytesMax: number = RAFT_FRAME_BYTES_MAX) {
    this.#raftLinks = raftLinks
    this.#snapshotLinks = snapshotLinks
    this.#frameBytesMax = frameBytesMax
  }

  send(messages: readonly Message[]): void {
    if (messages.length === 0) return
    const byPeer = new Map<NodeId, Message[]>()
    for (const message of messages) {
      if (message.type === MessageType.Snapshot) {
        this.#snapshotLinks.send(message.to, encodeRaftFrame([message]))
        continue
      }
      const batch = byPeer.get(message.to)
      if (batch === undefined) byPeer.set(message.to, [message])
      else batch.push(message)
    }
    for (const [peer, batch] of byPeer) this.#sendBatch(peer, batch)
  }

  #sendBatch(peer: NodeId, batch: readonly Message[]): void {
    const frame = encodeRaftFrame(batch)
    if (frame.byteLength <= this.#frameBytesMax || batch.length === 1) {
      // A single message over the limit is refused by the links (counted); Raft's own limits
      // (entriesBytesPerMessageMax, snapshotChunkBytes) keep one message well under it.
      this.#raftLinks.send(peer, frame)
      return
    }
    this.counters.framesSplit++
    const half = Math.ceil(batch.length / 2)
    this.#sendBatch(peer, batch.slice(0, half))
    this.#sendBatch(peer, batch.slice(half))
  }
}
