/**
 * Stable error codes. Messages may change; codes do not. Callers and tests branch on `code`.
 *   INVALID              bytes or values that do not describe a well-formed command, record or snapshot
 *   TOO_LARGE            a size limit was exceeded (bytes, multiaddrs, string length, records)
 *   UNSUPPORTED_VERSION  an envelope written by a codec version this build does not know
 *   UNAUTHORIZED         a delta submitted by someone other than its origin or a replica, or an
 *                        observation from a peer that is not a replica
 *   STALE                a delta whose origin sequence is not above the highest already applied
 *   CORRUPT              a snapshot whose checksum does not match its body
 */
export type RegistryErrorCode = 'INVALID' | 'TOO_LARGE' | 'UNSUPPORTED_VERSION' | 'UNAUTHORIZED' | 'STALE' | 'CORRUPT'

export const REGISTRY_ERROR_CODES: readonly RegistryErrorCode[] = [
  'INVALID',
  'TOO_LARGE',
  'UNSUPPORTED_VERSION',
  'UNAUTHORIZED',
  'STALE',
  'CORRUPT',
]

/** The only error the registry throws for bad input. Decoders throw nothing else. */
export class RegistryError extends Error {
  static override readonly name = 'RegistryError'
  readonly code: RegistryErrorCode

  constructor(code: RegistryErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'RegistryError'
    this.code = code
  }
}

/** A broken invariant inside the registry: a bug, never bad input. Crash loudly (TIGER_STYLE). */
export class RegistryAssertionError extends Error {
  static override readonly name = 'RegistryAssertionError'
  constructor(message: string) {
    super(`registry invariant violated: ${message}`)
    this.name = 'RegistryAssertionError'
  }
}

export function assert(condition: boolean, message: string | (() => string)): asserts condition {
  if (!condition) throw new RegistryAssertionError(typeof message === 'string' ? message : message())
}
