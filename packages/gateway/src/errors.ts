/**
 * Codes of GatewayError, each answered with one HTTP status and the JSON body `{ code, message }`.
 * The codes the registry and the authority API throw (ProtocolError, RegistryError) keep their
 * code across the gateway: an error with a `code` in this table is answered with that code.
 *
 *   INVALID       400  a malformed request: a wrong type, an unknown field, a malformed peer id
 *   TOO_LARGE     400  a body over the route's limit, or values over the registry's limits
 *   UNAUTHORIZED  403  the authority refused the write
 *   NOT_FOUND     404  no such record or route
 *   STALE         409  a newer update of this node's record was applied first
 *   CONFLICT      409  the authority refused the change as it stands
 *   REFUSED       409
 *   TOO_MANY      429  too many event streams open on this listener
 *   INTERNAL      500  a bug: the message says nothing more, the node's log has the detail
 *   UNAVAILABLE   503  the node is starting or stopping, or no leader answered: retry
 *   NOT_LEADER    503
 *   NOT_READY     503
 *   TIMEOUT       504  the authority did not answer in time: the write may still be applied
 */
export type GatewayErrorCode =
  | 'INVALID'
  | 'TOO_LARGE'
  | 'UNAUTHORIZED'
  | 'NOT_FOUND'
  | 'STALE'
  | 'CONFLICT'
  | 'REFUSED'
  | 'TOO_MANY'
  | 'INTERNAL'
  | 'UNAVAILABLE'
  | 'NOT_LEADER'
  | 'NOT_READY'
  | 'TIMEOUT'

export const HTTP_STATUS_OF: Readonly<Record<GatewayErrorCode, number>> = {
  INVALID: 400,
  TOO_LARGE: 400,
  UNAUTHORIZED: 403,
  NOT_FOUND: 404,
  STALE: 409,
  CONFLICT: 409,
  REFUSED: 409,
  TOO_MANY: 429,
  INTERNAL: 500,
  UNAVAILABLE: 503,
  NOT_LEADER: 503,
  NOT_READY: 503,
  TIMEOUT: 504,
}

export const GATEWAY_ERROR_CODES = Object.keys(HTTP_STATUS_OF) as GatewayErrorCode[]

export class GatewayError extends Error {
  static override readonly name = 'GatewayError'
  readonly code: GatewayErrorCode
  constructor(code: GatewayErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'GatewayError'
    this.code = code
  }
}

export interface HttpError {
  readonly status: number
  readonly body: { readonly code: GatewayErrorCode; readonly message: string }
}

/** Fastify's own codes for a request it could not take (body, content type), by what they mean here. */
const FASTIFY_CODES: Readonly<Record<string, GatewayErrorCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'INVALID',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'INVALID',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'INVALID',
  FST_ERR_CTP_INVALID_JSON_BODY: 'INVALID',
  FST_ERR_VALIDATION: 'INVALID',
}

function isGatewayCode(code: unknown): code is GatewayErrorCode {
  return typeof code === 'string' && Object.hasOwn(HTTP_STATUS_OF, code)
}

/**
 * The one mapping from anything thrown in a route to the HTTP answer. A coded error keeps its code
 * and message; Fastify's validation and body errors become INVALID or TOO_LARGE (status 400, the
 * issue's rule for all bad input), any other 4xx of Fastify INVALID with its status; anything else
 * is a bug: 500 INTERNAL without its message or stack (the caller logs it).
 */
export function toHttpError(error: unknown): HttpError {
  const candidate = error as { code?: unknown; message?: unknown; statusCode?: unknown; validation?: unknown }
  const message = typeof candidate?.message === 'string' ? candidate.message.slice(0, 1024) : ''
  if (isGatewayCode(candidate?.code)) {
    return { status: HTTP_STATUS_OF[candidate.code], body: { code: candidate.code, message } }
  }
  if (candidate?.validation !== undefined) {
    // Ajv says "must NOT have additional properties" without the name; a client needs the name.
    const first = (candidate.validation as { keyword?: string; params?: { additionalProperty?: unknown } }[])[0]
    const unknown = first?.keyword === 'additionalProperties' ? first.params?.additionalProperty : undefined
    const named =
      typeof unknown === 'string' ? `${message}: "${unknown.slice(0, 64)}" is not a field it takes` : message
    return { status: 400, body: { code: 'INVALID', message: named } }
  }
  if (typeof candidate?.code === 'string' && Object.hasOwn(FASTIFY_CODES, candidate.code)) {
    const code = FASTIFY_CODES[candidate.code]!
    return { status: HTTP_STATUS_OF[code], body: { code, message } }
  }
  const status = typeof candidate?.statusCode === 'number' ? candidate.statusCode : 500
  if (status >= 400 && status < 500) return { status, body: { code: 'INVALID', message } }
  return { status: 500, body: { code: 'INTERNAL', message: 'internal error' } }
}
