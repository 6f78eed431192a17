import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import type { Libp2p } from '@libp2p/interface'
import { createLibp2p } from 'libp2p'
import { AuthorityClient } from '@nodeledger/client'
import { loadClusterFile } from '@nodeledger/authority/cluster-file'
import type { ClusterFile } from '@nodeledger/authority/cluster-file'
import { loadOrCreateKey } from '@nodeledger/authority/key'

/**
 * What every client command shares: the cluster file, and a client acting as its operator (which
 * may write any node's record and change the membership). Imported only by commands that talk to
 * the cluster, so `--help` never loads libp2p.
 */

export interface ClientCommandOptions {
  cluster: string
  json: boolean
  timeoutMs: number
}

export interface Connection {
  client: AuthorityClient
  cluster: ClusterFile
  /** The operator's peer id, if the cluster file names one. */
  operatorPeerId: string | undefined
  libp2p: Libp2p
}

export async function openClient(
  options: Pick<ClientCommandOptions, 'cluster' | 'timeoutMs'>,
  extra: { attemptsMax?: number } = {},
): Promise<Connection> {
  const cluster = await loadClusterFile(options.cluster)
  const operator = cluster.operators[0]
  const privateKey = operator === undefined ? undefined : await loadOrCreateKey(operator.keyFile)
  // A one-shot command's own node, leaner than AuthorityClient's default: no identify (an exchange
  // per connection that the API does not use) and no connection monitor (pings every 10 s).
  const libp2p = await createLibp2p({
    ...(privateKey !== undefined ? { privateKey } : {}),
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionMonitor: { enabled: false },
  })
  const client = new AuthorityClient({
    bootstrap: cluster.replicas.map((replica) => replica.multiaddr),
    libp2p,
    requestTimeoutMs: options.timeoutMs,
    ...(extra.attemptsMax === undefined ? {} : { attemptsMax: extra.attemptsMax }),
  })
  await client.start()
  return { client, cluster, operatorPeerId: operator?.peerId, libp2p }
}

/** Open, run, and always stop the client. */
export async function withClient<T>(
  options: Pick<ClientCommandOptions, 'cluster' | 'timeoutMs'>,
  body: (connection: Connection) => Promise<T>,
  extra: { attemptsMax?: number } = {},
): Promise<T> {
  const connection = await openClient(options, extra)
  try {
    return await body(connection)
  } finally {
    await connection.client.stop()
    await connection.libp2p.stop()
  }
}

/** For tables only (JSON and logs keep full ids): the tail a person can tell apart. */
export function shortPeerId(peerId: string): string {
  return peerId.length <= 16 ? peerId : `…${peerId.slice(-10)}`
}

export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${ms}ms`
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)}s`
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m${Math.floor((ms % 60_000) / 1_000)}s`
  return `${Math.floor(ms / 3_600_000)}h${Math.floor((ms % 3_600_000) / 60_000)}m`
}
