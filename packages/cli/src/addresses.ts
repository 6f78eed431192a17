import { isIPv4, isIPv6 } from 'node:net'
import { multiaddr } from '@multiformats/multiaddr'
import type { Component } from '@multiformats/multiaddr'
import { UsageError } from './exit-codes.ts'

/**
 * Replica addresses for `cluster init` and `authority --listen`: hosts (IPs or DNS names) to
 * multiaddrs, and the checks that keep a typo from becoming a cluster file no replica can use.
 */

/** What a replica may advertise: an IP or a DNS name, then TCP. */
const ADVERTISE_PROTOCOLS = new Set(['ip4', 'ip6', 'dns4', 'dns6', 'dns'])
/** What a replica can bind: an IP, then TCP (a name has to be resolved to an interface first). */
const LISTEN_PROTOCOLS = new Set(['ip4', 'ip6'])
const HOSTNAME_LENGTH_MAX = 253
const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i

/** Loopback default: replica N on 127.0.0.(10+N), so partitions can be cut by address. */
export function loopbackHost(id: number): string {
  return `127.0.0.${10 + id}`
}

/** `10.0.0.1` → `/ip4/10.0.0.1/tcp/PORT`, `::1` or `[::1]` → `/ip6/…`, `db1.example.com` → `/dns4/…`. */
export function hostMultiaddr(host: string, port: number): string {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host
  if (isIPv4(bare)) return `/ip4/${bare}/tcp/${port}`
  if (isIPv6(bare)) return `/ip6/${bare}/tcp/${port}`
  if (isHostname(bare)) return `/dns4/${bare.toLowerCase()}/tcp/${port}`
  throw new UsageError(`"${host}" is neither an IP address nor a DNS name`)
}

function isHostname(text: string): boolean {
  if (text.length === 0 || text.length > HOSTNAME_LENGTH_MAX) return false
  const labels = text.replace(/\.$/, '').split('.')
  // An all-numeric name is a mistyped IPv4 address (10.0.0.300), not a host.
  if (labels.every((label) => /^\d+$/.test(label))) return false
  return labels.every((label) => LABEL.test(label))
}

export function splitList(text: string): string[] {
  return text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
}

/**
 * A replica's address as given by an operator: a multiaddr of an IP or DNS name and a TCP port,
 * without `/p2p/` (cluster init appends the key's). Returned in canonical form.
 */
export function checkAdvertised(text: string, what: string): string {
  const components = componentsOf(text, what)
  if (components.at(-1)?.name === 'p2p')
    throw new UsageError(`${what} ${text}: leave out /p2p/…, cluster init appends each replica's own peer id`)
  checkTransport(components, text, what, ADVERTISE_PROTOCOLS)
  return multiaddr(text).toString()
}

/** A listen address: `/ip4|ip6/<address>/tcp/<port>` (a name cannot be bound; an optional /p2p/ must be this key's). */
export function checkListen(text: string, peerId: string): string {
  const components = componentsOf(text, '--listen')
  if (components.at(-1)?.name === 'p2p') {
    if (components.at(-1)?.value !== peerId)
      throw new UsageError(`--listen ${text} names peer ${components.at(-1)?.value}, but this replica is ${peerId}`)
    components.pop()
  }
  checkTransport(components, text, '--listen', LISTEN_PROTOCOLS)
  return multiaddr(components).toString()
}

/** Whether an advertised address can be bound as it is (an IP), or needs `--listen` (a DNS name). */
export function bindable(advertised: string): boolean {
  const first = multiaddr(advertised).getComponents()[0]
  return first !== undefined && LISTEN_PROTOCOLS.has(first.name)
}

function componentsOf(text: string, what: string): Component[] {
  try {
    return multiaddr(text).getComponents()
  } catch (error) {
    throw new UsageError(`${what} "${text}" is not a multiaddr (${(error as Error).message})`)
  }
}

function checkTransport(components: Component[], text: string, what: string, allowed: ReadonlySet<string>): void {
  const [host, transport] = components
  if (components.length !== 2 || host === undefined || !allowed.has(host.name) || transport?.name !== 'tcp') {
    throw new UsageError(
      `${what} ${text} is not /${[...allowed].join('|')}/<host>/tcp/<port>: replicas speak TCP, on one address each`,
    )
  }
  const port = Number(transport.value)
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new UsageError(`${what} ${text}: port 1-65535`)
}

export interface AddressPlan {
  /** Each replica's advertised address without /p2p/, in id order. */
  readonly addresses: readonly string[]
}

/**
 * The replicas' advertised addresses for `cluster init`: `--multiaddrs` as given, `--hosts` on
 * `--port`, or loopback (127.0.0.11, .12, …) on `--port`. Two replicas never share an address.
 */
export function planAddresses(options: {
  replicas: number | undefined
  hosts?: string
  multiaddrs?: string
  port: number
}): AddressPlan {
  if (options.hosts !== undefined && options.multiaddrs !== undefined)
    throw new UsageError('give --hosts or --multiaddrs, not both')
  let addresses: string[]
  if (options.multiaddrs !== undefined) {
    addresses = splitList(options.multiaddrs).map((text, i) => checkAdvertised(text, `--multiaddrs entry ${i + 1}`))
  } else if (options.hosts !== undefined) {
    addresses = splitList(options.hosts).map((host) => hostMultiaddr(host, options.port))
  } else {
    const count = options.replicas ?? 3
    addresses = Array.from({ length: count }, (_, i) => hostMultiaddr(loopbackHost(i + 1), options.port))
  }
  const count = addresses.length
  if (options.replicas !== undefined && options.replicas !== count)
    throw new UsageError(`--replicas ${options.replicas}, but ${count} addresses were given`)
  if (count !== 3 && count !== 5)
    throw new UsageError(`a cluster starts with 3 or 5 replicas (got ${count}); grow it later with member add`)
  const seen = new Map<string, number>()
  for (const [i, address] of addresses.entries()) {
    const previous = seen.get(address)
    if (previous !== undefined)
      throw new UsageError(
        `replicas ${previous} and ${i + 1} would both be at ${address}: give each its own host, or its own port with --multiaddrs`,
      )
    seen.set(address, i + 1)
  }
  return { addresses }
}
