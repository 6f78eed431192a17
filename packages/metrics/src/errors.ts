/**
 * Codes of MetricsError:
 *   INVALID_ADDRESS     an HTTP listen address that is not HOST:PORT (cluster file `http`, `--http`)
 *   HTTP_LISTEN_FAILED  the configured address could not be bound (in use, not this host's)
 */
export type MetricsErrorCode = 'INVALID_ADDRESS' | 'HTTP_LISTEN_FAILED'

export class MetricsError extends Error {
  static override readonly name = 'MetricsError'
  readonly code: MetricsErrorCode
  constructor(code: MetricsErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'MetricsError'
    this.code = code
  }
}
