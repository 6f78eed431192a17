import { readFile } from 'node:fs/promises'
import { dirname, isAbsolute, resolve } from 'node:path'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
// The address module alone: the CLI's bundle reads cluster files and must not carry Fastify and prom-client.
import { formatHostPort, readHostPort } from '@nodeledger/metrics/address'
import type { HostPort } from '@nodeledger/metrics/address'
import { DEFAULT_LIVENESS } from './constants.ts'
import { ReplicaError } from './replica-errors.ts'

/** One replica as every member and client knows it. */
export interface ClusterMember {
  readonly id: number
  /** Full multiaddr, ending in /p2p/<peerId>. */
  readonly multiaddr: string
  readonly peerId: string
  /** Where this replica keeps its LevelDB log (relative paths are relative to the cluster file). */
  readonly dataDir: string
  /** Its persisted Ed25519 key. */
  readonly keyFile: string
  /**
   * Where it serves GET /metrics, /health and /ready; absent: no HTTP listener. Written HOST:PORT
   * (or :PORT for 127.0.0.1).
   */
  readonly http?: HostPort
}

/** Raft timing, in the replica's ticks. Equal on every replica. */
export interface ClusterTiming {
  readonly tickIntervalMs: number
  readonly heartbeatTicks: number
  readonly electionTimeoutTicks: number
  readonly leaseReads: boolean
}

/** Worker leases: how long a node may go without a heartbeat before the leader marks it inactive. */
export interface ClusterLiveness {
  readonly ttlMs: number
  /** A node whose last connection to the leader closed is marked inactive if it is not back within this. */
  readonly disconnectGraceMs: number
}

export interface ClusterFile {
  readonly version: 1
  readonly clusterId: string
  readonly replicas: readonly ClusterMember[]
  /** Peer ids allowed to submit deltas for any origin (a person at a terminal, via the CLI). */
  readonly operators: readonly { readonly peerId: string; readonly keyFile: string }[]
  readonly timing: ClusterTiming
  readonly snapshotEveryEntries: number
  readonly liveness: ClusterLiveness
}

/**
 * Parse and check a cluster file: everything a replica trusts comes from it, so a mistake here is
 * refused with the field that is wrong, not discovered later as a replica that cannot connect.
 */
export function parseClusterFile(text: string, path: string): ClusterFile {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (error) {
    throw new ReplicaError('INVALID_CLUSTER', `${path} is not valid JSON: ${(error as Error).message}`)
  }
  const problems: string[] = []
  const file = raw as Partial<ClusterFile>
  if (file.version !== 1) problems.push(`version must be 1 (got ${JSON.stringify(file.version)})`)
  if (typeof file.clusterId !== 'string' || file.clusterId.length === 0)
    problems.push('clusterId must be a non-empty string')
  const base = dirname(path)
  const replicas: ClusterMember[] = []
  if (!Array.isArray(file.replicas) || file.replicas.length === 0 || file.replicas.length > 7) {
    problems.push('replicas must list 1 to 7 replicas')
  } else {
    const ids = new Set<number>()
    const httpAddresses = new Map<string, number>()
    // The replicas' own TCP listeners: an http address on one of them would fail the start later.
    const libp2pAddresses = new Map<string, number>()
    for (const [position, replica] of file.replicas.entries()) {
      try {
        const parts = multiaddr(replica.multiaddr).getComponents()
        const host = parts.find((part) => part.name === 'ip4' || part.name === 'ip6')?.value
        const port = parts.find((part) => part.name === 'tcp')?.value
        if (host !== undefined && port !== undefined)
          libp2pAddresses.set(formatHostPort({ host, port: Number(port) }), position)
      } catch {
        // reported below
      }
    }
    for (const [position, replica] of file.replicas.entries()) {
      const where = `replicas[${position}]`
      if (!Number.isSafeInteger(replica.id) || replica.id <= 0) problems.push(`${where}.id must be a positive integer`)
      if (ids.has(replica.id)) problems.push(`${where}.id ${replica.id} is used twice`)
      ids.add(replica.id)
      let peerId = ''
      try {
        const address = multiaddr(replica.multiaddr)
        peerId = address.getComponents().find((component) => component.name === 'p2p')?.value ?? ''
        if (peerId === '') problems.push(`${where}.multiaddr must end in /p2p/<peerId>`)
        else peerIdFromString(peerId)
      } catch (error) {
        problems.push(
          `${where}.multiaddr "${replica.multiaddr}" is not a valid multiaddr with a peer id (${(error as Error).message})`,
        )
      }
      if (typeof replica.dataDir !== 'string' || replica.dataDir === '')
        problems.push(`${where}.dataDir must be a path`)
      if (typeof replica.keyFile !== 'string' || replica.keyFile === '')
        problems.push(`${where}.keyFile must be a path`)
      let http: HostPort | undefined
      const rawHttp = (replica as { http?: unknown }).http
      if (rawHttp !== undefined) {
        const parsed = readHostPort(rawHttp)
        if (typeof parsed === 'string') problems.push(`${where}.http ${parsed}`)
        else {
          http = parsed
          const key = formatHostPort(parsed)
          const other = httpAddresses.get(key)
          if (other !== undefined) problems.push(`${where}.http ${key} is also replicas[${other}]'s`)
          const libp2p = libp2pAddresses.get(key)
          if (libp2p !== undefined) problems.push(`${where}.http ${key} is replicas[${libp2p}].multiaddr's TCP address`)
          httpAddresses.set(key, position)
        }
      }
      replicas.push({
        id: replica.id,
        multiaddr: replica.multiaddr,
        peerId,
        dataDir: absolute(base, replica.dataDir),
        keyFile: absolute(base, replica.keyFile),
        ...(http === undefined ? {} : { http }),
      })
    }
  }
  const operators = Array.isArray(file.operators)
    ? file.operators.map((operator) => ({ peerId: operator.peerId, keyFile: absolute(base, operator.keyFile) }))
    : []
  for (const [position, operator] of operators.entries()) {
    try {
      peerIdFromString(operator.peerId)
    } catch {
      problems.push(`operators[${position}].peerId is not a peer id`)
    }
  }
  const timing = file.timing
  if (
    timing === undefined ||
    !(timing.tickIntervalMs > 0) ||
    !(timing.heartbeatTicks > 0) ||
    !(timing.electionTimeoutTicks > timing.heartbeatTicks)
  ) {
    problems.push('timing must give tickIntervalMs > 0, heartbeatTicks > 0 and electionTimeoutTicks > heartbeatTicks')
  }
  if (!Number.isSafeInteger(file.snapshotEveryEntries) || (file.snapshotEveryEntries ?? 0) < 1)
    problems.push('snapshotEveryEntries must be a positive integer')
  // Optional in the file (older files lack it); every replica must use the same values.
  const liveness = { ...DEFAULT_LIVENESS, ...(file.liveness ?? {}) }
  if (!Number.isSafeInteger(liveness.ttlMs) || liveness.ttlMs < 100)
    problems.push('liveness.ttlMs must be an integer of at least 100')
  if (!Number.isSafeInteger(liveness.disconnectGraceMs) || liveness.disconnectGraceMs < 0)
    problems.push('liveness.disconnectGraceMs must be a non-negative integer')
  if (problems.length > 0) throw new ReplicaError('INVALID_CLUSTER', `cluster file ${path}: ${problems.join('; ')}`)
  return {
    version: 1,
    clusterId: file.clusterId!,
    replicas,
    operators,
    timing: { ...timing!, leaseReads: timing!.leaseReads === true },
    snapshotEveryEntries: file.snapshotEveryEntries!,
    liveness,
  }
}

export async function loadClusterFile(path: string): Promise<ClusterFile> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new ReplicaError(
      'INVALID_CLUSTER',
      `cannot read cluster file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    )
  }
  return parseClusterFile(text, resolve(path))
}

export function memberById(cluster: ClusterFile, id: number): ClusterMember {
  const member = cluster.replicas.find((replica) => replica.id === id)
  if (member === undefined)
    throw new ReplicaError(
      'INVALID_CLUSTER',
      `replica ${id} is not in the cluster file (ids: ${cluster.replicas.map((r) => r.id).join(', ')})`,
    )
  return member
}

function absolute(base: string, path: string): string {
  return isAbsolute(path) ? path : resolve(base, path)
}
