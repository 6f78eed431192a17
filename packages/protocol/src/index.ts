/**
 * @nodeledger/protocol: what crosses the wire between clients, workers and replicas. Protocol ids,
 * the API's messages and their codecs, framing over libp2p streams, the error codes, and the
 * gossiped delta's message format and topic validation (gossip.ts).
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
 *
 * // A session (PROTOCOL.md "Sessions"): many requests on one stream, each with an id, answered in any order.
 * await writeFrame(lp, encodeRequest({ op: 'status' }, 7), { signal })
 * const { id, response: answer } = decodeSessionResponse(await readFrame(lp, { maxBytes: API_RESPONSE_FRAME_BYTES_MAX }), (id) => pending.get(id)?.op)
 * ```
 */

export * from './constants.ts'
export {
  PROTOCOL_ERROR_CODES,
  ProtocolError,
  RETRYABLE_ERROR_CODES,
  errorFromWire,
  errorToWire,
  isProtocolError,
  isRetryable,
} from './errors.ts'
export type { LeaderHint, ProtocolErrorCode, WireError } from './errors.ts'
export { CONSISTENCIES, CONSISTENCY_DEFAULT, MEMBER_ACTIONS, OPS, PRESENCE_EVENTS, ROLES } from './messages.ts'
export type {
  ApiRequest,
  ApiRequestInit,
  ApiResponse,
  Consistency,
  DecodedRequest,
  GetRequest,
  GetResult,
  ListRequest,
  ListResult,
  MemberAction,
  MemberRequest,
  MemberResult,
  MemberStatus,
  Op,
  PresenceEvent,
  PresenceRequest,
  PresenceResult,
  ResultByOp,
  Role,
  SessionResponse,
  SinceRequest,
  SinceResult,
  SnapshotChunk,
  SnapshotEnd,
  SnapshotFrame,
  SnapshotHeader,
  SnapshotRequest,
  StatusRequest,
  StatusResult,
  StreamOp,
  SubmitRequest,
  SubmitResult,
  TransferRequest,
  TransferResult,
  UnaryOp,
  WatchEvent,
  WatchFrame,
  WatchRequest,
} from './messages.ts'
export {
  checkPeerId,
  checkWireError,
  decodeRequest,
  decodeResponse,
  decodeSessionResponse,
  decodeSnapshotFrame,
  decodeWatchFrame,
  encodeErrorResponse,
  encodeRequest,
  checkRequest,
  encodeCheckedRequest,
  encodeResponse,
  encodeSnapshotChunk,
  encodeSnapshotEnd,
  encodeSnapshotHeader,
  encodeWatchEvent,
  packValue,
  peekResponseId,
} from './codec.ts'
export type { CheckedRequest } from './codec.ts'
export {
  READ_SLACK_BYTES,
  boundedLengthDecoder,
  frameStream,
  readFrame,
  streamError,
  varintBytes,
  writeFrame,
  WriteBatcher,
  WRITE_BATCH_BYTES_MAX,
} from './framing.ts'
export type { FrameStreamOptions, ReadFrameOptions, WriteBatcherOptions, WriteFrameOptions } from './framing.ts'
export { deadline } from './deadline.ts'
export { SnapshotAssembler, snapshotFrames } from './snapshot.ts'
export type { SnapshotProgress } from './snapshot.ts'
export { decodeGossipDelta, encodeGossipDelta, validateGossipDelta } from './gossip.ts'
export type { GossipDeltaMessage, GossipValidation, GossipValidationReason, GossipValidationResult } from './gossip.ts'
