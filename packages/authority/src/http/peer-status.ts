import type { Libp2p, Stream } from '@libp2p/interface'
import { multiaddr } from '@multiformats/multiaddr'
import {
  API_PROTOCOL,
  API_RESPONSE_FRAME_BYTES_MAX,
  decodeResponse,
  encodeRequest,
  frameStream,
  readFrame,
  writeFrame,
} from '@nodeledger/protocol'
import type { MemberStatus, StatusResult } from '@nodeledger/protocol'

const STATUS_REQUEST = encodeRequest({ op: 'status' })

/**
 * Ask another member for its status over this replica's own libp2p host, as a client would
 * (PROTOCOL.md "Client API", one request on one stream). The replicas hold connections to each
 * other for Raft, so this is a new stream on one of them, not a new handshake; the multiaddr names
 * the member's peer id, so the answer is authenticated by Noise. Rejects on any failure (refused,
 * timed out through `signal`, an error frame).
 */
export async function peerStatus(libp2p: Libp2p, member: MemberStatus, signal: AbortSignal): Promise<StatusResult> {
  let stream: Stream | undefined
  try {
    stream = await libp2p.dialProtocol(multiaddr(member.multiaddr), API_PROTOCOL, { signal })
    const lp = frameStream(stream, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX })
    await writeFrame(lp, STATUS_REQUEST, { signal })
    const response = decodeResponse('status', await readFrame(lp, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX, signal }))
    if (!response.ok) throw response.error
    return response.result
  } catch (error) {
    stream?.abort(error instanceof Error ? error : new Error('status request failed'))
    stream = undefined
    throw error
  } finally {
    // The server closes after its one response; closing our side releases the stream at once.
    if (stream !== undefined) stream.close().catch(() => {})
  }
}
