import { MsgpackError, packWire, unpackWire } from '@nodeledger/registry'
import type { Delta } from '@nodeledger/registry'
import { checkDelta, checkKeys, deltaToWire } from './codec.ts'
import { GOSSIP_DELTA_BYTES_MAX, GOSSIP_DELTA_VERSION } from './constants.ts'
import { ProtocolError } from './errors.ts'

/**
 * Gossiped deltas on DELTAS_TOPIC (PROTOCOL.md "Gossip: /nodeledger/deltas/1"): the message bytes,
 * and the decision a gossipsub topic validator makes about them.
 *
 * A message is one MessagePack map `{ v: 1, delta: { originPeerId, seq, fields } }`, the delta in
 * the same named-field form as a submit request and validated by the same function (codec.ts
 * `checkDelta`, which round-trips it through the registry's command codec), so a delta that gossip
 * accepts is one the leader would accept for the log, and the other way round.
 */

// The wire dialect of PROTOCOL.md "Encoding" (the registry's msgpack.ts), as in codec.ts: integers
// as integers, no floats, no extension types (so no shared structures), each message read from scratch.

const WHAT = 'gossip delta'

/**
 * Encodes a delta for publishing, then decodes the bytes: what we publish must be what every peer's
 * validator accepts (STYLE.md 3, validate right before writing to the wire). Throws ProtocolError
 * INVALID or TOO_LARGE for a delta no peer would accept.
 */
export function encodeGossipDelta(delta: Delta): Uint8Array {
  let bytes: Uint8Array
  try {
    bytes = packWire({ v: GOSSIP_DELTA_VERSION, delta: deltaToWire(delta) })
  } catch (error) {
    const detail = error instanceof MsgpackError ? error.message : 'could not be encoded'
    throw new ProtocolError('INVALID', `${WHAT}: ${detail}`, { cause: error })
  }
  decodeGossipDelta(bytes)
  return bytes
}

/**
 * Decodes and validates the bytes of a gossiped delta. Throws ProtocolError only: TOO_LARGE for more
 * than GOSSIP_DELTA_BYTES_MAX bytes (checked before parsing) or a field beyond its limit, INVALID
 * for anything else that is not exactly a version-1 envelope around a valid delta.
 */
export function decodeGossipDelta(bytes: Uint8Array): Delta {
  try {
    if (!(bytes instanceof Uint8Array)) throw invalid('a Uint8Array')
    if (bytes.length === 0) throw invalid('at least one byte')
    if (bytes.length > GOSSIP_DELTA_BYTES_MAX) {
      throw new ProtocolError('TOO_LARGE', `${WHAT}: ${bytes.length} bytes, at most ${GOSSIP_DELTA_BYTES_MAX}`)
    }
    let value: unknown
    try {
      value = unpackWire(bytes)
    } catch (error) {
      const detail = error instanceof MsgpackError ? error.message : 'not well-formed MessagePack'
      throw new ProtocolError('INVALID', `${WHAT}: ${detail}`, { cause: error })
    }
    const envelope = checkKeys(value, WHAT, ['v', 'delta'], ['v', 'delta'])
    if (envelope.v !== GOSSIP_DELTA_VERSION) {
      const shown = typeof envelope.v === 'number' ? String(envelope.v) : typeof envelope.v
      throw new ProtocolError(
        'INVALID',
        `${WHAT}: unsupported version ${shown}; this build reads v ${GOSSIP_DELTA_VERSION}`,
      )
    }
    return checkDelta(envelope.delta, `${WHAT}.delta`)
  } catch (error) {
    // The promise that this decoder throws ProtocolError and nothing else, whatever the input.
    if (error instanceof ProtocolError) throw error
    throw new ProtocolError('INVALID', `${WHAT}: could not be decoded`, { cause: error })
  }
}

/**
 * The outcome of validating one gossip message. `result` has exactly the string values of
 * gossipsub's `TopicValidatorResult` (`Accept = 'accept'`, `Reject = 'reject'`, `Ignore = 'ignore'`
 * in @libp2p/gossipsub and @chainsafe/libp2p-gossipsub), so a topic validator returns it as is:
 *
 *   accept  deliver the delta and forward the message
 *   reject  drop it and penalise the peer that sent it (gossipsub's P4, invalid messages): the
 *           message is malformed, oversized, or forged (its delta's origin is not its signer)
 *   ignore  drop it without penalty: a well-formed delta from its own origin that is no news (a
 *           late duplicate or an overtaken seq), which an honest peer can relay
 */
export type GossipValidationResult = 'accept' | 'reject' | 'ignore'

/**
 * Why, as a closed set of stable names (for counters and tests); `detail` is for humans and logs.
 *
 *   VALID           accept: a valid delta from its signer, newer than any seq known for its origin
 *   INVALID         reject: not a well-formed version-1 message around a valid delta
 *   TOO_LARGE       reject: beyond GOSSIP_DELTA_BYTES_MAX, or a field beyond its limit
 *   NOT_SIGNER      reject: the delta's originPeerId is not the message's signer
 *   REPLAYED        ignore: seq equals the highest known for the origin (the same delta again)
 *   STALE_SEQUENCE  ignore: seq below the highest known for the origin (overtaken)
 */
export type GossipValidationReason = 'VALID' | 'INVALID' | 'TOO_LARGE' | 'NOT_SIGNER' | 'REPLAYED' | 'STALE_SEQUENCE'

export interface GossipValidation {
  readonly result: GossipValidationResult
  /** The decoded delta; present exactly when `result` is 'accept'. */
  readonly delta?: Delta
  readonly reason: GossipValidationReason
  readonly detail: string
}

/** What a validator needs of a gossipsub message: its bytes and its signer. */
export interface GossipDeltaMessage {
  readonly data: Uint8Array
  /**
   * The message's author, as gossipsub reports it (`message.from.toString()`). Under StrictSign
   * gossipsub has already checked that the message carries `from`, the author's key and a signature
   * by that key over the message, before any topic validator runs; this function relies on that.
   */
  readonly from: string
}

/**
 * The pure decision of the DELTAS_TOPIC validator (PROTOCOL.md "Gossip: /nodeledger/deltas/1"),
 * in this order: the bytes must decode to a valid delta (else reject), the delta's origin must be
 * the signer (else reject: a peer may gossip only its own deltas, and a relay cannot alter a signed
 * message), and its seq must be above `knownSeq(origin)`, the highest seq the caller has seen
 * applied or accepted for that origin, undefined when none (else ignore: a late duplicate is not
 * necessarily the sender's fault). Never throws for any message; `knownSeq` is the caller's.
 *
 * @example
 * ```ts
 * gossipsub.topicValidators.set(DELTAS_TOPIC, (_peer, message) => {
 *   if (message.type !== 'signed') return TopicValidatorResult.Reject
 *   const outcome = validateGossipDelta({ data: message.data, from: message.from.toString() }, (origin) => cache.seq(origin))
 *   return outcome.result as TopicValidatorResult
 * })
 * ```
 */
export function validateGossipDelta(
  message: GossipDeltaMessage,
  knownSeq: (origin: string) => number | undefined,
): GossipValidation {
  let delta: Delta
  try {
    delta = decodeGossipDelta(message.data)
  } catch (error) {
    // decodeGossipDelta throws ProtocolError only; anything else would be our bug, and a validator
    // that crashed would stall gossipsub's pipeline, so it is refused like any bad message.
    const code = error instanceof ProtocolError && error.code === 'TOO_LARGE' ? 'TOO_LARGE' : 'INVALID'
    return { result: 'reject', reason: code, detail: error instanceof Error ? error.message : String(error) }
  }
  if (typeof message.from !== 'string' || delta.originPeerId !== message.from) {
    return {
      result: 'reject',
      reason: 'NOT_SIGNER',
      detail: `origin ${delta.originPeerId} is not the signer ${String(message.from)}`,
    }
  }
  const known = knownSeq(delta.originPeerId)
  if (known !== undefined && !(Number.isSafeInteger(known) && known >= 0)) {
    throw new Error(`validateGossipDelta: knownSeq(${delta.originPeerId}) returned ${String(known)}, not a seq`)
  }
  if (known !== undefined && delta.seq === known) {
    return { result: 'ignore', reason: 'REPLAYED', detail: `seq ${delta.seq} of ${delta.originPeerId} already known` }
  }
  if (known !== undefined && delta.seq < known) {
    return {
      result: 'ignore',
      reason: 'STALE_SEQUENCE',
      detail: `seq ${delta.seq} of ${delta.originPeerId} below known ${known}`,
    }
  }
  return { result: 'accept', delta, reason: 'VALID', detail: `seq ${delta.seq} of ${delta.originPeerId}` }
}

function invalid(expected: string): ProtocolError {
  return new ProtocolError('INVALID', `${WHAT}: expected ${expected}`)
}
