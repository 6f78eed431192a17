import { Replica, ReplicaMetrics, loadClusterFile, startReplicaHttp } from '@nodeledger/authority'
import { ApiServer } from '@nodeledger/authority'
import { readHostPort } from '@nodeledger/metrics'
import type { HostPort, OpsServer } from '@nodeledger/metrics'
import { resolve } from 'node:path'
import { bindable, checkListen } from '../addresses.ts'
import { CliError, UsageError, codeOf } from '../exit-codes.ts'
import { createLogger } from '../logger.ts'

export interface AuthorityOptions {
  cluster: string
  id: number
  initialClusterState: 'new' | 'existing'
  /** For a member added after creation (the cluster file lists the founders only): all three. */
  multiaddr?: string
  keyFile?: string
  dataDir?: string
  /** HOST:PORT of the ops HTTP listener (/metrics, /health, /ready); overrides the cluster file's `http`. */
  http?: string
  /**
   * Where to bind when it differs from the advertised address (a DNS name, a NAT'd public IP):
   * `/ip4/0.0.0.0/tcp/7001`. Peers and clients still dial the advertised one.
   */
  listen?: string
  logLevel: string
  pretty: boolean
}

/** How long a leader on its way out waits for a successor before it simply stops. */
const TRANSFER_ON_EXIT_TIMEOUT_MS = 2_000

/** Run one replica in the foreground until SIGTERM/SIGINT; a leader hands over before it exits. */
export async function runAuthority(options: AuthorityOptions): Promise<void> {
  const logger = createLogger({ level: options.logLevel, pretty: options.pretty, name: `replica-${options.id}` })
  const cluster = await loadClusterFile(options.cluster)
  let httpFlag: HostPort | undefined
  if (options.http !== undefined) {
    const parsed = readHostPort(options.http)
    if (typeof parsed === 'string') throw new UsageError(`--http ${parsed}`)
    httpFlag = parsed
  }
  let self: { multiaddr: string; keyFile: string; dataDir: string } | undefined
  if (options.multiaddr !== undefined || options.keyFile !== undefined || options.dataDir !== undefined) {
    if (options.multiaddr === undefined || options.keyFile === undefined || options.dataDir === undefined) {
      throw new UsageError('a member added after creation needs all of --multiaddr, --key and --data')
    }
    self = { multiaddr: options.multiaddr, keyFile: resolve(options.keyFile), dataDir: resolve(options.dataDir) }
  }
  const entry = cluster.replicas.find((replica) => replica.id === options.id)
  const advertised = self?.multiaddr ?? entry?.multiaddr
  if (options.listen !== undefined) {
    // The replica binds its own address minus /p2p/; for another one, it is handed `self` with
    // the listen address, while the membership of record keeps the advertised one (the file's
    // for a founder, the one `member add` recorded for a later member).
    const member = self ?? (entry === undefined ? undefined : { ...entry })
    if (member === undefined)
      throw new UsageError(
        `replica ${options.id} is not in the cluster file; a member added later also needs --multiaddr, --key and --data`,
      )
    const peerId = (self?.multiaddr ?? entry!.multiaddr).match(/\/p2p\/([^/]+)$/)?.[1] ?? ''
    self = {
      multiaddr: `${checkListen(options.listen, peerId)}/p2p/${peerId}`,
      keyFile: member.keyFile,
      dataDir: member.dataDir,
    }
  } else if (advertised !== undefined && !bindable(advertised)) {
    throw new UsageError(
      `replica ${options.id} advertises ${advertised}, a name it cannot bind: pass --listen /ip4/0.0.0.0/tcp/${advertised.match(/\/tcp\/(\d+)/)?.[1] ?? '<port>'} (or the interface's own address)`,
    )
  }
  // One metrics component per replica; this process is one replica, so it also carries Node's process metrics.
  const metrics = new ReplicaMetrics({ processMetrics: true })
  // No `http` in the cluster file (and no --http): no listener. A configured one that cannot be bound
  // refuses the start: whoever configured it relies on it (PROTOCOL.md "Cluster file"). It starts
  // first, so a replica waiting for its peers answers /health (and /ready 503, starting).
  const httpAddress = httpFlag ?? entry?.http
  let started: Replica | undefined
  const http: OpsServer | undefined =
    httpAddress === undefined
      ? undefined
      : await startReplicaHttp({ metrics, replica: () => started, id: options.id, address: httpAddress, logger })
  let replica: Replica
  try {
    replica = await Replica.start({
      cluster,
      id: options.id,
      logger,
      initialClusterState: options.initialClusterState,
      metrics,
      ...(self !== undefined ? { self } : {}),
    })
  } catch (error) {
    await http?.close()
    // libp2p reports a failed listen as one UnsupportedListenAddressesError whose message carries
    // each socket error; its own code is not the socket's.
    const code = /\b(EADDRINUSE|EADDRNOTAVAIL|EACCES)\b/.exec(String((error as Error).message))?.[1] ?? codeOf(error)
    if (code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL' || code === 'EACCES') {
      const where = (self?.multiaddr ?? advertised ?? '?').replace(/\/p2p\/[^/]+$/, '')
      const why =
        code === 'EADDRINUSE'
          ? 'another process listens there (another replica of this or another cluster?)'
          : code === 'EADDRNOTAVAIL'
            ? 'it is not an address of this host (on another host, pass --listen /ip4/0.0.0.0/tcp/<port>)'
            : 'permission denied (a port below 1024?)'
      throw new CliError(code, `replica ${options.id} cannot listen on ${where}: ${why}`)
    }
    throw error
  }
  started = replica
  const api = new ApiServer({ replica, logger })
  await api.start()
  let stopping = false
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'shutting down')
    if (replica.isLeader()) {
      const handedOver = await replica.transferLeadership(TRANSFER_ON_EXIT_TIMEOUT_MS)
      logger.info(
        { handedOver },
        handedOver ? 'leadership handed over before exit' : 'no successor took over in time; exiting anyway',
      )
    }
    await api.stop()
    await http?.close()
    await replica.stop()
    process.exit(0)
  }
  // On demand: `kill -USR2 <pid>` snapshots and compacts the log now (SIGUSR1 belongs to Node's inspector).
  process.on('SIGUSR2', () => {
    replica.snapshotNow().then(
      (index) => logger.info({ index }, 'snapshot on demand'),
      (error: unknown) => logger.error({ err: error }, 'snapshot on demand failed'),
    )
  })
  process.on('SIGTERM', () => void shutdown('SIGTERM'))
  process.on('SIGINT', () => void shutdown('SIGINT'))
}
