import { createServer } from 'node:net'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { pino } from 'pino'
import type { Logger } from 'pino'
import { createReplicaHost, PeerLinks } from '../../src/transport/index.ts'
import type { PeerAddress, PeerLinksOptions, ReplicaHost } from '../../src/transport/index.ts'

export const PROTOCOL = '/nodeledger/test-links/1'

/** Silent unless LOG_LEVEL is set (LOG_LEVEL=debug vitest run … to watch the links). */
export const logger: Logger = pino({ level: process.env.LOG_LEVEL ?? 'silent' })

/** A logger whose lines are kept as parsed objects, for asserting on what was logged. */
export function capturingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const destination = { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) }
  return { logger: pino({ level: 'debug' }, destination), lines }
}

/**
 * Polls `condition` every few milliseconds until it holds; fails naming `what` after `timeoutMs`.
 * Bounded waits on conditions, never sleeps for a guessed time.
 */
export async function waitFor(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`waitFor: "${what}" still false after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** A TCP port that was free a moment ago (bound to port 0, then released). */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}

export function addressOf(host: ReplicaHost): PeerAddress {
  const first = host.getMultiaddrs()[0]
  if (first === undefined) throw new Error('host has no address')
  return { peerId: host.peerId.toString(), multiaddr: first.toString() }
}

export interface Received {
  readonly from: number
  readonly frame: Uint8Array
}

export interface Node {
  readonly id: number
  readonly host: ReplicaHost
  links: PeerLinks
  readonly received: Received[]
  readonly downs: Array<{ id: number; atMs: number }>
}

/** Every host, link set and child process a test made, torn down after it whatever happened. */
export class Fixture {
  private readonly nodes: Node[] = []
  private readonly cleanups: Array<() => Promise<void>> = []

  async host(listen = '/ip4/127.0.0.1/tcp/0'): Promise<ReplicaHost> {
    const host = await createReplicaHost({ privateKey: await generateKeyPair('Ed25519'), listen: [listen], logger })
    this.cleanups.push(async () => host.stop())
    return host
  }

  /** `count` hosts with ids 1..count, each with PeerLinks to all the others. */
  async cluster(count: number, options: Partial<PeerLinksOptions> = {}): Promise<Node[]> {
    const hosts = await Promise.all(Array.from({ length: count }, async () => this.host()))
    const addresses = new Map(hosts.map((host, index) => [index + 1, addressOf(host)]))
    const nodes = hosts.map((host, index) => this.node(index + 1, host, without(addresses, index + 1), options))
    await Promise.all(nodes.map(async (node) => node.links.start()))
    return nodes
  }

  /** PeerLinks on `host` (not started) recording frames and peer-down calls. */
  node(id: number, host: ReplicaHost, peers: Map<number, PeerAddress>, options: Partial<PeerLinksOptions> = {}): Node {
    const received: Received[] = []
    const downs: Array<{ id: number; atMs: number }> = []
    const links = new PeerLinks({
      libp2p: host,
      protocol: PROTOCOL,
      peers,
      self: id,
      logger,
      onFrame: (from, frame) => received.push({ from, frame: frame.slice() }),
      onPeerDown: (peer) => downs.push({ id: peer, atMs: performance.now() }),
      ...options,
    })
    const node = { id, host, links, received, downs }
    this.nodes.push(node)
    return node
  }

  onCleanup(cleanup: () => Promise<void>): void {
    this.cleanups.push(cleanup)
  }

  async cleanup(): Promise<void> {
    await Promise.allSettled(this.nodes.map(async (node) => node.links.stop()))
    await Promise.allSettled(this.cleanups.reverse().map(async (cleanup) => cleanup()))
    this.nodes.length = 0
    this.cleanups.length = 0
  }
}

export function without<V>(map: Map<number, V>, id: number): Map<number, V> {
  return new Map([...map].filter(([key]) => key !== id))
}

/** A frame carrying `sender` and `sequence`, `size` bytes long. */
export function numberedFrame(sender: number, sequence: number, size = 16): Uint8Array {
  const frame = new Uint8Array(Math.max(size, 8))
  const view = new DataView(frame.buffer)
  view.setUint32(0, sender)
  view.setUint32(4, sequence)
  return frame
}

export function readNumbered(frame: Uint8Array): { sender: number; sequence: number } {
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength)
  return { sender: view.getUint32(0), sequence: view.getUint32(4) }
}
