/**
 * @nodeledger/protocol: what crosses the wire between clients, workers and replicas. Protocol ids,
 * the API's messages and their codecs, framing over libp2p streams, and the error codes.
 * docs/PROTOCOL.md is the normative description; this package implements it.
 *
 * @example
 * ```ts
 * import { API_PROTOCOL, API_RESPONSE_FRAME_BYTES_MAX, decodeResponse, encodeRequest, frameStream, readFrame, writeFrame } from '@nodeledger/protocol'
 *
 * const stream = await libp2p.dialProtocol(replica, API_PROTOCOL, { signal })
 * const lp = frameStream(stream, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX })
 * await writeFrame(lp, encodeRequest({ op: 'get', peerId }), { signal })
 * const response = decodeResponse('get', await readFrame(lp, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX, signal }))
 * if (!response.ok) throw response.error  // a ProtocolError; NOT_LEADER carries `leader`
 * response.result.record                  // NodeData | null, validated by the registry's decoder
 * ```
 */

export * from './constants.ts'
export { PROTOCOL_ERROR_CODES, ProtocolError, RETRYABLE_ERROR_CODES, errorFromWire, errorToWire, isProtocolError, isRetryable } from './errors.ts'
export type { LeaderHint, ProtocolErrorCode, WireError } from './errors.ts'
export { CONSISTENCIES, CONSISTENCY_DEFAULT, OPS, ROLES } from './messages.ts'
export type {
  ApiRequest,
  ApiRequestInit,
  ApiResponse,
  Consistency,
  GetRequest,
  GetResult,
  ListRequest,
  ListResult,
  MemberStatus,
  Op,
  ResultByOp,
  Role,
  SinceRequest,
  SinceResult,
  StatusRequest,
  StatusResult,
  SubmitRequest,
  SubmitResult,
  WatchEvent,
  WatchFrame,
  WatchRequest,
} from './messages.ts'
export {
  checkPeerId,
  checkWireError,
  decodeRequest,
  decodeResponse,
  decodeWatchFrame,
  encodeErrorResponse,
  encodeRequest,
  encodeResponse,
  encodeWatchEvent,
  packValue,
} from './codec.ts'
export { frameStream, readFrame, streamError, writeFrame } from './framing.ts'
export type { FrameStreamOptions, ReadFrameOptions, WriteFrameOptions } from './framing.ts'
