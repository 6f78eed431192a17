import { isIP } from 'node:net'
import { MetricsError } from './errors.ts'

/** Where an ops HTTP listener listens. */
export interface HostPort {
  readonly host: string
  readonly port: number
}

/** The host when an address gives only `:PORT`: metrics and health stay on this machine unless asked. */
export const HTTP_HOST_DEFAULT = '127.0.0.1'
/** A host name longer than this is a mistake, not a name (DNS allows 253). */
const HOST_CHARS_MAX = 253

/**
 * Reads `HOST:PORT`, `[IPV6]:PORT` or `:PORT` (host 127.0.0.1). HOST is an IPv4 or IPv6 address
 * or a DNS name; PORT an integer in 1 … 65535 (0, "any free port", only with `allowAnyPort`: the
 * listener must be where the scraper looks). Returns the reason it is not one, for a caller that
 * collects problems (the cluster file); parseHostPort throws it.
 */
export function readHostPort(text: unknown, options: { allowAnyPort?: boolean } = {}): HostPort | string {
  if (typeof text !== 'string' || text.length === 0) return 'must be a string HOST:PORT, e.g. "127.0.0.1:9101"'
  const colon = text.lastIndexOf(':')
  if (colon < 0) return `"${text}" is not HOST:PORT (no port)`
  let host = text.slice(0, colon)
  const portText = text.slice(colon + 1)
  if (host.startsWith('[') && host.endsWith(']')) {
    host = host.slice(1, -1)
    if (isIP(host) !== 6) return `"${text}": [${host}] is not an IPv6 address`
  } else if (host === '') {
    host = HTTP_HOST_DEFAULT
  } else if (host.includes(':')) {
    return `"${text}": an IPv6 host is written in brackets, [::1]:9101`
  } else if (isIP(host) === 0 && !isHostName(host)) {
    return `"${text}": "${host}" is neither an IP address nor a host name`
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return `"${text}": port "${portText}" is not a number`
  const port = Number(portText)
  const lowest = options.allowAnyPort === true ? 0 : 1
  if (port < lowest || port > 65535) return `"${text}": port ${port} is not in ${lowest} … 65535`
  return { host, port }
}

/** readHostPort, throwing MetricsError INVALID_ADDRESS naming `what` (a flag, a field). */
export function parseHostPort(text: string, what: string, options: { allowAnyPort?: boolean } = {}): HostPort {
  const parsed = readHostPort(text, options)
  if (typeof parsed === 'string') throw new MetricsError('INVALID_ADDRESS', `${what} ${parsed}`)
  return parsed
}

function isHostName(host: string): boolean {
  return (
    host.length <= HOST_CHARS_MAX &&
    host.split('.').every((label) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(label))
  )
}

/** HOST:PORT as written in the cluster file and flags; an IPv6 host in brackets. */
export function formatHostPort(address: HostPort): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`
}
