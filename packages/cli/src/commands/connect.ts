import { readFileSync, writeFileSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
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

export interface ClientExtra {
  attemptsMax?: number
  /**
   * Dial the replica that led last time first (leader-only commands: get, put, ls, watch). The
   * client asks the first replica of its list for the leader; when that is not the leader, a
   * second connection and handshake follow. Only the order of the file's own entries changes:
   * the hint is a peer id that must be one of them, so a stale or planted hint costs one extra
   * round trip at worst, never a dial to an address the file does not name.
   */
  preferLeader?: boolean
}

/** The last leader seen, per cluster and user: a peer id in the OS temp dir. */
function leaderHintPath(clusterId: string): string {
  const user = (() => {
    try {
      return String(userInfo().uid)
    } catch {
      return 'user'
    }
  })()
  return join(tmpdir(), `nodeledger-${user}-leader-${clusterId.replace(/[^A-Za-z0-9-]/g, '')}`)
}

function readLeaderHint(clusterId: string): string | undefined {
  try {
    return readFileSync(leaderHintPath(clusterId), 'utf8').trim()
  } catch {
    return undefined
  }
}

export async function openClient(
  options: Pick<ClientCommandOptions, 'cluster' | 'timeoutMs'>,
  extra: ClientExtra = {},
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
  const hint = extra.preferLeader === true ? readLeaderHint(cluster.clusterId) : undefined
  const ordered =
    hint === undefined
      ? cluster.replicas
      : [...cluster.replicas].sort((a, b) => Number(b.peerId === hint) - Number(a.peerId === hint))
  const client = new AuthorityClient({
    bootstrap: ordered.map((replica) => replica.multiaddr),
    libp2p,
    requestTimeoutMs: options.timeoutMs,
    ...(extra.attemptsMax === undefined ? {} : { attemptsMax: extra.attemptsMax }),
  })
  await client.start()
  return { client, cluster, operatorPeerId: operator?.peerId, libp2p }
}

let sharedConnection: (() => Connection | undefined) | undefined

/**
 * Installed by the CLI agent (agent/agent-server.ts): the connection it keeps open, which a
 * command the agent runs uses instead of opening (and closing) its own.
 */
export function setSharedConnection(lookup: () => Connection | undefined): void {
  sharedConnection = lookup
}

/** Open, run, and always stop the client (or run on the agent's open connection, which stays open). */
export async function withClient<T>(
  options: Pick<ClientCommandOptions, 'cluster' | 'timeoutMs'>,
  body: (connection: Connection) => Promise<T>,
  extra: ClientExtra = {},
): Promise<T> {
  const shared = sharedConnection?.()
  if (shared !== undefined) return body(shared)
  const connection = await openClient(options, extra)
  try {
    return await body(connection)
  } finally {
    const leader = connection.client.leader?.match(/\/p2p\/([^/]+)$/)?.[1]
    if (
      extra.preferLeader === true &&
      leader !== undefined &&
      leader !== readLeaderHint(connection.cluster.clusterId)
    ) {
      try {
        writeFileSync(leaderHintPath(connection.cluster.clusterId), `${leader}\n`, { mode: 0o600 })
      } catch {
        // only a hint
      }
    }
    await connection.client.stop()
    await connection.libp2p.stop()
  }
}

export { formatDuration, shortPeerId } from './format.ts'
