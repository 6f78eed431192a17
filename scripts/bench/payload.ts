import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { VERSION_LENGTH_MAX, encodeCommand } from '@nodeledger/registry'
import type { Delta } from '@nodeledger/registry'

/**
 * The value both systems store: a NodeData delta of about VALUE_BYTES_TARGET bytes once encoded as
 * a log entry. nodeledger gets the delta itself; etcd gets a value of the same size (the bytes of
 * that encoded entry), under a key named after the peer id.
 */
export const VALUE_BYTES_TARGET = 300

/**
 * Peer ids (keys) to write to: as many as writes in flight, since a key never has two in flight.
 * With `--submit-as origin` each is also a nodeledger client of its own (one libp2p node each),
 * submitting its own deltas as a worker does, so the pool stays small.
 */
export const PEER_POOL_SIZE_DEFAULT = 64

export interface Peers {
  peerIds: string[]
  privateKeys: PrivateKey[]
}

export async function generatePeers(count: number): Promise<Peers> {
  const peers: Peers = { peerIds: [], privateKeys: [] }
  for (let i = 0; i < count; i++) {
    const privateKey = await generateKeyPair('Ed25519')
    peers.privateKeys.push(privateKey)
    peers.peerIds.push(peerIdFromPrivateKey(privateKey).toString())
  }
  return peers
}

/** Fields the registry accepts: a canonical multiaddr, a version within VERSION_LENGTH_MAX, an eth address. */
function fieldsFor(peerId: string, seq: number, versionLength: number): Delta['fields'] {
  const prefix = `v1.${seq}-`
  return {
    multiaddrs: [`/ip4/10.${seq % 250}.0.1/tcp/4001/p2p/${peerId}`],
    version: (prefix + 'x'.repeat(VERSION_LENGTH_MAX)).slice(0, Math.max(prefix.length, versionLength)),
    ethAddress: `0x${(seq % 0xffffffff).toString(16).padStart(40, '0')}`,
    returnedItems: seq,
  }
}

/**
 * Builds deltas of VALUE_BYTES_TARGET encoded bytes. The version string is the padding: its length
 * is chosen once (from the first peer id, as every Ed25519 peer id has the same length) so that the
 * encoded entry, submitter and stamp included, lands at the target.
 */
export class DeltaFactory {
  readonly encodedBytes: number
  private readonly versionLength: number
  private readonly submitterPeerId: string

  constructor(submitterPeerId: string, samplePeerId: string) {
    this.submitterPeerId = submitterPeerId
    let best = 0
    let bestBytes = 0
    for (let length = 0; length <= VERSION_LENGTH_MAX; length++) {
      const bytes = this.encodedSize(samplePeerId, 1_000_000, length)
      if (bytes <= VALUE_BYTES_TARGET) {
        best = length
        bestBytes = bytes
      }
    }
    this.versionLength = best
    this.encodedBytes = bestBytes
  }

  delta(originPeerId: string, seq: number): Delta {
    return { originPeerId, seq, fields: fieldsFor(originPeerId, seq, this.versionLength) }
  }

  /** The encoded log entry for this delta: the etcd value. */
  encode(originPeerId: string, seq: number): Uint8Array {
    return encodeCommand({
      timestampMs: Date.now(),
      command: { kind: 'delta', submitterPeerId: this.submitterPeerId, delta: this.delta(originPeerId, seq) },
    })
  }

  private encodedSize(peerId: string, seq: number, versionLength: number): number {
    const delta: Delta = { originPeerId: peerId, seq, fields: fieldsFor(peerId, seq, versionLength) }
    return encodeCommand({
      timestampMs: Date.now(),
      command: { kind: 'delta', submitterPeerId: this.submitterPeerId, delta },
    }).length
  }
}
