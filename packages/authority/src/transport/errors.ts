/**
 * The error codes of the replica transport (STYLE §9). Codes are stable; messages may change and
 * say what to fix. Tests and callers branch on `code`, never on the message.
 *   INVALID_KEY     the key file is unreadable, not a protobuf-marshalled libp2p key, or not Ed25519
 *   INVALID_CONFIG  a listen address, a peer entry or a numeric limit makes no sense
 *   UNAUTHORIZED    an inbound stream from a peer id that is not a configured replica (abort reason)
 *   TOO_LARGE       a frame beyond frameBytesMax (abort reason of the inbound stream that carried it)
 *   INVALID         a frame whose length prefix does not decode (abort reason)
 *   CLOSED          the links were stopped or the peer removed (abort reason)
 */
export type TransportErrorCode = 'INVALID_KEY' | 'INVALID_CONFIG' | 'UNAUTHORIZED' | 'TOO_LARGE' | 'INVALID' | 'CLOSED'

export class TransportError extends Error {
  static override readonly name = 'TransportError'
  readonly code: TransportErrorCode

  constructor(code: TransportErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'TransportError'
    this.code = code
  }
}
